"""Runs a deskpilot window for a real-X test and logs what a screen reader would find there.

`python -m tests.support.ui_probe library RUNS_DIR --log LOG` opens the runs library, and
`python -m tests.support.ui_probe app --log LOG` the main window (xcb, on $DISPLAY). Every
100 ms, when anything changed, one JSON line is appended to LOG: each visible top-level window
(title, frame on the screen) and each visible widget with an accessible name (name as Qt's
accessibility layer reports it, the name set in code, role, class, visible text, global
rectangle, enabled, focus, checked), plus the drawn picture of each live view, the
breakpoints set and, for the app, how often its window was shown, hidden and activated.
Tests find controls by name and click them with real X input; nothing in ui/ knows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, QPoint, QTimer
from PySide6.QtGui import QAccessible
from PySide6.QtWidgets import (
    QAbstractButton,
    QApplication,
    QComboBox,
    QLabel,
    QLineEdit,
    QListWidget,
    QMainWindow,
    QPlainTextEdit,
    QProgressBar,
    QTableWidget,
    QTabWidget,
    QWidget,
)


def _rect(widget: QWidget) -> list[int]:
    p = widget.mapToGlobal(QPoint(0, 0))
    return [p.x(), p.y(), widget.width(), widget.height()]


def _text(widget: QWidget) -> str | None:
    if isinstance(widget, QAbstractButton):
        return widget.text()
    if isinstance(widget, QLabel):
        return widget.text()
    if isinstance(widget, QLineEdit):
        return widget.text()
    if isinstance(widget, QComboBox):
        return widget.currentText()
    if isinstance(widget, QPlainTextEdit):
        return widget.toPlainText()[:2000]
    if isinstance(widget, QProgressBar):
        return f"{widget.value()}/{widget.maximum()}"
    return None


def describe_widget(widget: QWidget) -> dict[str, Any] | None:
    """What the accessibility layer says about one widget, with where it is; None if unnamed."""
    iface = QAccessible.queryAccessibleInterface(widget)
    name = iface.text(QAccessible.Text.Name) if iface is not None else ""
    # What the widget was named in code: on Linux a combo box's accessible name is its
    # current value whatever this says (AT-SPI finds its label through a relation).
    label = widget.accessibleName()
    if not name and not label:
        return None
    entry: dict[str, Any] = {
        "name": name,
        "label": label,
        "role": iface.role().name if iface is not None else "",
        "class": type(widget).__name__,
        "text": _text(widget),
        "rect": _rect(widget),
        "enabled": widget.isEnabled(),
        "focus": widget.hasFocus(),
    }
    if isinstance(widget, QAbstractButton) and widget.isCheckable():
        entry["checked"] = widget.isChecked()
    if isinstance(widget, QListWidget):
        entry["current"] = widget.currentRow()
        rows = []
        for row in range(widget.count()):
            item = widget.item(row)
            r = widget.visualItemRect(item)
            p = widget.viewport().mapToGlobal(r.topLeft())
            rows.append(
                {
                    "text": item.text(),
                    "hidden": item.isHidden(),
                    "checked": item.checkState().value == 2,
                    "rect": [p.x(), p.y(), r.width(), r.height()],
                }
            )
        entry["rows"] = rows
    if isinstance(widget, QTableWidget):
        selected = {i.row() for i in widget.selectedIndexes()}
        entry["rows"] = [
            {
                "cells": [
                    (c.text() if (c := widget.item(row, col)) is not None else "")
                    for col in range(widget.columnCount())
                ],
                "hidden": widget.isRowHidden(row),
                "selected": row in selected,
            }
            for row in range(widget.rowCount())
        ]
    if isinstance(widget, QTabWidget):
        entry["tabs"] = [widget.tabText(i) for i in range(widget.count())]
        entry["current_tab"] = widget.tabText(widget.currentIndex())
    target = getattr(widget, "target_rect", None)
    if callable(target) and getattr(widget, "image", None) is not None:
        t = target()
        p = widget.mapToGlobal(QPoint(0, 0))
        entry["picture"] = [p.x() + t.x(), p.y() + t.y(), t.width(), t.height()]
    return entry


def snapshot(state: dict[str, Any]) -> dict[str, Any]:
    """Every visible top-level window and its named widgets."""
    windows = []
    for top in QApplication.topLevelWidgets():
        if not top.isVisible() or top.isMinimized():
            continue
        frame = top.frameGeometry()
        widgets = [
            d
            for w in [top, *top.findChildren(QWidget)]
            if w.isVisible() and (d := describe_widget(w)) is not None
        ]
        status = top.statusBar().currentMessage() if isinstance(top, QMainWindow) else ""
        windows.append(
            {
                "status": status,
                "title": top.windowTitle(),
                "class": type(top).__name__,
                "frame": [frame.x(), frame.y(), frame.width(), frame.height()],
                "active": top.isActiveWindow(),
                "widgets": widgets,
            }
        )
    return {"windows": windows, **state}


class Logger:
    """Appends a snapshot line whenever the windows changed."""

    def __init__(self, path: Path, state: Any) -> None:
        self.path, self.state, self.last = path, state, ""
        self.timer = QTimer()
        self.timer.setInterval(100)
        self.timer.timeout.connect(self.tick)
        self.timer.start()

    def tick(self) -> None:
        """Log the windows if anything changed since the last line."""
        data = json.dumps(snapshot(self.state()), sort_keys=True)
        if data == self.last:
            return
        self.last = data
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"t": time.time(), **json.loads(data)}) + "\n")


class WindowEvents(QObject):
    """Counts a window's show, hide and activation events (does it flicker, take the focus?)."""

    def __init__(self, window: QWidget) -> None:
        super().__init__(window)
        self.counts = {"show": 0, "hide": 0, "activate": 0}
        window.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        """Count, never consume."""
        kind = {
            QEvent.Type.Show: "show",
            QEvent.Type.Hide: "hide",
            QEvent.Type.WindowActivate: "activate",
        }.get(event.type())
        if kind is not None:
            self.counts[kind] += 1
        return False


def main(argv: list[str] | None = None) -> int:
    """Open the window asked for and log it until the app quits."""
    parser = argparse.ArgumentParser()
    parser.add_argument("window", choices=["library", "app"])
    parser.add_argument("runs_dir", type=Path, nargs="?")
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args(argv)
    app = QApplication(sys.argv[:1])
    if args.window == "library":
        from ui.library import RunsLibrary

        breakpoints: set[int] = set()
        window = RunsLibrary(args.runs_dir, breakpoints=breakpoints)
        window.show()
        logger = Logger(args.log, lambda: {"breakpoints": sorted(breakpoints)})
        status = int(app.exec())
        logger.timer.stop()
        return status
    from ui.app import MainWindow, run_window

    main_window = MainWindow()
    events = WindowEvents(main_window)
    finished: list[str] = []
    main_window.controller.finished.connect(
        lambda result: finished.append(result.outcome if result is not None else "none")
    )
    logger = Logger(
        args.log,
        lambda: {
            "main": dict(events.counts),
            "running": main_window.controller.running,
            "finished": list(finished),
            "breakpoints": sorted(main_window.breakpoints),
        },
    )
    status = run_window(app, main_window)
    logger.timer.stop()
    return status


if __name__ == "__main__":
    sys.exit(main())
