"""Replay on a real (Xvfb) desktop, and "ask again" against a scripted model server."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from agent.recording import read_run
from tests.e2e.test_run_cli import mp, only_run, run_cli
from tests.replay.conftest import Made
from tests.support.scripted_server import Reply, ScriptedServer, xml_call

ROOT = Path(__file__).resolve().parents[2]
GEOMETRY = (40, 40, 880, 700)


def replay_cli(run_dir: Path, *extra: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "main.py", "replay", str(run_dir), *extra]
    return subprocess.run(
        cmd, cwd=ROOT, env=dict(os.environ), input=stdin, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip


def record_typing_run(probe_app: Any, tmp_path: Path) -> Path:
    """Record a run that clicks the probe app's field and types into it; close the app."""
    app = probe_app(GEOMETRY, title="replay probe")
    script = [
        Reply(xml_call(action="left_click", coordinate=mp(app.center("text_field")))),
        Reply(xml_call(action="type", text="abc <ü>")),
        Reply(xml_call(action="terminate", status="success")),
    ]
    server = ScriptedServer(script)
    try:
        proc = run_cli(server, tmp_path / "runs")
    finally:
        server.close()
    assert proc.returncode == 0, proc.stderr
    app.wait_text("abc <ü>")
    app.close()
    return only_run(tmp_path / "runs")[2]


def test_replay_reproduces_a_recorded_run_and_stops_on_a_changed_screen(
    probe_app: Any, tmp_path: Path
) -> None:
    run_dir = record_typing_run(probe_app, tmp_path)

    # The desktop as it was: a fresh app in the same place. Replay types the same text.
    app = probe_app(GEOMETRY, title="replay probe")
    time.sleep(0.3)
    replays = tmp_path / "replays"
    proc = replay_cli(run_dir, "--execute", "--approve", "auto", "--runs-dir", str(replays))
    assert proc.returncode == 0, proc.stderr
    assert app.wait_text("abc <ü>") == "abc <ü>"
    assert "replay done" in proc.stderr and "step 3: nothing to replay" in proc.stderr
    app.close()
    # The replay is recorded like a run: each action on disk with its live screen and result.
    (replayed,) = [read_run(d) for d in replays.iterdir()]
    assert replayed.info["replay"]["source_run"] == str(run_dir)
    assert replayed.info["outcome"]["status"] == "success"
    assert [s["execution"]["action"]["action"] for s in replayed.steps] == ["left_click", "type"]
    assert all(s["decision"]["by"] == "auto" and s["phase"] == "done" for s in replayed.steps)
    assert all((replayed.dir / s["screenshot"]).is_file() for s in replayed.steps)

    # The desktop changed (the app moved): auto stops before acting, with a clear reason.
    moved = probe_app((400, 300, 880, 700), title="replay probe")
    time.sleep(0.3)
    proc = replay_cli(run_dir, "--execute", "--approve", "auto")
    assert proc.returncode == 1
    assert "differs from the recording" in proc.stderr and "--force" in proc.stderr
    # ask pauses on the terminal instead; answering q stops it.
    proc = replay_cli(run_dir, "--execute", "--approve", "ask", stdin="q\n")
    assert proc.returncode == 1
    assert "the screen differs from the recording" in proc.stderr
    assert "[Enter] execute" in proc.stderr
    time.sleep(0.3)
    assert [e for e in moved.events() if e["event"] in ("press", "text", "key")] == []


def test_ask_again_resends_the_recorded_step_and_executes_nothing(
    made: Made, tmp_path: Path
) -> None:
    server = ScriptedServer(
        [Reply(xml_call(action="double_click", coordinate=[10, 20]), reasoning="Try twice.")]
    )
    try:
        proc = replay_cli(
            made.dir, "--ask-again", "3", "--endpoint", server.url, "--task", "save it as PDF"
        )
    finally:
        server.close()
    assert proc.returncode == 0, proc.stderr
    assert len(server.requests) == 1
    body = server.requests[0]
    run = read_run(made.dir)
    sent_images = [
        base64.b64decode(p["image_url"]["url"].split(",", 1)[1])
        for m in body["messages"]
        if isinstance(m["content"], list)
        for p in m["content"]
        if p.get("type") == "image_url"
    ]
    # history_images=2: the screenshots of steps 2 and 3, as recorded.
    assert sent_images[-1] == (made.dir / run.steps[2]["screenshot"]).read_bytes()
    assert sent_images[-2] == (made.dir / run.steps[1]["screenshot"]).read_bytes()
    assert "Task: save it as PDF" in str(body["messages"][1]["content"])
    assert "save the file" not in str(body["messages"])
    assert "type(text='héllo <b>')" in proc.stdout or "héllo <b>" in proc.stdout
    assert "double_click" in proc.stdout and "Try twice." in proc.stdout
    assert "different" in proc.stdout
    assert len(made.executor.done) == 3  # only the original run executed anything


def test_replay_applies_the_risk_rules_of_a_live_run(probe_app: Any, tmp_path: Path) -> None:
    run_dir = record_typing_run(probe_app, tmp_path)
    rules = tmp_path / "risk.toml"
    rules.write_text('blocked_text = ["<ü>"]\n')

    # Blocked stays blocked in replay, in every mode: nothing is typed, the reason is given.
    app = probe_app(GEOMETRY, title="replay probe")
    time.sleep(0.3)
    for mode in ("auto", "guarded", "ask"):
        proc = replay_cli(
            run_dir, "--execute", "--approve", mode, "--risk-rules", str(rules), stdin="\n\n\n"
        )
        assert proc.returncode == 1, proc.stderr
        assert "step 2: blocked by your rules" in proc.stderr, proc.stderr
        assert "nothing was executed" in proc.stderr
    time.sleep(0.3)
    assert app.text() == ""
    assert [e for e in app.events() if e["event"] in ("text", "key")] == []

    # Guarded with nobody at a terminal: a risky step (a dangerous command) is not replayed.
    risky = tmp_path / "risky.toml"
    risky.write_text('risky_text = [{name = "umlaut", pattern = "ü"}]\n')
    proc = replay_cli(run_dir, "--execute", "--approve", "guarded", "--risk-rules", str(risky))
    assert proc.returncode == 1, proc.stderr
    assert "risky: typing a command that looks dangerous: umlaut" in proc.stderr
    assert "nobody is at a terminal to approve it" in proc.stderr
    time.sleep(0.3)
    assert app.text() == ""
    app.close()
