"""The runs library and the debugger as a user meets them: a real X server with openbox.

The library runs in its own process (xcb) on a private Xvfb + openbox desktop of 1280x720 or
1920x1080, and is driven only by real X input (xdotool): open a run, step through it, set a
breakpoint from the timeline, ask the model again, close with Ctrl+W, export, delete. Controls
are found by their accessible names (tests/support/ui_probe.py logs what the accessibility
layer reports), so the test also proves those names. The effects are checked on disk.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from actions.private_desktop import PrivateDesktop
from actions.screen import Screen
from tests.support.recordings import CORNERS, SCRIPT, record_run
from tests.support.scripted_server import Reply, ScriptedServer, xml_call
from tests.support.x11 import move_pointer, wait_until

pytestmark = [pytest.mark.x11, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
DOC_IMAGES = ROOT / "docs" / "images"


class Probe:
    """The library process and its accessibility log (tests/support/ui_probe.py)."""

    def __init__(
        self,
        desktop: PrivateDesktop,
        runs: Path,
        tmp: Path,
        window: str = "library",
        env: dict[str, str] | None = None,
        scale: float = 1.0,
    ) -> None:
        self.desktop = desktop
        self.scale = scale  # device pixels per Qt pixel (QT_SCALE_FACTOR)
        self.log = tmp / "ui.jsonl"
        self.err = tmp / f"{window}.err"
        extra = env or {}
        env = desktop.env()
        env.update(extra)
        env.update(
            QT_QPA_PLATFORM="xcb",
            QT_ACCESSIBILITY="1",
            NO_AT_BRIDGE="1",
            QT_IM_MODULE="",
            QT_LOGGING_RULES="qt.qpa.*=false",
            PYTHONPATH=str(ROOT),
        )
        with self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.support.ui_probe", window]
                + ([str(runs)] if window == "library" else [])
                + ["--log", str(self.log)],
                cwd=ROOT,
                env=env,
                stdout=err,
                stderr=err,
            )

    def last(self) -> dict[str, Any]:
        """The latest snapshot of the windows."""
        if self.proc.poll() is not None:
            raise AssertionError(f"the window exited: {self.err.read_text()[-3000:]}")
        if not self.log.exists():
            return {"windows": []}
        lines = self.log.read_text(encoding="utf-8").splitlines()
        for line in reversed(lines):
            try:
                return dict(json.loads(line))
            except json.JSONDecodeError:
                continue  # being written
        return {"windows": []}

    def window(self, title_start: str, timeout_s: float = 30.0) -> dict[str, Any]:
        """Wait for a visible window whose title starts so; returns it."""

        def find() -> dict[str, Any] | None:
            return next(
                (w for w in self.last()["windows"] if w["title"].startswith(title_start)), None
            )

        return dict(wait_until(find, timeout_s, f"window {title_start!r}", 0.1))

    def gone(self, title_start: str, timeout_s: float = 15.0) -> None:
        """Wait until no window's title starts so."""
        wait_until(
            lambda: all(not w["title"].startswith(title_start) for w in self.last()["windows"]),
            timeout_s,
            f"window {title_start!r} to close",
            0.1,
        )

    def widget(
        self,
        title_start: str,
        name: str,
        *,
        timeout_s: float = 15.0,
        key: str = "name",
        cls: str | None = None,
        **match: Any,
    ) -> Any:
        """Wait for a widget by accessible name (or another key) in a window, matching fields."""
        if cls is not None:
            match["class"] = cls

        def find() -> dict[str, Any] | None:
            for w in self.last()["windows"]:
                if w["title"].startswith(title_start):
                    for widget in w["widgets"]:
                        if widget.get(key) == name and all(
                            widget.get(k) == v for k, v in match.items()
                        ):
                            return dict(widget)
            return None

        return wait_until(find, timeout_s, f"{name!r} {match} in {title_start!r}", 0.1)

    def xdo(self, *args: str) -> None:
        """Real input through xdotool on the desktop."""
        subprocess.run(["xdotool", *args], env=self.desktop.env(), timeout=10, check=True)

    def click(self, rect: list[int], dx: float = 0.5, dy: float = 0.5) -> None:
        """Click inside a rectangle (at its middle by default)."""
        k = self.scale
        x, y = int((rect[0] + rect[2] * dx) * k), int((rect[1] + rect[3] * dy) * k)
        move_pointer(self.desktop.display, x, y)  # --sync hangs when already there
        self.xdo("click", "1")

    def press(self, title_start: str, name: str) -> None:
        """Click the enabled control with this accessible name."""
        self.click(self.widget(title_start, name, enabled=True)["rect"])

    def press_until(
        self, title_start: str, name: str, done: Callable[[], object], timeout_s: float = 30.0
    ) -> None:
        """Click a control until `done()` holds: a click on a window openbox is still mapping
        or activating can be lost."""

        def clicked() -> bool:
            if done():
                return True
            self.press(title_start, name)
            return bool(wait_for(done, 2.0))

        wait_until(clicked, timeout_s, f"{name!r} in {title_start!r} to take effect", 0.1)

    def has_window(self, title_start: str) -> bool:
        """Whether a window whose title starts so is shown now."""
        return any(w["title"].startswith(title_start) for w in self.last()["windows"])

    def focus(self, title_start: str, name: str, cls: str) -> None:
        """Click a field until it has the keyboard focus (a window being activated may not
        pass the first click on)."""

        def focused() -> bool:
            field = self.widget(title_start, name, cls=cls)
            if not field["focus"]:
                self.click(field["rect"])
            return bool(field["focus"])

        wait_until(focused, 10, f"the focus in {name!r}", 0.3)

    def close(self) -> None:
        """End the library process."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def wait_for(predicate: Callable[[], object], timeout_s: float) -> object:
    """predicate()'s first truthy value within timeout_s, else None."""
    try:
        return wait_until(predicate, timeout_s, "", 0.1)
    except TimeoutError:
        return None


