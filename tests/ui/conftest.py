"""Qt widget tests run offscreen; the end-to-end app test starts its own xcb app on Xvfb."""

from __future__ import annotations

import os

# pytest-qt makes one QApplication per session from this; the real-window test runs the app in
# a subprocess with QT_QPA_PLATFORM=xcb, so this process never needs a display for Qt.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_ACCESSIBILITY", "0")
