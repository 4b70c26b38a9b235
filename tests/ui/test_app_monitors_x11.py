"""The app on one monitor of several (RandR, a non-zero origin): the bar sits there, masked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from actions.screen import Screen
from agent.recording import read_steps
from tests.e2e.test_monitors_x11 import multi  # noqa: F401  (the 3-monitor Xvfb fixture)
from tests.support.scripted_server import Reply, ScriptedServer, xml_call
from tests.ui.test_app_x11 import centre, click, end_app, start_app


def test_the_control_bar_follows_the_monitor_and_is_masked_there(
    multi: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    from PIL import Image

    monitor = {m.name: m for m in Screen(display=multi).list_monitors()}["C"]  # 800x600+400+1080
    server = ScriptedServer([Reply(xml_call(action="left_click", coordinate=[500, 500]))])
    runs = tmp_path / "runs"
    proc, app = start_app(
        multi,
        tmp_path,
        f'task = "one click"\nbackend = "openai"\nendpoint = "{server.url}"\n'
        f'approval = "step"\nmax_steps = 3\nmonitor = {monitor.index}\nruns_dir = "{runs}"\n',
    )
    try:
        ready = app.wait("ready")
        click(multi, *centre(ready["rects"]["start"]))
        asked: Any = app.wait("approval", step=0)
        click(multi, *centre(asked["rects"]["panel_stop"]))
        app.wait("finished")
    finally:
        server.close()
        end_app(proc)
    bx, by, bw, bh = asked["rects"]["bar"]
    # The bar is on the automated monitor, not on the primary or the origin's.
    assert monitor.left <= bx and bx + bw <= monitor.left + monitor.width, (asked, monitor)
    assert monitor.top <= by and by + bh <= monitor.top + monitor.height, (asked, monitor)
    (run_dir,) = [d for d in runs.iterdir() if d.is_dir()]
    steps = read_steps(run_dir / "steps.jsonl")[0]
    assert steps[0]["screen"]["monitor"]["left"] == monitor.left
    shot = Image.open(run_dir / steps[0]["screenshot"]).convert("RGB")
    k = shot.width / monitor.width
    centre_in_shot = (int((bx + bw / 2 - monitor.left) * k), int((by + bh / 2 - monitor.top) * k))
    assert shot.getpixel(centre_in_shot) == (128, 128, 128)  # masked where the model looks
