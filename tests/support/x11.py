"""Helpers for tests and benches on a private X server: Xvfb, the probe app, xterm, waits.

Without a window manager (as here) windows have no decorations, stay where they are put, and
the keyboard focus follows the pointer (PointerRoot): move the pointer into a window before
typing into it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actions.private_desktop import PrivateDesktop

REPO = Path(__file__).resolve().parents[2]
PROBE_APP = REPO / "tests" / "apps" / "probe_app.py"
APT_HINT = "apt-get install -y xvfb xdotool x11-utils xterm"

Event = dict[str, Any]


def require_tool(name: str) -> str:
    """The path of a command-line tool, or a clear failure naming the apt-get command."""
    path = shutil.which(name)
    if path is None:
        import pytest

        pytest.fail(f"{name} is not installed: run `{APT_HINT}`", pytrace=False)
    return path


def start_xvfb(width: int = 1920, height: int = 1080) -> PrivateDesktop:
    """A private Xvfb, started as deskpilot starts its own: cookie, no window manager.

    The cookie is admitted to this process (XAUTHORITY): its children reach the server through
    x_env(); close() ends the server and gives XAUTHORITY back.
    """
    require_tool("Xvfb")
    return PrivateDesktop.start("headless", (width, height), window_manager=False)


def x_env(display: str, **extra: str) -> dict[str, str]:
    """The environment for a child on the display."""
    env = dict(os.environ)
    env["DISPLAY"] = display
    env.update(extra)
    return env


def x_tool(display: str, tool: str, *args: str) -> str:
    """What an X command-line tool prints about the display; fails if it does."""
    return subprocess.run(
        [require_tool(tool), *args],
        env=x_env(display),
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout


def wait_until(
    predicate: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.05
) -> Any:
    """Poll until predicate() is truthy and return its value; fail after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.1f} s waiting for {what}")
        time.sleep(interval_s)


def find_window(display: str, *, pid: int | None = None, name: str | None = None) -> int | None:
    """A visible (mapped) window of a process or with a title, or None."""
    xdotool = require_tool("xdotool")
    args = [xdotool, "search", "--onlyvisible"]
    if pid is not None:
        args += ["--pid", str(pid)]
    if name is not None:
        args += ["--name", f"^{name}$"]
    else:
        args += ["--name", ""]
    out = subprocess.run(args, env=x_env(display), capture_output=True, text=True, timeout=10)
    ids = [int(line) for line in out.stdout.split() if line.strip().isdigit()]
    return ids[0] if ids else None


def window_geometry(display: str, window: int) -> tuple[int, int, int, int]:
    """A window's absolute x, y, width, height (xwininfo)."""
    out = x_tool(display, "xwininfo", "-id", str(window))
    values: dict[str, int] = {}
    for line in out.splitlines():
        key, _, value = line.strip().partition(":")
        if key in ("Absolute upper-left X", "Absolute upper-left Y", "Width", "Height"):
            values[key] = int(value.strip())
    return (
        values["Absolute upper-left X"],
        values["Absolute upper-left Y"],
        values["Width"],
        values["Height"],
    )


def wait_for_window(
    display: str, *, name: str, proc: subprocess.Popen[Any] | None = None, timeout_s: float = 30.0
) -> int:
    """Wait until a window with exactly this title is mapped (viewable); returns its id."""

    def probe() -> int | None:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the process for window {name!r} exited with {proc.returncode}")
        return find_window(display, name=name)

    return int(wait_until(probe, timeout_s, f"window {name!r} to be mapped", 0.1))


def pointer_position(display: str) -> tuple[int, int]:
    """Where the pointer is (xdotool)."""
    out = x_tool(display, "xdotool", "getmouselocation", "--shell")
    values = dict(line.split("=", 1) for line in out.split() if "=" in line)
    return int(values["X"]), int(values["Y"])


def move_pointer(display: str, x: int, y: int) -> None:
    """Move the pointer without the code under test (xdotool)."""
    # `mousemove --sync` waits for motion, and hangs when the pointer is already there.
    if pointer_position(display) == (x, y):
        return
    subprocess.run(
        [require_tool("xdotool"), "mousemove", "--sync", str(x), str(y)],
        env=x_env(display),
        timeout=10,
        check=True,
    )


