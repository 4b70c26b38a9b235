"""Model text in the app's widgets is shown literally: never rendered as HTML, controls visible."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from PySide6.QtCore import Qt
from PySide6.QtGui import Qt as QtGui
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QWidget
from pytestqt.qtbot import QtBot

from actions.screen import CoordinateSpace, Frame, Monitor
from actions.types import Answer, Type
from agent.approval import ApprovalRequest, Decision
from agent.events import (
    ActionProposed,
    BackendFailed,
    DecisionMade,
    OutputInvalid,
    StepStarted,
    TextStreamed,
)
from agent.protocol import Proposal
from agent.recording import Recording
from agent.risk import Risk
from ui.app import MainWindow
from ui.debugger import Debugger
from ui.settings import AppSettings

HTML = "<b>bold</b><img src=x onerror=alert(1)><a href='http://evil/'>click</a>"
HOSTILE = f"{HTML} \x1b]52;c;cm0K\x07 \u202ecba\u202c z\u200bw"
LITERAL = ("<b>bold</b>", "<img src=x", "<a href='http://evil/'>")


def shown(text: str, fmt: Qt.TextFormat) -> str:
    """What a label or tooltip with this text and format displays, as plain text."""
    rich = fmt == Qt.TextFormat.RichText or (
        fmt == Qt.TextFormat.AutoText and QtGui.mightBeRichText(text)
    )
    if not rich:
        return text
    doc = QTextDocument()
    doc.setHtml(text)
    return doc.toPlainText()


def displayed(root: QWidget) -> str:
    """Everything the widgets under root display: labels, tooltips, plain text views."""
    parts: list[str] = []
    for label in root.findChildren(QLabel):
        parts.append(shown(label.text(), label.textFormat()))
    for widget in [root, *root.findChildren(QWidget)]:
        if widget.toolTip():
            parts.append(shown(widget.toolTip(), Qt.TextFormat.AutoText))
    for edit in root.findChildren(QPlainTextEdit):
        parts.append(edit.toPlainText())
    return "\n".join(parts)


def check(text: str) -> None:
    """The HTML is there literally; no control, bidi or zero-width character is left."""
    for piece in LITERAL:
        assert piece in text, piece
    assert "\\x1b]52;c;" in text and "\\u202e" in text and "\\u200b" in text
    assert not any(c in text for c in "\x1b\x07\u202e\u202c\u200b")


def test_the_main_window_shows_model_text_as_text(qtbot: QtBot, tmp_path: Path) -> None:
    window = MainWindow(
        AppSettings(task="t"), settings_file=tmp_path / "s.toml", global_hotkey=False
    )
    qtbot.addWidget(window)
    monitor = Monitor(1, 0, 0, 320, 200, primary=True)
    frame = Frame(bytes(320 * 200 * 3), 320, 200, monitor, 0.0)
    space = CoordinateSpace.relative()
    action = Type(HOSTILE)
    risk = Risk("risky", f"typing {HOSTILE!s}", "test")
    window.on_event(StepStarted(0))
    window.on_event(TextStreamed(0, "reasoning", HOSTILE))
    proposal = Proposal(action, None, HOSTILE, HOSTILE)
    window.on_event(ActionProposed(0, proposal, space, frame, risk))
    window.on_approval(ApprovalRequest(0, action, HOSTILE, space, risk=risk, attention=HOSTILE))
    text = displayed(window)
    check(text)
    # The status line and its tooltip, the approval card's title, risk and pause lines.
    panel = window.panel
    for label in (window.step_label, panel.title, panel.risk_label, panel.attention_label):
        assert label.textFormat() == Qt.TextFormat.PlainText
        assert "<b>bold</b>" in label.text()
    # Approving unedited runs the model's action, not the escaped text shown in the editor.
    decided: list[Decision] = []
    panel.decided.connect(decided.append)
    panel.approve()
    assert decided and decided[0].kind == "approve"

    window.on_event(OutputInvalid(1, HOSTILE))
    window.on_event(BackendFailed(1, HOSTILE))
    note = f"blocked: {HOSTILE}"
    window.on_event(DecisionMade(1, Decision("reject", note=note, by="rules"), risk))
    window.recover_bar.ask(HOSTILE)
    check(displayed(window))
    assert window.recover_bar.message.textFormat() == Qt.TextFormat.PlainText
    result = SimpleNamespace(
        outcome="answered", message=HOSTILE, answer=HOSTILE, run_dir=str(tmp_path)
    )
    window.on_finished(result)
    check(displayed(window))
    check(window.statusBar().currentMessage() + window.bar.status.text())
    assert window.bar.status.textFormat() == Qt.TextFormat.PlainText
    window.close()


def test_the_replay_viewer_shows_recorded_model_text_as_text(qtbot: QtBot, tmp_path: Path) -> None:
    step = {
        "index": 0,
        "thinking": HOSTILE,
        "raw_output": HOSTILE,
        "parse_error": HOSTILE,
        "action": None,
        "timings": {"total_s": 1.0},
    }
    answer = {"index": 1, "thinking": HOSTILE, "action": {"action": "answer", "text": HOSTILE}}
    recording = Recording(tmp_path, {"task": HOSTILE, "steps": 2}, [step, answer])
    view = Debugger(recording)
    qtbot.addWidget(view)
    view.show_step(0)
    tips = [view.timeline.item(i).toolTip() for i in range(view.timeline.count())]
    text = displayed(view) + "\n".join(shown(t, Qt.TextFormat.AutoText) for t in tips)
    check(text)
    assert "\u202e" not in view.windowTitle() and "\x1b" not in view.windowTitle()
    assert Answer(HOSTILE).text == HOSTILE  # the recording itself is untouched
    view.close()
