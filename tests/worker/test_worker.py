"""The local Qwen 3.5 worker end to end, with tiny random checkpoints (dense and MoE)."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.backends.base import BackendError, Cancelled, ChatMessage, Completion, Delta, ImagePart
from agent.backends.local import LocalBackend, default_thinking
from agent.backends.worker.think_split import ThinkSplitter, split_reasoning
from agent.backends.worker_wire import encode_frame, read_frame

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None,
    reason="torch/transformers are not installed (pip install torch==2.13.0 transformers)",
)

TOOLS: list[dict[str, object]] = [
    {
        "type": "function",
        "function": {
            "name": "computer_use",
            "description": "Use the mouse and keyboard; coordinates are 0-1000 on each axis.",
            "parameters": {
                "type": "object",
                "properties": {
                    "action": {"type": "string", "enum": ["left_click", "type", "terminate"]},
                    "coordinate": {"type": "array", "items": {"type": "number"}},
                    "text": {"type": "string"},
                },
                "required": ["action"],
            },
        },
    }
]


def render_screenshot(width: int = 640, height: int = 400) -> bytes:
    """A desktop-like PNG: a title bar, a text field and an OK button."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), (236, 236, 236))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, width, 28), fill=(40, 60, 120))
    draw.text((10, 8), "Save file", fill="white")
    draw.rectangle((40, 120, 600, 150), outline="black", fill="white")
    draw.rectangle((500, 320, 600, 356), outline="black", fill=(200, 220, 255))
    draw.text((538, 332), "OK", fill="black")
    out = io.BytesIO()
    img.save(out, "PNG", compress_level=1)
    return out.getvalue()


def step_messages(image: ImagePart) -> list[ChatMessage]:
    """One agent step: system prompt, then the task with the screenshot."""
    return [
        ChatMessage("system", ("You operate a desktop computer. Answer with one tool call.",)),
        ChatMessage("user", ("Task: save the file as notes.txt.\nCurrent screen:", image)),
    ]


@pytest.fixture(scope="module")
def screenshot() -> ImagePart:
    """A 640x400 PNG sent as bytes over the pipe (no file behind it)."""
    return ImagePart(render_screenshot(), 640, 400)


@pytest.fixture(scope="module", params=["dense", "moe"])
def backend(request: pytest.FixtureRequest, tiny_qwen35: dict[str, Path]) -> Iterator[LocalBackend]:
    """A warm worker on a tiny checkpoint, shared by the tests of one variant."""
    stages: list[tuple[str, float | None]] = []
    b = LocalBackend(
        str(tiny_qwen35[request.param]),
        max_new_tokens=48,
        thinking=False,  # the tiny MoE would think by default (MoE releases are 35B and up)
        on_progress=lambda stage, fraction: stages.append((stage, fraction)),
    )
    started = time.monotonic()
    b.start()
    print(
        f"\n[{request.param}] worker start-to-ready {time.monotonic() - started:.2f} s "
        f"(stages: {', '.join(s for s, _ in stages)})"
    )
    assert stages[-1] == ("ready", 1.0)
    yield b
    b.close()


def long_generation(b: LocalBackend) -> None:
    """Make the next requests run long: no EOS, many tokens."""
    b.max_new_tokens = 4000
    b.sampling = {"ignore_eos": True}


def normal_generation(b: LocalBackend) -> None:
    """Back to a short step."""
    b.max_new_tokens = 48
    b.sampling = {}


# ------------------------------------------------------------------------ full steps


def test_step_streams_and_returns_counts(backend: LocalBackend, screenshot: ImagePart) -> None:
    deltas: list[Delta] = []
    result = backend.complete(step_messages(screenshot), TOOLS, on_delta=deltas.append)
    assert isinstance(result, Completion)
    # Random weights: garbage, but it comes back as text for the agent to reject.
    assert isinstance(result.content, str) and isinstance(result.reasoning, str)
    assert result.content or result.reasoning
    assert deltas, "no streamed deltas"
    assert {d.kind for d in deltas} <= {"reasoning", "content"}
    assert result.completion_tokens is not None and 1 <= result.completion_tokens <= 48
    # 640x400 -> 640x416 after smart_resize -> 260 visual tokens, plus the text.
    assert result.prompt_tokens is not None and result.prompt_tokens > 260
    assert result.finish_reason in {"stop", "length"}
    assert result.first_token_s is not None and 0 < result.first_token_s <= result.total_s
    streamed = "".join(d.text for d in deltas if d.kind == "content").strip()
    assert streamed.replace("\ufffd", "") == result.content.replace("\ufffd", "")
    facts = backend.describe()
    assert facts["kind"] == "local" and facts["thinking"] is False
    worker = facts["worker"]
    assert isinstance(worker, dict)
    assert worker["model_type"] in {"qwen3_5", "qwen3_5_moe"}
    print(
        f"step: {result.prompt_tokens} prompt + {result.completion_tokens} tokens, "
        f"first token {result.first_token_s:.3f} s, total {result.total_s:.3f} s"
    )


