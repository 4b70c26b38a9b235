"""Recordings: written step by step, readable after a crash mid-line."""

from __future__ import annotations

import json
from pathlib import Path

from agent.recording import FORMAT_VERSION, Recorder, read_run


def test_round_trip(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, {"task": "t", "model": "m", "backend": {"endpoint": "http://x/v1"}})
    shot = rec.save_screenshot(0, b"\x89PNG fake")
    rec.append_step(
        {"index": 0, "screenshot": shot, "raw_output": "héllo <tool_call>", "action": None}
    )
    rec.append_step({"index": 1, "screenshot": None, "parse_error": "no tool call"})
    rec.finish({"status": "success"})
    run = read_run(rec.dir)
    assert run.warnings == []
    assert run.info["task"] == "t" and run.info["outcome"] == {"status": "success"}
    assert run.info["steps"] == 2 and run.info["ended_at"]
    assert run.info["format_version"] == FORMAT_VERSION
    assert [s["index"] for s in run.steps] == [0, 1]
    assert run.steps[0]["raw_output"] == "héllo <tool_call>"
    assert (rec.dir / shot).read_bytes() == b"\x89PNG fake"
    assert not list(rec.dir.rglob(".*.tmp"))


def test_steps_are_on_disk_before_the_run_ends(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, {"task": "t"})
    rec.append_step({"index": 0})
    # Another reader (a crash, the replay viewer) sees the step at once.
    lines = (rec.dir / "steps.jsonl").read_text().splitlines()
    assert json.loads(lines[0]) == {"index": 0}
    run = read_run(rec.dir)
    assert len(run.steps) == 1
    assert any("did not finish" in w for w in run.warnings)


def test_torn_last_line_is_skipped_with_a_warning(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, {"task": "t"})
    rec.append_step({"index": 0, "x": 1})
    rec.append_step({"index": 1, "x": 2})
    with open(rec.dir / "steps.jsonl", "a") as f:
        f.write('{"index": 2, "x": ')  # the process died here
    run = read_run(rec.dir)
    assert [s["index"] for s in run.steps] == [0, 1]
    assert any("torn last line" in w for w in run.warnings)


def test_run_ids_are_unique(tmp_path: Path) -> None:
    dirs = {Recorder(tmp_path, {"task": str(i)}).dir for i in range(20)}
    assert len(dirs) == 20
