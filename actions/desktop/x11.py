"""The X11 desktop: today's Screen (mss), Executor (XTEST) and FocusProbe (WM_CLASS), wrapped."""

from __future__ import annotations

from actions.desktop import BackendName, HotkeySupport
from actions.executor import Executor
from actions.screen import Monitor, Screen
from actions.window import FocusedWindow, FocusProbe


class X11Desktop:
    """An X server (a desktop session, XWayland or Xvfb) through the existing X11 code."""

    name: BackendName = "x11"

    def __init__(self, monitor: int | None = None, display: str | None = None) -> None:
        # display: an X server of deskpilot's own (a private desktop); None: $DISPLAY.
        self.screen = Screen(monitor, display=display)  # DisplayError without a usable display
        self.executor = Executor(display=display)
        self.probe = FocusProbe(display)
        # A passive key grab on the root window (actions/hotkey.py): global hotkeys work on X.
        self.hotkey = HotkeySupport(True, "X11 key grab")

    def monitors(self) -> list[Monitor]:
        """Every monitor, as mss numbers them."""
        return self.screen.list_monitors()

    def focused_window(self) -> FocusedWindow | None:
        """The focused window: its X id and WM_CLASS ("instance class", lower case), or None."""
        return self.probe.focused()

    def focused_area(self) -> tuple[int, int, int, int] | None:
        """Where the focused window is on the root (its WM frame included), or None."""
        return self.probe.focused_rect()

    def close(self) -> None:
        """Restore the keymap and drop the X connections."""
        self.probe.close()
        self.executor.close()
