"""A window to type into on Wayland desktops where foot does not run (kwin --virtual: foot
1.13 dies of SIGFPE on its output): a maximised QPlainTextEdit that writes its text to a file
at every change. Usage: python qt_text_sink.py OUT
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtWidgets import QApplication, QPlainTextEdit


def main() -> int:
    """Show the editor; every change is written to OUT (UTF-8)."""
    out = Path(sys.argv[1])
    app = QApplication(sys.argv[:1])
    editor = QPlainTextEdit()
    editor.setWindowTitle("deskpilot text sink")
    editor.setStyleSheet("font-size: 28px;")
    editor.textChanged.connect(lambda: out.write_text(editor.toPlainText(), encoding="utf-8"))
    editor.showMaximized()
    out.write_text("", encoding="utf-8")
    return int(app.exec())


if __name__ == "__main__":
    sys.exit(main())
