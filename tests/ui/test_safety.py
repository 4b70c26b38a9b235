"""The app's side of safety: who is asked in each mode, the risk line, blocked actions shown and
never run, backend faults retried then offered Retry / Restart worker / Stop, secrets kept out.

The window runs in this process (Qt offscreen) while the loop captures and acts on the private
Xvfb (DISPLAY points there), against a real OpenAI-compatible server on 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLineEdit
from pytestqt.qtbot import QtBot

from actions.screen import CoordinateSpace, Monitor, screen_to_model
from actions.types import LeftClick, Type
from agent.approval import ApprovalRequest, Decision
from agent.backends.base import BackendError, Completion
from agent.config import RunConfig
from agent.events import BackendFailed
from agent.recording import read_steps
from agent.risk import SAFE, Risk
from tests.support.scripted_server import Reply, ScriptedServer, xml_call
from ui.app import MainWindow
from ui.recovery import CurrentBackend, RecoveryPrompt
from ui.run_controller import GuiApprover
from ui.run_form import parse_secrets
from ui.settings import AppSettings, load_settings
from ui.widgets import ApprovalPanel, LiveView

REL = CoordinateSpace.relative()
MONITOR = Monitor(1, 0, 0, 1920, 1080, primary=True)
RISKY = Risk("risky", "typing a command that looks dangerous: privilege escalation", "x")
RUNAWAY = "the same action 3 times in a row and the screen has not changed"


def request(kind: str) -> ApprovalRequest:
    """A safe click, a risky typing, or a safe click that the loop paused as a runaway."""
    if kind == "risky":
        return ApprovalRequest(0, Type("sudo ls"), "", REL, risk=RISKY)
    if kind == "runaway":
        return ApprovalRequest(0, LeftClick((5, 5)), "", REL, risk=SAFE, attention=RUNAWAY)
    return ApprovalRequest(0, LeftClick((5, 5)), "", REL)


@pytest.mark.parametrize(
    ("mode", "kind", "asked"),
    [
        ("ask", "safe", True),
        ("ask", "risky", True),
        ("ask", "runaway", True),
        ("guarded", "safe", False),
        ("guarded", "risky", True),
        ("guarded", "runaway", True),
        ("auto", "safe", False),
        ("auto", "risky", False),
        ("auto", "runaway", True),
    ],
)
def test_who_is_asked_in_each_mode(mode: str, kind: str, asked: bool) -> None:
    seen: list[ApprovalRequest] = []
    approver: GuiApprover

    def ask(r: ApprovalRequest) -> None:
        seen.append(r)
        approver.answer(Decision("reject", note="no"))  # the person's answer

    approver = GuiApprover(mode, threading.Event(), ask)
    decision = approver(request(kind))
    if asked:
        assert seen == [request(kind)] and decision == Decision("reject", note="no")
    else:
        assert seen == [] and decision == Decision("approve", by=mode)


def test_the_panel_shows_the_risk_and_the_runaway_reason(qtbot: QtBot) -> None:
    view = LiveView()
    panel = ApprovalPanel(view)
    qtbot.addWidget(view)
    qtbot.addWidget(panel)
    panel.set_request(request("risky"))
    assert not panel.risk_label.isHidden()
    assert panel.risk_label.text() == f"Risky: {RISKY.reason}"
    assert "background" in panel.risk_label.styleSheet() and panel.attention_label.isHidden()
    panel.set_request(request("runaway"))
    assert panel.risk_label.isHidden() and not panel.attention_label.isHidden()
    assert panel.attention_label.text() == f"Paused: {RUNAWAY}"
    panel.clear()
    assert panel.risk_label.isHidden() and panel.attention_label.isHidden()


def test_recovery_prompt_retry_restart_stop() -> None:
    stop = threading.Event()
    asked: list[str] = []
    answers: list[str] = []
    restarts: list[int] = []
    prompt: RecoveryPrompt

    def ask(message: str) -> None:
        asked.append(message)
        prompt.answer(answers.pop(0))  # type: ignore[arg-type]

    def restart() -> None:
        restarts.append(1)
        if len(restarts) == 1:
            raise BackendError("could not start the worker: out of memory")

    prompt = RecoveryPrompt(stop, ask, restart)
    error = BackendError("http://127.0.0.1:9/v1 answered HTTP 500\n(scripted)", retryable=True)
    answers[:] = ["retry"]
    assert prompt(error) is True and asked == ["http://127.0.0.1:9/v1 answered HTTP 500 (scripted)"]
    # A failed restart says so and asks again; the second restart works: send the request again.
    answers[:] = ["restart", "restart"]
    assert prompt(error) is True and len(restarts) == 2
    assert asked[-1] == "restart failed: could not start the worker: out of memory"
    answers[:] = ["stop"]
    assert prompt(error) is False
    # The kill switch ends the wait: nobody answers, the stop event is set.
    quiet = RecoveryPrompt(stop, lambda m: None, restart)
    threading.Timer(0.1, stop.set).start()
    assert quiet(error) is False
    with pytest.raises(ValueError):
        quiet.answer("again")  # type: ignore[arg-type]


def test_current_backend_forwards_to_whatever_is_current() -> None:
    class Fake:
        def __init__(self, name: str) -> None:
            self.model = name

        def complete(self, messages: Any, tools: Any, **kw: Any) -> Completion:
            return Completion(content=self.model)

        def describe(self) -> dict[str, object]:
            return {"model": self.model}

    holder: dict[str, Any] = {"backend": Fake("first")}
    proxy = CurrentBackend(lambda: holder["backend"])
    assert proxy.complete([], []).content == "first" and proxy.model == "first"
    holder["backend"] = Fake("restarted")
    assert proxy.complete([], []).content == "restarted"
    assert proxy.describe() == {"model": "restarted"}
    holder["backend"] = None
    with pytest.raises(BackendError, match="Restart worker"):
        proxy.complete([], [])


def test_secrets_field_is_parsed_and_never_saved(qtbot: QtBot, tmp_path: Path) -> None:
    assert parse_secrets(" hunter2-long , pa,ss\nsecond line \n\n") == [
        "hunter2-long , pa,ss",  # the whole line too: a secret may contain a comma
        "hunter2-long",
        "pa",
        "ss",
        "second line",
    ]
    path = tmp_path / "s.toml"
    window = MainWindow(AppSettings(task="t"), settings_file=path, global_hotkey=False)
    qtbot.addWidget(window)
    secrets = window.run_form.field("secret")
    assert isinstance(secrets, QLineEdit)
    assert secrets.echoMode() == QLineEdit.EchoMode.Password
    secrets.setText("correct-horse-battery")
    window.run_form.set_value("max_minutes", 12.5)
    window.run_form.set_value("repeat_limit", 4)
    window.run_form.set_value("risk_rules", "/etc/deskpilot/risk.toml")
    window.close()
    text = path.read_text(encoding="utf-8")
    assert "correct-horse-battery" not in text
    saved = load_settings(path).run
    assert (saved.max_minutes, saved.repeat_limit, saved.risk_rules) == (
        12.5,
        4,
        "/etc/deskpilot/risk.toml",
    )


def test_a_bad_risk_rules_file_does_not_start_a_run(qtbot: QtBot, tmp_path: Path) -> None:
    rules = tmp_path / "risk.toml"
    rules.write_text('blocked_text = ["rm -rf"]\nwhatever = 1\n', encoding="utf-8")
    settings = AppSettings(task="t", run=RunConfig(risk_rules=str(rules)))
    window = MainWindow(settings, settings_file=tmp_path / "s.toml", global_hotkey=False)
    qtbot.addWidget(window)
    window.start_run()
    assert not window.controller.running and window.start_button.isEnabled()
    message = window.statusBar().currentMessage()
    assert message.startswith("risk rules: ") and "unknown risk setting 'whatever'" in message
    assert "\n" not in message


# -- runs in the real window ---------------------------------------------------------------


def mp(point: tuple[int, int]) -> list[float]:
    x, y = screen_to_model(point, REL, MONITOR)
    return [round(x, 1), round(y, 1)]


def steps_of(run_dir: Path) -> list[dict[str, Any]]:
    return read_steps(run_dir / "steps.jsonl")[0]  # the last line of each step


def open_window(qtbot: QtBot, tmp_path: Path, **fields: Any) -> MainWindow:
    if "approval" in fields:
        fields["approve"] = fields.pop("approval")
    settings = AppSettings(
        task=fields.pop("task", "do the thing"),
        run=RunConfig(backend="openai", runs_dir=str(tmp_path / "runs"), max_steps=6, **fields),
    )
    window = MainWindow(settings, settings_file=tmp_path / "settings.toml", global_hotkey=False)
    qtbot.addWidget(window)
    window.show()
    return window


def run_to_end(qtbot: QtBot, window: MainWindow, act: Any = None, timeout_ms: int = 30000) -> Any:
    """Start the run, call act() while it runs, return the RunResult."""
    with qtbot.waitSignal(window.controller.finished, timeout=timeout_ms) as blocker:
        window.start_run()
        if act is not None:
            act()
    return blocker.args[0]


def test_guarded_asks_for_the_risky_typing_and_not_for_the_click(
    qtbot: QtBot, xdisplay: str, probe_app: Any, tmp_path: Path
) -> None:
    probe = probe_app((40, 200, 880, 600))
    field = probe.center("text_field")
    server = ScriptedServer(
        [
            Reply(xml_call(action="left_click", coordinate=mp(field))),
            Reply(xml_call(action="type", text="sudo rm -rf /tmp/x")),
            Reply(xml_call(action="terminate", status="success")),
        ]
    )
    window = open_window(qtbot, tmp_path, endpoint=server.url, approval="guarded")
    asked: list[ApprovalRequest] = []
    window.controller.approval_requested.connect(asked.append)
    panel = window.panel

    def act() -> None:
        # waitUntil keeps the GUI thread serving the run (stepping aside, approvals).
        qtbot.waitUntil(lambda: panel.pending, timeout=20000)
        # Asked once, for step 2: the safe click at step 1 ran without asking.
        assert [r.step for r in asked] == [1]
        assert panel.risk_label.text().startswith("Risky: typing a command that looks dangerous")
        assert not panel.risk_label.isHidden()
        qtbot.wait(500)  # it waits: nothing typed, no further request
        assert probe.text() == "" and len(server.requests) == 2
        qtbot.keyClicks(panel.note, "not with sudo")
        qtbot.mouseClick(panel.reject_button, Qt.MouseButton.LeftButton)

    try:
        result = run_to_end(qtbot, window, act)
    finally:
        server.close()
    assert result.outcome == "success"
    assert [r.step for r in asked] == [1] and asked[0].risk.level == "risky"
    assert probe.text() == ""  # the rejected typing never happened
    assert "not with sudo" in json.dumps(server.requests[2]["messages"][-1])
    log = window.log_view.toPlainText()
    assert "waiting for you: type" in log and "looks dangerous" in log
    assert "rejected by you, not executed" in log
    steps = steps_of(Path(result.run_dir))
    assert steps[0]["decision"]["by"] == "guarded" and steps[0]["execution"]["ok"]
    assert steps[1]["risk"]["level"] == "risky" and steps[1]["decision"]["kind"] == "reject"
    assert steps[1]["execution"] is None
    info = json.loads((Path(result.run_dir) / "run.json").read_text(encoding="utf-8"))
    assert info["approval"] == "guarded" and info["settings"]["repeat_limit"] == 3
    window.close()


def test_a_blocked_action_is_shown_and_never_executed(
    qtbot: QtBot, xdisplay: str, probe_app: Any, tmp_path: Path
) -> None:
    probe = probe_app((40, 200, 880, 600))
    field = probe.center("text_field")
    rules = tmp_path / "risk.toml"
    rules.write_text('blocked_text = ["rm -rf"]\n', encoding="utf-8")
    secret = "bluebird-archive"  # looks like nothing: only the Secrets field makes it secret
    server = ScriptedServer(
        [
            Reply(xml_call(action="left_click", coordinate=mp(field))),
            Reply(xml_call(action="type", text="rm -rf /tmp/x")),
            Reply(xml_call(action="terminate", status="success")),
        ]
    )
    window = open_window(
        qtbot,
        tmp_path,
        task=f"clean up the folder {secret}",
        endpoint=server.url,
        approval="auto",  # the most permissive mode: blocked still never runs
        risk_rules=str(rules),
    )
    window.run_form.set_value("secret", (secret,))
    asked: list[ApprovalRequest] = []
    window.controller.approval_requested.connect(asked.append)
    try:
        result = run_to_end(qtbot, window)
    finally:
        server.close()
    assert result.outcome == "success" and asked == []
    assert probe.text() == ""  # the field had the focus (step 1): the typing would show here
    log = window.log_view.toPlainText()
    assert "BLOCKED, not executed: type" in log and "blocked rule 'rm -rf'" in log
    assert "Blocked by the user's rules" in json.dumps(server.requests[2]["messages"][-1])
    run_dir = Path(result.run_dir)
    steps = steps_of(run_dir)
    assert steps[1]["risk"]["level"] == "blocked" and steps[1]["execution"] is None
    assert steps[0]["execution"]["ok"] and steps[1]["decision"]["by"] == "rules"
    # The Secrets field reached the recorder: the secret is nowhere in the recording's text.
    for name in ("run.json", "steps.jsonl"):
        assert secret not in (run_dir / name).read_text(encoding="utf-8")
    assert json.loads((run_dir / "run.json").read_text(encoding="utf-8"))["task"] == (
        "clean up the folder [REDACTED]"
    )
    window.close()


def test_http_500_is_retried_then_retry_restart_or_stop_and_the_app_stays_up(
    qtbot: QtBot, xdisplay: str, tmp_path: Path
) -> None:
    fail = Reply(status=500)
    done = Reply(xml_call(action="terminate", status="success"))
    server = ScriptedServer([*[fail] * 6, done, *[fail] * 6])
    window = open_window(qtbot, tmp_path, endpoint=server.url, approval="auto")
    window.controller.loop_overrides = {"retry_delays_s": (0.05, 0.05)}
    bar = window.recover_bar
    statuses: list[str] = []
    window.controller.loop_event.connect(
        lambda e: (
            statuses.append(window.step_label.text()) if isinstance(e, BackendFailed) else None
        )
    )
    backends: list[Any] = []

    def answer(*buttons: Any) -> Any:
        def act() -> None:
            for button in buttons:
                qtbot.waitUntil(lambda: bar.pending, timeout=20000)
                assert not bar.isHidden() and "HTTP 500" in bar.message.text()
                assert bar.restart_button.text() == "Reconnect"  # an endpoint: no worker
                backends.append(window.controller.backend)
                qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
                qtbot.waitUntil(lambda: not bar.pending, timeout=5000)

        return act

    try:
        # 1. Three failures (one try, two retries), the bar, Retry: three more failures, the
        #    bar again, Restart (a new client for the same run): the server now answers.
        first = run_to_end(qtbot, window, answer(bar.retry_button, bar.restart_button))
        assert first.outcome == "success" and len(server.requests) == 7
        assert window.controller.backend is not backends[-1]  # restarted mid-run
        assert any("HTTP 500" in s and "retrying in 0.05 s" in s for s in statuses)
        log = window.log_view.toPlainText()
        assert log.count("retrying in 0.05 s") == 4 and log.count("retries did not help") == 2
        assert "restarting the model backend" in log
        [step] = steps_of(Path(first.run_dir))  # the step with every failure, then its answer
        assert len(step["backend_errors"]) == 6 and step["action"]["action"] == "terminate"

        # 2. The app is still usable: the same window runs again; Stop on the bar ends the run.
        second = run_to_end(qtbot, window, answer(bar.stop_button))
        assert second.outcome == "stopped"  # ended, nothing more asked
        [step] = steps_of(Path(second.run_dir))
        assert "HTTP 500" in step["error"] and len(step["backend_errors"]) == 3
        assert len(server.requests) == 10

        # 3. The kill switch while the bar waits ends the run too.
        def kill() -> None:
            qtbot.waitUntil(lambda: bar.pending, timeout=20000)
            window.stop_run()

        third = run_to_end(qtbot, window, kill)
        assert third.outcome == "stopped" and not bar.pending
        assert len(server.requests) == 13
    finally:
        server.close()
    assert window.isVisible() and window.start_button.isEnabled()
    assert not window.controller.running
    window.close()


def test_auto_mode_pauses_a_runaway_and_says_why(
    qtbot: QtBot, xdisplay: str, tmp_path: Path
) -> None:
    nowhere = Reply(xml_call(action="left_click", coordinate=mp((1800, 1000))))  # empty root
    server = ScriptedServer([nowhere, nowhere, nowhere, nowhere])
    window = open_window(qtbot, tmp_path, endpoint=server.url, approval="auto")
    asked: list[ApprovalRequest] = []
    window.controller.approval_requested.connect(asked.append)
    panel = window.panel

    def act() -> None:
        qtbot.waitUntil(lambda: panel.pending, timeout=20000)
        assert [r.step for r in asked] == [2]  # the third identical click on an unchanged screen
        assert not panel.attention_label.isHidden()
        assert panel.attention_label.text().startswith("Paused: the same action 3 times")
        qtbot.mouseClick(panel.stop_button, Qt.MouseButton.LeftButton)

    try:
        result = run_to_end(qtbot, window, act)
    finally:
        server.close()
    assert result.outcome == "stopped" and len(server.requests) == 3
    assert "paused: the same action 3 times" in window.log_view.toPlainText()
    steps = steps_of(Path(result.run_dir))
    assert [s["decision"]["by"] for s in steps] == ["auto", "auto", "user"]
    assert steps[2]["runaway"]["repeats"] == 3 and steps[2]["execution"] is None
    window.close()
