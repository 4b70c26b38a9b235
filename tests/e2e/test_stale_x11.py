"""The stale-screen corpus on a real X server: deskpilot never clicks a target that changed.

Each scenario of tests/support/stale_corpus.py runs the real loop (real screen, mouse and
app; the model is a stand-in that reads its screenshot and thinks for a while) against
tests/apps/stale_app.py. Counts only: whatever the timing, a click on the cover means the loop
acted on a changed target, and a step held back before anything covered the target was held
back wrongly.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.stale_corpus import SCENARIOS, Scenario, run_deskpilot


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_no_action_on_a_changed_target_none_held_back_wrongly(
    xdisplay: str, tmp_path: Path, scenario: Scenario
) -> None:
    result = run_deskpilot(xdisplay, scenario, tmp_path)
    assert result["clicks"][:1] == ["arm"], result
    assert result["executed_on_changed_target"] == 0, result
    assert result["wrongly_held_back"] == 0, result
    if scenario.cover_after_s == 0:
        # Nothing covers the target: the clock, progress bar and caret must not block it.
        assert result["target_clicked"] == 1 and result["held_back"] == 0, result
        assert result["outcome"] == "success", result


def test_the_focused_window_is_where_keys_are_checked(xdisplay: str, tmp_path: Path) -> None:
    from actions.window import FocusProbe
    from tests.support.stale_corpus import GEOMETRY, start_stale_app
    from tests.support.x11 import move_pointer

    app = start_stale_app(xdisplay, tmp_path / "app.jsonl", SCENARIOS[-1])
    probe = FocusProbe()
    try:
        # No window manager: keys go to the window under the pointer.
        move_pointer(xdisplay, GEOMETRY[0] + 300, GEOMETRY[1] + 300)
        assert probe.focused_rect() == GEOMETRY
        move_pointer(xdisplay, 1800, 1000)  # the root: nothing is focused
        assert probe.focused_rect() is None
    finally:
        probe.close()
        app.close()
