"""The main window as a new user meets it: a real X server with openbox, real input, AT names.

On a private Xvfb + openbox desktop of 1280x720 or 1920x1080 the app (tests/support/ui_probe.py
app) must fit the screen, name every control by its visible label, move on with Tab, start with
Ctrl+Enter, stay out of the way of an unattended run (not shown, hidden or activated between its
steps), list the shortcuts under Help, open Settings in a dialog and the recorded run in Runs.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from actions.private_desktop import PrivateDesktop
from tests.support.scripted_server import Reply, ScriptedServer, xml_call
from tests.support.x11 import wait_until
from tests.ui.test_library_x11 import DOC_IMAGES, Probe, fits, grab, names_match_labels

pytestmark = [pytest.mark.x11, pytest.mark.timeout(180)]

TITLE = "deskpilot"


def area(rect: list[int]) -> int:
    return int(rect[2]) * int(rect[3])


def focused_title(probe: Probe) -> str:
    """The title of the window with the keyboard focus (xdotool)."""
    import subprocess

    out = subprocess.run(
        ["xdotool", "getwindowfocus", "getwindowname"],
        env=probe.desktop.env(),
        capture_output=True,
        text=True,
        timeout=10,
    )
    return out.stdout.strip()


def main_window(probe: Probe) -> dict[str, Any] | None:
    """The main window's snapshot, while it is shown."""
    return next((w for w in probe.last()["windows"] if w["title"] == TITLE), None)


