"""The mouse on one named X display through XTEST (pyautogui binds to $DISPLAY at import)."""

from __future__ import annotations

import os
import threading
from typing import Any

__all__ = ["BUTTONS", "HostFailSafe", "XPointer"]

# X core buttons: 4/5 turn the wheel up/down, 6/7 left/right (as pyautogui sends them).
BUTTONS = {"left": 1, "middle": 2, "right": 3}


class XPointer:
    """Moves, presses and scrolls on one X display; one connection of its own."""

    def __init__(self, display_name: str | None = None) -> None:
        from Xlib import display as xdisplay

        self._display: Any = xdisplay.Display(display_name)
        if not self._display.has_extension("XTEST"):
            self._display.close()
            raise RuntimeError("the X server has no XTEST extension: cannot send input")
        self._lock = threading.Lock()

    def size(self) -> tuple[int, int]:
        """The whole X screen (every monitor) in pixels."""
        screen = self._display.screen()
        return int(screen.width_in_pixels), int(screen.height_in_pixels)

    def position(self) -> tuple[int, int]:
        """Where the pointer is on this display."""
        with self._lock:
            reply = self._display.screen().root.query_pointer()
            return int(reply.root_x), int(reply.root_y)

    def move(self, x: int, y: int) -> None:
        """Put the pointer at a global pixel."""
        from Xlib import X
        from Xlib.ext import xtest

        with self._lock:
            xtest.fake_input(self._display, X.MotionNotify, x=int(x), y=int(y))
            self._display.sync()

    def press(self, button: int) -> None:
        """Press a button where the pointer is."""
        self._button(button, down=True)

    def release(self, button: int) -> None:
        """Release a button where the pointer is."""
        self._button(button, down=False)

    def click(self, x: int, y: int, button: int) -> None:
        """Move, press and release: one burst."""
        self.move(x, y)
        self._button(button, down=True)
        self._button(button, down=False)

    def scroll(self, clicks: int, *, horizontal: bool = False) -> None:
        """Turn the wheel: positive is up (or right), one button click per notch."""
        if horizontal:
            button = 7 if clicks > 0 else 6
        else:
            button = 4 if clicks > 0 else 5
        for _ in range(abs(int(clicks))):
            self._button(button, down=True)
            self._button(button, down=False)

    def _button(self, button: int, *, down: bool) -> None:
        from Xlib import X
        from Xlib.ext import xtest

        with self._lock:
            xtest.fake_input(self._display, X.ButtonPress if down else X.ButtonRelease, button)
            self._display.sync()

    def close(self) -> None:
        """Drop the connection."""
        with self._lock:
            try:
                self._display.close()
            except Exception:  # the server went first: nothing left to close
                pass


class HostFailSafe:
    """The user's fail-safe: the pointer of the user's own display ($DISPLAY) in a corner.

    Watched on the user's display even when the agent acts on a private one: that is where
    the user's hand is.
    """

    def __init__(self) -> None:
        self._display: Any = None
        self._broken = False
        self._lock = threading.Lock()

    def triggered(self) -> bool:
        """Whether the user's pointer sits in a corner of their screen."""
        with self._lock:
            if self._broken or not os.environ.get("DISPLAY"):
                return False
            try:
                if self._display is None:
                    from Xlib import display as xdisplay

                    self._display = xdisplay.Display()
                screen = self._display.screen()
                reply = screen.root.query_pointer()
            except Exception:  # no host display (headless): there is no fail-safe to watch
                self._broken = True
                return False
            right, bottom = int(screen.width_in_pixels) - 1, int(screen.height_in_pixels) - 1
            return int(reply.root_x) in (0, right) and int(reply.root_y) in (0, bottom)

    def close(self) -> None:
        """Drop the connection."""
        with self._lock:
            if self._display is not None:
                try:
                    self._display.close()
                except Exception:  # the server went first
                    pass
                self._display = None