@dataclass
class ProbeApp:
    """A running tests/apps/probe_app.py and its event log."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    title: str
    display: str
    ready: Event = field(default_factory=dict)
    _seen: int = 0

    def events(self) -> list[Event]:
        """Every event logged so far."""
        if not self.log_path.exists():
            return []
        lines = self.log_path.read_text(encoding="utf-8").splitlines()
        # A line still being written has no newline yet: json fails, skip it this time.
        result = []
        for line in lines:
            try:
                result.append(json.loads(line))
            except json.JSONDecodeError:
                pass
        return result

    def mark(self) -> None:
        """Forget the events so far: later `new_events` and waits see only what comes next."""
        self._seen = len(self.events())

    def new_events(self, kind: str | None = None) -> list[Event]:
        """Events since the last mark(), optionally of one kind."""
        events = self.events()[self._seen :]
        return [e for e in events if kind is None or e["event"] == kind]

    def wait_for(
        self, predicate: Callable[[list[Event]], Any], timeout_s: float = 10.0, what: str = ""
    ) -> Any:
        """Wait until predicate(new events) is truthy; returns its value."""

        def probe() -> Any:
            self._check_alive()
            return predicate(self.new_events())

        return wait_until(probe, timeout_s, what or "probe app events")

    def wait_event(self, kind: str, count: int = 1, timeout_s: float = 10.0) -> list[Event]:
        """Wait until `count` new events of a kind arrived; returns all new ones of that kind."""

        def enough(events: list[Event]) -> list[Event] | None:
            found = [e for e in events if e["event"] == kind]
            return found if len(found) >= count else None

        try:
            return list(self.wait_for(enough, timeout_s, f"{count} {kind!r} event(s)"))
        except TimeoutError as exc:
            raise AssertionError(f"{exc}; new events: {self.new_events()}") from exc

    def wait_text(self, expected: str, timeout_s: float = 15.0) -> str:
        """Wait until the text field holds exactly `expected`; fails showing the last text."""
        try:
            self.wait_for(
                lambda evs: any(e["event"] == "text" and e["text"] == expected for e in evs),
                timeout_s,
                "the text field",
            )
        except TimeoutError as exc:
            raise AssertionError(f"text field is {self.text()!r}, expected {expected!r}") from exc
        return expected

    def text(self) -> str:
        """The text field's latest content."""
        texts = [e["text"] for e in self.events() if e["event"] == "text"]
        return texts[-1] if texts else ""

    def rect(self, part: str) -> tuple[int, int, int, int]:
        """Global x, y, w, h of "window", "text_field" or "canvas"."""
        x, y, w, h = self.ready[part]
        return int(x), int(y), int(w), int(h)

    def center(self, part: str) -> tuple[int, int]:
        """The middle of a part, in global screen pixels."""
        x, y, w, h = self.rect(part)
        return x + w // 2, y + h // 2

    def _check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"probe app exited with {self.proc.returncode}")

    def close(self) -> None:
        """Stop the app."""
        stop_process(self.proc)


def start_probe_app(
    display: str,
    log_path: Path,
    geometry: tuple[int, int, int, int],
    title: str,
    timeout_s: float = 30.0,
) -> ProbeApp:
    """Launch the probe app (xcb, on the display) and wait until it logged "ready"."""
    x, y, w, h = geometry
    env = x_env(display, QT_QPA_PLATFORM="xcb")
    # A warning-free, deterministic Qt: no accessibility bus, no session, no input methods.
    env.pop("WAYLAND_DISPLAY", None)
    env["QT_ACCESSIBILITY"] = "0"
    env["NO_AT_BRIDGE"] = "1"
    env["QT_IM_MODULE"] = ""
    env["QT_LOGGING_RULES"] = "qt.qpa.*=false"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(PROBE_APP),
            "--geometry",
            f"{x},{y},{w},{h}",
            "--log",
            str(log_path),
            "--title",
            title,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    app = ProbeApp(proc, log_path, title, display)
    try:
        ready = app.wait_for(
            lambda evs: next((e for e in evs if e["event"] == "ready"), None),
            timeout_s,
            "the probe app to be ready",
        )
        wait_for_window(display, name=title, proc=proc, timeout_s=timeout_s)
    except BaseException:
        app.close()
        raise
    app.ready = ready
    app.mark()
    return app


