"""The app (a Qt event loop) ends on SIGTERM and SIGHUP as on Stop: released, recorded, quit.

The real app as a subprocess on the private Xvfb, a scripted model, the probe app as the
target: SIGTERM while the app drags on the probe's canvas, SIGHUP while the model is thinking.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from agent.recording import read_run
from tests.support.scripted_server import Reply, ScriptedServer, xml_call
from tests.support.x11 import held_input, wait_until
from tests.ui.test_app_x11 import centre, click, end_app, mp, start_app

pytestmark = [pytest.mark.x11, pytest.mark.timeout(180)]


@pytest.mark.parametrize("state", ["drag", "generation"])
def test_a_signal_stops_the_run_releases_input_records_it_and_quits(
    state: str, xdisplay: str, probe_app: Any, tmp_path: Path
) -> None:
    probe = probe_app((40, 80, 880, 700))
    x, y, w, h = probe.rect("canvas")
    a, b = (x + w // 5, y + h // 2), (x + 4 * w // 5, y + h // 2)
    drag = Reply(xml_call(action="left_click_drag", start_coordinate=mp(a), coordinate=mp(b)))
    slow = Reply(xml_call(action="terminate", status="success"), delay_s=60)
    server = ScriptedServer([drag, drag] if state == "drag" else [slow])
    runs = tmp_path / "runs"
    sig = signal.SIGTERM if state == "drag" else signal.SIGHUP
    proc, app = start_app(
        xdisplay,
        tmp_path,
        f'task = "drag once"\nbackend = "openai"\nendpoint = "{server.url}"\n'
        f'approval = "auto"\nruns_dir = "{runs}"\n',
    )
    try:
        ready = app.wait("ready")
        click(xdisplay, *centre(ready["rects"]["start"]))
        if state == "drag":
            probe.wait_event("press")  # the button is down: mid-drag
        else:
            wait_until(lambda: server.requests, 30, "the model request")
        proc.send_signal(sig)
        code = proc.wait(timeout=30)
    finally:
        server.close()
        end_app(proc)
    err = app.err.read_text(errors="replace")
    assert code == 1 and "Traceback" not in err, err
    assert f"deskpilot: interrupted by {sig.name}" in err, err
    assert held_input(xdisplay) == ([], [])
    (run_dir,) = runs.iterdir()
    info = json.loads((run_dir / "run.json").read_text())
    assert info["outcome"]["status"] == "stopped", info["outcome"]
    assert sig.name in info["outcome"]["message"]
    run = read_run(run_dir)
    step = run.steps[0]
    assert step["phase"] == "done"
    if state == "drag":
        assert not step["execution"]["ok"] and "cancelled" in step["execution"]["error"]
        presses, releases = probe.new_events("press"), probe.new_events("release")
        assert len(presses) == len(releases) == 1, (presses, releases)
    else:
        assert step["execution"] is None and sig.name in step["error"], step
