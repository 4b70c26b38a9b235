"""The app follows the system's light or dark scheme (Fusion with the scheme's palette)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication

from ui.app import MainWindow, apply_color_scheme, follow_color_scheme
from ui.settings import AppSettings


def test_the_window_turns_dark_and_light_with_the_system(qtbot: Any, tmp_path: Path) -> None:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    style = app.style().name()
    follow_color_scheme(app)  # the scheme the (offscreen) platform reports: not dark
    window = MainWindow(AppSettings(), settings_file=tmp_path / "s.toml", global_hotkey=False)
    qtbot.addWidget(window)
    try:
        # What colorSchemeChanged does when the desktop turns dark (offscreen cannot).
        apply_color_scheme(app, Qt.ColorScheme.Dark)
        qtbot.waitUntil(lambda: window.palette().color(QPalette.ColorRole.Window).lightness() < 100)
        text = window.palette().color(QPalette.ColorRole.WindowText).lightness()
        assert text > 150  # light text on the dark window: still readable
        apply_color_scheme(app, Qt.ColorScheme.Light)
        qtbot.waitUntil(lambda: window.palette().color(QPalette.ColorRole.Window).lightness() > 150)
    finally:
        app.setStyle(style)  # the other tests run with the platform's own style
        app.setPalette(app.style().standardPalette())
