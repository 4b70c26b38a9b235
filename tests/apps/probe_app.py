"""A Qt window that logs every input it receives as JSON lines, for end-to-end input tests.

Run: python tests/apps/probe_app.py --geometry X,Y,W,H --log FILE [--title T]
Top half: a text field (QPlainTextEdit) that keeps the keyboard focus. Bottom half: a canvas
that logs presses, releases, double-clicks, wheel turns and drags. Events, one JSON object a
line, flushed each, stamped with time `t`: ready, press, release, dblclick, move, drag, wheel,
key, key_release, text.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import IO, Any

from PySide6.QtCore import QEvent, QObject, QPoint, Qt, QTimer
from PySide6.QtGui import QKeyEvent, QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication, QPlainTextEdit, QVBoxLayout, QWidget

_BUTTONS = {
    Qt.MouseButton.LeftButton: "left",
    Qt.MouseButton.RightButton: "right",
    Qt.MouseButton.MiddleButton: "middle",
}
_MODIFIERS = {
    Qt.KeyboardModifier.ShiftModifier: "shift",
    Qt.KeyboardModifier.ControlModifier: "ctrl",
    Qt.KeyboardModifier.AltModifier: "alt",
    Qt.KeyboardModifier.MetaModifier: "meta",
    Qt.KeyboardModifier.KeypadModifier: "keypad",
}


class Log:
    """Appends JSON lines to a file, flushed per event."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def write(self, event: str, **fields: Any) -> None:
        """Log one event, stamped with the wall-clock time it was handled."""
        record = {"event": event, **fields, "t": round(time.time(), 4)}
        self._stream.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._stream.flush()


def _button(button: Qt.MouseButton) -> str:
    return _BUTTONS.get(button, f"other:{int(button.value)}")


def _buttons(buttons: Qt.MouseButton) -> list[str]:
    return [name for flag, name in _BUTTONS.items() if buttons & flag]


def _modifiers(mods: Qt.KeyboardModifier) -> list[str]:
    return [name for flag, name in _MODIFIERS.items() if mods & flag]


def _key_name(key: int) -> str:
    try:
        return Qt.Key(key).name
    except ValueError:
        return str(key)


class Canvas(QWidget):
    """The bottom half: logs mouse and wheel input; never takes the keyboard focus."""

    def __init__(self, log: Log) -> None:
        super().__init__()
        self._log = log
        self._drag_start: tuple[int, int] | None = None
        self._drag_last: tuple[int, int] | None = None
        self._drag_moves = 0
        self._drag_length = 0.0
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setAutoFillBackground(True)
        self.setStyleSheet("background: #dde")

    def _where(self, event: QMouseEvent | QWheelEvent) -> dict[str, int]:
        g = event.globalPosition().toPoint()
        p = event.position().toPoint()
        return {"x": g.x(), "y": g.y(), "lx": p.x(), "ly": p.y()}

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt API)
        where = self._where(event)
        self._log.write("press", button=_button(event.button()), **where)
        if event.button() == Qt.MouseButton.LeftButton:
            self._drag_start = self._drag_last = (where["x"], where["y"])
            self._drag_moves, self._drag_length = 0, 0.0

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt API)
        self._log.write("dblclick", button=_button(event.button()), **self._where(event))

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt API)
        # Without mouse tracking, Qt delivers moves only while a button is held.
        where = self._where(event)
        self._log.write("move", buttons=_buttons(event.buttons()), **where)
        if self._drag_last is not None:
            x, y = where["x"], where["y"]
            self._drag_length += math.dist(self._drag_last, (x, y))
            self._drag_last = (x, y)
            self._drag_moves += 1

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt API)
        where = self._where(event)
        self._log.write("release", button=_button(event.button()), **where)
        if event.button() == Qt.MouseButton.LeftButton and self._drag_start is not None:
            if self._drag_moves:
                self._log.write(
                    "drag",
                    start=list(self._drag_start),
                    end=[where["x"], where["y"]],
                    moves=self._drag_moves,
                    path_length=round(self._drag_length, 1),
                )
            self._drag_start = self._drag_last = None

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 (Qt API)
        delta = event.angleDelta()
        self._log.write("wheel", dx=delta.x(), dy=delta.y(), **self._where(event))


