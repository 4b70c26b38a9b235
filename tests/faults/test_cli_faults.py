"""`main.py run` as a subprocess on Xvfb against each endpoint fault, and killed with SIGKILL.

A fault mid-run ends the run with exit status 1 and one line saying what happened (never a
traceback); the recording loads with every step completed before it. A run killed with SIGKILL
leaves a recording that read_run and `main.py export` still read, with every completed step.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from actions.screen import CoordinateSpace, Monitor, screen_to_model
from agent.recording import read_run
from tests.faults.helpers import FAULTS, Fault, closed_port_url
from tests.support.scripted_server import Reply, ScriptedServer, xml_call

ROOT = Path(__file__).resolve().parents[2]
MONITOR = Monitor(1, 0, 0, 1920, 1080, primary=True)
# Faults whose deadline no CLI flag reaches are covered at the backend level only.
CLI_FAULTS = [f for f in FAULTS if not f.backend.get("max_stream_s")]
MOVE = xml_call(action="mouse_move", coordinate=[500, 500])


def mp(point: tuple[int, int]) -> list[float]:
    """A screen pixel in the model's 0-1000 coordinates."""
    x, y = screen_to_model(point, CoordinateSpace.relative(), MONITOR)
    return [round(x, 1), round(y, 1)]


def cli(url: str, runs: Path, *extra: str) -> list[str]:
    """The command line of a headless run that never asks (a fault must not wait for a human)."""
    return [sys.executable, "main.py", "run", "do the thing", "--endpoint", url, "--model", "m",
            "--approve", "auto", "--runs-dir", str(runs), "-q", *extra]  # fmt: skip


def the_run(runs: Path) -> Path:
    (run_dir,) = [d for d in runs.iterdir() if d.is_dir()]
    return run_dir


@pytest.mark.parametrize("fault", CLI_FAULTS, ids=[f.name for f in CLI_FAULTS])
def test_a_fault_mid_run_exits_1_with_one_line_and_a_readable_recording(
    fault: Fault, xdisplay: str, tmp_path: Path
) -> None:
    # The fault repeats for every attempt: the loop may retry retryable errors before it stops.
    server = ScriptedServer([Reply(MOVE)] + [fault.reply] * 6 if fault.reply else [])
    url = server.url if fault.reply else closed_port_url()
    runs = tmp_path / "runs"
    try:
        start = time.monotonic()
        proc = subprocess.run(cli(url, runs, "--timeout", "2"), cwd=ROOT, env=dict(os.environ),
                              capture_output=True, text=True, timeout=180)  # fmt: skip
        took = time.monotonic() - start
    finally:
        server.close()
    lines = proc.stderr.strip().splitlines()
    print(f"\n{fault.name}: exit {proc.returncode} after {took:.2f} s; {lines[-1]}")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert lines[-1].startswith("finished: error: model backend failed: ")
    assert fault.phrase in lines[-1]
    # Each report of the fault (each attempt, then the end) is one whole line.
    said = [line for line in lines if fault.phrase in line]
    reported = [line for line in said if line.startswith("  model backend: ")]
    assert len(said) == len(reported) + 1
    if fault.reply is not None:
        attempts = len(server.requests) - 1
        assert attempts == max(1, len(reported))
        if not fault.retryable:
            assert attempts == 1  # a request the server refused is not sent again

    recording = read_run(the_run(runs))
    assert recording.warnings == []
    assert recording.info["outcome"]["status"] == "error"
    completed = 0 if fault.reply is None else 1
    assert len(recording.steps) == completed + 1
    for step in recording.steps[:completed]:
        assert step["action"]["action"] == "mouse_move" and step["execution"]["ok"]
    failed = recording.steps[-1]
    assert failed["action"] is None and fault.phrase in failed["error"]
    for step in recording.steps:
        assert (recording.dir / step["screenshot"]).exists()


def test_endpoint_down_at_start_exits_2_before_recording(xdisplay: str, tmp_path: Path) -> None:
    url = closed_port_url()
    cmd = [sys.executable, "main.py", "run", "x", "--endpoint", url, "--approve", "auto",
           "--runs-dir", str(tmp_path / "runs")]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert f"cannot reach {url} (connection refused): is the server running?" in line
    assert not (tmp_path / "runs").exists()


def complete_lines(path: Path) -> list[dict[str, Any]]:
    """The fully written lines of steps.jsonl, the last of each step (as readers take them)."""
    data = path.read_bytes() if path.exists() else b""
    by_index = {}
    for line in data.split(b"\n")[:-1]:
        if line.strip():
            step = json.loads(line)
            by_index[step["index"]] = step
    return [by_index[i] for i in sorted(by_index)]


def test_sigkill_mid_run_leaves_a_recording_with_every_completed_step(
    xterm: Any, tmp_path: Path
) -> None:
    out = tmp_path / "typed.txt"
    term = xterm(f"cat > {out}", position=(200, 150), columns=60, rows=8)
    words = ["alpha", "bravo", "charlie"]
    script: list[Reply] = [Reply(xml_call(action="left_click", coordinate=mp(term.center())))]
    script += [Reply(xml_call(action="type", text=w + "\n")) for w in words]
    script.append(Reply(fault="hang"))  # the model is "thinking" when the process dies
    server = ScriptedServer(script)
    runs = tmp_path / "runs"
    proc = subprocess.Popen(cli(server.url, runs), cwd=ROOT, env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        # Killed while it waits for the model: no key is held on the shared display.
        while len(server.requests) < len(script) and proc.poll() is None:
            assert time.monotonic() < deadline, "the run never reached the slow reply"
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()[1]
        steps_path = the_run(runs) / "steps.jsonl"
        seen = complete_lines(steps_path)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        server.close()
    assert proc.returncode == -signal.SIGKILL
    assert len(seen) >= 3

    recording = read_run(steps_path.parent)
    written = complete_lines(steps_path)
    assert recording.steps == written and len(written) >= len(seen)
    assert [s["index"] for s in recording.steps] == list(range(len(script) - 1))
    assert [s["action"]["action"] for s in recording.steps] == ["left_click"] + ["type"] * 3
    assert any("did not finish" in w for w in recording.warnings), recording.warnings
    assert recording.info.get("ended_at") is None
    for step in recording.steps:
        assert step["execution"]["ok"]
        assert (recording.dir / step["screenshot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # What the recording says was done was done.
    until = time.monotonic() + 10
    while out.read_text(errors="replace") != "".join(w + "\n" for w in words):
        assert time.monotonic() < until, out.read_text(errors="replace")
        time.sleep(0.1)

    html = tmp_path / "killed.html"
    export = subprocess.run(
        [sys.executable, "main.py", "export", str(recording.dir), "--format", "html",
         "--out", str(html), "-q"],  # fmt: skip
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert export.returncode == 0, export.stderr
    assert "Traceback" not in export.stderr
    page = html.read_text(encoding="utf-8")
    assert all(w in page for w in words)
