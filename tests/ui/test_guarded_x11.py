"""The real app in guarded mode on Xvfb: safe actions run unasked, a risky one waits, saying why."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from agent.recording import read_steps
from tests.support.scripted_server import Reply, ScriptedServer, xml_call
from tests.ui.test_app_x11 import DOC_IMAGES, centre, click, end_app, mp, start_app, xdo

RISKY = "sudo rm -rf ~/Downloads/old"


def test_guarded_asks_only_for_the_risky_typing_and_shows_why(
    xdisplay: str, probe_app: Any, tmp_path: Path
) -> None:
    probe = probe_app((40, 80, 880, 700))
    field = probe.center("text_field")
    script = [
        Reply(xml_call(action="left_click", coordinate=mp(field)), reasoning="Focus the field."),
        Reply(xml_call(action="type", text=RISKY), reasoning="Remove the old downloads."),
        Reply(xml_call(action="type", text="hello"), reasoning="Type a greeting instead."),
        Reply(xml_call(action="terminate", status="success")),
    ]
    server = ScriptedServer(script)
    runs = tmp_path / "runs"
    proc, app = start_app(
        xdisplay,
        tmp_path,
        f'task = "tidy the downloads"\nbackend = "openai"\nendpoint = "{server.url}"\n'
        f'approval = "guarded"\nmax_steps = 10\nruns_dir = "{runs}"\n',
    )
    try:
        ready = app.wait("ready")
        click(xdisplay, *centre(ready["rects"]["start"]))
        asked = app.wait("approval", step=1)  # step 1 (the click) ran without asking
        assert asked["risk"] == "risky"
        assert (
            asked["reason"] == "typing a command that looks dangerous: recursive or forced delete"
        )
        app.wait("shots", step=1)
        click(xdisplay, *centre(asked["rects"]["note"]))
        xdo(xdisplay, "type", "--delay", "5", "never delete files")
        click(xdisplay, *centre(asked["rects"]["reject"]))
        finished = app.wait("finished")
    finally:
        server.close()
        end_app(proc)
    assert finished["outcome"] == "success"
    assert probe.text() == "hello"  # the risky text never reached the app
    steps = read_steps(Path(finished["run_dir"]) / "steps.jsonl")[0]
    assert [s.get("risk", {}).get("level") for s in steps[:3]] == ["safe", "risky", "safe"]
    assert [s["decision"]["by"] for s in steps[:3]] == ["guarded", "user", "guarded"]
    assert steps[1]["decision"]["kind"] == "reject" and steps[1]["execution"] is None
    assert "never delete files" in json.dumps(server.requests[2]["messages"][-1])
    if os.environ.get("DESKPILOT_DOC_IMAGES"):  # refresh the docs' picture on request
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / "shots" / "window-step2.png", DOC_IMAGES / "app-risky.png")


def test_guarded_app_judges_enter_where_the_keys_go_not_on_its_own_window(
    xdisplay: str, tmp_path: Path
) -> None:
    """The app comes forward while the model thinks; Enter is still judged on the terminal."""
    from tests.support.x11 import shell_quote, start_xterm

    marker = tmp_path / "made-by-the-command"
    term = start_xterm(
        xdisplay, "exec sh -i", position=(40, 80), columns=70, rows=12, title="guarded-term"
    )
    script = [
        Reply(xml_call(action="left_click", coordinate=mp(term.center())), reasoning="Focus."),
        Reply(xml_call(action="type", text=f"touch {shell_quote(marker)}"), reasoning="Type."),
        Reply(xml_call(action="key", keys=["Return"]), reasoning="Run it."),
        Reply(xml_call(action="terminate", status="success")),
    ]
    server = ScriptedServer(script)
    runs = tmp_path / "runs"
    proc, app = start_app(
        xdisplay,
        tmp_path,
        f'task = "make a file"\nbackend = "openai"\nendpoint = "{server.url}"\n'
        f'approval = "guarded"\nmax_steps = 10\nruns_dir = "{runs}"\n',
    )
    try:
        ready = app.wait("ready")
        click(xdisplay, *centre(ready["rects"]["start"]))
        asked = app.wait("approval", step=2)  # steps 1 and 2 ran unasked; Enter waits
        assert asked["risk"] == "risky", asked
        click(xdisplay, *centre(asked["rects"]["reject"]))
        finished = app.wait("finished")
    finally:
        server.close()
        end_app(proc)
        term.close()
    assert not marker.exists()  # the command never ran
    steps = read_steps(Path(finished["run_dir"]) / "steps.jsonl")[0]
    assert [s["decision"]["by"] for s in steps[:3]] == ["guarded", "guarded", "user"]
    assert steps[2]["risk"]["level"] == "risky" and steps[2]["execution"] is None
