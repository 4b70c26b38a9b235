"""The recording format: every field round-trips, prompts are reconstructable, torn lines load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from agent.recording import (
    FORMAT_VERSION,
    INTERRUPTED,
    encode_message,
    load_messages,
    prompt_messages,
    read_run,
)
from tests.replay.conftest import HOSTILE, Made


def test_every_field_round_trips(made: Made) -> None:
    run = read_run(made.dir)
    assert run.warnings == []
    assert run.info["format_version"] == FORMAT_VERSION == 3
    assert run.info["outcome"]["status"] == "success" and run.info["steps"] == 6
    steps = run.steps
    assert [s["index"] for s in steps] == list(range(6))
    for s in steps:
        assert set(s) >= {
            "index", "started_at", "ended_at", "screenshot", "screen", "prompt", "tokens",
            "thinking", "raw_output", "tool_calls", "action", "parse_error", "decision",
            "execution", "result", "error", "timings", "phase",
        }  # fmt: skip
        assert s["phase"] == "done"
        assert (made.dir / s["screenshot"]).read_bytes()[:4] == b"\x89PNG"
        assert s["timings"]["total_s"] >= 0 and "model_s" in s["timings"]
    first = steps[0]
    assert first["thinking"].endswith(HOSTILE)
    assert first["tokens"]["prompt"] == 1200 and first["tokens"]["completion"] == 30
    assert first["action"] == {"action": "left_click", "coordinate": [500, 500]}
    assert first["execution"]["action"] == first["action"] and first["execution"]["ok"]
    assert steps[1]["action"] is None and "tool call" in steps[1]["parse_error"]
    assert steps[1]["raw_output"] == "I am not sure what to do." and steps[1]["execution"] is None
    edit = steps[2]
    assert edit["decision"] == {
        "kind": "edit",
        "by": "user",
        "note": "fix the text",
        "edited_action": {"action": "type", "text": "edited <i>"},
    }
    assert edit["action"]["text"] == "héllo <b>"  # proposed ...
    assert edit["execution"]["action"] == {"action": "type", "text": "edited <i>"}  # ... and ran
    assert edit["to_run"] == edit["execution"]["action"]  # recorded before it ran
    assert steps[3]["decision"]["kind"] == "reject" and steps[3]["decision"]["note"] == "not now"
    assert steps[3]["execution"] is None and "not now" in steps[3]["result"]
    assert steps[4]["tool_calls"] == [
        {"id": "c1", "name": "computer_use", "arguments": '{"action": "scroll", "pixels": -3}'}
    ]
    assert steps[5]["action"] == {"action": "terminate", "status": "success"}
    assert steps[5]["decision"]["by"] == "final"


def strip_paths(messages: Any) -> Any:
    """Messages with image paths removed."""
    return [
        {**m, "content": [{k: v for k, v in p.items() if k != "path"} for p in m["content"]]}
        for m in messages or []
    ]


def test_recorded_prompts_are_exactly_what_was_sent(made: Made) -> None:
    run = read_run(made.dir)
    assert len(made.backend.sent) == 6
    for index, sent in enumerate(made.backend.sent):
        recorded = prompt_messages(run, index)
        sent_encoded = [encode_message(m, made.dir) for m in sent]
        # The current screenshot may be written while the model runs, so what was sent may
        # not carry its path yet: compare everything but image paths.
        assert strip_paths(recorded) == strip_paths(sent_encoded)
        # Images are referenced by the run's screenshot files, never inlined.
        images = [p for m in recorded or [] for p in m["content"] if p["type"] == "image"]
        assert images and all(p["path"].startswith("screenshots/step-") for p in images)
        assert images[-1]["path"] == run.steps[index]["screenshot"]
        # Loading them back gives the same text and the same PNG bytes.
        loaded = load_messages(run, recorded or [])
        assert [m.text() for m in loaded] == [m.text() for m in sent]
        assert [p for m in loaded for p in m.content if not isinstance(p, str)] != []
    # Only what is new is stored: later steps share a prefix with the one before.
    lines = (made.dir / "steps.jsonl").read_text().splitlines()
    last = json.loads(lines[-1])["prompt"]
    assert last["same_as_previous"] > 0
    assert len(last["messages"]) < last["count"]
    assert "base64" not in (made.dir / "steps.jsonl").read_text()


def test_a_recording_cut_mid_line_loads_every_complete_step(made: Made, tmp_path: Path) -> None:
    data = (made.dir / "steps.jsonl").read_bytes()
    lines = data.split(b"\n")
    cut = tmp_path / "cut"
    shutil.copytree(made.dir, cut)
    # The process died while writing step 4 (index 3), and before run.json got its end.
    last = max(n for n, line in enumerate(lines) if line and json.loads(line)["index"] == 2)
    (cut / "steps.jsonl").write_bytes(
        b"\n".join(lines[: last + 1]) + b"\n" + lines[last + 1][: len(lines[last + 1]) // 2]
    )
    info = json.loads((cut / "run.json").read_text())
    info["ended_at"] = None
    (cut / "run.json").write_text(json.dumps(info))
    run = read_run(cut)
    assert [s["index"] for s in run.steps] == [0, 1, 2]
    assert any("torn last line" in w for w in run.warnings)
    assert any("did not finish" in w for w in run.warnings)
    assert prompt_messages(run, 2) == prompt_messages(read_run(made.dir), 2)


def test_version_1_recordings_still_read(made: Made) -> None:
    info = json.loads((made.dir / "run.json").read_text())
    info["format_version"] = 1
    (made.dir / "run.json").write_text(json.dumps(info))
    lines = [json.loads(x) for x in (made.dir / "steps.jsonl").read_text().splitlines()]
    for line in lines:
        del line["prompt"]
    (made.dir / "steps.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    run = read_run(made.dir)
    assert run.warnings == [] and len(run.steps) == 6
    assert prompt_messages(run, 0) is None


def test_a_recording_killed_mid_action_shows_the_step_as_interrupted(
    made: Made, tmp_path: Path
) -> None:
    lines = (made.dir / "steps.jsonl").read_bytes().split(b"\n")
    records = [json.loads(line) for line in lines if line]
    # Every executed step is written before it acts, then again once done.
    executing = [r for r in records if r["phase"] == "executing"]
    assert executing and all(r["to_run"] and r["execution"] is None for r in executing)
    first = records.index(executing[0])
    cut = tmp_path / "cut"
    shutil.copytree(made.dir, cut)
    # kill -9 while the action ran: the "executing" line is the step's last.
    (cut / "steps.jsonl").write_bytes(b"\n".join(lines[: first + 1]) + b"\n")
    run = read_run(cut)
    step = run.steps[-1]
    assert step["index"] == executing[0]["index"] and step["interrupted"]
    assert step["result"] == INTERRUPTED and step["action"] == step["to_run"]
    assert f"step {step['index'] + 1}: {INTERRUPTED}" in run.warnings
    whole = read_run(made.dir)
    assert len(whole.steps) == len({r["index"] for r in records})
    assert all(s["phase"] == "done" and not s.get("interrupted") for s in whole.steps)


def test_a_step_cut_off_mid_action_is_shown_and_never_replayed(
    made: Made, tmp_path: Path, qapp: Any
) -> None:
    """(qapp: the export renders with Qt; a bare QGuiApplication would break later widget tests.)"""
    from agent.replay import replay
    from tests.replay.conftest import ShadedScreen, ShadingExecutor
    from ui.export import caption_lines, render_html

    lines = (made.dir / "steps.jsonl").read_bytes().split(b"\n")
    # Cut after the "executing" line of step 3 (the edited typing): killed while it typed.
    last = max(
        n for n, line in enumerate(lines) if line and json.loads(line)["phase"] == "executing"
        and json.loads(line)["index"] == 2
    )  # fmt: skip
    cut = tmp_path / "cut"
    shutil.copytree(made.dir, cut)
    (cut / "steps.jsonl").write_bytes(b"\n".join(lines[: last + 1]) + b"\n")
    run = read_run(cut)
    assert [s.get("interrupted", False) for s in run.steps] == [False, False, True]
    assert caption_lines(run.records[2], 3)[1] == f"! {INTERRUPTED}"
    assert INTERRUPTED in render_html(run, run.records)
    screen = ShadedScreen()
    executor = ShadingExecutor(screen)
    logs: list[str] = []
    result = replay(run, screen=screen, executor=executor, confirm=lambda c: "go", log=logs.append)
    # Step 1 ran again; step 3 may or may not have run back then: it is not run again.
    assert len(executor.done) == 1 and result.executed == 1
    assert f"step 3: {INTERRUPTED}; not replayed" in logs
