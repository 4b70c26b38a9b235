"""The run settings form, generated from agent.config: one row per RunConfig option.

Adding an option to RunConfig adds its row here with its label, help (as the tooltip),
choices and limits; nothing in this file names an option except where a row needs a widget
of its own (the monitor list, the file pickers, the secret field).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import fields, replace
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from agent.config import DEFAULT_LOCAL_MODEL, OPTIONS, Option, RunConfig

GROUP_TITLES = {
    "model": "Model",
    "approval": "Approval and safety",
    "limits": "Limits",
    "desktop": "Desktop",
    "recording": "Recording",
}
# Rows with a button beside the field: what it picks.
PICKERS = {"risk_rules": "file", "model": "folder", "runs_dir": "folder"}
_INT_MAX = 1_000_000


def parse_secrets(text: str) -> list[str]:
    """The secrets typed into the Secrets field: one a line or comma-separated.

    Each whole line counts too, so a secret that itself contains a comma is still redacted.
    """
    found: list[str] = []
    for line in re.split(r"[\r\n]+", text):
        line = line.strip()
        if not line:
            continue
        found.append(line)
        found += [part.strip() for part in line.split(",") if part.strip()]
    return list(dict.fromkeys(found))


def _split_list(text: str, option: Option) -> tuple[str, ...]:
    """A repeatable option's entries: commas or new lines (whole lines count for secrets)."""
    found: list[str] = []
    for line in re.split(r"[\r\n]+", text):
        line = line.strip()
        if not line:
            continue
        if option.name == "open":
            found.append(line)  # a command may contain commas: one per line
            continue
        if option.name == "secret":
            found += parse_secrets(line)  # a secret that contains a comma is still redacted
            continue
        found += [part.strip() for part in line.split(",") if part.strip()]
    return tuple(dict.fromkeys(found))


