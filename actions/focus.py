"""Click-to-focus on X servers that run no window manager (bare Xvfb, containers)."""

from __future__ import annotations

import threading
from typing import Any


class XConnection:
    """One X connection of its own (to `display_name`, None: $DISPLAY), opened on first use."""

    def __init__(self, display_name: str | None = None) -> None:
        self.display_name = display_name
        self._display: Any = None
        self._lock = threading.Lock()

    def _connect(self) -> Any:
        if self._display is None:
            from Xlib import display

            self._display = display.Display(self.display_name)
        return self._display

    def close(self) -> None:
        """Drop the X connection."""
        with self._lock:
            if self._display is not None:
                try:
                    self._display.close()
                except Exception:  # the server went first: nothing left to close
                    pass
                self._display = None


class ClickFocus(XConnection):
    """Gives keyboard focus to the window clicked, as a window manager would, when none runs.

    Without a window manager X starts in focus-follows-pointer, but a toolkit such as Qt takes
    explicit focus on its first click and never gives it back: keys then miss every other
    window, so an agent could click a terminal and type into the previous app.
    """

    def __init__(self, display_name: str | None = None) -> None:
        super().__init__(display_name)
        self._last: int | None = None  # the window the agent last gave the keyboard to

    def window_manager_running(self) -> bool:
        """Whether an EWMH window manager announces itself on the root window."""
        d = self._connect()
        root = d.screen().root
        atom = d.intern_atom("_NET_SUPPORTING_WM_CHECK", only_if_exists=True)
        if not atom:
            return False
        prop = root.get_full_property(atom, 0)
        return prop is not None and len(prop.value) > 0

    def after_click(self) -> int | None:
        """Focus the top-level window under the pointer if no WM does it; returns its id."""
        from Xlib import X

        with self._lock:
            if self.window_manager_running():
                return None
            d = self._connect()
            pointer = d.screen().root.query_pointer()
            child = pointer.child
            if not child:
                return None
            attrs = child.get_attributes()
            if attrs.map_state != X.IsViewable or attrs.override_redirect:
                return None  # menus and tooltips take no focus
            child.set_input_focus(X.RevertToPointerRoot, X.CurrentTime)
            d.sync()
            self._last = int(child.id)
            return self._last

    def before_keys(self) -> int | None:
        """Give the keyboard back to the last clicked window if a hidden one holds it (no WM).

        A window manager returns focus to the previous window when the focused one hides; a
        bare X server leaves it on the hidden window (deskpilot's own, after an approval), so
        typed keys would go nowhere. Returns the window focused, or None when nothing changed.
        """
        from Xlib import X

        with self._lock:
            if self._last is None or self.window_manager_running():
                return None
            d = self._connect()
            focus = d.get_input_focus().focus
            root = d.screen().root
            # The root (or None/PointerRoot) holds focus after the focused window hid.
            if not isinstance(focus, int) and focus.id != root.id:
                if focus.id == self._last:
                    return None
                try:
                    if focus.get_attributes().map_state == X.IsViewable:
                        return None  # the user (or the app) chose a visible window: leave it
                except Exception:  # the focused window is gone: fall through and restore
                    pass
            last = d.create_resource_object("window", self._last)
            try:
                if last.get_attributes().map_state != X.IsViewable:
                    return None
            except Exception:  # the clicked window has closed since
                self._last = None
                return None
            last.set_input_focus(X.RevertToPointerRoot, X.CurrentTime)
            d.sync()
            return self._last
