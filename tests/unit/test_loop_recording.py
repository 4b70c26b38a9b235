"""The loop writes screenshots off the critical path, yet a step line never names a missing file."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.approval import auto_approve
from agent.backends.base import BackendError, ChatMessage, Completion, ImagePart
from agent.loop import LoopSettings, run_task
from agent.recording import Recorder, read_run
from tests.support.fakes import FakeScreen, RecordingExecutor, ScriptedBackend
from tests.support.scripted_server import xml_call


class Backend(ScriptedBackend):
    """Answers mouse moves; records which images came with a file path; can fail at a step."""

    def __init__(self, fail_at: int | None = None) -> None:
        super().__init__()
        self.fail_at = fail_at
        self.seen: list[list[str | None]] = []

    def answer(self, n: int, messages: Sequence[ChatMessage]) -> Completion:
        paths = [p.path for m in messages for p in m.content if isinstance(p, ImagePart)]
        for path in paths:
            assert path is None or Path(path).is_file()  # a named file is always complete
        self.seen.append(paths)
        if n == self.fail_at:
            raise BackendError("server went away")
        return Completion(xml_call(action="mouse_move", coordinate=[500, 500]))


class SlowRecorder(Recorder):
    """Screenshots take a while to write; every step line is checked when it is appended."""

    def save_screenshot(self, index: int, png: bytes) -> str:
        time.sleep(0.05)
        return super().save_screenshot(index, png)

    def append_step(self, record: dict[str, Any]) -> None:
        shot = record.get("screenshot")
        assert shot is not None and (self.dir / shot).is_file(), record
        super().append_step(record)


def run(tmp_path: Path, backend: Backend, steps: int) -> Path:
    recorder = SlowRecorder(tmp_path, {"task": "t"})
    run_task(
        "t",
        backend=backend,
        screen=FakeScreen(),
        executor=RecordingExecutor(),
        decide=auto_approve,
        recorder=recorder,
        settings=LoopSettings(max_steps=steps),
    )
    return recorder.dir


def test_every_step_line_names_a_screenshot_that_exists(tmp_path: Path) -> None:
    backend = Backend()
    run_dir = run(tmp_path, backend, steps=6)
    recording = read_run(run_dir)
    assert len(recording.steps) == 6
    for step in recording.steps:
        assert (run_dir / step["screenshot"]).read_bytes().startswith(b"\x89PNG")
        assert step["timings"]["save_wait_s"] >= 0.0
        assert step["tokens"]["prompt_estimate"] > step["tokens"]["visual"] > 0
        # The recorded prompt names the step's own screenshot file.
        images = [
            p for m in step["prompt"]["messages"] for p in m["content"] if p["type"] == "image"
        ]
        assert images[-1]["path"] == step["screenshot"]
    # The current screen goes as bytes (its file may still be being written); earlier ones,
    # already on disk, by path.
    for paths in backend.seen[1:]:
        assert paths[-1] is None and all(p is not None for p in paths[:-1])


def test_a_failing_step_is_recorded_with_its_screenshot(tmp_path: Path) -> None:
    run_dir = run(tmp_path, Backend(fail_at=2), steps=6)
    recording = read_run(run_dir)
    assert [s["index"] for s in recording.steps] == [0, 1, 2]
    assert "server went away" in recording.steps[-1]["error"]
    assert (run_dir / recording.steps[-1]["screenshot"]).is_file()
    assert recording.info["outcome"]["status"] == "error"