class RunForm(QWidget):
    """Every run option as a labelled, named field; `config()` reads them back."""

    changed = Signal()

    def __init__(
        self,
        *,
        monitors: Sequence[tuple[str, int]] = (),
        groups: Sequence[str] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.widgets: dict[str, QWidget] = {}
        self._rows: dict[str, QWidget] = {}  # what holds each field (itself, or it and a button)
        self._monitors = list(monitors)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for group, title in GROUP_TITLES.items():
            if groups is not None and group not in groups:
                continue
            box = QGroupBox(title)
            form = QFormLayout(box)
            for opt in OPTIONS.values():
                if opt.group == group:
                    form.addRow(opt.label, self._row(opt))
            layout.addWidget(box)
        backend = self.widgets.get("backend")
        if isinstance(backend, QComboBox):
            backend.currentIndexChanged.connect(self._backend_changed)
        self._backend_changed()

    # ------------------------------------------------------------------ building

    def _row(self, opt: Option) -> QWidget:
        widget = self._field(opt)
        widget.setAccessibleName(opt.label)  # screen readers and AT-SPI find it by its label
        widget.setToolTip(opt.help)
        self.widgets[opt.name] = widget
        self._rows[opt.name] = widget
        picker = PICKERS.get(opt.name)
        if picker is None or not isinstance(widget, QLineEdit):
            return widget
        holder = QWidget()
        row = QHBoxLayout(holder)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(widget, 1)
        button = QPushButton("Folder…" if picker == "folder" else "File…")
        button.setAccessibleName(f"{opt.label}: {button.text()}")
        button.setToolTip(f"Choose the {opt.label.lower()} {picker}")
        button.clicked.connect(lambda: self._pick(opt, widget, picker))
        row.addWidget(button)
        self._rows[opt.name] = holder
        return holder

    def _field(self, opt: Option) -> QWidget:
        default = getattr(RunConfig(), opt.name)
        if opt.name == "monitor":
            combo = QComboBox()
            combo.addItem("primary", 0)
            for label, index in self._monitors:
                combo.addItem(label, index)
            combo.currentIndexChanged.connect(self.changed)
            return combo
        if opt.choices:
            combo = QComboBox()
            labels = opt.choice_labels or tuple(c or "default" for c in opt.choices)
            for label, choice in zip(labels, opt.choices, strict=True):
                combo.addItem(label, choice)
            combo.currentIndexChanged.connect(self.changed)
            return combo
        if isinstance(default, bool):
            raise TypeError(f"no form field for a bool option ({opt.name})")
        if isinstance(default, float):
            spin = QDoubleSpinBox()
            spin.setDecimals(1)
            spin.setRange(opt.minimum or 0.0, opt.maximum or 24 * 60.0)
            if opt.zero:
                spin.setSpecialValueText(opt.zero)
            spin.valueChanged.connect(self.changed)
            return spin
        if isinstance(default, int):
            box = QSpinBox()
            box.setRange(int(opt.minimum or 0), int(opt.maximum or _INT_MAX))
            if opt.zero:
                box.setSpecialValueText(opt.zero)
            box.valueChanged.connect(self.changed)
            return box
        line = QLineEdit()
        line.setPlaceholderText(opt.placeholder or ("none" if not default else ""))
        if opt.name == "secret":
            # Never saved: only this run's Redactor sees it (recordings show [REDACTED]).
            line.setEchoMode(QLineEdit.EchoMode.Password)
            line.setPlaceholderText("text to keep out of recordings, comma-separated")
        line.textChanged.connect(self.changed)
        return line

    def _pick(self, opt: Option, line: QLineEdit, kind: str) -> None:
        if kind == "folder":
            path = QFileDialog.getExistingDirectory(self, opt.label)
        else:
            path, _ = QFileDialog.getOpenFileName(self, opt.label, "", "TOML (*.toml)")
        if path:
            line.setText(path)

    def _backend_changed(self) -> None:
        """Fields that only one backend uses are enabled for it; the model's default follows."""
        local = self.value("backend") == "local"
        for name in ("device",):
            if name in self.widgets:
                self.widgets[name].setEnabled(local)
        for name in ("endpoint", "api_key_env"):
            if name in self.widgets:
                self.widgets[name].setEnabled(not local)
        model = self.widgets.get("model")
        if isinstance(model, QLineEdit):
            model.setPlaceholderText(
                DEFAULT_LOCAL_MODEL if local else "the first model the server lists"
            )
        self.changed.emit()

    # ------------------------------------------------------------------ values

    def field(self, name: str) -> QWidget:
        """The widget of one option."""
        return self.widgets[name]

    def value(self, name: str) -> Any:
        """One option's value as the form shows it."""
        widget = self.widgets.get(name)
        opt = OPTIONS[name]
        if isinstance(widget, QComboBox):
            return widget.currentData()
        if isinstance(widget, QDoubleSpinBox):
            return float(widget.value())
        if isinstance(widget, QSpinBox):
            return int(widget.value())
        if isinstance(widget, QLineEdit):
            text = widget.text()
            return _split_list(text, opt) if opt.repeatable else text.strip()
        return getattr(RunConfig(), name)

    def set_value(self, name: str, value: Any) -> None:
        """Show one option's value."""
        widget = self.widgets.get(name)
        opt = OPTIONS[name]
        if isinstance(widget, QComboBox):
            found = widget.findData(value)
            if found < 0 and name == "monitor":
                widget.addItem(f"{value}: not connected now", value)
                found = widget.count() - 1
            widget.setCurrentIndex(max(0, found))
        elif isinstance(widget, QDoubleSpinBox | QSpinBox):
            widget.setValue(value)
        elif isinstance(widget, QLineEdit):
            sep = "\n" if opt.name == "open" else ", "
            widget.setText(sep.join(value) if opt.repeatable else str(value))

    def load(self, config: RunConfig) -> None:
        """Show a configuration."""
        for f in fields(config):
            if f.name in self.widgets:
                self.set_value(f.name, getattr(config, f.name))
        self._backend_changed()

    def config(self, base: RunConfig | None = None) -> RunConfig:
        """The configuration the form shows, over `base` (options not in the form), unchecked."""
        values = {name: self.value(name) for name in self.widgets}
        return replace(base or RunConfig(), **values)

    def checked(self, base: RunConfig | None = None) -> RunConfig:
        """The form's configuration validated; ConfigError (for_app names the field)."""
        return self.config(base).validated()

    def set_editable(self, editable: bool) -> None:
        """Lock the form while a run uses it."""
        for row in self._rows.values():
            row.setEnabled(editable)
        if editable:
            self._backend_changed()
