"""The Settings dialog: every run option (the generated form) and the calibration self-test."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QHBoxLayout,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from agent.textsafe import one_line, visible
from ui.app_text import app_words
from ui.run_form import RunForm
from ui.widgets import fit_window, plain_label


class _Relay(QObject):
    """Carries a connection test's answer from its thread to the GUI thread."""

    done = Signal(object, str)  # the server's models (None: failed), one line


def probe_endpoint(config: object) -> tuple[list[str] | None, str]:
    """(models, line): what the configured endpoint serves, or None and why it failed."""
    from agent.backends.base import BackendError
    from agent.config import RunConfig
    from agent.session import open_backend

    assert isinstance(config, RunConfig)
    try:
        backend = open_backend(config.with_values(timeout=min(config.timeout, 15.0)))
    except (BackendError, ValueError) as exc:
        return None, app_words(str(exc), backend="openai")
    try:
        models = backend.list_models()  # type: ignore[attr-defined]
    except BackendError as exc:
        return None, app_words(str(exc), backend="openai")
    finally:
        backend.close()
    shown = ", ".join(one_line(m, 60) for m in models[:5]) + (" …" if len(models) > 5 else "")
    return list(models), f"Connected: the server serves {len(models)} model(s): {shown}"


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
        # The endpoint without the command line: reach it, then choose among its models.
        self.test_button = QPushButton("Test connection")
        self.test_button.setToolTip(
            "Ask the endpoint which models it serves (GET /models), then choose one below"
        )
        self.models = QComboBox()
        self.models.setAccessibleName("Server models")
        self.models.setToolTip("The models the endpoint serves: choosing one sets Model")
        self.models.setVisible(False)
        self._relay = _Relay(self)
        self._relay.done.connect(self._tested)
        self.test_button.clicked.connect(self.test_connection)
        self.models.activated.connect(self._choose_model)
        self.close_button = QPushButton("Close")
        self.close_button.setToolTip("Close the settings (Esc or Ctrl+W)")
        self.close_button.setDefault(True)
        for b in (self.test_button, self.calibrate_button, self.close_button):
            b.setAccessibleName(b.text())
        row = QHBoxLayout()
        row.addWidget(self.note, 1)
        row.addWidget(self.models)
        row.addWidget(self.test_button)
        row.addWidget(self.calibrate_button)
        row.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.addWidget(scroll, 1)
        layout.addLayout(row)
        self.close_button.clicked.connect(self.accept)
        QShortcut(QKeySequence("Ctrl+W"), self).activated.connect(self.accept)
        fit_window(self, 720, 860)

    def test_connection(self) -> None:
        """Reach the endpoint off the GUI thread; the answer fills the note and the models."""
        config = self.form.config()
        if config.backend != "openai":
            self.note.setText(
                "The local worker needs no connection: it loads the model at the first run "
                "(or press Restart worker)."
            )
            return
        if not config.endpoint.strip():
            self.note.setText("Type the endpoint's address first, e.g. http://127.0.0.1:8000/v1")
            return
        self.test_button.setEnabled(False)
        self.note.setText(visible(f"Connecting to {one_line(config.endpoint, 120)} …"))
        threading.Thread(
            target=lambda: self._relay.done.emit(*probe_endpoint(config)),
            name="deskpilot-test-connection",
            daemon=True,
        ).start()

    def _tested(self, models: list[str] | None, line: str) -> None:
        self.test_button.setEnabled(True)
        self.note.setText(visible(line))
        self.models.clear()
        if models:
            self.models.addItem("Choose a model…", "")
            for m in models:
                self.models.addItem(visible(one_line(m, 80)), m)
        self.models.setVisible(bool(models))

    def _choose_model(self, index: int) -> None:
        model = self.models.itemData(index)
        if model:
            self.form.set_value("model", model)
