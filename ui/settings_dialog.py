"""The Settings dialog: every run option (the generated form) and the calibration self-test."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from ui.run_form import RunForm
from ui.widgets import fit_window, plain_label


class SettingsDialog(QDialog):
    """The run options, grouped; changes apply to the next run (and are saved with it)."""

    def __init__(self, monitors: Sequence[tuple[str, int]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        # Every run option, generated from agent.config (the CLI's flags come from there too).
        self.form = RunForm(monitors=monitors)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.form)
        self.note = plain_label("Changes apply to the next run.")
        self.note.setAccessibleName("Settings note")
        self.calibrate_button = QPushButton("Calibrate")
        self.calibrate_button.setToolTip(
            "Self-test: click targets near the corners and the centre of the monitor (or the "
            "private desktop) through the agent's own mapping and measure where they land"
        )
        self.close_button = QPushButton("Close")
        self.close_button.setToolTip("Close the settings (Esc or Ctrl+W)")
        self.close_button.setDefault(True)
        for b in (self.calibrate_button, self.close_button):
            b.setAccessibleName(b.text())
        row = QHBoxLayout()
        row.addWidget(self.note, 1)
        row.addWidget(self.calibrate_button)
        row.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.addWidget(scroll, 1)
        layout.addLayout(row)
        self.close_button.clicked.connect(self.accept)
        QShortcut(QKeySequence("Ctrl+W"), self).activated.connect(self.accept)
        fit_window(self, 720, 860)