class TextField(QPlainTextEdit):
    """The top half: logs key presses and its whole content on every change."""

    def __init__(self, log: Log) -> None:
        super().__init__()
        self._log = log
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.textChanged.connect(lambda: self._log.write("text", text=self.toPlainText()))

    def _key(self, event: QKeyEvent) -> dict[str, Any]:
        return {
            "key": int(event.key()),
            "name": _key_name(int(event.key())),
            "text": event.text(),
            "modifiers": _modifiers(event.modifiers()),
            "keycode": int(event.nativeScanCode()),
            "keysym": int(event.nativeVirtualKey()),
            "auto_repeat": event.isAutoRepeat(),
        }

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt API)
        self._log.write("key", **self._key(event))
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt API)
        self._log.write("key_release", **self._key(event))
        super().keyReleaseEvent(event)

    def event(self, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        # Tab would move the focus before keyPressEvent sees it; keep it for the text.
        if event.type() == QEvent.Type.KeyPress and isinstance(event, QKeyEvent):
            if event.key() in (Qt.Key.Key_Tab, Qt.Key.Key_Backtab):
                self.keyPressEvent(event)
                return True
        return super().event(event)


class ProbeWindow(QWidget):
    """The whole window: text field above, canvas below, filling the requested geometry."""

    def __init__(self, log: Log, title: str) -> None:
        super().__init__()
        self._log = log
        self.setWindowTitle(title)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self.text = TextField(log)
        self.canvas = Canvas(log)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.canvas, 1)
        self._ready = False

    def _rect(self, widget: QWidget) -> list[int]:
        top_left = widget.mapToGlobal(QPoint(0, 0))
        return [top_left.x(), top_left.y(), widget.width(), widget.height()]

    def announce(self) -> None:
        """Log "ready" once the window is on screen, with where everything ended up."""
        if self._ready:
            return
        handle = self.windowHandle()
        if handle is None or not handle.isExposed():
            QTimer.singleShot(50, self.announce)
            return
        self._ready = True
        self.text.setFocus()
        self._log.write(
            "ready",
            window=self._rect(self),
            text_field=self._rect(self.text),
            canvas=self._rect(self.canvas),
        )


class _FocusKeeper(QObject):
    """Puts the focus back in the text field if anything else in the window takes it."""

    def __init__(self, window: ProbeWindow) -> None:
        super().__init__()
        self._window = window

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        if event.type() == QEvent.Type.FocusIn and obj is not self._window.text:
            QTimer.singleShot(0, self._window.text.setFocus)
        return False


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, show the window, run until killed or closed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--geometry", required=True, help="X,Y,W,H in screen pixels")
    parser.add_argument("--log", required=True, help="JSON-lines file to append events to")
    parser.add_argument("--title", default="deskpilot probe")
    args = parser.parse_args(argv)
    x, y, w, h = (int(v) for v in args.geometry.split(","))

    app = QApplication([sys.argv[0]])
    # Qt's default double-click interval is the user's; pin it so tests know the rules.
    app.setDoubleClickInterval(400)
    with open(args.log, "a", encoding="utf-8") as stream:
        log = Log(stream)
        window = ProbeWindow(log, args.title)
        window.setWindowFlag(Qt.WindowType.FramelessWindowHint, True)
        window.setGeometry(x, y, w, h)
        keeper = _FocusKeeper(window)
        app.installEventFilter(keeper)
        window.show()
        # Announce after the first paint: by then the window is mapped where it will stay.
        QTimer.singleShot(200, window.announce)
        return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
