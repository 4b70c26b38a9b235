"""Demonstrate with real X input, make a routine, replay it with healing on a changed desktop.

Two probe apps: A stays where it was, B moves. Replayed with --heal, the click into A passes
its check with no model request; the click into B fails its check and the scripted model
re-grounds that one step; the routine's parameter is typed in A, and B gets its text too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from agent.recording import read_run
from tests.routines.support import ROOT, DemoProcess, rel, xdo
from tests.support.scripted_server import Reply, ScriptedServer, xml_call

A = (60, 60, 800, 400)
B = (1000, 60, 800, 400)
B_MOVED = (1000, 600, 800, 400)


def replay(run: Path, server: ScriptedServer, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "main.py", "replay", str(run), "--execute", "--heal"]
    cmd += ["--approve", "auto", "--endpoint", server.url, *extra]
    return subprocess.run(
        cmd, cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=120
    )


def demonstrate(probe_app: Any, runs: Path) -> Path:
    """A person clicks A's field and types a greeting, then clicks B's field and types."""
    a, b = probe_app(A, title="heal A"), probe_app(B, title="heal B")
    demo = DemoProcess(runs, "--task", "greet Jane in A, say bye in B")
    try:
        run = demo.ready()
        time.sleep(0.3)
        xdo("mousemove", *map(str, a.center("text_field")), "click", "1")
        time.sleep(0.3)
        xdo("type", "--delay", "30", "Hello Jane")
        a.wait_text("Hello Jane")
        xdo("mousemove", *map(str, b.center("text_field")), "click", "1")
        time.sleep(0.3)
        xdo("type", "--delay", "30", "bye")
        b.wait_text("bye")
        time.sleep(0.3)
        code, err = demo.interrupt()
    finally:
        demo.kill()
    assert code == 0, err
    a.close()
    b.close()
    return run


def test_demonstrate_make_a_routine_and_replay_it_healed(probe_app: Any, tmp_path: Path) -> None:
    run = demonstrate(probe_app, tmp_path / "runs")
    steps = read_run(run).steps
    assert [s["action"]["action"] for s in steps] == ["left_click", "type", "left_click", "type"]
    assert steps[1]["action"]["text"] == "Hello Jane"
    routine = tmp_path / "greet"
    made = subprocess.run(
        [sys.executable, "main.py", "routine", str(run), "--param", "who=Jane",
         "--out", str(routine)],
        cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr

    # Nothing moved: every check passes, and the model is never asked.
    a, b = probe_app(A, title="heal A"), probe_app(B, title="heal B")
    time.sleep(0.5)
    idle = ScriptedServer([])
    try:
        proc = replay(routine, idle, "--param", "who=Ann")
    finally:
        idle.close()
    assert proc.returncode == 0, proc.stderr
    assert idle.requests == []
    assert a.wait_text("Hello Ann") and b.wait_text("bye")
    assert "2 pointer steps checked, 2 as recorded, 0 re-grounded; 0 model requests" in proc.stderr
    a.close()
    b.close()

    # B moved: only its click is re-grounded, by one model request.
    a, b = probe_app(A, title="heal A"), probe_app(B_MOVED, title="heal B")
    time.sleep(0.5)
    target = rel(b.center("text_field"))
    server = ScriptedServer([Reply(xml_call(action="left_click", coordinate=target))])
    try:
        proc = replay(routine, server, "--param", "who=Ann", "--runs-dir", str(tmp_path / "rp"))
    finally:
        server.close()
    assert proc.returncode == 0, proc.stderr
    assert len(server.requests) == 1
    # The replay's own recording says which steps were checked and which one was healed.
    (replayed,) = [read_run(d) for d in (tmp_path / "rp").iterdir()]
    heals = [s.get("heal") for s in replayed.steps]
    assert [h["healed"] for h in heals if h is not None and h["checked"]] == [False, True]
    request = server.requests[0]
    user = request["messages"][-1]["content"]
    texts = " ".join(p.get("text", "") for p in user if isinstance(p, dict))
    assert "left_click" in texts and "greet Jane in A" in texts
    assert sum(1 for p in user if isinstance(p, dict) and p.get("type") == "image_url") == 2
    assert a.wait_text("Hello Ann") and b.wait_text("bye")
    assert "re-grounded by the model" in proc.stderr
    assert "1 re-grounded (steps 3); 1 model requests" in proc.stderr
