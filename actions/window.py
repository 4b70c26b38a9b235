"""Which window has keyboard focus (X id, WM_CLASS) for the risk rules, and where it is."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from actions.focus import XConnection

_MAX_DEPTH = 6  # frames of reparenting window managers are at most a few levels deep


@dataclass(frozen=True, slots=True)
class FocusedWindow:
    """The window keys go to: its X id (the client window holding WM_CLASS) and its WM_CLASS."""

    id: int | None
    wm_class: str | None


class FocusProbe(XConnection):
    """Reads the focused window over its own X connection; None when unknown."""

    def __init__(self, display_name: str | None = None) -> None:
        super().__init__(display_name)
        self._broken = not (display_name or os.environ.get("DISPLAY"))

    def focused(self) -> FocusedWindow | None:
        """The focused top-level window (id and lower-case WM_CLASS), or None when unknown."""
        if self._broken:
            return None
        with self._lock:
            try:
                return self._focused()
            except Exception:  # a vanished window or a closed display: unknown, never fatal
                if self._display is None:
                    self._broken = True  # no X server to connect to: stop trying
                return None

    def pid(self, window: FocusedWindow) -> int | None:
        """The process that owns a window (_NET_WM_PID), or None when it does not say."""
        if self._broken or window.id is None:
            return None
        with self._lock:
            try:
                d = self._connect()
                atom = d.intern_atom("_NET_WM_PID", only_if_exists=True)
                if not atom:
                    return None
                prop = d.create_resource_object("window", window.id).get_full_property(atom, 0)
                return int(prop.value[0]) if prop is not None and len(prop.value) else None
            except Exception:  # a vanished window: unknown, never fatal
                return None

    def rect(self, window: FocusedWindow | None) -> tuple[int, int, int, int] | None:
        """A window's top-level (or its WM frame) as (left, top, width, height) on the root."""
        if self._broken or window is None or window.id is None:
            return None
        with self._lock:
            try:
                d = self._connect()
                root = d.screen().root
                top = d.create_resource_object("window", window.id)
                for _ in range(32):  # up to the root's child: the WM frame, title bar included
                    parent = top.query_tree().parent
                    if not parent or parent.id == root.id:
                        break
                    top = parent
                geometry = top.get_geometry()
                origin = top.translate_coords(root, 0, 0)  # the root's origin in the window
                return -int(origin.x), -int(origin.y), int(geometry.width), int(geometry.height)
            except Exception:  # a vanished window: unknown, never fatal
                return None

    def focused_rect(self) -> tuple[int, int, int, int] | None:
        """Where the focused window is (see rect), or None when unknown."""
        return self.rect(self.focused())

    def wm_class(self) -> str | None:
        """The "instance class" of the focused top-level window, lower case, or None."""
        window = self.focused()
        return None if window is None else window.wm_class

    def _focused(self) -> FocusedWindow | None:
        from Xlib import X

        d = self._connect()
        root = d.screen().root
        candidates: list[Any] = []
        active = d.intern_atom("_NET_ACTIVE_WINDOW", only_if_exists=True)
        if active:
            prop = root.get_full_property(active, X.AnyPropertyType)
            if prop is not None and len(prop.value) and int(prop.value[0]):
                candidates.append(d.create_resource_object("window", int(prop.value[0])))
        focus = d.get_input_focus().focus
        # 0 (None) and 1 (PointerRoot) are not windows: keys then go where the pointer is.
        if not isinstance(focus, int) and focus.id != root.id:
            candidates.append(focus)
        pointer_child = root.query_pointer().child
        if (isinstance(focus, int) or focus.id == root.id) and pointer_child:
            candidates.append(pointer_child)
        for window in candidates:
            found = _class_up(window, root.id) or _class_down(window, _MAX_DEPTH)
            if found:
                return FocusedWindow(found[0], found[1])
        return None


def _format(value: Any) -> str | None:
    """WM_CLASS as python-xlib returns it (a pair) as one lower-case string."""
    if not value:
        return None
    parts = [str(p) for p in value if p]
    return " ".join(parts).lower() or None


def _class_up(window: Any, root_id: int) -> tuple[int, str] | None:
    """(id, WM_CLASS) of the window or its nearest ancestor below the root (focus may be inside)."""
    for _ in range(32):
        found = _format(window.get_wm_class())
        if found:
            return int(window.id), found
        parent = window.query_tree().parent
        if not parent or parent.id == root_id:
            return None
        window = parent
    return None


def _class_down(window: Any, depth: int) -> tuple[int, str] | None:
    """(id, WM_CLASS) of the window or the first descendant with one (a WM frame holds a client)."""
    found = _format(window.get_wm_class())
    if found:
        return int(window.id), found
    if depth <= 0:
        return None
    for child in reversed(window.query_tree().children):  # top of the stacking order first
        below = _class_down(child, depth - 1)
        if below:
            return below
    return None


class PastOwnWindows:
    """Where keys will go, seen past this process's own windows.

    The app comes forward while the model thinks and steps aside before anything runs, so the
    focus read at proposal time is its own window: judged there, Enter after a command typed into
    a terminal looked safe. Its own windows are skipped for the last other focused window, which
    `remember` reads while the app is out of the way (when the screenshot is taken).
    """

    def __init__(self, probe: FocusProbe, own_pid: int | None = None) -> None:
        self._probe = probe
        self._own = os.getpid() if own_pid is None else own_pid
        self._last: FocusedWindow | None = None

    def remember(self) -> None:
        """Note the focused window now, unless it is one of ours."""
        self()

    def __call__(self) -> FocusedWindow | None:
        """The focused window, or the last other one while one of ours has the focus."""
        window = self._probe.focused()
        if window is None or self._probe.pid(window) == self._own:
            return self._last
        self._last = window
        return window

