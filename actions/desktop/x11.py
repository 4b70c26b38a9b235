"""The X11 desktop: today's Screen (mss), Executor (XTEST) and FocusProbe (WM_CLASS), wrapped."""

from __future__ import annotations

from actions.desktop import BackendName, HotkeySupport
from actions.executor import Executor
from actions.screen import Monitor, Screen
from actions.window import FocusProbe


class X11Desktop:
    """An X server (a desktop session, XWayland or Xvfb) through the existing X11 code."""

    name: BackendName = "x11"

    def __init__(self, monitor: int | None = None) -> None:
        self.screen = Screen(monitor)  # raises DisplayError without a usable display
        self.executor = Executor()
        self._probe = FocusProbe()
        # pynput's X11 backend grabs keys on the root window: global hotkeys work on X.
        self.hotkey = HotkeySupport(True, "X11 key grab (pynput)")

    def monitors(self) -> list[Monitor]:
        """Every monitor, as mss numbers them."""
        return self.screen.list_monitors()

    def focused_window(self) -> str | None:
        """The focused window's WM_CLASS ("instance class", lower case), or None."""
        return self._probe.wm_class()

    def close(self) -> None:
        """Restore the keymap and drop the X connections."""
        self._probe.close()
        self.executor.close()
