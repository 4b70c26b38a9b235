"""The typed step record is the format: lines read back byte for byte; events are typed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from agent.events import (
    ActionExecuted,
    ActionProposed,
    DecisionMade,
    Event,
    OutputInvalid,
    RunFinished,
    ScreenObserved,
    StepStarted,
)
from agent.loop import LoopSettings, run_task
from agent.recording import Recorder, read_run
from agent.records import UNSET, StepRecord
from tests.replay.conftest import SCRIPT, FakeBackend, Made, ShadedScreen, ShadingExecutor, decider


def lines(run_dir: Path) -> list[str]:
    return (run_dir / "steps.jsonl").read_text(encoding="utf-8").splitlines()


def test_every_line_the_loop_writes_reads_back_byte_for_byte(made: Made) -> None:
    written = lines(made.dir)
    assert len(written) == 6 + 3  # an "executing" line before each of the three actions
    for line in written:
        record = StepRecord.from_json(json.loads(line))
        assert record.extra == {}  # every key is a field of the record
        again = json.dumps(record.to_json(), ensure_ascii=False, allow_nan=False)
        assert again == line


def test_the_typed_steps_are_the_steps_as_read(made: Made, tmp_path: Path) -> None:
    run = read_run(made.dir)
    assert [r.to_json() for r in run.records] == run.steps
    edit = run.records[2]
    assert edit.decision is not None and edit.decision.kind == "edit"
    assert edit.decision.edited_action == {"action": "type", "text": "edited <i>"}
    assert edit.execution is not None and edit.execution.action == edit.to_run
    assert run.records[4].tool_calls[0].id == "c1"
    assert run.records[5].decision is not None and run.records[5].decision.by == "final"
    # A run killed mid-action: the reader's mark is in both views.
    cut = tmp_path / "cut"
    shutil.copytree(made.dir, cut)
    executing = next(n for n, x in enumerate(lines(made.dir)) if '"phase": "executing"' in x)
    (cut / "steps.jsonl").write_text("\n".join(lines(made.dir)[: executing + 1]) + "\n")
    run = read_run(cut)
    assert run.records[-1].interrupted and run.records[-1].phase == "executing"
    assert [r.to_json() for r in run.records] == run.steps


def test_older_versions_read_with_their_defaults(made: Made) -> None:
    line = json.loads(lines(made.dir)[0])
    current = StepRecord.from_json(line)
    version_2 = {k: v for k, v in line.items() if k != "phase"}
    version_1 = {k: v for k, v in version_2.items() if k != "prompt"}
    for old in (version_1, version_2):
        record = StepRecord.from_json(old)
        assert record.phase == "done" and record.extra == {}
        assert record.screen == current.screen and record.decision == current.decision
    assert StepRecord.from_json(version_1).prompt is None
    assert StepRecord.from_json(version_2).prompt == current.prompt
    # The fewest keys a reader has met (a hand-made line): everything else takes its default.
    bare = StepRecord.from_json({"index": 3})
    assert (bare.index, bare.screen, bare.tool_calls, bare.finish_reason) == (3, None, [], UNSET)


def test_a_part_that_does_not_read_is_given_back_as_it_was() -> None:
    line = {
        "index": 0,
        "screen": "not an object",
        "decision": {"kind": "approve", "by": "user", "note": None, "edited_action": None},
        "execution": {"ok": True, "points": "nowhere"},
        "action": "click",
        "future_field": [1, 2],
    }
    record = StepRecord.from_json(line)
    assert record.screen is None and record.execution is None and record.action is None
    assert record.decision is not None and record.decision.kind == "approve"
    out = record.to_json()
    assert out["screen"] == "not an object" and out["execution"] == line["execution"]
    assert out["action"] == "click" and out["future_field"] == [1, 2]
    assert list(out)[:6] == ["index", "phase", "started_at", "ended_at", "screenshot", "screen"]


def test_the_loop_tells_its_viewers_in_typed_events(tmp_path: Path) -> None:
    screen = ShadedScreen()
    events: list[Event] = []
    result = run_task(
        "save the file",
        backend=FakeBackend(list(SCRIPT)),
        screen=screen,
        executor=ShadingExecutor(screen),
        decide=decider(),
        recorder=Recorder(tmp_path, {"task": "save the file"}),
        settings=LoopSettings(max_steps=10, settle_min_s=0.0),
        on_event=events.append,
    )
    assert result.outcome == "success"
    seen = "StepStarted ScreenObserved ActionProposed"
    assert [type(e).__name__ for e in events] == " ".join(
        [
            f"{seen} DecisionMade ActionExecuted",  # approved
            f"{seen} OutputInvalid",  # no tool call
            f"{seen} DecisionMade ActionExecuted",  # edited
            f"{seen} DecisionMade",  # rejected
            f"{seen} DecisionMade ActionExecuted",  # scrolled
            f"{seen} RunFinished",  # terminate: no decision asked
        ]
    ).split()
    assert [e.step for e in events if isinstance(e, StepStarted)] == list(range(6))
    observed = [e for e in events if isinstance(e, ScreenObserved)]
    assert observed[0].frame.width == 320 and observed[0].image.width > 0
    invalid = next(e for e in events if isinstance(e, OutputInvalid))
    assert invalid.step == 1 and "tool call" in invalid.error
    decisions = [e for e in events if isinstance(e, DecisionMade)]
    assert [(d.step, d.decision.kind, d.decision.by) for d in decisions] == [
        (0, "approve", "auto"),
        (2, "edit", "user"),
        (3, "reject", "user"),
        (4, "approve", "auto"),
    ]
    proposed = [e for e in events if isinstance(e, ActionProposed)]
    assert proposed[1].proposal.action is None and proposed[1].risk is None
    assert all(e.ok and e.error is None for e in events if isinstance(e, ActionExecuted))
    assert events[-1] == RunFinished(6, "success", "the model reports success")
