"""Shows a red window with Qt on Wayland and captures the screen through the wlroots desktop,
as the app's runs do, with and without ui/wayland's CaptureHider; prints the counts as JSON.

Run in a Wayland session (WAYLAND_DISPLAY, SWAYSOCK) with QT_QPA_PLATFORM=wayland.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from PySide6.QtCore import QMetaObject, Qt  # noqa: E402
from PySide6.QtWidgets import QApplication, QWidget  # noqa: E402

from actions.desktop import open_desktop  # noqa: E402
from actions.screen import Frame  # noqa: E402
from ui.guard import MaskedScreen  # noqa: E402
from ui.wayland import CaptureHider, on_wayland  # noqa: E402


def red_pixels(frame: Frame) -> int:
    """How many pixels are pure red."""
    import numpy as np

    px = np.frombuffer(frame.rgb, dtype=np.uint8).reshape(frame.height, frame.width, 3)
    return int(np.count_nonzero((px[:, :, 0] == 255) & (px[:, :, 1] == 0) & (px[:, :, 2] == 0)))


def main() -> int:
    """Show the window, capture three times from a worker thread, print what was seen."""
    app = QApplication(sys.argv[:1])
    window = QWidget()
    window.setWindowTitle("deskpilot hider probe")
    window.setStyleSheet("background: #ff0000;")
    window.resize(400, 300)
    window.show()
    hider = CaptureHider(lambda: [window])
    result: dict[str, Any] = {"platform": app.platformName(), "wayland": on_wayland()}

    def seen(screen: MaskedScreen, want_red: bool) -> int:
        deadline = time.monotonic() + 10
        while True:
            count = red_pixels(screen.capture())
            if (count > 0) == want_red or time.monotonic() > deadline:
                return count
            time.sleep(0.05)

    def work() -> None:
        desktop = open_desktop()
        try:
            plain = MaskedScreen(desktop.screen, lambda: [])
            hidden = MaskedScreen(desktop.screen, lambda: [], hide=hider.hidden)
            result["before"] = seen(plain, True)
            start = time.monotonic()
            result["hidden"] = red_pixels(hidden.capture())
            result["hidden_capture_s"] = round(time.monotonic() - start, 3)
            result["after"] = seen(plain, True)
        finally:
            desktop.close()
            QMetaObject.invokeMethod(app, "quit", Qt.ConnectionType.QueuedConnection)

    thread = threading.Thread(target=work)
    thread.start()
    app.exec()
    thread.join()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
