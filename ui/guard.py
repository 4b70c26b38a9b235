"""Keeps the agent off the app's own windows: masks them in screenshots, refuses actions on them."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace

from actions.executor import ExecResult
from actions.screen import CoordinateSpace, Frame, Monitor, model_to_screen, screen_to_image
from actions.types import Action, action_points

Rect = tuple[int, int, int, int]  # global screen x, y, width, height
MASK_RGB = (128, 128, 128)


def _inside(point: tuple[int, int], rect: Rect) -> bool:
    x, y, w, h = rect
    return x <= point[0] < x + w and y <= point[1] < y + h


def mask_frame(frame: Frame, rects: list[Rect]) -> Frame:
    """The frame with each rectangle painted grey (through screen_to_image, HiDPI-aware)."""
    if not rects:
        return frame
    import numpy as np

    pixels = np.frombuffer(frame.rgb, dtype=np.uint8).reshape(frame.height, frame.width, 3).copy()
    for x, y, w, h in rects:
        x0, y0 = screen_to_image((x, y), frame.monitor)
        x1, y1 = screen_to_image((x + w, y + h), frame.monitor)
        c0, c1 = max(int(x0), 0), min(int(x1), frame.width)
        r0, r1 = max(int(y0), 0), min(int(y1), frame.height)
        if c0 < c1 and r0 < r1:
            pixels[r0:r1, c0:c1] = MASK_RGB
    return replace(frame, rgb=pixels.tobytes())


class MaskedScreen:
    """A Screen whose captures hide the app's own windows from the model."""

    def __init__(
        self,
        screen: object,
        excluded: Callable[[], list[Rect]],
        hide: Callable[[], AbstractContextManager[None]] = nullcontext,
    ) -> None:
        self._screen = screen
        self._excluded = excluded
        self._hide = hide  # Wayland: the app's windows leave the screen (ui/wayland.py)

    @property
    def monitor(self) -> Monitor:
        """The monitor being captured."""
        return self._screen.monitor  # type: ignore[attr-defined]

    @monitor.setter
    def monitor(self, value: Monitor) -> None:
        self._screen.monitor = value  # type: ignore[attr-defined]

    def capture(self) -> Frame:
        """Grab the monitor and grey out the excluded rectangles."""
        with self._hide():
            frame: Frame = self._screen.capture()  # type: ignore[attr-defined]
        return mask_frame(frame, self._excluded())

    def wait_until_stable(
        self, *, min_s: float, max_s: float, cancel: threading.Event | None = None
    ) -> float:
        """Delegate to the real screen."""
        return float(self._screen.wait_until_stable(min_s=min_s, max_s=max_s, cancel=cancel))  # type: ignore[attr-defined]


class GuardedExecutor:
    """An Executor that refuses any action whose point lands on the app's own windows."""

    def __init__(self, executor: object, excluded: Callable[[], list[Rect]]) -> None:
        self._executor = executor
        self._excluded = excluded

    def refusal(self, action: Action, space: CoordinateSpace, monitor: Monitor) -> str | None:
        """Why the action may not run, or None."""
        for point in action_points(action):
            screen = model_to_screen(point, space, monitor)
            if any(_inside(screen, rect) for rect in self._excluded()):
                return (
                    f"refused: {screen[0]},{screen[1]} lies on deskpilot's own control bar; "
                    "act elsewhere"
                )
        return None

    def execute(
        self,
        action: Action,
        *,
        space: CoordinateSpace,
        monitor: Monitor,
        cancel: threading.Event | None = None,
    ) -> ExecResult:
        """Run the action unless it lands on an excluded rectangle."""
        why = self.refusal(action, space, monitor)
        if why is not None:
            return ExecResult(ok=False, detail=f"{action.name} refused", error=why)
        result: ExecResult = self._executor.execute(  # type: ignore[attr-defined]
            action, space=space, monitor=monitor, cancel=cancel
        )
        return result