def test_on_delta_runs_on_the_thread_that_called_complete(
    backend: LocalBackend, screenshot: ImagePart
) -> None:
    callers: list[int] = []
    seen: list[int] = []
    results: list[Completion] = []

    def on_delta(_delta: Delta) -> None:
        seen.append(threading.get_ident())

    def run() -> None:
        callers.append(threading.get_ident())
        results.append(backend.complete(step_messages(screenshot), TOOLS, on_delta=on_delta))

    caller = threading.Thread(target=run, name="not-the-main-thread")
    caller.start()
    caller.join(120)
    assert results and results[0].completion_tokens
    assert seen, "no streamed deltas"
    assert set(seen) == set(callers) and callers[0] != threading.get_ident()


def test_thinking_goes_to_reasoning(backend: LocalBackend, screenshot: ImagePart) -> None:
    backend.thinking = True
    try:
        deltas: list[Delta] = []
        result = backend.complete(step_messages(screenshot), TOOLS, on_delta=deltas.append)
    finally:
        backend.thinking = False
    # The prompt opened <think>: what comes first is reasoning until a </think> (if any).
    assert deltas and deltas[0].kind == "reasoning"
    assert result.reasoning


def test_step_on_a_real_capture(
    backend: LocalBackend, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    try:
        request.getfixturevalue("xdisplay")
        from actions.screen import Screen

        frame = Screen().capture()
    except Exception as exc:  # no Xvfb here: the rendered PNG tests cover the worker
        pytest.skip(f"no private X display: {exc}")
    image = frame.to_pil()
    path = tmp_path / "step-001.png"
    image.save(path, "PNG", compress_level=1)  # type: ignore[attr-defined]
    part = ImagePart(path.read_bytes(), frame.width, frame.height, str(path))
    result = backend.complete(step_messages(part), TOOLS)
    # 1920x1080 -> 2,040 visual tokens (notes/qwen35.md), read from the file by the worker.
    assert result.prompt_tokens is not None and result.prompt_tokens > 2040
    assert result.completion_tokens


# ------------------------------------------------------------------------ failures


def test_cancel_mid_generation(backend: LocalBackend, screenshot: ImagePart) -> None:
    cancel = threading.Event()
    set_at: list[float] = []

    def stop_soon() -> None:
        set_at.append(time.monotonic())
        cancel.set()

    timer: list[threading.Timer] = []

    def on_delta(delta: Delta) -> None:
        if not timer:
            timer.append(threading.Timer(0.2, stop_soon))
            timer[0].start()

    long_generation(backend)
    try:
        with pytest.raises(Cancelled):
            backend.complete(step_messages(screenshot), TOOLS, on_delta=on_delta, cancel=cancel)
        latency = time.monotonic() - set_at[0]
    finally:
        normal_generation(backend)
    print(f"cancel latency {latency * 1000:.0f} ms")
    assert latency < 1.0
    # The worker stays warm and answers the next request.
    pid = backend.pid
    assert backend.complete(step_messages(screenshot), TOOLS).completion_tokens
    assert backend.pid == pid


def test_worker_killed_mid_generation_then_restarts(
    backend: LocalBackend, screenshot: ImagePart
) -> None:
    pid = backend.pid
    assert pid is not None
    starts = backend.starts

    def on_delta(delta: Delta) -> None:
        if backend.pid == pid:
            os.kill(pid, signal.SIGKILL)

    long_generation(backend)
    try:
        with pytest.raises(BackendError) as info:
            backend.complete(step_messages(screenshot), TOOLS, on_delta=on_delta)
    finally:
        normal_generation(backend)
    message = str(info.value)
    assert not isinstance(info.value, Cancelled)
    assert "stopped during generation" in message and "SIGKILL" in message
    assert "restarts on the next request" in message
    assert "\n" not in message and "Traceback" not in message
    result = backend.complete(step_messages(screenshot), TOOLS)
    assert result.completion_tokens
    assert backend.pid not in (None, pid)
    assert backend.starts == starts + 1


def test_hung_worker_is_stopped_after_the_step_timeout(
    backend: LocalBackend, screenshot: ImagePart
) -> None:
    if "moe" in backend.model:
        pytest.skip("process handling does not depend on the model: dense covers it")
    pid = backend.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # alive but silent, like a deadlocked worker
    backend.step_timeout_s = 1.0
    try:
        started = time.monotonic()
        with pytest.raises(BackendError) as info:
            backend.complete(step_messages(screenshot), TOOLS)
        waited = time.monotonic() - started
    finally:
        backend.step_timeout_s = 300
    assert "gave no answer for 1 s" in str(info.value)
    assert waited < 10
    assert backend.pid is None  # killed, not left stopped
    assert backend.complete(step_messages(screenshot), TOOLS).completion_tokens


def _process_gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    # A zombie is dead; whether something reaps it is up to the container's init.
    return "\nState:\tZ" in status


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_worker_dies_with_its_parent(tiny_qwen35: dict[str, Path]) -> None:
    code = f"""
import sys, threading, time
sys.path.insert(0, {str(ROOT)!r})
from agent.backends.local import LocalBackend
b = LocalBackend({str(tiny_qwen35["dense"])!r})
threading.Thread(target=b.start, daemon=True).start()
while b.pid is None:
    time.sleep(0.01)
print(b.pid, flush=True)
time.sleep(60)
"""
    parent = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        worker_pid = int(parent.stdout.readline())
        assert not _process_gone(worker_pid)
        parent.kill()
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while not _process_gone(worker_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _process_gone(worker_pid), "the worker outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()


def test_missing_model_offline_names_model_cache_and_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    b = LocalBackend("Qwen/Qwen3.5-0.8B", ready_timeout_s=60)
    try:
        with pytest.raises(BackendError) as info:
            b.complete([ChatMessage("user", ("hi",))], [])
    finally:
        b.close()
    message = str(info.value)
    print(message)
    assert "Qwen/Qwen3.5-0.8B" in message
    assert str(cache) in message
    assert "hf download Qwen/Qwen3.5-0.8B" in message
    assert "--model" in message and "--endpoint" in message
    assert "\n" not in message and "Traceback" not in message


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with LocalBackend(str(tmp_path / "no-such-model")) as b, pytest.raises(BackendError) as info:
        b.start()
    assert "no-such-model" in str(info.value) and "Traceback" not in str(info.value)


# ------------------------------------------------------------------------ boundaries


def test_parent_never_imports_torch(tiny_qwen35: dict[str, Path]) -> None:
    code = f"""
import io, json, sys
sys.path.insert(0, {str(ROOT)!r})
from agent.backends.base import ChatMessage, ImagePart
from agent.backends.local import LocalBackend
from tests.worker.test_worker import render_screenshot, step_messages, TOOLS
with LocalBackend({str(tiny_qwen35["moe"])!r}, max_new_tokens=8) as b:
    r = b.complete(step_messages(ImagePart(render_screenshot(), 640, 400)), TOOLS)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers"))
print(json.dumps({{"tokens": r.completion_tokens, "heavy": heavy}}))
"""
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["tokens"] >= 1
    assert report["heavy"] == []


def test_default_thinking_follows_the_model_card(tiny_qwen35: dict[str, Path]) -> None:
    assert default_thinking("Qwen/Qwen3.5-0.8B") is False
    assert default_thinking("Qwen/Qwen3.5-2B") is False
    assert default_thinking("Qwen/Qwen3.5-4B") is True
    assert default_thinking("Qwen/Qwen3.5-35B-A3B") is True
    assert default_thinking("/models/Qwen3.5-397B-A17B-FP8") is True
    assert default_thinking(str(tiny_qwen35["dense"])) is False  # hidden 64: a small model
    assert default_thinking(str(tiny_qwen35["moe"])) is True  # qwen3_5_moe: 35B-A3B and up


def test_think_splitter_handles_tags_split_across_pieces() -> None:
    splitter = ThinkSplitter(thinking=True)
    pieces = ["\nI should click", " OK.</th", "ink>\n\n<tool_call>", "\n<function=x>"]
    out = [run for piece in pieces for run in splitter.feed(piece)] + splitter.flush()
    reasoning = "".join(t for k, t in out if k == "reasoning")
    content = "".join(t for k, t in out if k == "content")
    assert reasoning == "I should click OK."
    assert content == "<tool_call>\n<function=x>"
    assert split_reasoning("<think>\nhm\n</think>\n\nanswer", thinking=False) == ("hm", "answer")
    assert split_reasoning("plain", thinking=False) == ("", "plain")


def test_download_progress_becomes_events() -> None:
    from agent.backends.worker.hub import _DownloadProgress

    events: list[tuple[str, float | None]] = []
    bar = _DownloadProgress(lambda stage, fraction: events.append((stage, fraction))).tqdm_class()
    with bar(total=200, unit="B", desc="Downloading") as b:
        b.update(100)
        b.update(100)
    assert events[0] == ("downloading", 0.5)
    assert events[-1] == ("downloading", 1.0)


def test_frames_round_trip() -> None:
    data = encode_frame({"type": "x", "text": "héllo 世界"}, b"\x89PNG") + encode_frame({"a": 1})
    stream = io.BytesIO(data)
    assert read_frame(stream) == ({"type": "x", "text": "héllo 世界"}, b"\x89PNG")
    assert read_frame(stream) == ({"a": 1}, b"")
    assert read_frame(stream) is None
