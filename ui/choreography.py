"""When the main window makes way for the agent, and when it comes back.

On the user's own desktop the window hides before anything is captured or executed, so the
model never sees it and no click lands on it. It comes back only when someone is needed (an
approval, a failure, the end of the run) or, unless the run is unattended, while the model
thinks; it never takes the keyboard focus unless a decision waits. In auto mode it stays hidden
from the first step to the last: nothing maps, unmaps or grabs the focus between steps.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMainWindow

from ui.guard import Rect
from ui.widgets import ControlBar

# Time for the X server to unmap the window before the agent captures or acts.
STEP_ASIDE_MS = 250


class Choreography:
    """Hides and shows the main window around the agent's work; keeps `excluded` current."""

    def __init__(
        self,
        window: QMainWindow,
        bar: ControlBar,
        on_user_desktop: Callable[[], bool],
        *,
        positions_known: bool = True,
    ) -> None:
        self.window = window
        # False on Wayland: Qt's positions are not the screen's, and the windows hide during
        # each capture instead (ui/wayland.py), so there is nothing to exclude by rectangle.
        self.positions_known = positions_known
        self.bar = bar
        self.on_user_desktop = on_user_desktop
        self.excluded: list[Rect] = []
        self.maximized = False

    def step_aside(self) -> int:
        """Hide before the agent captures or acts; returns how long to wait for the unmap."""
        if not self.on_user_desktop() or not self.window.isVisible():
            self.update_excluded()
            return 0  # nothing of ours is in the way
        self.maximized = self.window.isMaximized()
        self.window.hide()
        self.update_excluded()
        return STEP_ASIDE_MS

    def come_back(self, *, activate: bool) -> None:
        """Show the window as it was (maximised stays maximised); focus only when asked."""
        if not self.window.isVisible():
            self.window.setAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating, not activate)
            handle = self.window.windowHandle()
            if handle is not None:
                # The xcb plugin reads the attribute from its window only when that is created;
                # this window was created at the first show, so it is told again (Qt's name).
                handle.setProperty("_q_showWithoutActivating", not activate)
            if self.maximized:
                self.window.showMaximized()
            else:
                self.window.show()
            self.window.setAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating, False)
        if activate:
            self.window.raise_()
            self.window.activateWindow()
        self.update_excluded()

    def update_excluded(self) -> None:
        """Rectangles the agent must neither see nor act on: the bar, and this window if shown."""
        rects = [self.bar.global_rect()] if self.bar.isVisible() else []
        if not self.positions_known:
            rects = []
        elif self.window.isVisible():
            g = self.window.frameGeometry()
            rects.append((g.x(), g.y(), g.width(), g.height()))
        self.excluded = rects
