"""The cockpit's parts offscreen: errors in app words, progress, timeline, clean runs, place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QRect
from pytestqt.qtbot import QtBot

from actions.screen import CoordinateSpace, Frame, Monitor
from actions.types import LeftClick
from agent.approval import Decision
from agent.config import RunConfig
from agent.events import (
    ActionExecuted,
    ActionProposed,
    DecisionMade,
    StepStarted,
    TextStreamed,
)
from agent.protocol import Proposal
from agent.risk import SAFE
from tests.support.scripted_server import xml_call
from ui.app import MainWindow
from ui.app_text import app_words
from ui.progress import RunProgress, clock
from ui.settings import AppSettings


def test_messages_name_settings_not_flags_and_summarise_html() -> None:
    assert app_words("http://x/v1 serves no models; pass --model") == (
        "http://x/v1 serves no models; set Model in Settings"
    )
    assert "--" not in app_words("check that --endpoint is the /v1 base URL")
    assert "the Endpoint setting" in app_words("check that --endpoint is the /v1 base URL")
    page = (
        "HTTP 502: <!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
        "<body><h1>Bad Gateway</h1><p>nginx</p></body></html>"
    )
    shown = app_words(page, backend="openai")
    assert shown == "HTTP 502: an HTML page (502 Bad Gateway)" and "<" not in shown
    endpoint = app_words("the worker process is gone; press Restart worker", backend="openai")
    assert "worker" not in endpoint and "Reconnect" in endpoint
    local = app_words("the worker process is gone; press Restart worker", backend="local")
    assert "Restart worker" in local


def test_progress_counts_steps_seconds_and_tokens(qtbot: QtBot) -> None:
    progress = RunProgress()
    qtbot.addWidget(progress)
    assert progress.step_label.text() == "No run yet"
    progress.start(30)
    progress.step_started(2)
    for _ in range(57):
        progress.streamed()
    assert progress.step_label.text() == "Step 3 of 30"
    assert progress.activity.text().startswith("the model is thinking: ")
    assert progress.activity.text().endswith(" s, 57 tokens")
    qtbot.waitUntil(lambda: progress.elapsed_label.text() == "0:00", timeout=1000)
    progress.set_doing("waiting for you")
    assert progress.activity.text() == "waiting for you"
    progress.finish("finished: success")
    assert not progress.timer.isActive() and "finished: success" in progress.line()
    assert clock(3725) == "1:02:05" and clock(65) == "1:05"


def window(qtbot: QtBot, tmp_path: Path) -> MainWindow:
    run = RunConfig(backend="openai", endpoint="http://127.0.0.1:9/v1", model="m", max_steps=9)
    w = MainWindow(
        AppSettings(task="t", run=run), settings_file=tmp_path / "s.toml", global_hotkey=False
    )
    qtbot.addWidget(w)
    return w


def feed_a_step(w: MainWindow, step: int) -> None:
    """The loop's events of one step, as the controller would re-emit them."""
    space = CoordinateSpace.relative()
    action = LeftClick((500.0, 500.0))
    raw = "I see the button. " + xml_call(action="left_click", coordinate=[500, 500])
    frame = Frame(bytes(3 * 4 * 4), 4, 4, Monitor(0, 0, 0, 4, 4), 0.0)
    w.on_event(StepStarted(step))
    w.on_event(TextStreamed(step, "reasoning", "I see the button."))
    w.on_event(TextStreamed(step, "content", raw))
    proposal = Proposal(action, None, "I see the button.", raw)
    w.on_event(ActionProposed(step, proposal, space, frame, SAFE))
    w.on_event(DecisionMade(step, Decision("approve"), SAFE))
    w.on_event(ActionExecuted(step, True, None))


def test_the_timeline_shows_steps_in_words_and_thinking_never_as_xml(
    qtbot: QtBot, tmp_path: Path
) -> None:
    w = window(qtbot, tmp_path)
    w.presenter.reset(9)
    feed_a_step(w, 0)
    feed_a_step(w, 1)
    rows = [w.timeline.item(r).text() for r in range(w.timeline.count())]
    assert rows[0].startswith("Step 1: Click at (500, 500)\napproved by you · done · model ")
    assert w.thinking.toPlainText() == "I see the button."
    shown = w.thinking.toPlainText() + w.log_view.toPlainText() + " ".join(rows)
    assert "<tool_call>" not in shown and "<parameter" not in shown
    assert w.progress.step_label.text() == "Step 2 of 9"
    assert "step 2: Click at (500, 500)" in w.log_view.toPlainText()  # every step is logged
    # Checking a step sets a breakpoint for the next run (Settings: Break at steps).
    w.timeline.set_breakpoint(2, True)
    assert w.breakpoints == {2} and w.run_form.value("break_at") == "2"


