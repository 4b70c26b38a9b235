"""A Qt window whose click target gets covered a while after another click: the stale-screen corpus.

Run: python tests/apps/stale_app.py --geometry X,Y,W,H --log FILE [--cover-after 0.3]
    [--clock] [--caret]
An "arm" button (blue) and a target (green). A click on arm schedules a panel (orange) over
the target --cover-after seconds later (0: never). --clock repaints a clock and a progress bar
far from the target every 100 ms; --caret blinks a 2x18 px caret 20 px from the target's
centre every 250 ms.
JSON lines, flushed each, stamped with wall-clock time `t`: ready, armed, covered (after the
panel reached the X server), click (x, y in window pixels, and what it hit: arm, target,
cover or background).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import IO, Any

from PySide6.QtCore import QRect, Qt, QTimer
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent
from PySide6.QtWidgets import QApplication, QWidget

# Window-relative layout (the tests and benches compute screen points from these).
ARM = QRect(100, 100, 160, 80)
TARGET = QRect(600, 400, 140, 60)
COVER = QRect(470, 300, 400, 260)
CLOCK = QRect(900, 700, 200, 40)
PROGRESS = QRect(900, 60, 200, 16)
CARET = QRect(650, 420, 2, 18)  # inside the area the freshness check watches around TARGET


class StaleApp(QWidget):
    """The arm button, the target, and what changes around them."""

    def __init__(self, log: IO[str], cover_after: float, clock: bool, caret: bool) -> None:
        super().__init__()
        self._log = log
        self._cover_after = cover_after
        self._covered = False
        self._ticks = 0
        self._caret_on = True
        if clock:
            tick = QTimer(self)
            tick.setInterval(100)
            tick.timeout.connect(self._tick)
            tick.start()
        if caret:
            blink = QTimer(self)
            blink.setInterval(250)
            blink.timeout.connect(self._blink)
            blink.start()

    def write(self, event: str, **fields: Any) -> None:
        """Log one event with the wall-clock time."""
        record = {"event": event, **fields, "t": round(time.time(), 4)}
        self._log.write(json.dumps(record) + "\n")
        self._log.flush()

    def _tick(self) -> None:
        self._ticks += 1
        self.update(CLOCK)
        self.update(PROGRESS)

    def _blink(self) -> None:
        self._caret_on = not self._caret_on
        self.update(CARET)

    def _cover(self) -> None:
        self._covered = True
        self.repaint()
        QApplication.sync()  # the panel is on the server before the log says so
        self.write("covered")

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        """Log what the click hit; a click on arm schedules the cover."""
        p = event.position().toPoint()
        if self._covered and COVER.contains(p):
            hit = "cover"
        elif TARGET.contains(p):
            hit = "target"
        elif ARM.contains(p):
            hit = "arm"
        else:
            hit = "background"
        self.write("click", x=p.x(), y=p.y(), hit=hit)
        if hit == "arm":
            self.write("armed")
            if self._cover_after > 0:
                QTimer.singleShot(int(self._cover_after * 1000), self._cover)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        """Background, arm, target, caret, clock, progress, and the cover when shown."""
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(230, 230, 230))
        p.fillRect(ARM, QColor(40, 80, 200))
        p.fillRect(TARGET, QColor(40, 170, 60))
        if self._caret_on:
            p.fillRect(CARET, QColor(0, 0, 0))
        p.fillRect(CLOCK, QColor(250, 250, 250))
        p.setPen(QColor(0, 0, 0))
        p.drawText(CLOCK, Qt.AlignmentFlag.AlignCenter, f"{self._ticks / 10:8.1f} s")
        done = PROGRESS.adjusted(0, 0, -PROGRESS.width() + (self._ticks * 3) % PROGRESS.width(), 0)
        p.fillRect(PROGRESS, QColor(200, 200, 200))
        p.fillRect(done, QColor(60, 160, 60))
        if self._covered:
            p.fillRect(COVER, QColor(240, 150, 40))
        p.end()


def main(argv: list[str] | None = None) -> int:
    """Show the window until killed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--geometry", required=True, help="X,Y,W,H")
    parser.add_argument("--log", required=True)
    parser.add_argument("--cover-after", type=float, default=0.0)
    parser.add_argument("--clock", action="store_true")
    parser.add_argument("--caret", action="store_true")
    parser.add_argument("--title", default="deskpilot stale app")
    args = parser.parse_args(argv)
    x, y, w, h = (int(v) for v in args.geometry.split(","))
    app = QApplication(sys.argv[:1])
    with open(args.log, "a", encoding="utf-8") as log:
        win = StaleApp(log, args.cover_after, args.clock, args.caret)
        win.setWindowTitle(args.title)
        win.setWindowFlag(Qt.WindowType.FramelessWindowHint)
        win.setGeometry(x, y, w, h)
        win.show()
        QTimer.singleShot(200, lambda: win.write("ready"))
        return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
