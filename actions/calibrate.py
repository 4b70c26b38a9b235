"""Calibration self-test: show targets, find them in a screenshot, click them as the agent would.

One override-redirect window covers the whole X screen (every monitor, and any gap between
them), so wherever a click lands it is reported with its exact position. Each target is a
square of its own colour centred on a pixel. Per target the test checks two things:

- seen: where the target shows in the captured frame of its monitor, against where the
  monitor's geometry says it should be (a wrong geometry or a scaled capture shows here);
- clicked: the model point the agent would name for what it saw (0-1000 of the frame), sent
  through the executor's mapping (model_to_screen) and the real input path, against where the
  target is (a scale or monitor mismatch on the input side shows here).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from actions.screen import CoordinateSpace, Frame, Monitor, Screen
from actions.types import LeftClick

__all__ = ["TOLERANCE_PX", "MonitorReport", "TargetResult", "calibrate", "format_report"]

TOLERANCE_PX = 2.0
_MARK_HALF = 5  # a target is an 11x11 square centred on its pixel
_INSET = 0.08  # targets sit this far in from the corners (of the monitor's size)
_EVENT_WAIT_S = 3.0
_SEEN_WAIT_S = 3.0
# Distinct pure colours, far apart even after a 16-bit or 30-bit quantisation.
_COLOURS = [(255, 0, 255), (0, 255, 255), (255, 255, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255)]
_PLACES = ["top-left", "top-right", "bottom-left", "bottom-right", "centre"]


@dataclass(frozen=True, slots=True)
class TargetResult:
    """One target: where it is, where it was seen and clicked, and where the click landed."""

    place: str
    target: tuple[int, int]
    seen: tuple[float, float] | None  # global pixel the capture shows it at (None: not found)
    model: tuple[float, float] | None  # the 0-1000 point the agent would name
    landed: tuple[int, int] | None  # where the click arrived (None: nothing arrived)

    @property
    def seen_error(self) -> float | None:
        """Distance in pixels between where the target is and where the capture shows it."""
        if self.seen is None:
            return None
        return math.dist(self.seen, self.target)

    @property
    def click_error(self) -> float | None:
        """Distance in pixels between the target and where the click landed."""
        if self.landed is None:
            return None
        return math.dist(self.landed, self.target)


@dataclass(frozen=True, slots=True)
class MonitorReport:
    """The targets of one monitor and what went wrong, if anything."""

    monitor: Monitor  # as RandR reports it (where the targets are drawn)
    used: Monitor  # as the capture and the mapping used it (differs when overridden)
    results: tuple[TargetResult, ...]
    hints: tuple[str, ...]

    @property
    def passed(self) -> bool:
        """Every target seen and hit within the tolerance."""
        return all(
            r.seen_error is not None
            and r.seen_error <= TOLERANCE_PX
            and r.click_error is not None
            and r.click_error <= TOLERANCE_PX
            for r in self.results
        )


def targets(monitor: Monitor) -> list[tuple[str, tuple[int, int]]]:
    """Targets near the corners and at the centre of a monitor, in global pixels."""
    dx = max(_MARK_HALF + 2, round(monitor.width * _INSET))
    dy = max(_MARK_HALF + 2, round(monitor.height * _INSET))
    left, top = monitor.left, monitor.top
    right, bottom = left + monitor.width - 1, top + monitor.height - 1
    points = [
        (left + dx, top + dy),
        (right - dx, top + dy),
        (left + dx, bottom - dy),
        (right - dx, bottom - dy),
        (left + monitor.width // 2, top + monitor.height // 2),
    ]
    return list(zip(_PLACES, points, strict=True))


def calibrate(
    monitors: Sequence[Monitor],
    *,
    display: str | None = None,
    geometry: Callable[[Monitor], Monitor] | None = None,
    click_scale: float = 1.0,
    executor: Any = None,
) -> list[MonitorReport]:
    """Run the self-test on each monitor; `geometry` and `click_scale` simulate wrong settings.

    geometry(m) is the monitor the capture and the mapping use instead of m (a wrong
    --geometry); click_scale divides the monitor's size on the input side only (a desktop
    scale setting deskpilot does not know about).
    """
    from actions.executor import Executor

    own = executor is None
    ex = executor or Executor(display=display)
    screen = Screen(display=display)
    board = _Board(display, monitors)
    try:
        reports = []
        for monitor in monitors:
            used = geometry(monitor) if geometry is not None else monitor
            reports.append(_calibrate_one(monitor, used, click_scale, screen, ex, board))
        return reports
    finally:
        board.close()
        if own:
            ex.close()


def _calibrate_one(
    monitor: Monitor, used: Monitor, click_scale: float, screen: Screen, ex: Any, board: _Board
) -> MonitorReport:
    """Find the monitor's targets in a capture, click each, and read where the clicks landed."""
    screen.monitor = used
    places = targets(monitor)
    frame = _capture_showing(screen, board, monitor, len(places))
    click_monitor = used
    if click_scale != 1.0:
        click_monitor = replace(
            used,
            width=max(1, round(used.width / click_scale)),
            height=max(1, round(used.height / click_scale)),
        )
    results = []
    space = CoordinateSpace.relative()
    for i, (place, target) in enumerate(places):
        found = _find_colour(frame, _COLOURS[i % len(_COLOURS)])
        seen: tuple[float, float] | None = None
        model: tuple[float, float] | None = None
        landed: tuple[int, int] | None = None
        if found is not None:
            ix, iy = found
            # Image pixel -> global pixel through the frame's own scale (HiDPI).
            seen = (used.left + ix / frame.monitor.scale, used.top + iy / frame.monitor.scale)
            # What a model names: the point's share of the image, 0-1000, one decimal.
            model = (
                round((ix + 0.5) / frame.width * 1000, 1),
                round((iy + 0.5) / frame.height * 1000, 1),
            )
            board.drain()
            outcome = ex.execute(LeftClick(model), space=space, monitor=click_monitor)
            if outcome.ok:
                landed = board.wait_click()
        results.append(TargetResult(place, target, seen, model, landed))
    report = MonitorReport(monitor, used, tuple(results), ())
    return replace(report, hints=tuple(_hints(report, board.monitors)))


