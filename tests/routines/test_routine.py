"""Routines: a recording copied with {NAME} parameters, and replay refusing wrong parameters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from actions.screen import Frame, Monitor
from actions.types import Key, LeftClick, Type
from agent.demo import step_record
from agent.recording import Recorder, read_run
from agent.routine import RoutineError, bind_params, fill_text, make_routine, parse_params

ROOT = Path(__file__).resolve().parents[2]
MONITOR = Monitor(1, 0, 0, 64, 48, primary=True)


def demo_recording(runs: Path) -> Path:
    """A small person-made recording, written by the same code as `main.py demo` writes."""
    rec = Recorder(runs, {"task": "greet Jane", "backend": {"kind": "person"}, "settings": {}})
    frame = Frame(bytes(64 * 48 * 3), 64, 48, MONITOR, 0.0)
    actions = [LeftClick((500.0, 500.0)), Type("Hello Jane Doe, bye Jane"), Key(("enter",))]
    for i, action in enumerate(actions):
        shot = rec.save_screenshot(i, b"png")
        rec.append_step(step_record(i, action, frame, shot, 0.0))
    rec.finish({"status": "success", "message": "done", "answer": None, "steps": 3})
    return rec.dir


def test_a_routine_replaces_typed_text_and_leaves_the_original(tmp_path: Path) -> None:
    run = demo_recording(tmp_path / "runs")
    before = {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    out = tmp_path / "greet"
    info = make_routine(run, out, {"full": "Jane Doe", "first": "Jane"})
    assert info["params"] == ["full", "first"]
    assert {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    routine = read_run(out)
    typed = routine.steps[1]
    for args in (typed["action"], typed["to_run"], typed["execution"]["action"]):
        assert args == {"action": "type", "text": "Hello {full}, bye {first}"}
    assert routine.steps[0]["action"] == read_run(run).steps[0]["action"]
    assert routine.info["routine"]["source_run"] == run.name
    assert (out / "screenshots" / "step-0000.png").read_bytes() == b"png"
    # Filled in again, in one pass: a value holding a placeholder stays literal.
    values = bind_params(routine.info, {"full": "Ann {first}", "first": "Ann"})
    assert fill_text("Hello {full}, bye {first}", values) == "Hello Ann {first}, bye Ann"


def test_routine_errors_say_what_is_wrong(tmp_path: Path) -> None:
    run = demo_recording(tmp_path / "runs")
    with pytest.raises(RoutineError, match="not in any typed text"):
        make_routine(run, tmp_path / "a", {"who": "Bob"})
    assert not (tmp_path / "a").exists()
    with pytest.raises(RoutineError, match="already exists"):
        make_routine(run, run, {"who": "Jane"})
    with pytest.raises(RoutineError, match="NAME=TEXT"):
        parse_params(["who"])
    with pytest.raises(RoutineError, match="letters, digits"):
        parse_params(["1x=a"])
    make_routine(run, tmp_path / "r", {"who": "Jane"})
    info = read_run(tmp_path / "r").info
    with pytest.raises(RoutineError, match="unknown parameter name; this recording takes: who"):
        bind_params(info, {"who": "x", "name": "y"})
    with pytest.raises(RoutineError, match="--param who=..."):
        bind_params(info, {})
    with pytest.raises(RoutineError, match="not a routine"):
        bind_params(read_run(run).info, {"who": "x"})


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "main.py", *args],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_routine_and_replay_command_lines(tmp_path: Path) -> None:
    run = demo_recording(tmp_path / "runs")
    out = tmp_path / "greet"
    proc = cli("routine", str(run), "--param", "who=Jane", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "parameters: {who}" in proc.stderr
    assert json.loads((out / "run.json").read_text())["routine"]["params"] == ["who"]
    proc = cli("routine", str(run), "--param", "who=Nobody", "--out", str(tmp_path / "x"))
    assert proc.returncode == 2 and "not in any typed text" in proc.stderr
    # Replay refuses before it touches the desktop.
    proc = cli("replay", str(out), "--execute", "--param", "whom=Ann")
    assert proc.returncode == 2
    assert "unknown parameter whom; this recording takes: who" in proc.stderr
    proc = cli("replay", str(out), "--execute", "--approve", "auto")
    assert proc.returncode == 2 and "--param who=..." in proc.stderr
    proc = cli("replay", str(out), "--param", "who=Ann")
    assert proc.returncode == 2 and "go with --execute" in proc.stderr