@pytest.mark.parametrize(
    ("size", "scale"), [((1280, 720), 1), ((1920, 1080), 1), ((3840, 2160), 2)]
)
def test_the_cockpit_fits_names_its_controls_and_stays_out_of_an_unattended_run(
    size: tuple[int, int], scale: int, tmp_path: Path
) -> None:
    if shutil.which("openbox") is None or shutil.which("xdotool") is None:
        pytest.skip("needs openbox and xdotool: apt-get install -y openbox xdotool")
    script: list[Any] = [
        # Into the terminal at the top-left: the agent's application takes the focus.
        Reply(xml_call(action="left_click", coordinate=[60, 40]), reasoning="Click the terminal."),
        Reply(xml_call(action="mouse_move", coordinate=[900, 900]), reasoning="Still looking."),
        Reply(xml_call(action="wait", time=0.2), reasoning="Let it settle."),
        Reply("Done. " + xml_call(action="terminate", status="success")),
    ]
    server = ScriptedServer(script)
    runs = tmp_path / "runs"
    config = tmp_path / "config"
    (config / "deskpilot").mkdir(parents=True)
    (config / "deskpilot" / "settings.toml").write_text(
        f'backend = "openai"\nendpoint = "{server.url}"\napprove = "auto"\n'
        f'max_steps = 8\nruns_dir = "{runs}"\n',
        encoding="utf-8",
    )
    desktop = PrivateDesktop.start("headless", size, die_with_parent=True)
    # The application the agent works in: it has the focus whenever the app is out of the way.
    desktop.open("xterm -geometry 60x8+0+0 -T agent-app")
    env = {"XDG_CONFIG_HOME": str(config), "QT_SCALE_FACTOR": str(scale)}
    probe = Probe(desktop, runs, tmp_path, "app", env, scale=scale)
    # Qt reports places in its own pixels: the screen is this big in them.
    size = (size[0] // scale, size[1] // scale)
    shots = os.environ.get("DESKPILOT_DOC_IMAGES") and size == (1280, 720) and scale == 1
    try:
        window = probe.window(TITLE)
        assert fits(window["frame"], size), (window["frame"], size)
        assert names_match_labels(window) == []
        for name in ("Task", "Start", "Stop", "Pause", "Take over", "Settings", "Runs"):
            probe.widget(TITLE, name)
        # An endpoint is reconnected, not a "worker"; and there is nothing to reconnect yet.
        assert probe.widget(TITLE, "Reconnect")["enabled"] is False
        assert probe.widget(TITLE, "Stop", cls="QPushButton")["enabled"] is False
        # The live screen is the largest thing in the window.
        screen = probe.widget(TITLE, "Screen")
        others = [w for w in window["widgets"] if w["class"] not in ("MainWindow", "LiveView")]
        leaves = [w for w in others if w["role"] not in ("Window", "Grouping", "Client", "Pane")]
        assert all(area(screen["rect"]) > area(w["rect"]) for w in leaves), leaves

        # Tab leaves the task box (it is not trapped there); Ctrl+Enter starts.
        probe.focus(TITLE, "Task", "QPlainTextEdit")
        probe.xdo("type", "--delay", "10", "look around the desktop")
        probe.xdo("key", "Tab")
        wait_until(
            lambda: not probe.widget(TITLE, "Task", cls="QPlainTextEdit")["focus"],
            5,
            "Tab to leave the task",
        )
        assert (
            probe.widget(TITLE, "Task", cls="QPlainTextEdit")["text"] == "look around the desktop"
        )
        probe.focus(TITLE, "Task", "QPlainTextEdit")
        before = dict(probe.last()["main"])
        probe.xdo("key", "ctrl+Return")
        wait_until(lambda: len(server.requests) >= 3, 30, "step 3")
        assert focused_title(probe) == "agent-app"  # the agent's click gave it the focus
        wait_until(lambda: probe.last()["finished"] == ["success"], 60, "the run to finish")
        wait_until(lambda: main_window(probe), 10, "the window to come back")
        after = probe.last()["main"]
        # Unattended: hidden once before the first step, shown once after the last, and never
        # activated (it comes back without taking the focus from the agent's application).
        assert after["hide"] - before["hide"] == 1, (before, after)
        assert after["show"] - before["show"] == 1, (before, after)
        assert after["activate"] == before["activate"], (before, after)
        assert focused_title(probe) == "agent-app"
        assert len(server.requests) == 4
        steps = probe.widget(TITLE, "Steps")
        assert [r["text"].split("\n")[0] for r in steps["rows"]] == [
            "Step 1: Click at (60, 40)",
            "Step 2: Move the pointer to (900, 900)",
            "Step 3: Wait 0.2 s",
            "Step 4: Finish: success",
        ]
        progress = probe.widget(TITLE, "Progress")
        assert progress["text"] == "Step 4 of 8"
        assert probe.widget(TITLE, "Model activity")["text"] == "finished: success"
        assert probe.widget(TITLE, "Reconnect")["enabled"] is True  # now there is a client
        window = probe.window(TITLE)
        assert fits(window["frame"], size), (window["frame"], size)
        if shots:
            grab(desktop.display, window["frame"]).save(DOC_IMAGES / "app-cockpit.png")

        # Help lists the shortcuts.
        probe.press(TITLE, "Runs")  # first: the library lists the run just made
        library = probe.window("deskpilot runs")
        assert fits(library["frame"], size)
        table = probe.widget("deskpilot runs", "Runs", cls="QTableWidget")
        assert [r["cells"][0] for r in table["rows"]] == ["look around the desktop"]
        probe.xdo("key", "Escape")
        probe.gone("deskpilot runs")
        probe.focus(TITLE, "Task", "QPlainTextEdit")
        probe.xdo("key", "F1")
        probe.window("Keyboard shortcuts")
        text = " ".join(w["text"] or "" for w in probe.window("Keyboard shortcuts")["widgets"])
        assert "Ctrl+Enter\tStart the task" in text and "Esc\tStop the run" in text
        probe.xdo("key", "Return")
        probe.gone("Keyboard shortcuts")

        # Settings: a dialog that fits, every run option named by its label.
        probe.press(TITLE, "Settings")
        dialog = probe.window("Settings")
        assert fits(dialog["frame"], size), (dialog["frame"], size)
        labels = {w["label"] for w in dialog["widgets"]}
        assert {"Backend", "Endpoint", "Model", "Approval", "Max steps"} <= labels, labels
        endpoint = probe.widget("Settings", "Endpoint", cls="QLineEdit")
        assert endpoint["text"] == server.url
        probe.xdo("key", "Escape")
        probe.gone("Settings")
    finally:
        probe.close()
        desktop.close()
        server.close()
