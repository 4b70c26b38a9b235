"""The app on Wayland: its own windows leave the screen while the agent's screen is captured.

On X11 Qt knows where each window is on the screen, and the captures mask those rectangles
(ui/guard.py). A Wayland client is never told where the compositor put its windows (xdg-shell
has no global position: Qt reports 0,0 or where it asked to be), so masking would grey out the
wrong place. There the app hides its visible top-level windows for the moment of a capture
and shows them again afterwards.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from PySide6.QtCore import QObject, Qt, QThread, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QWidget

# How long the compositor gets to draw a frame without the hidden windows (two frames at 60 Hz,
# with room for a loaded machine).
SETTLE_S = 0.06


def on_wayland() -> bool:
    """Whether the app runs on Qt's Wayland platform."""
    return QGuiApplication.platformName().startswith("wayland")


class CaptureHider(QObject):
    """Hides the given windows around a capture; the capture runs on another thread."""

    _hide = Signal()
    _show = Signal()

    def __init__(self, windows: Callable[[], list[QWidget]], settle_s: float = SETTLE_S) -> None:
        super().__init__()
        self._windows = windows
        self._settle_s = settle_s
        self._hidden: list[QWidget] = []
        self._lock = threading.Lock()
        # Blocking: the capture thread goes on only once the GUI thread has hidden them.
        blocking = Qt.ConnectionType.BlockingQueuedConnection
        self._hide.connect(self._hide_now, blocking)
        self._show.connect(self._show_now, blocking)

    def _hide_now(self) -> None:
        self._hidden = [w for w in self._windows() if w.isVisible()]
        for w in self._hidden:
            w.hide()
        QGuiApplication.sync()  # the unmapping is sent to the compositor before we return

    def _show_now(self) -> None:
        for w in self._hidden:
            w.show()
        self._hidden = []

    @contextmanager
    def hidden(self) -> Iterator[None]:
        """Within the block the windows are off the screen (from a thread other than the GUI's)."""
        if QThread.currentThread() is self.thread():
            yield  # on the GUI thread a blocking hand-over would wait for itself
            return
        with self._lock:
            self._hide.emit()
            time.sleep(self._settle_s)
            try:
                yield
            finally:
                self._show.emit()
