"""Taking over the agent's private desktop from the app: the user's clicks and keys go there."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.scripted_server import Reply, ScriptedServer, xml_call
from tests.support.x11 import shell_quote, wait_until
from tests.ui.test_app_x11 import centre, click, end_app, start_app, xdo


def test_take_over_types_into_the_private_desktop_while_the_agent_waits(
    xdisplay: str, tmp_path: Path
) -> None:
    if shutil.which("openbox") is None:
        pytest.skip("openbox is not installed: apt-get install -y --no-install-recommends openbox")
    out = tmp_path / "typed-by-the-user.txt"
    opened = f"xterm -geometry 100x40+0+0 -e sh -c {shell_quote('cat > ' + str(out))}"
    script = [
        Reply(xml_call(action="left_click", coordinate=[300, 300])),
        Reply(xml_call(action="terminate", status="success"), delay_s=60),  # a slow model
    ]
    server = ScriptedServer(script)
    runs = tmp_path / "runs"
    proc, app = start_app(
        xdisplay,
        tmp_path,
        f'task = "wait for me"\nbackend = "openai"\nendpoint = "{server.url}"\n'
        f'approval = "auto"\nmax_steps = 10\nruns_dir = "{runs}"\n'
        f'desktop = "headless"\ndesktop_size = "1024x768"\ndesktop_open = "{opened}"\n',
    )
    try:
        ready = app.wait("ready")
        click(xdisplay, *centre(ready["rects"]["start"]))
        wait_until(lambda: len(server.requests) == 2, 30, "the agent's second request")
        click(xdisplay, *centre(ready["rects"]["takeover"]))
        took = app.wait("takeover", on=True)
        x, y, w, h = took["rects"]["picture"]
        # A point inside the xterm (top-left of the private desktop), in the live view.
        click(xdisplay, x + 0.2 * w, y + 0.2 * h)
        xdo(xdisplay, "type", "--delay", "30", "hello from me")
        xdo(xdisplay, "key", "Return")
        wait_until(
            lambda: out.exists() and out.read_text(encoding="utf-8") == "hello from me\n",
            30,
            "the user's line in the private xterm",
        )
        click(xdisplay, *centre(ready["rects"]["takeover"]))  # hand back
        app.wait("takeover", on=False)
        click(xdisplay, *centre(ready["rects"]["stop"]))
        finished = app.wait("finished")
    finally:
        server.close()
        end_app(proc)
    assert finished["outcome"] == "stopped"
    assert out.read_text(encoding="utf-8") == "hello from me\n"


def test_the_calibrate_button_self_tests_the_mapping(xdisplay: str, tmp_path: Path) -> None:
    if shutil.which("openbox") is None:
        pytest.skip("openbox is not installed: apt-get install -y --no-install-recommends openbox")
    proc, app = start_app(
        xdisplay,
        tmp_path,
        'task = "x"\nbackend = "openai"\nendpoint = "http://127.0.0.1:9/v1"\n'
        'desktop = "headless"\ndesktop_size = "1024x768"\n',
    )
    try:
        ready = app.wait("ready")
        click(xdisplay, *centre(ready["rects"]["settings"]))  # Calibrate is in Settings
        shown = app.wait("settings")
        click(xdisplay, *centre(shown["rects"]["calibrate"]))
        done = app.wait("calibrated", timeout_s=90)
    finally:
        end_app(proc)
    assert done["code"] == 0, done
    assert done["verdict"].startswith("calibration passed"), done