def shown_tasks(probe: Probe) -> list[str]:
    """The tasks of the runs the library shows."""
    table = probe.widget("deskpilot runs", "Runs")
    return [row["cells"][0] for row in table["rows"] if not row["hidden"]]


def fits(frame: list[int], size: tuple[int, int]) -> bool:
    """Whether a window's frame lies wholly on the screen."""
    x, y, w, h = frame
    return x >= 0 and y >= 0 and x + w <= size[0] and y + h <= size[1]


def names_match_labels(window: dict[str, Any]) -> list[str]:
    """Buttons whose accessible name differs from their visible label."""
    return [
        f"{w['name']!r} != {w['text']!r}"
        for w in window["widgets"]
        if w["role"] in ("Button", "PushButton")
        and w["text"]
        and w["name"] != w["text"].replace("&", "")
    ]


def grab(display: str, rect: list[int]) -> Any:
    """The screen's pixels in a rectangle, as the X server has them (a PIL image)."""
    frame = Screen(display=display).capture()
    image = frame.to_pil()
    x, y, w, h = rect
    return image.crop((x, y, x + w, y + h))  # type: ignore[attr-defined]


def corners_shown(probe: Probe) -> bool:
    """Whether the debugger's picture shows the recorded screenshot whole: all four corners."""
    shot = probe.widget("deskpilot debugger", "Screenshot")
    px, py, pw, ph = (int(v) for v in shot["picture"])
    x, y, w, h = shot["rect"]
    assert x <= px and y <= py and px + pw <= x + w and py + ph <= y + h, shot
    assert abs(pw / ph - 1920 / 1080) < 0.02, shot
    picture = grab(probe.desktop.display, [px, py, pw, ph])
    inset = 6
    points = {
        "top_left": (inset, inset),
        "top_right": (pw - inset, inset),
        "bottom_left": (inset, ph - inset),
        "bottom_right": (pw - inset, ph - inset),
    }
    return all(near(picture.getpixel(xy)[:3], CORNERS[corner]) for corner, xy in points.items())


def near(colour: tuple[int, int, int], wanted: tuple[int, int, int]) -> bool:
    """Equal within scaling's blur."""
    return all(abs(a - b) <= 40 for a, b in zip(colour, wanted, strict=True))


