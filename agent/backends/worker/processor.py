"""The chat template and image inputs of a Qwen 3.5 checkpoint, without torchvision."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agent.backends.worker.hub import ModelNotFound


def image_processor_kwargs(folder: Path) -> dict[str, Any]:
    """The image processor settings a checkpoint ships (processor or preprocessor config)."""
    kwargs: dict[str, Any] | None = None
    processor_config = folder / "processor_config.json"
    if processor_config.is_file():
        block = json.loads(processor_config.read_text()).get("image_processor")
        if isinstance(block, dict):
            kwargs = dict(block)
    preprocessor_config = folder / "preprocessor_config.json"
    if kwargs is None and preprocessor_config.is_file():
        kwargs = dict(json.loads(preprocessor_config.read_text()))
    if kwargs is None:
        # Qwen3-VL / Qwen3.5 defaults: 16 px patches, 2x2 merge, 64K..16M pixels.
        kwargs = {
            "size": {"shortest_edge": 65536, "longest_edge": 16777216},
            "patch_size": 16,
            "temporal_patch_size": 2,
            "merge_size": 2,
            "image_mean": [0.5, 0.5, 0.5],
            "image_std": [0.5, 0.5, 0.5],
        }
    for key in ("image_processor_type", "processor_class", "auto_map"):
        kwargs.pop(key, None)
    return {k: v for k, v in kwargs.items() if not k.startswith("_")}


def _chat_template(folder: Path, tokenizer: Any) -> str | None:
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, str) and template:
        return template
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text()
    as_json = folder / "chat_template.json"
    if as_json.is_file():
        value = json.loads(as_json.read_text()).get("chat_template")
        return value if isinstance(value, str) else None
    return None


def build_processor(folder: Path) -> Any:
    """Qwen3VLProcessor from the image processor and tokenizer alone: no torchvision needed."""
    from transformers import AutoTokenizer, Qwen2VLImageProcessorPil, Qwen3VLProcessor

    # AutoProcessor would look for the video processor (torchvision) or silently return only
    # the tokenizer; a subclass without a video_processor parameter avoids both.
    class ImageTextProcessor(Qwen3VLProcessor):
        def __init__(
            self,
            image_processor: Any = None,
            tokenizer: Any = None,
            chat_template: str | None = None,
            **kwargs: Any,
        ) -> None:
            super().__init__(
                image_processor, tokenizer, None, chat_template=chat_template, **kwargs
            )

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    image_processor = Qwen2VLImageProcessorPil(**image_processor_kwargs(folder))
    template = _chat_template(folder, tokenizer)
    if template is None:
        raise ModelNotFound(f"{folder} has no chat template (chat_template.jinja).")
    return ImageTextProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=template
    )


def chat_turns(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Request messages as the chat template reads them (images as placeholders, in order)."""
    chat: list[dict[str, Any]] = []
    for m in messages:
        turn: dict[str, Any] = {
            "role": m["role"],
            "content": [{"type": "image"} if p.get("type") == "image" else p for p in m["content"]],
        }
        # Qwen 3.5's multi-step shape: the checkpoint's template renders these itself.
        for key in ("tool_calls", "tool_call_id"):
            if m.get(key) is not None:
                turn[key] = m[key]
        chat.append(turn)
    return chat
