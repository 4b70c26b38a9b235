"""Against a real OpenAI-compatible server: `transformers serve` with tiny Qwen 3.5 checkpoints.

The checkpoints carry Qwen 3.5's real chat template (tests/data/Qwen3.5-4B.jinja). The server
writes down each prompt it renders (tests/servers/observed_serve.py); every test compares that
prompt with the template's own rendering of the request deskpilot sent.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from actions.screen import CoordinateSpace
from agent.backends.base import ChatMessage, ImagePart, ToolCall
from agent.backends.openai_compat import OpenAIBackend
from agent.protocol import tool_schema
from agent.recording import read_run
from tests.servers.conftest import Served, needs_serve
from tests.servers.tiny_checkpoints import CALL, TEMPLATE
from tests.support.x11 import pointer_position, x_env

pytestmark = needs_serve
ROOT = Path(__file__).resolve().parents[2]
PAD = "<|image_pad|>"


def png(width: int, height: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


def visual_tokens(size: list[int], checkpoint: Path) -> int:
    """Image pads for an image of this size, by Qwen's resize rule and the checkpoint's limits."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    config = json.loads((checkpoint / "preprocessor_config.json").read_text())
    cell = config["patch_size"] * config["merge_size"]
    height, width = smart_resize(
        size[1],
        size[0],
        factor=cell,
        min_pixels=config["size"]["shortest_edge"],
        max_pixels=config["size"]["longest_edge"],
    )
    return (height // cell) * (width // cell)


def template_rendering(request: dict[str, Any], checkpoint: Path) -> str:
    """The real template's prompt for a request as sent, images expanded to their pads."""
    from transformers import AutoTokenizer

    chat, sizes = [], []
    for message in request["messages"]:
        message = dict(message)
        if isinstance(message.get("content"), list):
            parts = []
            for part in message["content"]:
                if part["type"] == "image_url":
                    sizes.append(part["size"])
                    part = {"type": "image"}
                parts.append(part)
            message["content"] = parts
        if message.get("tool_calls"):
            # The template iterates the arguments as a mapping: every server parses the JSON.
            calls = []
            for call in message["tool_calls"]:
                function = {
                    **call["function"],
                    "arguments": json.loads(call["function"]["arguments"]),
                }
                calls.append({**call, "function": function})
            message["tool_calls"] = calls
        chat.append(message)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    text = tokenizer.apply_chat_template(
        chat,
        tools=request["tools"],
        chat_template=TEMPLATE.read_text(encoding="utf-8"),
        add_generation_prompt=True,
        tokenize=False,
        **request["chat_template_kwargs"],
    )
    pieces = text.split(PAD)
    assert len(pieces) == len(sizes) + 1
    return pieces[0] + "".join(
        PAD * visual_tokens(size, checkpoint) + piece
        for size, piece in zip(sizes, pieces[1:], strict=True)
    )


def conversation(with_tool_image: bool) -> list[ChatMessage]:
    """One step of history in Qwen 3.5's native shape."""
    shot = ImagePart(png(128, 96), 128, 96)
    call = ToolCall("computer_use", json.dumps({"action": "left_click", "coordinate": [1, 2]}))
    result: tuple[str | ImagePart, ...] = ("Executed left_click.", "\nCurrent screen:\n")
    return [
        ChatMessage("system", ("You operate a desktop.",)),
        ChatMessage("user", ("Task: x\n\nCurrent screen:\n", shot)),
        ChatMessage("assistant", (), (ToolCall(call.name, call.arguments, "call_1"),)),
        ChatMessage("tool", result + ((shot,) if with_tool_image else ()), tool_call_id="call_1"),
    ]


def run_cli(served: Served, model: str, runs: Path, display: str, *extra: str) -> Any:
    """`main.py run` against the server on the private display; the process and its recording."""
    cmd = [sys.executable, "main.py", "run", "click the middle of the screen"]
    cmd += ["--endpoint", served.url, "--model", str(served.models[model])]
    cmd += ["--runs-dir", str(runs), "--approve", "auto", "--timeout", "120", *extra]
    proc = subprocess.run(
        cmd,
        cwd=ROOT,
        env=x_env(display, HF_HUB_OFFLINE="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    (run_dir,) = [d for d in runs.iterdir() if d.is_dir()]
    return proc, read_run(run_dir)


def test_the_native_shape_with_a_screenshot_in_the_tool_message_is_accepted(
    transformers_serve: Served,
) -> None:
    tools = [tool_schema(CoordinateSpace.relative())]
    checkpoint = transformers_serve.models["random"]
    backend = OpenAIBackend(
        transformers_serve.url,
        str(checkpoint),
        max_tokens=8,
        timeout_s=120,
        sampling={"temperature": 0},
    )
    transformers_serve.forget()
    try:
        with_image = backend.complete(conversation(True), tools)
        without = backend.complete(conversation(False), tools)
    finally:
        backend.close()
    # Accepted as sent: no fallback to the earlier shape, tools in the `tools` parameter.
    assert with_image.conversation == "native" and backend.describe()["conversation"] == "native"
    assert not backend.tools_in_prompt
    # The screenshot in the tool message reached the model: 128x96 is upscaled to 320x224
    # by Qwen's resize rule, 70 visual tokens plus the vision start/end markers.
    assert with_image.prompt_tokens is not None and without.prompt_tokens is not None
    assert with_image.prompt_tokens - without.prompt_tokens >= 70
    first, second = transformers_serve.rendered()
    assert first["prompt"] == template_rendering(first, checkpoint)
    assert second["prompt"] == template_rendering(second, checkpoint)
    # The template's own multi-step shape: the result inside <tool_response>, image included.
    assert (
        "<tool_response>\nExecuted left_click.\nCurrent screen:\n<|vision_start|>"
        in (first["prompt"])
    )


def test_a_whole_run_in_the_native_shape_renders_as_the_template_does(
    transformers_serve: Served, xdisplay: str, tmp_path: Path
) -> None:
    transformers_serve.forget()
    proc, run = run_cli(
        transformers_serve,
        "caller",
        tmp_path,
        xdisplay,
        "--max-steps",
        "5",
        "--repeat-limit",
        "10",
        "--thinking",
        "off",
    )
    assert proc.returncode == 1, proc.stderr  # the step limit is not success
    assert run.info["outcome"]["status"] == "max_steps"
    assert run.info["conversation"] == "native"
    assert run.info["backend"]["tools_in_prompt"] is False
    assert [s["phase"] for s in run.steps] == ["done"] * 5
    assert all(s["conversation"] == "native" for s in run.steps)
    assert all(s["execution"]["ok"] and s["action"] == CALL for s in run.steps)
    assert pointer_position(xdisplay) == (960, 540)  # [500, 500] of 1920x1080: the click landed
    requests = transformers_serve.rendered()
    assert len(requests) == 5
    last = requests[-1]
    roles = [m["role"] for m in last["messages"]]
    assert roles == ["system", "user"] + ["assistant", "tool"] * 4
    assert last["prompt"] == template_rendering(last, transformers_serve.models["caller"])
    # As trained: one real user query (the task), every result a <tool_response> after it.
    assert last["prompt"].count("<|im_start|>user\nTask:") == 1
    assert last["prompt"].count("<tool_response>\nExecuted left_click") == 4


def test_a_random_model_ends_the_run_cleanly_on_invalid_output(
    transformers_serve: Served, xdisplay: str, tmp_path: Path
) -> None:
    transformers_serve.forget()
    proc, run = run_cli(
        transformers_serve, "random", tmp_path, xdisplay, "--max-steps", "5", "--max-tokens", "48"
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert run.info["outcome"]["status"] == "invalid_output"
    assert run.info["conversation"] == "native"
    assert len(run.steps) == 3  # three invalid outputs in a row end it
    for step in run.steps:
        assert step["phase"] == "done" and step["parse_error"]
        assert step.get("execution") is None and not step.get("to_run")  # nothing ran
    requests = transformers_serve.rendered()
    assert len(requests) == 3
    assert requests[-1]["prompt"] == template_rendering(
        requests[-1], transformers_serve.models["random"]
    )


def test_the_checkpoint_template_is_the_real_one(transformers_serve: Served) -> None:
    for folder in transformers_serve.models.values():
        assert (folder / "chat_template.jinja").read_bytes() == TEMPLATE.read_bytes()
