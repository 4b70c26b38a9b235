"""Which application has keyboard focus (WM_CLASS, for risk rules) and where it is (freshness)."""

from __future__ import annotations

import os
from typing import Any

from actions.focus import XConnection

_MAX_DEPTH = 6  # frames of reparenting window managers are at most a few levels deep


class FocusProbe(XConnection):
    """Reads the WM_CLASS of the focused window over its own X connection; None when unknown."""

    def __init__(self) -> None:
        super().__init__()
        self._broken = not os.environ.get("DISPLAY")

    def wm_class(self) -> str | None:
        """The "instance class" of the focused top-level window, lower case, or None."""
        if self._broken:
            return None
        with self._lock:
            try:
                return self._wm_class()
            except Exception:  # a vanished window or a closed display: unknown, never fatal
                if self._display is None:
                    self._broken = True  # no X server to connect to: stop trying
                return None

    def _wm_class(self) -> str | None:
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
                return found
        return None

    def focused_rect(self) -> tuple[int, int, int, int] | None:
        """The focused top-level window as (left, top, width, height) on the root, or None."""
        if self._broken:
            return None
        with self._lock:
            try:
                return self._focused_rect()
            except Exception:  # a vanished window or a closed display: unknown, never fatal
                if self._display is None:
                    self._broken = True
                return None

    def _focused_rect(self) -> tuple[int, int, int, int] | None:
        d = self._connect()
        root = d.screen().root
        focus = d.get_input_focus().focus
        # 0 (None) and 1 (PointerRoot) are not windows: keys then go where the pointer is.
        if isinstance(focus, int) or focus.id == root.id:
            window = root.query_pointer().child
            if not window:
                return None
        else:
            window = focus
        # Toolkits focus a child; the top-level (or the WM's frame) is the root's child.
        for _ in range(32):
            parent = window.query_tree().parent
            if not parent or parent.id == root.id:
                break
            window = parent
        geometry = window.get_geometry()
        origin = window.translate_coords(root, 0, 0)
        return -int(origin.x), -int(origin.y), int(geometry.width), int(geometry.height)


def _format(value: Any) -> str | None:
    """WM_CLASS as python-xlib returns it (a pair) as one lower-case string."""
    if not value:
        return None
    parts = [str(p) for p in value if p]
    return " ".join(parts).lower() or None


def _class_up(window: Any, root_id: int) -> str | None:
    """WM_CLASS of the window or its nearest ancestor below the root (toolkits focus children)."""
    for _ in range(32):
        found = _format(window.get_wm_class())
        if found:
            return found
        parent = window.query_tree().parent
        if not parent or parent.id == root_id:
            return None
        window = parent
    return None


def _class_down(window: Any, depth: int) -> str | None:
    """WM_CLASS of the window or the first descendant that has one (a WM frame holds a client)."""
    found = _format(window.get_wm_class())
    if found or depth <= 0:
        return found
    for child in reversed(window.query_tree().children):  # top of the stacking order first
        found = _class_down(child, depth - 1)
        if found:
            return found
    return None
