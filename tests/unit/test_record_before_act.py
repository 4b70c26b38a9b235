"""Record before acting: the step is on disk before its action runs; a failed write runs nothing."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from actions.types import Action
from agent.approval import auto_approve
from agent.backends.base import ChatMessage, Completion
from agent.loop import LoopSettings, run_task
from agent.recording import INTERRUPTED, Recorder, RecordingError, read_run, read_steps
from tests.support.fakes import FakeScreen, RecordingExecutor, ScriptedBackend
from tests.support.scripted_server import xml_call

TYPED = "touch /tmp/deskpilot-never/marker\n"


class TypingBackend(ScriptedBackend):
    """Proposes typing a command, then a move, forever."""

    def answer(self, n: int, messages: Sequence[ChatMessage]) -> Completion:
        if n % 2 == 0:
            return Completion(xml_call(action="type", text=TYPED))
        return Completion(xml_call(action="mouse_move", coordinate=[101 + n, 500]))


class CheckingExecutor(RecordingExecutor):
    """Asserts, at the moment it acts, that the step's "executing" line is already on disk."""

    def __init__(self, recorder: Recorder, before: list[dict[str, object]]) -> None:
        super().__init__()
        self.recorder = recorder
        self.before = before

    def on_execute(self, action: Action) -> None:
        # Read with a fresh descriptor: what another process (or a crash) would find.
        lines = (self.recorder.dir / "steps.jsonl").read_bytes().split(b"\n")
        assert lines[-1] == b""  # whole lines only
        self.before.append(json.loads(lines[-2]))


def test_every_action_is_on_disk_before_it_runs(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path, {"task": "t"})
    before: list[dict[str, object]] = []
    executor = CheckingExecutor(recorder, before)
    result = run_task(
        "t",
        backend=TypingBackend(),
        screen=FakeScreen(),
        executor=executor,
        decide=auto_approve,
        recorder=recorder,
        settings=LoopSettings(max_steps=4),
    )
    assert result.outcome == "max_steps" and len(executor.done) == 4
    for n, line in enumerate(before):
        assert line["index"] == n and line["phase"] == "executing"
        assert line["execution"] is None and line["result"] is None
        assert line["decision"] == {
            "kind": "approve",
            "by": "auto",
            "note": None,
            "edited_action": None,
        }
        assert line["to_run"] == line["action"]
    assert before[0]["to_run"] == {"action": "type", "text": TYPED}
    run = read_run(recorder.dir)
    assert [s["phase"] for s in run.steps] == ["done"] * 4 and run.warnings == []


class BreakingExecutor(CheckingExecutor):
    """After its first action the disk is "full": steps.jsonl becomes /dev/full."""

    def on_execute(self, action: Action) -> None:
        super().on_execute(action)
        path = self.recorder.dir / "steps.jsonl"
        path.unlink()
        path.symlink_to("/dev/full")  # every write: ENOSPC


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_write_that_fails_executes_nothing_and_ends_the_run(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path, {"task": "t"})
    executor = BreakingExecutor(recorder, [])
    result = run_task(
        "t",
        backend=TypingBackend(),
        screen=FakeScreen(),
        executor=executor,
        decide=auto_approve,
        recorder=recorder,
        settings=LoopSettings(max_steps=6),
    )
    # The first action ran; the second's "executing" line could not be written: not run.
    assert len(executor.done) == 1
    assert result.outcome == "error" and result.exit_code == 1
    # Step 1's own "done" line failed first: its action had run, and the message says so.
    assert result.message == (
        f"cannot write the recording to {recorder.dir}: No space left on device; "
        "the last action ran but its result could not be recorded"
    )
    info = json.loads((recorder.dir / "run.json").read_text())
    assert info["outcome"]["status"] == "error"  # the folder itself is fine
    assert not (recorder.dir / ".reserve").exists()


class BreakingBackend(TypingBackend):
    """While the model thinks about step 2, the disk fills up (steps.jsonl becomes /dev/full)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def answer(self, n: int, messages: Sequence[ChatMessage]) -> Completion:
        if n == 2:
            self.path.unlink()
            self.path.symlink_to("/dev/full")
        return super().answer(n, messages)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_step_that_cannot_be_written_before_it_acts_does_not_act(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path, {"task": "t"})
    executor = CheckingExecutor(recorder, [])
    result = run_task(
        "t",
        backend=BreakingBackend(recorder.dir / "steps.jsonl"),
        screen=FakeScreen(),
        executor=executor,
        decide=auto_approve,
        recorder=recorder,
        settings=LoopSettings(max_steps=6),
    )
    assert len(executor.done) == 2  # steps 1 and 2; step 3 could not be recorded
    assert result.outcome == "error" and result.steps == 3
    assert result.message == (
        f"cannot write the recording to {recorder.dir}: No space left on device; "
        "nothing was executed"
    )
    info = json.loads((recorder.dir / "run.json").read_text())
    assert info["outcome"]["message"] == result.message


def test_a_failed_append_leaves_no_torn_line(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path, {"task": "t"})
    recorder.append_step({"index": 0, "phase": "done"})
    good = (recorder.dir / "steps.jsonl").read_bytes()
    recorder._steps_path = Path("/dev/full")  # noqa: SLF001 (a full disk for the next write)
    with pytest.raises(RecordingError, match="No space left on device"):
        recorder.append_step({"index": 1, "phase": "executing", "text": "x" * 100_000})
    recorder._steps_path = recorder.dir / "steps.jsonl"  # noqa: SLF001
    assert (recorder.dir / "steps.jsonl").read_bytes() == good


def test_a_removed_folder_is_an_error_not_a_new_file(tmp_path: Path) -> None:
    import shutil

    recorder = Recorder(tmp_path, {"task": "t"})
    shutil.rmtree(recorder.dir)
    with pytest.raises(RecordingError) as info:
        recorder.append_step({"index": 0})
    assert str(info.value) == (
        f"cannot write the recording to {recorder.dir}: No such file or directory"
    )
    assert not recorder.dir.exists()
    with pytest.raises(RecordingError):
        recorder.finish({"status": "error"})


def test_readers_take_the_last_line_of_each_step(tmp_path: Path) -> None:
    path = tmp_path / "steps.jsonl"
    lines = [
        {"index": 0, "phase": "executing", "result": None, "to_run": {"action": "wait"}},
        {"index": 0, "phase": "done", "result": "Executed wait."},
        {"index": 1, "phase": "executing", "result": None, "to_run": {"action": "type"}},
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"index": 2, "pha')
    steps, warnings = read_steps(path)
    assert [s["index"] for s in steps] == [0, 1]
    assert steps[0] == lines[1]
    assert steps[1]["interrupted"] and steps[1]["result"] == INTERRUPTED
    assert warnings == ["steps.jsonl line 4: torn last line skipped", f"step 2: {INTERRUPTED}"]
    # Version 1 and 2 lines (no phase) read as before.
    path.write_text('{"index": 0}\n{"index": 1}\n')
    assert read_steps(path) == ([{"index": 0}, {"index": 1}], [])


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through file permissions")
def test_a_read_only_recording_is_an_error(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path, {"task": "t"})
    (recorder.dir / "steps.jsonl").chmod(0o444)
    with pytest.raises(RecordingError, match="Permission denied"):
        recorder.append_step({"index": 0})