def test_each_run_starts_clean(qtbot: QtBot, tmp_path: Path) -> None:
    w = window(qtbot, tmp_path)
    w.presenter.reset(9)
    feed_a_step(w, 0)
    w.presenter.set_status("finished: success")
    assert w.timeline.count() == 1 and w.log_view.toPlainText()
    w.presenter.reset(9)  # what start_run does before a new run
    assert w.timeline.count() == 0 and w.thinking.toPlainText() == ""
    assert w.log_view.toPlainText() == "" and w.view.image is None and w.view.action is None
    assert w.progress.step_label.text() == "Starting"


def test_nothing_to_restart_before_a_backend_exists(qtbot: QtBot, tmp_path: Path) -> None:
    w = window(qtbot, tmp_path)
    assert not w.restart_button.isEnabled() and w.restart_button.text() == "Reconnect"
    for button in (w.start_button, w.stop_button, w.settings_button, w.runs_button, w.task):
        assert button.accessibleName() and button.toolTip()
    assert w.task.tabChangesFocus()


def test_the_window_fits_and_remembers_its_place(qtbot: QtBot, tmp_path: Path) -> None:
    first = window(qtbot, tmp_path)
    area = first.screen().availableGeometry()
    assert first.width() <= area.width() and first.height() <= area.height()
    first.setGeometry(QRect(area.x() + 20, area.y() + 30, 500, 400))
    first.close()
    assert (tmp_path / "window.ini").is_file()  # beside settings.toml
    again: Any = window(qtbot, tmp_path)
    assert (again.width(), again.height()) == (500, 400)


def test_the_approval_card_is_whole_at_1280x720_with_a_risky_typing_from_a_client(
    qtbot: QtBot, tmp_path: Path
) -> None:
    from actions.types import Type
    from agent.approval import ApprovalRequest
    from agent.risk import Risk

    w = window(qtbot, tmp_path)
    w.resize(1264, 672)  # a 1280x720 screen less the frame and a panel
    w.show()
    qtbot.waitExposed(w)
    risk = Risk("risky", "typing a command that looks dangerous: recursive or forced delete")
    request = ApprovalRequest(
        0, Type("rm -rf ~/old"), "", CoordinateSpace.relative(), risk=risk, client="Claude 1.0"
    )
    w.on_approval(request)
    inside = w.rect()
    panel = w.panel
    for control in (
        panel.approve_button,
        panel.edit_button,
        panel.skip_button,
        panel.reject_button,
        panel.stop_button,
        panel.note,
        panel.text_edit,
        panel.risk_label,
        panel.client_label,
    ):
        assert control.isVisible(), control
        corner = control.mapTo(w, control.rect().bottomRight())
        assert inside.contains(corner), (control.accessibleName(), corner, inside)
    assert panel.client_label.text() == "Asked by Claude 1.0"
    assert panel.risk_label.text().startswith("Risky: typing a command")
    assert panel.title.text() == "Step 1: Type 'rm -rf ~/old'"
    assert w.view.height() > panel.height()  # the screen stays the largest part


def test_ask_again_borrows_the_apps_loaded_worker_for_its_own_model(
    qtbot: QtBot, tmp_path: Path
) -> None:
    from agent.backends.base import Completion
    from agent.recording import read_run
    from tests.replay.conftest import make_recording
    from tests.support.fakes import ScriptedBackend
    from ui.debugger import Borrowed, Debugger

    class Worker(ScriptedBackend):
        model = "fake-qwen"  # the recording's model
        closed = False

        def close(self) -> None:
            self.closed = True

    run = read_run(make_recording(tmp_path / "runs").dir)
    run.info["backend"] = {"kind": "local"}
    worker = Worker([Completion(xml_call(action="left_click", coordinate=[500, 500]))])
    w = window(qtbot, tmp_path)
    w.controller.backend = worker
    lent = w._ask_again_backend(run)
    assert isinstance(lent, Borrowed) and lent.backend is worker
    debugger = Debugger(run, backend_factory=w._ask_again_backend)
    qtbot.addWidget(debugger)
    debugger.ask_again()
    qtbot.waitUntil(lambda: "same action" in debugger.ask_panel.verdict.text(), timeout=10000)
    assert len(worker.sent) == 1 and not worker.closed  # asked, and still the app's
