"""The replay viewer: a recorded run's steps with screenshots, overlays and everything recorded."""

from __future__ import annotations

import json
import sys

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon, QKeySequence, QPixmap, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from agent.recording import Recording
from agent.records import StepRecord
from agent.textsafe import one_line, visible
from ui.export import caption_lines, render_step
from ui.widgets import plain_tip

THUMB = QSize(160, 100)


class ReplayView(QMainWindow):
    """Timeline of steps on the left; the chosen step's overlaid screenshot and details."""

    def __init__(self, recording: Recording) -> None:
        super().__init__()
        self.recording = recording
        self.setWindowTitle(f"deskpilot replay: {one_line(str(recording.info.get('task', '')))}")
        self.search = QLineEdit(placeholderText="search steps (thinking, output, action...)")
        self.timeline = QListWidget()
        self.timeline.setIconSize(THUMB)
        self.image = QLabel(alignment=Qt.AlignmentFlag.AlignCenter)
        self.image.setMinimumSize(320, 200)
        self.details = QPlainTextEdit(readOnly=True)
        self.prev_button, self.next_button = QPushButton("◀ Back"), QPushButton("Forward ▶")
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.addWidget(self.search)
        lv.addWidget(self.timeline)
        buttons = QHBoxLayout()
        buttons.addWidget(self.prev_button)
        buttons.addWidget(self.next_button)
        lv.addLayout(buttons)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.image)
        right.addWidget(self.details)
        split = QSplitter()
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(1, 3)
        self.setCentralWidget(split)
        total = len(recording.records)
        for step in recording.records:
            first, second = caption_lines(step, total)
            item = QListWidgetItem(first)
            item.setToolTip(plain_tip(second))
            thumb = render_step(recording, step, (THUMB.width(), THUMB.height()), caption=False)
            item.setIcon(QIcon(QPixmap.fromImage(thumb)))
            self.timeline.addItem(item)
        self.timeline.currentRowChanged.connect(self.show_step)
        self.prev_button.clicked.connect(lambda: self.go(-1))
        self.next_button.clicked.connect(lambda: self.go(1))
        self.search.textChanged.connect(self.filter)
        for keys, delta in (("Left", -1), ("Up", -1), ("Right", 1), ("Down", 1)):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.activated.connect(lambda d=delta: self.go(d))
        if total:
            self.timeline.setCurrentRow(0)

    def go(self, delta: int) -> None:
        """Step forward or back among the visible (matching) steps."""
        row = self.timeline.currentRow() + delta
        while 0 <= row < self.timeline.count() and self.timeline.item(row).isHidden():
            row += delta
        if 0 <= row < self.timeline.count():
            self.timeline.setCurrentRow(row)

    def filter(self, text: str) -> None:
        """Hide steps whose recorded text does not contain the search text."""
        needle = text.strip().lower()
        for row, step in enumerate(self.recording.records):
            # The prompt repeats earlier steps: searching it would match every later step.
            own = {k: v for k, v in step.to_json().items() if k != "prompt"}
            haystack = json.dumps(own, ensure_ascii=False).lower()
            self.timeline.item(row).setHidden(bool(needle) and needle not in haystack)

    def show_step(self, row: int) -> None:
        """Show one step: the screenshot with its overlay, then every recorded field."""
        if not 0 <= row < len(self.recording.records):
            return
        step = self.recording.records[row]
        self.current_image = render_step(self.recording, step, self.image_size(step))
        self.image.setPixmap(QPixmap.fromImage(self.current_image))
        recorded = step.to_json()  # shown as recorded
        parts = []
        for key in ("parse_error", "error", "action", "decision", "execution", "result"):
            if recorded[key] is not None:
                parts.append(f"{key}: {json.dumps(recorded[key], ensure_ascii=False)}")
        parts.append(f"tokens: {json.dumps(step.tokens)}")
        parts.append(f"timings: {json.dumps(step.timings)}")
        parts.append("\n--- thinking ---\n" + step.thinking)
        parts.append("\n--- raw output ---\n" + step.raw_output)
        # Plain text widget: model output is shown as text, never interpreted as rich text.
        self.details.setPlainText(visible("\n".join(parts)))

    def image_size(self, step: StepRecord) -> tuple[int, int]:
        """The step's screenshot size plus the caption band (the export's frame)."""
        from ui.export import CAPTION_HEIGHT

        w, h = step.screen.image_size if step.screen is not None else (1280, 720)
        return w, h + CAPTION_HEIGHT


def run_viewer(recording: Recording) -> int:
    """Open the viewer and run the Qt event loop until it closes."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    view = ReplayView(recording)
    view.resize(1400, 900)
    view.show()
    return int(app.exec())
