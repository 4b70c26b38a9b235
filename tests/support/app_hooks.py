"""The real app for real-X tests, watched from outside: `python -m tests.support.app_hooks`.

Starts ui.app's MainWindow as `main.py` does, then watches it through its public signals:
DESKPILOT_UI_LOG gets one JSON line per event (ready, settings, approval, shots, recover,
takeover, calibrated, finished) with the global rectangles of the controls, and
DESKPILOT_UI_SHOTS gets grabs of the window and the control bar at each approval.
DESKPILOT_UI_GEOMETRY ("x,y,w,h") places the window. Production code knows none of this.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QPoint, QTimer
from PySide6.QtWidgets import QApplication, QWidget


class AppHooks(QObject):
    """Logs what a test needs to know about the window, when it happens."""

    def __init__(self, window: Any, log: str | None, shots: str | None) -> None:
        super().__init__(window)
        self.window, self.log, self.shots = window, log, shots
        c = window.controller
        # Connected after the window's own slots, so each line shows the window updated.
        c.approval_requested.connect(self.on_approval)
        c.recover_requested.connect(lambda error: self.write("recover", error=error))
        c.finished.connect(self.on_finished)
        window.took_over.connect(lambda on: self.write("takeover", on=on))
        window.calibrated.connect(self.on_calibrated)
        window.settings_dialog.installEventFilter(self)
        QTimer.singleShot(200, window, self.on_ready)

    def eventFilter(self, watched: QObject, event: Any) -> bool:  # noqa: N802
        """The Settings dialog shown: its controls' places."""
        from PySide6.QtCore import QEvent

        if watched is self.window.settings_dialog and event.type() == QEvent.Type.Show:
            QTimer.singleShot(200, self.window, lambda: self.write("settings"))
        return False

    def rects(self) -> dict[str, list[float]]:
        """Global rectangles of the controls and of the drawn screenshot."""
        w = self.window
        named: dict[str, QWidget] = {
            "start": w.start_button,
            "stop": w.stop_button,
            "takeover": w.takeover_button,
            "settings": w.settings_button,
            "runs": w.runs_button,
            "serve_mcp": w.serve_mcp_button,
            "calibrate": w.calibrate_button,
            "approve": w.panel.approve_button,
            "skip": w.panel.skip_button,
            "reject": w.panel.reject_button,
            "panel_stop": w.panel.stop_button,
            "note": w.panel.note,
            "text_edit": w.panel.text_edit,
            "view": w.view,
            "task": w.task,
            "retry": w.recover_bar.retry_button,
            "restart_worker": w.recover_bar.restart_button,
            "recover_stop": w.recover_bar.stop_button,
        }
        out: dict[str, list[float]] = {}
        for name, widget in named.items():
            p = widget.mapToGlobal(QPoint(0, 0))
            out[name] = [p.x(), p.y(), widget.width(), widget.height()]
        t = w.view.target_rect()
        p = w.view.mapToGlobal(QPoint(0, 0))
        out["picture"] = [p.x() + t.x(), p.y() + t.y(), t.width(), t.height()]
        out["bar"] = list(w.bar.global_rect())
        g = w.frameGeometry()
        out["window"] = [g.x(), g.y(), g.width(), g.height()]
        return out

    def write(self, event: str, **fields: Any) -> None:
        """One line in the log."""
        if not self.log:
            return
        record = {"event": event, **fields, "rects": self.rects(), "t": time.time()}
        with open(self.log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    def on_calibrated(self, code: int, verdict: str) -> None:
        """The calibration self-test ended."""
        self.write("calibrated", code=code, verdict=verdict)

    def on_ready(self) -> None:
        """Shown and laid out."""
        self.write("ready", hotkey_error=self.window.hotkey.error)

    def on_approval(self, request: Any) -> None:
        """An action waits: its facts, then (with DESKPILOT_UI_SHOTS) pictures."""
        from actions.types import describe

        self.write(
            "approval",
            step=request.step,
            action=describe(request.action),
            risk=request.risk.level,
            reason=request.risk.reason,
        )
        if self.shots:
            QTimer.singleShot(300, self.window, lambda: self.save_shots(request.step))

    def save_shots(self, step: int) -> None:
        """The window and the control bar as pictures."""
        assert self.shots
        folder = Path(self.shots)
        folder.mkdir(parents=True, exist_ok=True)
        self.window.grab().save(str(folder / f"window-step{step + 1}.png"))
        if self.window.bar.isVisible():
            self.window.bar.grab().save(str(folder / "control-bar.png"))
        self.write("shots", step=step)

    def on_finished(self, result: Any) -> None:
        """The run ended."""
        self.write(
            "finished",
            outcome=None if result is None else result.outcome,
            run_dir=None if result is None else result.run_dir,
            stall_max_ms=round(self.window.stall.max_gap_ms, 1),
        )


def main() -> int:
    """Start the app with the hooks on."""
    from ui.app import MainWindow, run_window

    app = QApplication(sys.argv[:1])
    window = MainWindow()
    hooks = AppHooks(
        window, os.environ.get("DESKPILOT_UI_LOG"), os.environ.get("DESKPILOT_UI_SHOTS")
    )
    geometry = os.environ.get("DESKPILOT_UI_GEOMETRY")
    if geometry:
        x, y, w, h = (int(v) for v in geometry.split(","))
        window.setGeometry(x, y, w, h)
    status = run_window(app, window)
    del hooks
    return status


if __name__ == "__main__":
    sys.exit(main())