@dataclass
class XTerm:
    """A running xterm: its window id and absolute geometry (pixels)."""

    proc: subprocess.Popen[bytes]
    window: int
    geometry: tuple[int, int, int, int]
    title: str

    def center(self) -> tuple[int, int]:
        """The middle of the window, in global pixels."""
        x, y, w, h = self.geometry
        return x + w // 2, y + h // 2

    def wait_exit(self, timeout_s: float = 15.0) -> int:
        """Wait for xterm to end (its command ended); returns the exit code."""
        return self.proc.wait(timeout=timeout_s)

    def close(self) -> None:
        """Stop xterm if it still runs."""
        stop_process(self.proc)


def start_xterm(
    display: str,
    command: str,
    *,
    position: tuple[int, int],
    columns: int = 80,
    rows: int = 10,
    title: str,
    timeout_s: float = 30.0,
) -> XTerm:
    """Launch xterm running `sh -c command` at a pixel position, in a UTF-8 locale.

    xterm's -geometry counts characters for the size (pixels only for the position); the
    pixel size depends on the font (DejaVu Sans Mono 11 via -fa/-fs), so the real geometry
    is read back with xwininfo once the window is mapped.
    """
    x, y = position
    env = x_env(display, LANG="C.UTF-8", LC_ALL="C.UTF-8")
    proc = subprocess.Popen(
        [
            require_tool("xterm"),
            "-geometry",
            f"{columns}x{rows}+{x}+{y}",
            "-T",
            title,
            "-fa",
            "DejaVu Sans Mono",
            "-fs",
            "11",
            "-u8",
            "-xrm",
            "XTerm*allowTitleOps: false",
            "-e",
            "sh",
            "-c",
            command,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        window = wait_for_window(display, name=title, proc=proc, timeout_s=timeout_s)
        geometry = window_geometry(display, window)
    except BaseException:
        stop_process(proc)
        raise
    return XTerm(proc, window, geometry, title)


def shell_quote(path: Path | str) -> str:
    """A path quoted for sh -c."""
    return shlex.quote(str(path))


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """Terminate a child we started, then kill it if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


# -- what reaches the X server: every key and button event, in order, with markers --------

_MARK_ATOM = "DESKPILOT_TEST_MARK"
_CHANGE_PROPERTY = 18  # the core request opcode


@dataclass(frozen=True)
class InputEvent:
    """One device event the server processed (key or button press/release, motion) or a mark."""

    kind: str
    detail: int | str
    x: int = 0
    y: int = 0


class InputRecorder:
    """Records every device event the X server processes (RECORD extension), from any client.

    `mark(name)` puts a marker into the same ordered stream (a ChangeProperty request on the
    root window, recorded where the server handled it), so a test can tell exactly which
    events the server processed before and after a moment, whatever the apps log.
    """

    def __init__(self, display: str) -> None:
        import threading

        from Xlib import display as xdisplay

        self.display = display
        self._record_dpy: Any = xdisplay.Display(display)
        self._ctrl: Any = xdisplay.Display(display)
        if not self._record_dpy.has_extension("RECORD"):
            raise RuntimeError("the X server has no RECORD extension")
        self._mark_atom = int(self._ctrl.intern_atom(_MARK_ATOM))
        self._root = self._ctrl.screen().root
        self._lock = threading.Lock()
        self._events: list[InputEvent] = []
        self._ctx: Any = None
        self._thread: Any = None

    def __enter__(self) -> InputRecorder:
        import threading

        from Xlib import X
        from Xlib.ext import record

        self._ctx = self._ctrl.record_create_context(
            0,
            [record.AllClients],
            [
                {
                    "core_requests": (_CHANGE_PROPERTY, _CHANGE_PROPERTY),
                    "core_replies": (0, 0),
                    "ext_requests": (0, 0, 0, 0),
                    "ext_replies": (0, 0, 0, 0),
                    "delivered_events": (0, 0),
                    "device_events": (X.KeyPress, X.MotionNotify),
                    "errors": (0, 0),
                    "client_started": False,
                    "client_died": False,
                }
            ],
        )
        self._ctrl.sync()
        self._thread = threading.Thread(
            target=self._record_dpy.record_enable_context,
            args=(self._ctx, self._on_data),
            name="x-input-recorder",
            daemon=True,
        )
        self._thread.start()
        # The context is enabled on the other connection some time after the thread starts:
        # mark until a mark comes through, so nothing after __enter__ can be missed.
        wait_until(self._started, 5.0, "the X input recording to start", 0.02)
        return self

    def _started(self) -> bool:
        if any(e.kind == "mark" for e in self.events()):
            return True
        self.mark("started")
        return False

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop recording and drop the connections."""
        if self._ctx is not None:
            self._ctrl.record_disable_context(self._ctx)
            self._ctrl.sync()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._ctrl.record_free_context(self._ctx)
            self._ctrl.sync()
            self._ctx = None
        for dpy in (self._record_dpy, self._ctrl):
            try:
                dpy.close()
            except Exception:  # the server may be gone already
                pass

    def _on_data(self, reply: Any) -> None:
        import struct

        from Xlib import X
        from Xlib.ext import record
        from Xlib.protocol import rq

        data = bytes(reply.data)
        found: list[InputEvent] = []
        if reply.category == record.FromClient:
            # ChangeProperty: opcode, mode, length, window, property, type, format, 3 pad, n.
            if len(data) >= 24 and data[0] == _CHANGE_PROPERTY:
                prop = struct.unpack("=I", data[8:12])[0]
                count = struct.unpack("=I", data[20:24])[0]
                if prop == self._mark_atom:
                    found.append(InputEvent("mark", data[24 : 24 + count].decode()))
        elif reply.category == record.FromServer:
            names = {
                X.KeyPress: "key_press",
                X.KeyRelease: "key_release",
                X.ButtonPress: "button_press",
                X.ButtonRelease: "button_release",
                X.MotionNotify: "motion",
            }
            while len(data) >= 32:
                event, data = rq.EventField(None).parse_binary_value(
                    data, self._record_dpy.display, None, None
                )
                kind = names.get(event.type)
                if kind is not None:
                    found.append(
                        InputEvent(kind, int(event.detail), int(event.root_x), int(event.root_y))
                    )
        if found:
            with self._lock:
                self._events.extend(found)

    def mark(self, name: str) -> None:
        """Put a named marker into the stream, after everything the server handled so far."""
        from Xlib import X, Xatom

        self._root.change_property(
            self._mark_atom, Xatom.STRING, 8, name.encode(), mode=X.PropModeReplace
        )
        self._ctrl.sync()

    def wait_mark(self, name: str, timeout_s: float = 5.0) -> None:
        """Wait until a marker has come through the recording (so every event before it has)."""
        wait_until(
            lambda: any(e.kind == "mark" and e.detail == name for e in self.events()),
            timeout_s,
            f"input-recorder mark {name!r}",
            0.01,
        )

    def events(self) -> list[InputEvent]:
        """Everything recorded so far, in the server's order."""
        with self._lock:
            return list(self._events)

    def between(self, first: str, last: str | None = None) -> list[InputEvent]:
        """Device events after mark `first` and before mark `last` (or the end)."""
        events = self.events()
        names = [e.detail if e.kind == "mark" else None for e in events]
        start = names.index(first) + 1
        end = names.index(last, start) if last is not None else len(events)
        return [e for e in events[start:end] if e.kind != "mark"]


def held_input(display: str) -> tuple[list[int], list[int]]:
    """Keycodes the server has down and mouse buttons (1-5) held, as the server sees them."""
    from Xlib import display as xdisplay

    dpy: Any = xdisplay.Display(display)
    try:
        keymap = dpy.query_keymap()
        keys = [i * 8 + bit for i, byte in enumerate(keymap) for bit in range(8) if byte >> bit & 1]
        mask = int(dpy.screen().root.query_pointer().mask)
        buttons = [b for b in range(1, 6) if mask & (1 << (7 + b))]
        return keys, buttons
    finally:
        dpy.close()
