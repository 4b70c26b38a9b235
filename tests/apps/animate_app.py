"""A Qt window that animates for a while after each click, for settle tests and benches.

Run: python tests/apps/animate_app.py --geometry X,Y,W,H --log FILE [--duration 0.5]
    [--image PNG]
A click starts an animation: a large bar sweeps across the window, repainted every 16 ms,
for --duration seconds. JSON lines, flushed each, stamped with wall-clock time `t`: ready,
anim_start (after the first frame reached the X server), anim_end (after the last frame, the
one that clears the bar, reached the X server: the screen's last change).
With --image, the window shows that picture (a desktop-like backdrop for benches).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import IO, Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent, QPixmap
from PySide6.QtWidgets import QApplication, QWidget

FRAME_MS = 16


class Animator(QWidget):
    """Paints a backdrop; after a click, a bar sweeps across for a fixed time."""

    def __init__(self, log: IO[str], duration_s: float, image: str | None) -> None:
        super().__init__()
        self._log = log
        self._duration_s = duration_s
        self._backdrop = QPixmap(image) if image else None
        self._started: float | None = None
        self._phase = 0.0
        self._ending = False
        self._timer = QTimer(self)
        self._timer.setInterval(FRAME_MS)
        self._timer.timeout.connect(self._tick)

    def write(self, event: str, **fields: Any) -> None:
        """Log one event with the wall-clock time."""
        record = {"event": event, **fields, "t": round(time.time(), 4)}
        self._log.write(json.dumps(record) + "\n")
        self._log.flush()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        """Start (or restart) the animation."""
        self._started = time.monotonic()
        self._ending = False
        self._timer.start()
        self._tick()
        self.write("anim_start")

    def _tick(self) -> None:
        if self._started is None:
            return
        elapsed = time.monotonic() - self._started
        if elapsed >= self._duration_s:
            self._phase = 0.0
            self._ending = True
        else:
            self._phase = elapsed / self._duration_s
        self.repaint()  # synchronous, so the frame reaches the server on this tick
        QApplication.sync()
        if self._ending:
            # This frame cleared the bar and reached the server: the screen is now still.
            self._timer.stop()
            self._started = None
            self.write("anim_end")

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        """Backdrop, then the bar at the current phase (none when idle)."""
        p = QPainter(self)
        if self._backdrop is not None:
            p.drawPixmap(0, 0, self._backdrop)
        else:
            p.fillRect(self.rect(), QColor(230, 230, 230))
        if self._started is not None and not self._ending:
            width = max(40, self.width() // 5)
            x = int(self._phase * (self.width() - width))
            p.fillRect(x, 0, width, self.height(), QColor(200, 40, 40))
        p.end()


def main(argv: list[str] | None = None) -> int:
    """Show the window until killed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--geometry", required=True, help="X,Y,W,H")
    parser.add_argument("--log", required=True)
    parser.add_argument("--duration", type=float, default=0.5)
    parser.add_argument("--image")
    parser.add_argument("--title", default="deskpilot animate app")
    args = parser.parse_args(argv)
    x, y, w, h = (int(v) for v in args.geometry.split(","))
    app = QApplication(sys.argv[:1])
    with open(args.log, "a", encoding="utf-8") as log:
        win = Animator(log, args.duration, args.image)
        win.setWindowTitle(args.title)
        win.setWindowFlag(Qt.WindowType.FramelessWindowHint)
        win.setGeometry(x, y, w, h)
        win.show()
        QTimer.singleShot(200, lambda: win.write("ready"))
        return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
