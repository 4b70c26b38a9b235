"""Monitors, screen capture, and the one mapping between model coordinates and screen pixels."""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Literal

from actions.types import Point


class DisplayError(RuntimeError):
    """No usable display (no DISPLAY, X server refused us, monitor missing)."""


@dataclass(frozen=True, slots=True)
class Monitor:
    """One monitor in input (logical) coordinates; `scale` = captured pixels per logical pixel."""

    index: int
    left: int
    top: int
    width: int
    height: int
    scale: float = 1.0
    primary: bool = False


@dataclass(frozen=True, slots=True)
class CoordinateSpace:
    """The space the model's coordinates live in.

    relative: 0..1000 on each axis (Qwen3-VL and later). absolute: pixels of the image the
    model saw after resizing (Qwen2.5-VL style); width/height are that image's size.
    """

    kind: Literal["relative", "absolute"] = "relative"
    width: float = 1000.0
    height: float = 1000.0

    @staticmethod
    def relative() -> CoordinateSpace:
        """The 0-1000 relative space."""
        return CoordinateSpace("relative", 1000.0, 1000.0)

    @staticmethod
    def absolute(width: int, height: int) -> CoordinateSpace:
        """Pixels of a resized image of width x height."""
        return CoordinateSpace("absolute", float(width), float(height))

    def contains(self, point: Point) -> bool:
        """Whether a point lies inside the space (edges included)."""
        x, y = point
        return 0.0 <= x <= self.width and 0.0 <= y <= self.height


def model_to_screen(point: Point, space: CoordinateSpace, monitor: Monitor) -> tuple[int, int]:
    """Map a model point to global screen (input) coordinates; the ONE forward mapping."""
    x, y = point
    if not (math.isfinite(x) and math.isfinite(y)):
        raise ValueError(f"coordinate is not finite: {point!r}")
    fx = min(max(x / space.width, 0.0), 1.0)
    fy = min(max(y / space.height, 0.0), 1.0)
    # Pixel i covers [i, i+1); 1000 lands on the last pixel, not one past the edge.
    sx = monitor.left + min(int(fx * monitor.width), monitor.width - 1)
    sy = monitor.top + min(int(fy * monitor.height), monitor.height - 1)
    return sx, sy


def screen_to_model(point: tuple[float, float], space: CoordinateSpace, monitor: Monitor) -> Point:
    """Inverse of model_to_screen: a global screen point (pixel centre) to model coordinates."""
    sx, sy = point
    fx = (sx - monitor.left + 0.5) / monitor.width
    fy = (sy - monitor.top + 0.5) / monitor.height
    return (fx * space.width, fy * space.height)


def screen_to_image(point: tuple[float, float], monitor: Monitor) -> tuple[float, float]:
    """A global screen point to pixel coordinates in that monitor's captured image."""
    return ((point[0] - monitor.left) * monitor.scale, (point[1] - monitor.top) * monitor.scale)


def image_to_screen(point: tuple[float, float], monitor: Monitor) -> tuple[int, int]:
    """Pixel coordinates in a monitor's captured image to a global screen point."""
    x = monitor.left + min(int(point[0] / monitor.scale), monitor.width - 1)
    y = monitor.top + min(int(point[1] / monitor.scale), monitor.height - 1)
    return x, y


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured screenshot: raw RGB bytes of the monitor at physical resolution."""

    rgb: bytes
    width: int
    height: int
    monitor: Monitor
    captured_at: float

    def to_pil(self) -> object:
        """The frame as a PIL image (imported lazily to keep start-up light)."""
        from PIL import Image

        return Image.frombytes("RGB", (self.width, self.height), self.rgb)


def _check_display() -> None:
    """Fail early with a clear message when there is no X display on Linux."""
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        if os.environ.get("WAYLAND_DISPLAY"):
            raise DisplayError(
                "Wayland session without DISPLAY: deskpilot needs X11 (or XWayland, DISPLAY set)"
            )
        raise DisplayError(
            "no display: DISPLAY is not set; run on a desktop session or under Xvfb "
            "(e.g. `xvfb-run -s '-screen 0 1920x1080x24' deskpilot run ...`)"
        )


class Screen:
    """Captures one monitor with mss; one mss instance per thread, as mss requires."""

    def __init__(self, monitor_index: int | None = None) -> None:
        _check_display()
        self._local = threading.local()
        monitors = self.list_monitors()
        if not monitors:
            raise DisplayError("the display reports no monitors")
        if monitor_index is None:
            chosen = next((m for m in monitors if m.primary), monitors[0])
        else:
            found = [m for m in monitors if m.index == monitor_index]
            if not found:
                names = ", ".join(
                    f"{m.index} ({m.width}x{m.height}{m.left:+d}{m.top:+d})" for m in monitors
                )
                raise DisplayError(f"no monitor {monitor_index}; available: {names}")
            chosen = found[0]
        self.monitor = chosen

    def _mss(self) -> object:
        inst = getattr(self._local, "mss", None)
        if inst is None:
            import mss

            try:
                factory = getattr(mss, "MSS", None) or mss.mss
                inst = factory()
            except Exception as exc:  # mss raises its own ScreenShotError, among others
                raise DisplayError(f"cannot open the display: {exc}") from exc
            self._local.mss = inst
        return inst

    def list_monitors(self) -> list[Monitor]:
        """Every monitor (1-based, as mss numbers them), with the primary one marked."""
        sct = self._mss()
        raw = list(sct.monitors)  # type: ignore[attr-defined]
        result = []
        for i, m in enumerate(raw[1:], start=1):
            result.append(
                Monitor(
                    index=i,
                    left=int(m["left"]),
                    top=int(m["top"]),
                    width=int(m["width"]),
                    height=int(m["height"]),
                    primary=bool(m.get("is_primary", False)),
                )
            )
        if result and not any(m.primary for m in result):
            # X11 without RandR primary: the monitor at the origin is what users call primary.
            origin = next((m for m in result if m.left == 0 and m.top == 0), result[0])
            result = [
                Monitor(m.index, m.left, m.top, m.width, m.height, m.scale, m is origin)
                for m in result
            ]
        return result

    def capture(self) -> Frame:
        """Grab the chosen monitor; the scale is read off the captured size (HiDPI)."""
        m = self.monitor
        sct = self._mss()
        region = {"left": m.left, "top": m.top, "width": m.width, "height": m.height}
        try:
            shot = sct.grab(region)  # type: ignore[attr-defined]
        except Exception as exc:
            raise DisplayError(f"screen capture failed: {exc}") from exc
        width, height = int(shot.size[0]), int(shot.size[1])
        scale = width / m.width if m.width else 1.0
        if abs(scale - m.scale) > 1e-6:
            m = Monitor(m.index, m.left, m.top, m.width, m.height, scale, m.primary)
            self.monitor = m
        return Frame(bytes(shot.rgb), width, height, m, time.time())

    def wait_until_stable(
        self, *, min_s: float = 0.1, max_s: float = 2.0, interval_s: float = 0.05
    ) -> float:
        """Wait until two consecutive grabs are identical (bounded); returns the seconds waited."""
        start = time.monotonic()
        m = self.monitor
        region = {"left": m.left, "top": m.top, "width": m.width, "height": m.height}
        sct = self._mss()
        time.sleep(min_s)
        previous = bytes(sct.grab(region).raw)  # type: ignore[attr-defined]
        while time.monotonic() - start < max_s:
            time.sleep(interval_s)
            current = bytes(sct.grab(region).raw)  # type: ignore[attr-defined]
            if current == previous:
                break
            previous = current
        return time.monotonic() - start
