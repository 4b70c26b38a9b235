"""One interface to the desktop (monitors, capture, input, focus, hotkey), chosen from the session.

Implementations: x11 (mss, XTEST through actions.executor), wlroots (screencopy and a virtual
pointer and keyboard over a pure-Python Wayland client), portal
(xdg-desktop-portal RemoteDesktop and ScreenCast, for GNOME, KDE and others). docs/wayland.md
says what each supports.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from actions.executor import ExecResult
from actions.screen import CoordinateSpace, DisplayError, Frame, Monitor
from actions.types import Action
from actions.window import FocusedWindow

__all__ = [
    "BACKENDS",
    "BackendName",
    "Desktop",
    "DesktopExecutor",
    "DesktopScreen",
    "DisplayError",
    "HotkeySupport",
    "choose_backend",
    "list_monitors",
    "open_desktop",
]

BackendName = Literal["x11", "wlroots", "portal"]
BACKENDS: tuple[str, ...] = ("auto", "x11", "wlroots", "portal")

# XDG_CURRENT_DESKTOP values (any of its colon-separated names) of wlroots compositors.
_WLROOTS_DESKTOPS = frozenset({"sway", "hyprland", "river", "labwc", "wayfire", "niri", "wlroots"})
# Environment variables that only a wlroots compositor sets for its clients.
_WLROOTS_SOCKETS = ("SWAYSOCK", "HYPRLAND_INSTANCE_SIGNATURE")


class DesktopScreen(Protocol):
    """Capture of the chosen monitor (what agent.loop.ScreenLike needs)."""

    monitor: Monitor

    def capture(self) -> Frame:
        """Grab the monitor at its physical resolution."""
        ...

    def wait_until_stable(
        self, *, min_s: float, max_s: float, cancel: threading.Event | None = None
    ) -> float:
        """Wait for the screen to stop changing; returns the seconds waited."""
        ...


class ActionTaker(Protocol):
    """Performs one action at a time (what agent.loop needs from input)."""

    def execute(
        self,
        action: Action,
        *,
        space: CoordinateSpace,
        monitor: Monitor,
        cancel: threading.Event | None = None,
    ) -> ExecResult:
        """Perform one action: pointer, keys and chords, exact text, wait."""
        ...


class DesktopExecutor(ActionTaker, Protocol):
    """Input on the desktop: actions, plus letting go of everything and closing."""

    def release_all(self) -> list[str]:
        """Release every held button and key; returns what it released."""
        ...

    def close(self) -> None:
        """Undo what was changed for input (keymaps, helper processes)."""
        ...


@dataclass(frozen=True, slots=True)
class HotkeySupport:
    """Whether a global stop hotkey can work on this desktop, and if not, why."""

    available: bool
    how: str


class Desktop(Protocol):
    """What the agent needs from a desktop session."""

    @property
    def name(self) -> BackendName:
        """Which implementation this is."""
        ...

    @property
    def screen(self) -> DesktopScreen:
        """Capture of the chosen monitor."""
        ...

    @property
    def executor(self) -> DesktopExecutor:
        """Pointer, keys and exact text."""
        ...

    @property
    def hotkey(self) -> HotkeySupport:
        """Whether a global stop hotkey can work here."""
        ...

    def monitors(self) -> list[Monitor]:
        """Every monitor in input (logical) coordinates, with its scale."""
        ...

    def focused_window(self) -> FocusedWindow | None:
        """Where keys go: the focused window (X id and WM_CLASS, or a Wayland app id), or None."""
        ...

    def focused_area(self) -> tuple[int, int, int, int] | None:
        """Where the focused window is (left, top, width, height in input pixels), or None."""
        ...

    def close(self) -> None:
        """Release the desktop's connections and helper processes."""
        ...


def choose_backend(env: Mapping[str, str], requested: str = "auto") -> BackendName:
    """The backend for a session: the requested one, else what the environment says it is."""
    if requested != "auto":
        if requested not in BACKENDS:
            raise ValueError(f"unknown display backend {requested!r}; one of {BACKENDS}")
        return requested  # type: ignore[return-value]
    session = env.get("XDG_SESSION_TYPE", "").lower()
    wayland = bool(env.get("WAYLAND_DISPLAY")) and session != "x11"
    if not wayland and session == "wayland" and not env.get("DISPLAY"):
        wayland = True  # a Wayland session whose socket name defaults to wayland-0
    if not wayland:
        return "x11"
    if any(env.get(name) for name in _WLROOTS_SOCKETS):
        return "wlroots"
    desktops = {d.strip().lower() for d in env.get("XDG_CURRENT_DESKTOP", "").split(":")}
    if desktops & _WLROOTS_DESKTOPS:
        return "wlroots"
    # GNOME, KDE and any compositor we do not know: the portal is the standard way in.
    return "portal"


def open_desktop(
    requested: str = "auto", monitor: int | None = None, *, display: str | None = None
) -> Desktop:
    """This session's desktop capturing `monitor` (default: primary); DisplayError if none.

    `display` names an X server of deskpilot's own (a private desktop): always X11 then.
    """
    env = dict(os.environ)
    name = "x11" if display is not None else choose_backend(env, requested)
    if name == "x11":
        from actions.desktop.x11 import X11Desktop

        return X11Desktop(monitor, display)
    if name == "wlroots":
        from actions.desktop.wlroots import WlrootsDesktop

        return WlrootsDesktop(monitor, env)
    from actions.desktop.portal import open_portal_desktop

    return open_portal_desktop(env, monitor)


def list_monitors(requested: str = "auto") -> list[Monitor]:
    """The session's monitors without opening a desktop (on a portal desktop: no dialog)."""
    env = dict(os.environ)
    if choose_backend(env, requested) == "x11":
        from actions.screen import Screen

        return Screen().list_monitors()
    from actions.desktop.wire import WaylandError, WireClient
    from actions.desktop.wlroots import monitors_from_outputs

    try:
        client = WireClient.connect(env)
    except WaylandError as exc:
        raise DisplayError(str(exc)) from exc
    try:
        return monitors_from_outputs(client.outputs())
    except WaylandError as exc:
        raise DisplayError(str(exc)) from exc
    finally:
        client.close()
