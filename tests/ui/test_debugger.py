"""The debugger (offscreen Qt): every recorded field shown, stepping, search, breakpoints, close."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QRectF, Qt

from agent.recording import read_run
from agent.replay import step_geometry
from tests.replay.conftest import Made, make_recording
from ui.debugger import Debugger
from ui.overlay import model_to_view


def test_each_step_shows_thinking_output_parse_decision_timings_and_tokens(
    qtbot: Any, tmp_path: Path
) -> None:
    made: Made = make_recording(tmp_path / "runs")
    view = Debugger(read_run(made.dir), backend_factory=None)
    qtbot.addWidget(view)
    f = view.details.fields
    assert view.position.text() == "Step 1 of 6"
    assert f["Action"].text() == "Click at (500, 500)"
    assert f["Parse"].text().startswith("one valid call: ")
    assert f["Decision"].text() == "approved automatically"
    assert f["Executed"].text().startswith('{"action": "left_click"')
    assert "model " in f["Timings"].text() and " s" in f["Timings"].text()
    assert "1200 → 30 tokens" in f["Timings"].text()
    assert "prompt 1200" in f["Tokens"].text() and "completion 30" in f["Tokens"].text()
    assert view.details.thinking.toPlainText().startswith("Click the middle. <script>")
    assert "<tool_call>" in view.details.raw.toPlainText()  # raw output, as recorded
    assert "save the file" in view.details.prompt.toPlainText()
    assert not view.ask_button.isEnabled()  # no model to ask

    view.go(1)  # the invalid output
    assert f["Action"].text() == "no valid action"
    assert f["Parse"].text().startswith("error: no tool call")
    assert view.details.thinking.toPlainText() == "I am not sure what to do."
    view.go(1)  # the edited typing
    assert f["Decision"].text() == "edited by you: fix the text"
    assert "edited <i>" in f["Executed"].text()
    view.go(1)
    assert f["Decision"].text() == "rejected by you: not now"
    assert f["Executed"].text() == "nothing"
    assert view.back_button.isEnabled()  # there are earlier steps
    view.go(10)  # beyond the end: stays
    assert view.position.text() == "Step 4 of 6"


def test_the_overlay_is_drawn_at_the_mapped_point_in_the_scaled_picture(
    qtbot: Any, tmp_path: Path
) -> None:
    made = make_recording(tmp_path / "runs")
    run = read_run(made.dir)
    view = Debugger(run, backend_factory=None)
    qtbot.addWidget(view)
    view.resize(1280, 720)
    view.show()
    qtbot.waitExposed(view)
    target = view.view.target_rect()
    assert target.width() <= view.view.width() + 0.5  # scaled to fit, never cut off
    assert target.height() <= view.view.height() + 0.5
    geometry = step_geometry(run.records[0])
    assert geometry is not None
    point = model_to_view(
        (500.0, 500.0),
        space=geometry[0],
        monitor=geometry[1],
        target=QRectF(target),
        image_size=(320, 200),
    )
    image = view.view.grab().toImage()
    near = [
        image.pixelColor(int(point.x()) + dx, int(point.y()) + dy)
        for dx in range(-12, 13)
        for dy in range(-12, 13)
    ]
    assert any(c.red() > 200 and c.blue() > 120 and c.green() < 80 for c in near)  # magenta


def test_search_breakpoints_and_closing_keys(qtbot: Any, tmp_path: Path) -> None:
    made = make_recording(tmp_path / "runs")
    breakpoints: set[int] = {2}
    view = Debugger(read_run(made.dir), breakpoints=breakpoints, backend_factory=None)
    qtbot.addWidget(view)
    timeline = view.timeline
    assert timeline.item(1).checkState() == Qt.CheckState.Checked  # the caller's set shown
    with qtbot.waitSignal(timeline.breakpoints_changed) as changed:
        timeline.item(4).setCheckState(Qt.CheckState.Checked)
    assert breakpoints == {2, 5} and changed.args == [frozenset({2, 5})]
    timeline.item(1).setCheckState(Qt.CheckState.Unchecked)
    assert breakpoints == {5}
    view.search.setText("edited <i>")
    assert [r for r in range(6) if not timeline.item(r).isHidden()] == [2]
    view.search.setText("")
    for keys in ("ctrl+w", "esc"):
        view.show()
        view.activateWindow()
        qtbot.waitUntil(view.isActiveWindow, timeout=2000)
        key = Qt.Key.Key_W if keys == "ctrl+w" else Qt.Key.Key_Escape
        mods = (
            Qt.KeyboardModifier.ControlModifier
            if keys == "ctrl+w"
            else Qt.KeyboardModifier.NoModifier
        )
        qtbot.keyClick(view.timeline, key, mods)
        qtbot.waitUntil(lambda: not view.isVisible(), timeout=2000)
