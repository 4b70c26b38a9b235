"""Against a real OpenAI-compatible server: `transformers serve` with a tiny random Qwen 3.5.

Opt-in: `transformers serve` needs torchvision for Qwen 3.5's processor, and torchvision only
installs beside a matching (5.5 GB, CUDA) torch build, so it lives in a venv of its own
(docs/backends.md). Point DESKPILOT_SERVE_PYTHON at that venv's python to run these.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from actions.screen import CoordinateSpace
from agent.backends.base import ChatMessage, ImagePart, ToolCall
from agent.backends.openai_compat import OpenAIBackend
from agent.protocol import tool_schema

SERVE_PYTHON = os.environ.get("DESKPILOT_SERVE_PYTHON")
pytestmark = pytest.mark.skipif(
    not SERVE_PYTHON, reason="set DESKPILOT_SERVE_PYTHON to a python with transformers[serving]"
)
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def serve_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`transformers serve` on 127.0.0.1 with a tiny random Qwen 3.5 preloaded."""
    folder = tmp_path_factory.mktemp("serve") / "tiny"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run(
        [sys.executable, "tests/support/tiny_qwen35.py", str(folder), "dense"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    port = free_port()
    assert SERVE_PYTHON is not None
    serve = Path(SERVE_PYTHON).parent / "transformers"
    log = tmp_path_factory.mktemp("serve-log") / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(serve), "serve", str(folder), "--host", "127.0.0.1", "--port", str(port)]
            + ["--device", "cpu"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"transformers serve did not start: {log.read_text()[-2000:]}")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def png(width: int, height: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


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


def test_the_native_shape_with_a_screenshot_in_the_tool_message_is_accepted(
    serve_url: str,
) -> None:
    tools = [tool_schema(CoordinateSpace.relative())]
    backend = OpenAIBackend(serve_url, max_tokens=8, timeout_s=120, sampling={"temperature": 0})
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
