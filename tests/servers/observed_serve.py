"""`transformers serve` as it is, writing down each prompt it renders (a test harness).

Usage (with a python that has transformers[serving] and torchvision):
    python tests/servers/observed_serve.py LOG serve [ARGS...]
The server's code path is untouched: its own call to the processor's apply_chat_template runs
as it would, and the input ids that call returns are decoded and appended to LOG with the
request's messages (image data replaced by its size), one JSON line per chat completion.
"""

from __future__ import annotations

import base64
import contextvars
import io
import json
import sys
import threading
from pathlib import Path
from typing import Any

_BODY: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("body", default=None)
_LOCK = threading.Lock()


def image_size(url: str) -> list[int] | None:
    """The (width, height) of a data: URL's image, None for anything else."""
    if not url.startswith("data:"):
        return None
    from PIL import Image

    data = base64.b64decode(url.split(",", 1)[1])
    with Image.open(io.BytesIO(data)) as image:
        return [image.width, image.height]


def without_images(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages with each image part's data replaced by its size (logs stay small)."""
    out = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            parts = []
            for part in content:
                if part.get("type") == "image_url":
                    url = part["image_url"]["url"] if isinstance(part["image_url"], dict) else ""
                    part = {"type": "image_url", "size": image_size(url)}
                parts.append(part)
            message = {**message, "content": parts}
        out.append(message)
    return out


def install(log: Path) -> None:
    """Wrap the chat handler and the processor's apply_chat_template to log what they render."""
    from transformers.cli.serving.chat_completion import ChatCompletionHandler
    from transformers.processing_utils import ProcessorMixin

    handle = ChatCompletionHandler.handle_request
    render = ProcessorMixin.apply_chat_template

    async def handle_request(self: Any, body: dict[str, Any], request_id: str) -> Any:
        token = _BODY.set(body)
        try:
            return await handle(self, body, request_id)
        finally:
            _BODY.reset(token)

    def apply_chat_template(self: Any, conversation: Any, *args: Any, **kwargs: Any) -> Any:
        result = render(self, conversation, *args, **kwargs)
        body = _BODY.get()
        if body is not None and kwargs.get("tokenize"):
            ids = result["input_ids"]
            first = ids[0] if hasattr(ids[0], "__len__") else ids
            prompt = self.tokenizer.decode(list(map(int, first)), skip_special_tokens=False)
            record = {
                "messages": without_images(body["messages"]),
                "tools": body.get("tools"),
                "chat_template_kwargs": body.get("chat_template_kwargs", {}),
                "prompt": prompt,
            }
            with _LOCK, log.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        return result

    ChatCompletionHandler.handle_request = handle_request  # type: ignore[method-assign]
    ProcessorMixin.apply_chat_template = apply_chat_template  # type: ignore[method-assign]


if __name__ == "__main__":
    install(Path(sys.argv[1]))
    from transformers.cli.transformers import main

    sys.argv = ["transformers", *sys.argv[2:]]
    main()
