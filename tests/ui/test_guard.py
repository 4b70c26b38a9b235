"""The app's own windows: masked out of screenshots, and actions on them refused."""

from __future__ import annotations

from typing import Any

from actions.screen import CoordinateSpace, Frame, Monitor, screen_to_model
from actions.types import LeftClick, LeftClickDrag, Type
from tests.support.fakes import RecordingExecutor
from ui.guard import MASK_RGB, GuardedExecutor, mask_frame

MON = Monitor(1, 100, 50, 40, 30, scale=2.0)
REL = CoordinateSpace.relative()


def test_mask_paints_the_rect_in_captured_pixels() -> None:
    frame = Frame(bytes(80 * 60 * 3), 80, 60, MON, 0.0)
    masked = mask_frame(frame, [(110, 60, 5, 5)])  # logical 10..15 x 10..15 → pixels 20..30
    px = masked.rgb
    at = lambda x, y: tuple(px[(y * 80 + x) * 3 : (y * 80 + x) * 3 + 3])  # noqa: E731
    assert at(20, 20) == MASK_RGB and at(29, 29) == MASK_RGB
    assert at(30, 30) == (0, 0, 0) and at(19, 20) == (0, 0, 0)


def test_actions_on_the_bar_are_refused_others_run() -> None:
    inner: Any = RecordingExecutor()
    guard = GuardedExecutor(inner, lambda: [(110, 60, 5, 5)])
    on_bar = screen_to_model((112, 62), REL, MON)
    off_bar = screen_to_model((130, 70), REL, MON)
    refused = guard.execute(LeftClick(on_bar), space=REL, monitor=MON)
    assert not refused.ok and refused.error and "control bar" in refused.error
    drag = guard.execute(LeftClickDrag(off_bar, on_bar), space=REL, monitor=MON)
    assert not drag.ok
    assert guard.execute(LeftClick(off_bar), space=REL, monitor=MON).ok
    assert guard.execute(Type("x"), space=REL, monitor=MON).ok
    assert inner.done == [LeftClick(off_bar), Type("x")]
