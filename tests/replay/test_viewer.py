"""The replay viewer (offscreen Qt): stepping, search, and the overlay at the mapped point."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QRectF, Qt

from agent.recording import read_run
from agent.replay import step_geometry
from tests.replay.conftest import Made
from ui.overlay import model_to_view


def test_viewer_steps_searches_and_draws_the_overlay_at_the_mapped_point(
    qtbot: Any, made: Made
) -> None:
    from ui.replay_view import ReplayView

    run = read_run(made.dir)
    view = ReplayView(run)
    qtbot.addWidget(view)
    assert view.timeline.count() == 6 and view.timeline.currentRow() == 0
    view.go(1)
    assert view.timeline.currentRow() == 1
    assert "tool call" in view.details.toPlainText()  # step 2's parse error
    qtbot.mouseClick(view.prev_button, Qt.MouseButton.LeftButton)
    assert view.timeline.currentRow() == 0
    # Step 1 clicked (500, 500): the overlay is drawn where the one mapping puts it.
    geometry = step_geometry(run.records[0])
    assert geometry is not None
    point = model_to_view(
        (500.0, 500.0),
        space=geometry[0],
        monitor=geometry[1],
        target=QRectF(0, 0, 320, 200),
        image_size=(320, 200),
    )
    image = view.current_image
    plain = image.pixelColor(10, 10)
    near = [
        image.pixelColor(int(point.x()) + dx, int(point.y()) + dy)
        for dx in range(-12, 13)
        for dy in range(-12, 13)
    ]
    assert any(c != plain and c.red() != c.green() for c in near)  # coloured marks there
    view.search.setText("edited <i>")
    visible = [r for r in range(6) if not view.timeline.item(r).isHidden()]
    assert visible == [2]
