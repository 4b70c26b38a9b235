"""Is the screen where an action lands still what the decision was made on? Pure, over frames.

An action is decided on a screenshot that is seconds old (the model thought, a person looked).
Right before it runs, the loop grabs the screen again and compares the two frames only where
the action acts: a square around each point a click, drag or scroll touches, the focused window
for keys and typing. Changes elsewhere (a clock, a progress bar in another window) never count.

Thresholds, all in logical screen pixels (scaled by the monitor's scale squared on HiDPI):
- POINT_RADIUS_PX = 48: a 96x96 square, larger than any button, icon or list row a click aims
  at, so a dialog, menu or reflow that moves the target away is seen, while a clock or spinner
  a few widgets away is not.
- CARET_PX = 64: changes this small never count anywhere. A text caret is 1-3 px by up to
  24 px (<= 72 px over its two states, usually 20-40); the pointer is not in X11 grabs.
- POINT_FRACTION = 0.03 of the square (276 px of 9,216): a caret, a 16x16 spinner (256 px)
  or a pointer drawn by a capture backend that includes it (~130 px, twice if it moved) stay
  below; a window, menu or tooltip over the target, or a list scrolled by a row, are far above.
- WINDOW_FRACTION = 0.01 of the focused window (or of the screen when the window is unknown:
  20,736 px at 1920x1080): a clock or a progress bar inside it stays below, a dialog (400x200
  = 80,000 px) or a page that reflows is above.
- CHANNEL_TOLERANCE = 16 levels a channel: lossy remote desktops and dithering shift pixels by
  a few levels; anything a person would call a change moves them far more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from actions.screen import CoordinateSpace, Frame, Monitor, model_to_screen, screen_to_image
from actions.types import Action, Point, action_points

POINT_RADIUS_PX = 48
CARET_PX = 64
POINT_FRACTION = 0.03
WINDOW_FRACTION = 0.01
CHANNEL_TOLERANCE = 16
# A stale verdict is confirmed after the screen settles (at most this long): a change that is
# gone by then (our own window being hidden after an approval, a repaint under way) does not
# hold the action back; a dialog or a reflow is still there.
CONFIRM_MAX_S = 0.3

# left, top, width, height: global screen (input) coordinates for windows, frame pixels for areas.
Rect = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class Area:
    """One place an action depends on, in the frame's pixels, and the change it tolerates."""

    rect: Rect
    what: str
    tolerance_px: int

    def to_json(self) -> dict[str, object]:
        """As recorded in steps.jsonl."""
        return {"what": self.what, "rect": list(self.rect), "tolerance_px": self.tolerance_px}


@dataclass(frozen=True, slots=True)
class Change:
    """How many pixels of one area differ between the decision's frame and the live one."""

    area: Area
    changed_px: int

    @property
    def stale(self) -> bool:
        """Whether the change is more than the area tolerates."""
        return self.changed_px > self.area.tolerance_px

    def to_json(self) -> dict[str, object]:
        """As recorded in steps.jsonl."""
        return {**self.area.to_json(), "changed_px": self.changed_px, "stale": self.stale}


def action_areas(
    action: Action, space: CoordinateSpace, monitor: Monitor, window: Rect | None = None
) -> list[Area]:
    """Where this action acts, in the monitor's frame pixels; empty when it touches nothing.

    window is the focused window in global screen coordinates (None: unknown, the whole
    monitor stands in for it, with the same fraction, so a clock still does not count).
    Scrolls without a point act where the pointer is, which the frame does not show: they
    are checked like keys, against the focused window.
    """
    points = action_points(action)
    if points:
        return [_point_area(p, space, monitor) for p in points]
    if action.spec.focus:
        return [_window_area(window, monitor)]
    return []  # wait, terminate, answer: nothing on the screen to go stale


def _scaled(px: float, monitor: Monitor) -> int:
    """A count of logical pixels as captured pixels (HiDPI captures have scale**2 as many)."""
    return max(1, round(px * monitor.scale * monitor.scale))


def _point_area(point: Point, space: CoordinateSpace, monitor: Monitor) -> Area:
    sx, sy = model_to_screen(point, space, monitor)
    r = POINT_RADIUS_PX
    rect = _to_frame((sx - r, sy - r, 2 * r, 2 * r), monitor)
    area = rect[2] * rect[3]
    tolerance = max(_scaled(CARET_PX, monitor), int(POINT_FRACTION * area))
    return Area(rect, f"around ({sx}, {sy})", tolerance)


def _window_area(window: Rect | None, monitor: Monitor) -> Area:
    whole = (monitor.left, monitor.top, monitor.width, monitor.height)
    rect = _to_frame(window if window is not None else whole, monitor)
    if rect[2] * rect[3] == 0:  # the focused window is on another monitor: watch this one
        window, rect = None, _to_frame(whole, monitor)
    what = "the focused window" if window is not None else "the screen (focused window unknown)"
    tolerance = max(_scaled(CARET_PX, monitor), int(WINDOW_FRACTION * rect[2] * rect[3]))
    return Area(rect, what, tolerance)


def _to_frame(rect: Rect, monitor: Monitor) -> Rect:
    """A global screen rectangle as pixels of the monitor's frame, clipped to it."""
    x0, y0 = screen_to_image((rect[0], rect[1]), monitor)
    x1, y1 = screen_to_image((rect[0] + rect[2], rect[1] + rect[3]), monitor)
    fw, fh = round(monitor.width * monitor.scale), round(monitor.height * monitor.scale)
    left, top = max(0, int(x0)), max(0, int(y0))
    right, bottom = min(fw, int(x1)), min(fh, int(y1))
    return left, top, max(0, right - left), max(0, bottom - top)


def changed_pixels(before: Frame, after: Frame, rect: Rect) -> int:
    """Pixels of rect (frame pixels) whose colour moved more than CHANNEL_TOLERANCE."""
    import numpy as np

    left, top, width, height = rect
    if width <= 0 or height <= 0:
        return 0
    if (before.width, before.height) != (after.width, after.height):
        return width * height  # the monitor changed size: everything is different
    a = np.frombuffer(before.rgb, np.uint8).reshape(before.height, before.width, 3)
    b = np.frombuffer(after.rgb, np.uint8).reshape(after.height, after.width, 3)
    a = a[top : top + height, left : left + width]
    b = b[top : top + height, left : left + width]
    if np.array_equal(a, b):
        return 0
    # |a - b| in uint8 without widening, channels ORed as contiguous columns (numpy's
    # any(axis=2) is ~10x slower): a whole 1080p frame in under 10 ms.
    delta = np.maximum(a, b)
    delta -= np.minimum(a, b)
    over = (delta > CHANNEL_TOLERANCE).view(np.uint8).reshape(-1, 3)
    return int(np.count_nonzero(over[:, 0] | over[:, 1] | over[:, 2]))


def compare(before: Frame, after: Frame, areas: Sequence[Area]) -> list[Change]:
    """Each area's change between the decision's frame and the live one."""
    return [Change(area, changed_pixels(before, after, area.rect)) for area in areas]


def stale_changes(changes: Sequence[Change]) -> list[Change]:
    """The changes that make the action stale (empty: run it)."""
    return [c for c in changes if c.stale]


def describe_changes(changes: Sequence[Change]) -> str:
    """One line for the model and the log: where the screen changed."""
    return "; ".join(f"{c.area.what}: {c.changed_px} pixels changed" for c in changes)
