"""`main.py run` on Xvfb against hostile endpoints, and against llama.cpp without --jinja.

A hostile reply mid-run ends the run with exit status 1 and one line (never a traceback); one at
start (the model list) exits 2 before anything is recorded; a redirect sends nothing to its
target. A server that refuses `tools` the way llama.cpp does is used with the tool in the
system prompt, and the recording says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.recording import read_run
from tests.faults.helpers import (
    Behaviour,
    HostileServer,
    answer,
    bomb,
    endless_line,
    header_trickle,
    huge_models,
    redirect,
)
from tests.faults.test_cli_faults import MOVE, ROOT, cli, the_run
from tests.support.scripted_server import Reply, ScriptedServer, xml_call

EVENT = b": " + b"k" * 1020 + b"\n\n"
# name, behaviour (None: a redirect), phrase, --timeout (long where a byte cap must be what stops
# the attack on a loaded machine, not the "no text" deadline)
MID_RUN: list[tuple[str, Behaviour | None, str, str]] = [
    ("endless_line", endless_line, "sent an event-stream line or event longer than 1 MiB", "20"),
    ("gzip_bomb", bomb("gzip", EVENT), "sent more than 16 MiB in an answer", "20"),
    ("header_trickle", header_trickle, "no reply from URL within 2 s", "2"),
    ("redirect", None, "redirected the request to TARGET/chat/completions (HTTP 307)", "2"),
]


def run_cli(
    url: str, runs: Path, timeout: str = "2"
) -> tuple[subprocess.CompletedProcess[str], float]:
    """main.py run with one retry; the process and how long it took."""
    start = time.monotonic()
    cmd = cli(url, runs, "--timeout", timeout, "--retries", "1")
    proc = subprocess.run(
        cmd, cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=180
    )
    return proc, time.monotonic() - start


@pytest.mark.parametrize(
    ("name", "behaviour", "phrase", "timeout"), MID_RUN, ids=[m[0] for m in MID_RUN]
)
def test_a_hostile_reply_mid_run_exits_1_with_one_line(
    name: str, behaviour: Behaviour | None, phrase: str, timeout: str, xdisplay: str, tmp_path: Path
) -> None:
    target = HostileServer([answer(MOVE)])
    hostile = behaviour or redirect(307, target.url)
    server = HostileServer([answer(MOVE), hostile])
    try:
        proc, took = run_cli(server.url, tmp_path / "runs", timeout)
    finally:
        server.close()
        target.close()
    said = proc.stderr.replace(server.url, "URL").replace(target.url, "TARGET")
    lines = said.strip().splitlines()
    print(f"\n{name}: exit {proc.returncode} after {took:.2f} s; {lines[-1]}")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert lines[-1].startswith("finished: error: model backend failed: ")
    assert phrase in lines[-1]
    attempts = len(server.requests) - 1
    assert attempts == (1 if behaviour is None else 2)  # a redirect is not retried
    assert target.requests == []
    recording = read_run(the_run(tmp_path / "runs"))
    assert recording.info["outcome"]["status"] == "error"
    assert recording.steps[0]["execution"]["ok"]
    assert (
        phrase.replace("URL", server.url).replace("TARGET", target.url).split(" (")[0]
        in (recording.steps[-1]["error"])
    )


@pytest.mark.parametrize("name", ["huge_models", "redirect"])
def test_a_hostile_model_list_at_start_exits_2_before_recording(
    name: str, xdisplay: str, tmp_path: Path
) -> None:
    target = HostileServer([answer(MOVE)])
    listing = huge_models if name == "huge_models" else redirect(301, target.url)
    server = HostileServer([answer(MOVE)], models=listing)
    cmd = [sys.executable, "main.py", "run", "x", "--endpoint", server.url, "--approve", "auto",
           "--timeout", "2", "--runs-dir", str(tmp_path / "runs")]  # fmt: skip
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    finally:
        server.close()
        target.close()
    print(f"\n{name} at start: exit {proc.returncode}; {proc.stderr.strip()}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    if name == "huge_models":
        assert "sent more than 1 MiB in one reply (HTTP 200)" in line
    else:
        assert f"pass --endpoint {target.url}" in line
    assert target.requests == []
    assert not (tmp_path / "runs").exists()


def test_llama_cpp_without_jinja_runs_with_the_tool_in_the_system_prompt(
    xdisplay: str, tmp_path: Path
) -> None:
    done = xml_call(action="terminate", status="success")
    server = ScriptedServer([Reply(MOVE), Reply(done)], no_jinja=True)
    try:
        proc, took = run_cli(server.url, tmp_path / "runs")
    finally:
        server.close()
    print(f"\nllama.cpp without --jinja: exit {proc.returncode} after {took:.2f} s")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(server.refused) == 1 and len(server.requests) == 2
    for body in server.requests:
        assert "tools" not in body
        assert "<tools>" in body["messages"][0]["content"]
    run_dir = the_run(tmp_path / "runs")
    info = json.loads((run_dir / "run.json").read_text())
    assert info["backend"]["tools_in_prompt"] is True
    recording = read_run(run_dir)
    assert [s.get("tools_in_prompt") for s in recording.steps] == [True, True]
    assert recording.steps[0]["action"]["action"] == "mouse_move"
    assert recording.info["outcome"]["status"] == "success"