@pytest.mark.parametrize(("size", "fmt"), [((1280, 720), "mp4"), ((1920, 1080), "gif")])
def test_open_step_through_export_and_delete_a_run(
    size: tuple[int, int], fmt: str, tmp_path: Path
) -> None:
    if shutil.which("openbox") is None or shutil.which("xdotool") is None:
        pytest.skip("needs openbox and xdotool: apt-get install -y openbox xdotool")
    again = Reply(
        xml_call(action="type", text="hello from the library test"),
        reasoning="Asked again: type the text.",
    )
    server = ScriptedServer([*SCRIPT, *SCRIPT, again])
    runs = tmp_path / "runs"
    older = record_run(runs, server.url, "write a note and save it", (1920, 1080))
    newer = record_run(runs, server.url, "save the second note", (1920, 1080))
    desktop = PrivateDesktop.start("headless", size, die_with_parent=True)
    probe = Probe(desktop, runs, tmp_path)
    shots = os.environ.get("DESKPILOT_DOC_IMAGES") and size == (1280, 720)
    try:
        library = probe.window("deskpilot runs")
        assert fits(library["frame"], size), (library["frame"], size)
        assert names_match_labels(library) == []
        for name in ("Search", "Runs", "Open", "Export…", "Delete…", "Show folder"):
            probe.widget("deskpilot runs", name)
        if shots:
            wait_until(lambda: probe.last()["windows"][0]["active"], 10, "the library's focus")
            grab(desktop.display, library["frame"]).save(DOC_IMAGES / "app-library.png")

        # Open the newest run (selected first), step with the keyboard and the button.
        probe.press_until("deskpilot runs", "Open", lambda: probe.has_window("deskpilot debugger"))
        debugger = probe.window("deskpilot debugger: save the second note")
        assert fits(debugger["frame"], size), (debugger["frame"], size)
        assert names_match_labels(debugger) == []
        probe.widget("deskpilot debugger", "Position", text="Step 1 of 4")
        # The whole 1920x1080 screenshot is drawn scaled inside its pane: all four corners.
        wait_until(lambda: corners_shown(probe), 15, "the screenshot's four corners")
        probe.xdo("key", "Right")
        probe.widget("deskpilot debugger", "Position", text="Step 2 of 4")
        probe.press("deskpilot debugger", "Forward")
        probe.widget("deskpilot debugger", "Position", text="Step 3 of 4")
        probe.press("deskpilot debugger", "Back")
        probe.widget("deskpilot debugger", "Position", text="Step 2 of 4")
        # The form's "Action" row: its label and its value both carry the name.
        probe.widget("deskpilot debugger", "Action", text="Type 'hello from the library test'")

        # A breakpoint before step 3, from the timeline's checkbox.
        steps = probe.widget("deskpilot debugger", "Steps")
        row = steps["rows"][2]["rect"]
        probe.click([row[0] + 3, row[1], 14, row[3]])  # the checkbox at the row's left
        wait_until(lambda: probe.last()["breakpoints"] == [3], 10, "breakpoint at step 3")

        # Ask the model again at step 2: the new proposal beside the recorded one.
        requests = len(server.requests)
        probe.press("deskpilot debugger", "Ask again")
        verdict = probe.widget(
            "deskpilot debugger",
            "Comparison",
            timeout_s=30,
            text="Step 2: the model proposes the same action now.",
        )
        assert verdict and len(server.requests) == requests + 1
        now = probe.widget("deskpilot debugger", "Asked again now", cls="QPlainTextEdit")
        assert now["text"].startswith("Type 'hello from the library test'")
        assert "Asked again: type the text." in now["text"]
        if shots:  # the README's picture: a step, and the model asked again beside it
            debugger = probe.window("deskpilot debugger")
            grab(desktop.display, debugger["frame"]).save(DOC_IMAGES / "app-debugger.png")
        probe.xdo("key", "ctrl+w")
        probe.gone("deskpilot debugger")

        # Export with the progress bar; the file is there and valid.
        probe.press_until("deskpilot runs", "Export…", lambda: probe.has_window("Export run"))
        probe.window("Export run")
        if fmt != "mp4":
            # A combo box's accessible name is its value on Linux; its label is a relation.
            combo = probe.widget("Export run", "Format", key="label", role="ComboBox")
            probe.click(combo["rect"])
            probe.xdo("key", "Down", "Return")
            probe.widget("Export run", "Format", key="label", text="GIF animation")

        # A click on a window openbox is still mapping can be lost: click until it starts.
        def started() -> bool:
            if probe.widget("Export run", "Export status")["text"]:
                return True
            probe.press("Export run", "Export")
            return False

        wait_until(started, 20, "the export to start", 1.0)
        status = probe.widget("Export run", "Export status", timeout_s=60)
        try:
            wait_until(
                lambda: probe.widget("Export run", "Export status")["text"].startswith("Saved"),
                60,
                "the export to finish",
            )
        except TimeoutError:
            raise AssertionError(probe.window("Export run")) from None
        status = probe.widget("Export run", "Export status")
        out = Path(status["text"].removeprefix("Saved "))
        assert out == newer / f"{newer.name}.{fmt}"
        assert probe.widget("Export run", "Export progress")["text"] == "4/4"
        check_export(out, fmt)
        probe.xdo("key", "Escape")
        probe.gone("Export run")

        # Replay on the desktop: the windows step aside, the replayer runs and, the screen
        # being another than the recording's, stops before the first action; they come back.
        probe.press_until(
            "deskpilot runs", "Replay on desktop", lambda: not probe.has_window("deskpilot runs")
        )
        library = probe.window("deskpilot runs", timeout_s=60)
        assert library["status"] == (
            "Replay stopped: step 1: the screen differs from the recording (a replay from here "
            "stops there); nothing was executed"
        ), library["status"]

        # Delete the older run, after saying yes.
        probe.focus("deskpilot runs", "Search", "QLineEdit")
        probe.xdo("type", "--delay", "20", "write a note")
        try:
            wait_until(
                lambda: shown_tasks(probe) == ["write a note and save it"],
                10,
                "the search to leave the older run",
            )
        except TimeoutError:
            raise AssertionError(probe.last()) from None
        probe.press_until("deskpilot runs", "Delete…", lambda: probe.has_window("Delete run"))
        probe.window("Delete run")
        probe.press("Delete run", "Delete")
        wait_until(lambda: not older.exists(), 15, "the older run's folder to go")
        assert newer.exists()
    finally:
        probe.close()
        desktop.close()
        server.close()


def check_export(path: Path, fmt: str) -> None:
    """The exported file opens as what it claims to be, with the recording's steps in it."""
    assert path.stat().st_size > 1000
    if fmt == "mp4":
        import av

        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            frames = sum(1 for _ in container.decode(stream))
        assert frames >= 4 and stream.width == 1280
    elif fmt == "gif":
        from PIL import Image

        with Image.open(path) as gif:
            assert gif.format == "GIF" and getattr(gif, "n_frames", 1) == 4
    else:
        text = path.read_text(encoding="utf-8")
        assert text.count("<section id='step-") == 4