def _capture_showing(screen: Screen, board: _Board, monitor: Monitor, count: int) -> Frame:
    """A capture once the targets show (the window may need a moment to be drawn)."""
    deadline = time.monotonic() + _SEEN_WAIT_S
    while True:
        board.redraw(monitor)
        frame = screen.capture()
        found = sum(_find_colour(frame, c) is not None for c in _COLOURS[:count])
        if found == count or time.monotonic() > deadline:
            return frame
        time.sleep(0.05)


def _find_colour(frame: Frame, colour: tuple[int, int, int]) -> tuple[float, float] | None:
    """The centre (image pixels, pixel index) of the pixels of one colour; None when absent."""
    import numpy as np

    pixels = np.frombuffer(frame.rgb, np.uint8).reshape(frame.height, frame.width, 3)
    # A tolerance of 24 per channel survives a 16-bit display and colour management.
    close = np.all(np.abs(pixels.astype(np.int16) - np.array(colour, np.int16)) <= 24, axis=2)
    ys, xs = np.nonzero(close)
    if len(xs) == 0:
        return None
    return float(xs.mean()), float(ys.mean())


def _hints(report: MonitorReport, everyone: Sequence[Monitor]) -> list[str]:
    """Plain-words reasons for what is off, from the pattern of the errors."""
    hints: list[str] = []
    m, used = report.monitor, report.used
    unseen = [r for r in report.results if r.seen is None]
    if unseen:
        hints.append(
            f"{len(unseen)} target(s) did not show in the screenshot of {used.geometry()}: "
            "the capture is not the monitor (a wrong monitor or geometry; check "
            "`deskpilot monitors`)"
        )
    seen = [r for r in report.results if r.seen is not None]
    if seen and max(r.seen_error or 0.0 for r in seen) > TOLERANCE_PX:
        dx = sum(r.seen[0] - r.target[0] for r in seen if r.seen) / len(seen)
        dy = sum(r.seen[1] - r.target[1] for r in seen if r.seen) / len(seen)
        hints.append(
            f"the screenshot shows the targets {dx:+.0f},{dy:+.0f} px away from where the "
            f"monitor should be: the geometry used ({used.geometry()}) is not the monitor's "
            f"({m.geometry()}), or the desktop scales the capture"
        )
    landed = [r for r in report.results if r.landed is not None]
    if len(landed) < len(seen):  # only a seen target is clicked
        hints.append("some clicks never arrived: is input (XTEST) blocked, or a window grabbing?")
    elsewhere = [r for r in landed if r.landed and not _inside(r.landed, m)]
    if elsewhere:
        others = {_monitor_at(r.landed, everyone) for r in elsewhere if r.landed}
        names = ", ".join(
            sorted("a gap between monitors" if o is None else f"monitor {o}" for o in others)
        )
        hints.append(
            f"{len(elsewhere)} click(s) meant for monitor {m.index} landed on {names}: a wrong "
            "monitor (--monitor) or monitor layout"
        )
    off = [r for r in landed if (r.click_error or 0.0) > TOLERANCE_PX]
    if off:
        ratio = _scale_ratio(off, m)
        if ratio is not None and abs(ratio - 1.0) > 0.02:
            hints.append(
                f"clicks land at {ratio:.2f}x the distance from the monitor's origin: a display "
                f"scale setting of about {1 / ratio:.2f} that the mapping does not know "
                "(HiDPI: check the desktop's scale factor, Xft.dpi, GDK_SCALE/QT_SCALE_FACTOR)"
            )
        else:
            dx = sum(r.landed[0] - r.target[0] for r in off if r.landed) / len(off)
            dy = sum(r.landed[1] - r.target[1] for r in off if r.landed) / len(off)
            hints.append(
                f"clicks land {dx:+.0f},{dy:+.0f} px off: the monitor's origin used for input "
                "is not the one captured (a wrong monitor geometry or a panel offset)"
            )
    return hints


