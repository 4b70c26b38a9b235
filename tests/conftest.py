"""Shared fixtures: a private Xvfb display, the probe app and xterm on it (tests/support/x11.py)."""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.x11 import ProbeApp, XTerm, start_probe_app, start_xterm, start_xvfb

_counter = itertools.count(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the private display as x11 (deselect with -m 'not x11')."""
    for item in items:
        if "xdisplay" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.x11)


@pytest.fixture(scope="session")
def xdisplay() -> Iterator[str]:
    """A private Xvfb (1920x1080) for the session; DISPLAY and XAUTHORITY point at it."""
    pyautogui = sys.modules.get("pyautogui")
    if pyautogui is not None:
        # pyautogui binds to DISPLAY at import: input would go to some other display.
        pytest.fail("pyautogui was imported before the private display started", pytrace=False)
    session = ("DISPLAY", "WAYLAND_DISPLAY", "XDG_SESSION_TYPE")
    saved = {name: os.environ.get(name) for name in session}
    server = start_xvfb(1920, 1080)  # points XAUTHORITY at its cookie until it closes
    os.environ["DISPLAY"] = server.display
    # Run from a Wayland desktop, `main.py run` would otherwise drive that desktop, not Xvfb.
    os.environ.pop("WAYLAND_DISPLAY", None)
    os.environ["XDG_SESSION_TYPE"] = "x11"
    try:
        yield server.display
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.close()


ProbeFactory = Callable[..., ProbeApp]
XTermFactory = Callable[..., XTerm]


@pytest.fixture
def probe_app(xdisplay: str, tmp_path: Path) -> Iterator[ProbeFactory]:
    """Factory: probe_app(geometry=(x, y, w, h), title=None) starts tests/apps/probe_app.py.

    Returns a ProbeApp once the app logged "ready" and its window is mapped; read its log
    with .events()/.new_events(), wait with .wait_event()/.wait_text(), places with .center().
    """
    started: list[ProbeApp] = []

    def start(geometry: tuple[int, int, int, int], title: str | None = None) -> ProbeApp:
        n = next(_counter)
        app = start_probe_app(
            xdisplay,
            tmp_path / f"probe-{n}.jsonl",
            geometry,
            title or f"deskpilot probe {n}",
        )
        started.append(app)
        return app

    yield start
    for app in started:
        app.close()


@pytest.fixture
def xterm(xdisplay: str) -> Iterator[XTermFactory]:
    """Factory: xterm(command, position=(x, y), columns=80, rows=10, title=None) -> XTerm.

    Runs `sh -c command` in a UTF-8 xterm (e.g. "cat > FILE" to capture typed bytes; send
    Return and ctrl+d to end it). Sizes are in characters; .geometry has the real pixels.
    """
    started: list[XTerm] = []

    def start(
        command: str,
        position: tuple[int, int] = (100, 100),
        columns: int = 80,
        rows: int = 10,
        title: str | None = None,
    ) -> XTerm:
        term = start_xterm(
            xdisplay,
            command,
            position=position,
            columns=columns,
            rows=rows,
            title=title or f"deskpilot xterm {next(_counter)}",
        )
        started.append(term)
        return term

    yield start
    for term in started:
        term.close()
