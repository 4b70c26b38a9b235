"""The real app with a private desktop: the agent types there, the user's display is untouched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.scripted_server import Reply, ScriptedServer, xml_call
from tests.support.x11 import InputRecorder, shell_quote
from tests.ui.test_app_x11 import centre, click, end_app, start_app


def test_the_app_runs_on_a_headless_desktop(xdisplay: str, tmp_path: Path) -> None:
    import shutil

    if shutil.which("openbox") is None:
        pytest.skip("openbox is not installed: apt-get install -y --no-install-recommends openbox")
    out = tmp_path / "private.txt"
    opened = f"xterm -geometry 100x40+0+0 -e sh -c {shell_quote('cat > ' + str(out))}"
    script = [
        Reply(xml_call(action="left_click", coordinate=[300, 300])),
        Reply(xml_call(action="type", text="from the app\n")),
        Reply(xml_call(action="key", keys=["ctrl", "d"])),
        Reply(xml_call(action="terminate", status="success")),
    ]
    server = ScriptedServer(script)
    runs = tmp_path / "runs"
    proc, app = start_app(
        xdisplay,
        tmp_path,
        f'task = "type there"\nbackend = "openai"\nendpoint = "{server.url}"\n'
        f'approval = "auto"\nmax_steps = 10\nruns_dir = "{runs}"\n'
        f'desktop = "headless"\ndesktop_size = "1024x768"\ndesktop_open = "{opened}"\n',
    )
    events: list[Any] = []
    try:
        ready = app.wait("ready")
        start = centre(ready["rects"]["start"])
        with InputRecorder(xdisplay) as recorder:
            recorder.mark("started")
            click(xdisplay, *start)
            finished = app.wait("finished")
            recorder.mark("finished")
            recorder.wait_mark("finished")
            events = recorder.between("started", "finished")
    finally:
        server.close()
        end_app(proc)
    assert finished["outcome"] == "success"
    assert out.read_text(encoding="utf-8") == "from the app\n"
    # From Start to the end of the run the user's display saw no input but that click.
    assert [e.kind for e in events if e.kind != "motion"] == ["button_press", "button_release"]
    assert {(e.x, e.y) for e in events} == {(int(start[0]), int(start[1]))}, events
