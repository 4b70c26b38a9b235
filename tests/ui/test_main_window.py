"""The main window offscreen: settings in and out of the form, worker progress and state."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from PySide6.QtWidgets import QComboBox
from pytestqt.qtbot import QtBot

from agent.config import RunConfig
from ui.app import MainWindow
from ui.settings import AppSettings, load_settings


def test_form_round_trip_and_worker_progress(qtbot: QtBot, tmp_path: Path) -> None:
    settings = AppSettings(
        task="open the terminal",
        run=RunConfig(
            backend="openai",
            endpoint="http://127.0.0.1:9/v1",
            model="m",
            approve="guarded",
            max_steps=7,
            device="cpu",
            break_at="3",
            desktop="headless",
            open=("xterm -geometry 80x24+0+0",),
        ),
    )
    path = tmp_path / "settings.toml"
    window = MainWindow(settings, settings_file=path, global_hotkey=False)
    qtbot.addWidget(window)
    assert window.windowTitle().startswith("deskpilot")
    assert window.form_settings() == settings
    approval = window.run_form.field("approve")
    assert isinstance(approval, QComboBox)
    approval.setCurrentIndex(approval.findData("auto"))
    window.task.setPlainText("something else")
    window.run_form.set_value("break_on", "type, key")

    c = window.controller
    c.progress.emit("downloading model", 0.25)
    assert window.worker_progress.value() == 250 and "downloading" in window.worker_label.text()
    c.progress.emit("loading weights", None)
    assert window.worker_progress.maximum() == 0  # busy: no fraction for this stage
    c.worker_state.emit("ready: Qwen/Qwen3.5-2B, device cpu, weights ~4.5 GB (bfloat16)")
    assert "device cpu" in window.worker_label.text()
    c.failed.emit("cannot reach http://127.0.0.1:9/v1: connection refused")
    assert "connection refused" in window.worker_label.text()

    window.close()  # closing saves what the form shows
    saved = load_settings(path)
    assert saved == dataclasses.replace(
        settings,
        task="something else",
        run=dataclasses.replace(settings.run, approve="auto", break_on="type, key"),
    )


def test_every_choice_has_a_label() -> None:
    from agent.config import OPTIONS

    for option in OPTIONS.values():
        assert not option.choice_labels or len(option.choice_labels) == len(option.choices)


def test_bad_breakpoints_do_not_start_a_run(qtbot: QtBot, tmp_path: Path) -> None:
    settings = AppSettings(task="t", run=RunConfig(break_on="wiggle"))
    window = MainWindow(settings, settings_file=tmp_path / "s.toml", global_hotkey=False)
    qtbot.addWidget(window)
    window.start_run()
    assert not window.controller.running
    assert "unknown action kind 'wiggle'" in window.statusBar().currentMessage()


def test_restart_worker_reports_errors_and_readiness(qtbot: QtBot, tmp_path: Path) -> None:
    from tests.support.scripted_server import ScriptedServer

    dead = AppSettings(run=RunConfig(backend="openai", endpoint="http://127.0.0.1:9/v1"))
    window = MainWindow(dead, settings_file=tmp_path / "s.toml", global_hotkey=False)
    qtbot.addWidget(window)
    window.restart_worker()
    qtbot.waitUntil(lambda: "error" in window.worker_label.text(), timeout=15000)
    server = ScriptedServer([])
    try:
        window.run_form.set_value("endpoint", server.url)
        qtbot.waitUntil(lambda: not window.controller.running, timeout=5000)
        window.restart_worker()
        qtbot.waitUntil(lambda: "ready" in window.worker_label.text(), timeout=15000)
        assert server.model in window.worker_label.text()
    finally:
        window.close()
        server.close()


def test_enter_approves_or_rejects_from_the_note_escape_stops(qtbot: QtBot, tmp_path: Path) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage

    from actions.screen import CoordinateSpace, Monitor
    from actions.types import LeftClick
    from agent.approval import ApprovalRequest, Decision

    window = MainWindow(AppSettings(), settings_file=tmp_path / "s.toml", global_hotkey=False)
    qtbot.addWidget(window)
    window.show()
    window.activateWindow()
    qtbot.waitExposed(window)
    decisions: list[Decision] = []
    window.panel.decided.connect(decisions.append)
    image = QImage(192, 108, QImage.Format.Format_RGB32)
    window.view.set_frame(image, Monitor(1, 0, 0, 192, 108))
    request = ApprovalRequest(0, LeftClick((10, 10)), "", CoordinateSpace.relative())
    window.on_approval(request)
    qtbot.keyClick(window.panel.approve_button, Qt.Key.Key_Return)
    assert decisions == [Decision("approve")]
    window.show()
    window.on_approval(request)
    window.panel.note.setFocus()
    qtbot.keyClicks(window.panel.note, "why")
    qtbot.keyClick(window.panel.note, Qt.Key.Key_Return)  # Enter in the note rejects
    assert decisions[-1] == Decision("reject", note="why")
    # Esc is the kill switch: with a run going, it sets the loop's stop event (which ends the
    # loop thread's wait for a decision) and withdraws the request.
    import threading

    release = threading.Event()
    window.controller._thread = threading.Thread(target=release.wait, daemon=True)
    window.controller._thread.start()
    window.on_approval(request)
    window.activateWindow()  # shortcuts need the window active (offscreen: only on request)
    qtbot.waitUntil(window.isActiveWindow, timeout=2000)
    qtbot.keyClick(window.panel.approve_button, Qt.Key.Key_Escape)
    assert window.controller.stop_event.is_set() and not window.panel.pending
    release.set()
    window.controller._thread.join()
    window.close()
