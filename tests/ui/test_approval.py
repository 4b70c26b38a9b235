"""Each approval control gives the right Decision; edits go through the one mapping; the bridge."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QImage
from pytestqt.qtbot import QtBot

from actions.screen import CoordinateSpace, Monitor, image_to_screen, model_to_screen
from actions.types import Action, Key, LeftClick, LeftClickDrag, Type
from agent.approval import ApprovalRequest, Decision
from agent.risk import SAFE, Risk
from ui.run_controller import GuiApprover
from ui.widgets import ApprovalPanel, LiveView

REL = CoordinateSpace.relative()
MON = Monitor(1, 0, 0, 1920, 1080, primary=True)


def make_panel(qtbot: QtBot, action: Action) -> tuple[ApprovalPanel, LiveView, list[Decision]]:
    view = LiveView()
    panel = ApprovalPanel(view)
    qtbot.addWidget(view)
    qtbot.addWidget(panel)
    view.resize(960, 540)
    view.show()
    panel.show()
    img = QImage(1920, 1080, QImage.Format.Format_RGB32)
    img.fill(QColor(200, 200, 200))
    view.set_frame(img, MON)
    decisions: list[Decision] = []
    panel.decided.connect(decisions.append)
    panel.set_request(ApprovalRequest(0, action, "thinking", REL))
    return panel, view, decisions


@pytest.mark.parametrize(
    ("button", "expected"),
    [
        ("approve_button", Decision("approve")),
        ("skip_button", Decision("skip")),
        ("stop_button", Decision("stop")),
        ("reject_button", Decision("reject", note="use the menu instead")),
    ],
)
def test_each_button_gives_its_decision(qtbot: QtBot, button: str, expected: Decision) -> None:
    panel, _, decisions = make_panel(qtbot, LeftClick((500, 500)))
    if expected.kind == "reject":
        qtbot.keyClicks(panel.note, "use the menu instead")
    qtbot.mouseClick(getattr(panel, button), Qt.MouseButton.LeftButton)
    assert decisions == [expected]
    assert not panel.pending and not panel.approve_button.isEnabled()
    qtbot.mouseClick(panel.approve_button, Qt.MouseButton.LeftButton)
    assert len(decisions) == 1  # one decision per request


def test_clicking_the_screenshot_edits_the_point_through_the_mapping(qtbot: QtBot) -> None:
    panel, view, decisions = make_panel(qtbot, LeftClick((500, 500)))
    target = view.target_rect()
    click = QPoint(int(target.x() + 301), int(target.y() + 123))
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=click)
    assert "edited to" in panel.title.text()
    qtbot.mouseClick(panel.approve_button, Qt.MouseButton.LeftButton)
    [decision] = decisions
    assert decision.kind == "edit" and isinstance(decision.action, LeftClick)
    scale = 1920 / target.width()
    image_px = ((click.x() - target.x()) * scale, (click.y() - target.y()) * scale)
    assert model_to_screen(decision.action.coordinate, REL, MON) == image_to_screen(image_px, MON)


def test_dragging_near_a_drags_start_moves_the_start(qtbot: QtBot) -> None:
    panel, view, decisions = make_panel(qtbot, LeftClickDrag((800, 800), (200, 200)))
    start = view._to_view((200, 200))
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=start.toPoint())
    to = QPointF(start.x() + 40, start.y() + 30).toPoint()
    qtbot.mouseMove(view, to)
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=to)
    panel.approve()
    [decision] = decisions
    assert isinstance(decision.action, LeftClickDrag)
    assert decision.action.coordinate == (800, 800)
    assert decision.action.start_coordinate is not None
    assert decision.action.start_coordinate[0] > 200 and decision.action.start_coordinate[1] > 200


def test_text_and_keys_are_edited_in_place(qtbot: QtBot) -> None:
    panel, _, decisions = make_panel(qtbot, Type("hello"))
    assert panel.text_edit.isVisible() and panel.text_edit.toPlainText() == "hello"
    panel.text_edit.setPlainText("héllo\nwörld")
    panel.approve()
    assert decisions == [Decision("edit", action=Type("héllo\nwörld"))]
    panel, _, decisions = make_panel(qtbot, Key(("ctrl", "a")))
    panel.text_edit.setPlainText("ctrl + shift+ End")
    panel.approve()
    assert decisions == [Decision("edit", action=Key(("ctrl", "shift", "End")))]
    panel, _, decisions = make_panel(qtbot, Key(("ctrl", "a")))
    panel.approve()  # untouched: a plain approval
    assert decisions == [Decision("approve")]


def test_the_bridge_blocks_the_loop_thread_not_the_gui(qtbot: QtBot) -> None:
    panel, _, _ = make_panel(qtbot, LeftClick((1, 1)))
    panel.clear()
    stop = threading.Event()
    asked: list[ApprovalRequest] = []
    approver = GuiApprover("guarded", stop, asked.append)
    results: list[Decision] = []
    click = ApprovalRequest(0, LeftClick((10, 10)), "", REL)
    risky = Risk("risky", "typing a command that looks dangerous: recursive or forced delete")
    typing = ApprovalRequest(1, Type("rm -rf"), "", REL, risk=risky)
    # Guarded lets safe actions through, typing included; risky ones wait for the user.
    assert approver(click) == Decision("approve", by="guarded")
    assert approver(replace(typing, risk=SAFE)) == Decision("approve", by="guarded")
    worker = threading.Thread(target=lambda: results.append(approver(typing)))
    worker.start()
    qtbot.waitUntil(lambda: asked == [typing], timeout=2000)
    assert results == []  # waiting for the user; nothing runs before the decision
    panel.decided.connect(approver.answer)
    panel.set_request(typing)
    qtbot.keyClicks(panel.note, "no")
    qtbot.mouseClick(panel.reject_button, Qt.MouseButton.LeftButton)
    worker.join(timeout=2)
    assert results == [Decision("reject", note="no")]

    # A stop while waiting ends the wait with a stop decision.
    results.clear()
    worker = threading.Thread(target=lambda: results.append(approver(typing)))
    worker.start()
    qtbot.waitUntil(lambda: len(asked) == 2, timeout=2000)
    stop.set()
    worker.join(timeout=2)
    assert results and results[0].kind == "stop"


def test_step_mode_asks_for_everything_auto_for_nothing() -> None:
    asked: list[Any] = []
    stop = threading.Event()
    auto = GuiApprover("auto", stop, asked.append)
    assert auto(ApprovalRequest(0, Type("x"), "", REL)) == Decision("approve", by="auto")
    step = GuiApprover("ask", stop, asked.append)
    step.answer(Decision("skip"))  # stale: dropped when the next request is asked
    threading.Timer(0.1, lambda: step.answer(Decision("approve"))).start()
    assert step(ApprovalRequest(0, LeftClick((1, 1)), "", REL)) == Decision("approve")
    assert len(asked) == 1


def test_breakpoint_pauses_auto_mode_and_continue_resumes_it(qtbot: QtBot) -> None:
    from agent.approval import Breakpoints

    panel, view, _ = make_panel(qtbot, LeftClick((1, 1)))
    panel.clear()
    assert not panel.continue_button.isVisible()
    stop = threading.Event()
    asked: list[ApprovalRequest] = []
    bp = Breakpoints(frozenset({2}))
    approver = GuiApprover("auto", stop, asked.append, breakpoints=bp)
    panel.decided.connect(approver.answer)
    results: list[Decision] = []

    def step(i: int) -> None:
        results.append(approver(ApprovalRequest(i, LeftClick((10 * i, 10)), "", REL)))

    step(0)
    assert results == [Decision("approve", by="auto")] and asked == []
    for i, press in [(1, panel.approve_button), (2, panel.continue_button)]:
        worker = threading.Thread(target=step, args=(i,))
        worker.start()
        qtbot.waitUntil(lambda i=i: len(asked) == i, timeout=2000)
        assert len(results) == i  # paused: nothing runs before the decision
        panel.set_request(asked[-1])
        label = "step 2" if i == 1 else "stepping"
        assert f"breakpoint: {label}" in panel.title.text() and view.banner.endswith(label)
        assert panel.continue_button.isVisible() and panel.continue_button.isEnabled()
        qtbot.mouseClick(press, Qt.MouseButton.LeftButton)
        worker.join(timeout=2)
        assert approver.stepping == (i == 1)  # Approve keeps stepping, Continue leaves it
    assert results[1] == Decision("approve", breakpoint="step 2")
    assert results[2] == Decision("approve", breakpoint="stepping", resume=True)
    assert view.banner == "" and not panel.continue_button.isVisible()
    step(3)  # after Continue: auto again, nobody asked
    assert results[3] == Decision("approve", by="auto") and len(asked) == 2
