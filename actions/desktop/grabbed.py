"""A screen that grabs whole RGB frames some other way (Wayland screencopy, a portal stream)."""

from __future__ import annotations

import threading
import time

from actions.screen import (
    SETTLE_INTERVAL_S,
    SETTLE_TOLERANCE_PX,
    Frame,
    Monitor,
    frame_difference,
)


class GrabbedScreen:
    """capture() and wait_until_stable() over a `_grab()` that returns (width, height, rgb)."""

    monitor: Monitor

    def _grab(self) -> tuple[int, int, bytes]:
        """One frame of the monitor: its pixel size and RGB bytes."""
        raise NotImplementedError

    def capture(self) -> Frame:
        """Grab the monitor; the scale is read off the captured size (HiDPI, fractional)."""
        width, height, rgb = self._grab()
        m = self.monitor
        scale = width / m.width if m.width else 1.0
        if abs(scale - m.scale) > 1e-6:
            m = Monitor(m.index, m.left, m.top, m.width, m.height, scale, m.primary, m.name)
            self.monitor = m
        return Frame(rgb, width, height, m, time.time())

    def wait_until_stable(
        self,
        *,
        min_s: float,
        max_s: float,
        cancel: threading.Event | None = None,
        interval_s: float = SETTLE_INTERVAL_S,
        tolerance_px: int = SETTLE_TOLERANCE_PX,
    ) -> float:
        """Wait until two grabs in a row differ in at most tolerance_px pixels (min_s..max_s)."""
        start = time.monotonic()
        previous = self._grab()[2]
        while True:
            elapsed = time.monotonic() - start
            if elapsed >= max_s:
                return elapsed
            pause = max(0.0, min(interval_s, max_s - elapsed))
            if cancel is not None:
                if cancel.wait(pause):
                    return time.monotonic() - start
            else:
                time.sleep(pause)
            current = self._grab()[2]
            still = frame_difference(previous, current, bytes_per_pixel=3) <= tolerance_px
            previous = current
            if still and time.monotonic() - start >= min_s:
                return time.monotonic() - start