def _scale_ratio(results: Sequence[TargetResult], m: Monitor) -> float | None:
    """Landed distance from the origin over the target's, when that ratio is the same for all."""
    ratios = []
    for r in results:
        if r.landed is None:
            continue
        for axis in (0, 1):
            origin = m.left if axis == 0 else m.top
            want = r.target[axis] - origin
            if want > 20:  # too close to the origin to tell a ratio
                ratios.append((r.landed[axis] - origin) / want)
    if len(ratios) < 2 or max(ratios) - min(ratios) > 0.05:
        return None
    return sum(ratios) / len(ratios)


def _inside(point: tuple[int, int], m: Monitor) -> bool:
    return m.left <= point[0] < m.left + m.width and m.top <= point[1] < m.top + m.height


def _monitor_at(point: tuple[int, int], monitors: Sequence[Monitor]) -> int | None:
    return next((m.index for m in monitors if _inside(point, m)), None)


def format_report(reports: Sequence[MonitorReport]) -> str:
    """The per-monitor summary and per-target lines, with hints, as printed by the CLI."""
    lines = []
    for rep in reports:
        m = rep.monitor
        name = f" {m.name}" if m.name else ""
        primary = " (primary)" if m.primary else ""
        seen = [r.seen_error for r in rep.results if r.seen_error is not None]
        hit = [r.click_error for r in rep.results if r.click_error is not None]
        worst_seen = f"{max(seen):.1f} px" if seen else "-"
        worst_hit = f"{max(hit):.1f} px" if hit else "-"
        verdict = "ok" if rep.passed else "OFF"
        lines.append(
            f"monitor {m.index}{name} {m.geometry()}{primary}: {verdict}: "
            f"click error max {worst_hit}, screenshot error max {worst_seen}"
        )
        for r in rep.results:
            model = f"({r.model[0]:g}, {r.model[1]:g})" if r.model else "not seen"
            landed = f"({r.landed[0]}, {r.landed[1]})" if r.landed else "nothing"
            err = f"{r.click_error:.1f} px" if r.click_error is not None else "-"
            lines.append(
                f"  {r.place:<12} target ({r.target[0]}, {r.target[1]})  model {model}  "
                f"landed {landed}  error {err}"
            )
        for hint in rep.hints:
            lines.append(f"  hint: {hint}")
    return "\n".join(lines)


class _Board:
    """One override-redirect window over the whole X screen: draws targets, reports clicks."""

    def __init__(self, display: str | None, monitors: Sequence[Monitor]) -> None:
        from Xlib import X
        from Xlib import display as xdisplay

        self._dpy: Any = xdisplay.Display(display)
        self._lock = threading.Lock()
        self.monitors = list(monitors)
        screen = self._dpy.screen()
        self._width, self._height = int(screen.width_in_pixels), int(screen.height_in_pixels)
        self._window = screen.root.create_window(
            0,
            0,
            self._width,
            self._height,
            0,
            screen.root_depth,
            X.InputOutput,
            X.CopyFromParent,
            background_pixel=screen.black_pixel,
            override_redirect=True,  # no window manager moves, frames or hides it
            event_mask=X.ButtonPressMask | X.ExposureMask,
        )
        self._window.set_wm_name("deskpilot calibration")
        colormap = screen.default_colormap
        self._gcs = [
            self._window.create_gc(foreground=colormap.alloc_color(r * 257, g * 257, b * 257).pixel)
            for r, g, b in _COLOURS
        ]
        self._grey = self._window.create_gc(
            foreground=colormap.alloc_color(0x6000, 0x6000, 0x6000).pixel
        )
        self._window.map()
        self._window.raise_window()
        self._dpy.sync()

    def redraw(self, current: Monitor) -> None:
        """Draw every monitor's outline and the current one's targets (colours are reused)."""
        with self._lock:
            self._window.raise_window()
            self._window.clear_area(0, 0, self._width, self._height)
            for m in self.monitors:
                self._window.rectangle(self._grey, m.left, m.top, m.width - 1, m.height - 1)
            for i, (_, (x, y)) in enumerate(targets(current)):
                size = 2 * _MARK_HALF + 1
                gc = self._gcs[i % len(self._gcs)]
                self._window.fill_rectangle(gc, x - _MARK_HALF, y - _MARK_HALF, size, size)
            self._dpy.sync()

    def drain(self) -> None:
        """Forget the events so far."""
        with self._lock:
            while self._dpy.pending_events():
                self._dpy.next_event()

    def wait_click(self) -> tuple[int, int] | None:
        """Where the next button press on the board landed (root pixels), or None in time."""
        import select

        from Xlib import X

        deadline = time.monotonic() + _EVENT_WAIT_S
        with self._lock:
            while True:
                while self._dpy.pending_events():
                    ev = self._dpy.next_event()
                    if ev.type == X.ButtonPress:
                        return int(ev.root_x), int(ev.root_y)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                select.select([self._dpy.fileno()], [], [], min(left, 0.05))

    def close(self) -> None:
        """Remove the window."""
        with self._lock:
            try:
                self._window.destroy()
                self._dpy.sync()
                self._dpy.close()
            except Exception:  # the server went first
                pass
