"""The local worker killed mid-generation in the app: the recovery bar, Restart worker, the run
goes on with the new worker, and the recording keeps the failure and what followed."""

from __future__ import annotations

import importlib.util
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from agent.config import RunConfig
from agent.events import TextStreamed
from agent.recording import read_steps
from ui.app import MainWindow
from ui.settings import AppSettings

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("torch") is None
        or importlib.util.find_spec("transformers") is None,
        reason="torch/transformers are not installed (the local worker needs them)",
    ),
    pytest.mark.timeout(180),
]


def test_worker_killed_mid_generation_then_restart_worker(
    qtbot: QtBot, xdisplay: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support import tiny_qwen35

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = tiny_qwen35.build(tmp_path / "tiny", "dense")
    settings = AppSettings(
        task="save the file",
        run=RunConfig(
            backend="local",
            model=str(model),
            device="cpu",
            approve="auto",
            max_steps=1,
            runs_dir=str(tmp_path / "runs"),
        ),
    )
    window = MainWindow(settings, settings_file=tmp_path / "s.toml", global_hotkey=False)
    qtbot.addWidget(window)
    window.show()
    controller = window.controller
    controller.loop_overrides = {"retry_delays_s": ()}  # straight to the question
    window.restart_worker()  # warm it first, so the run's first request is a generation
    qtbot.waitUntil(lambda: "ready" in window.worker_label.text(), timeout=90000)
    first = controller.backend
    first.max_new_tokens, first.sampling = 4000, {"ignore_eos": True}  # long enough to kill
    killed: list[int] = []

    def kill_on_first_token(event: Any) -> None:
        if isinstance(event, TextStreamed) and not killed and first.pid is not None:
            killed.append(first.pid)
            os.kill(first.pid, signal.SIGKILL)

    controller.loop_event.connect(kill_on_first_token)
    bar = window.recover_bar

    def restart_when_asked() -> None:
        qtbot.waitUntil(lambda: bar.pending, timeout=60000)
        assert "SIGKILL" in bar.message.text() and bar.restart_button.text() == "Restart worker"
        qtbot.mouseClick(bar.restart_button, Qt.MouseButton.LeftButton)

    with qtbot.waitSignal(controller.finished, timeout=150000) as blocker:
        window.start_run()
        restart_when_asked()
    result = blocker.args[0]
    assert killed, "no token arrived to kill the worker on"
    # The run went on with a new worker (the tiny model's output is noise: one step, then the
    # step limit), and the app is still there with a live worker.
    assert result.outcome in ("max_steps", "invalid_output")
    assert controller.backend is not first and controller.backend.pid not in (None, killed[0])
    assert window.isVisible() and window.start_button.isEnabled()
    steps = read_steps(Path(result.run_dir) / "steps.jsonl")[0]
    [step] = steps
    assert "SIGKILL" in step["backend_errors"][0]["error"] and "raw_output" in step
    assert "restarting the model backend" in window.log_view.toPlainText()
    window.close()
