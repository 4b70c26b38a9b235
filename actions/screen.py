"""Monitors, screen capture, and the one mapping between model coordinates and screen pixels."""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Literal

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
    name: str = ""  # RandR's monitor name (e.g. "DP-1"), "" where unknown

    def geometry(self) -> str:
        """X's WIDTHxHEIGHT+LEFT+TOP."""
        return f"{self.width}x{self.height}{self.left:+d}{self.top:+d}"


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


# Settle defaults (docs/performance.md). No fixed minimum: a change that starts later than
# the quiet window is caught by the freshness check before the next action (issue 16).
# 8 ms between grabs: twice per 60 Hz frame. With no change at all since the action, one
# 60 Hz frame (17 ms) of stillness ends the wait: apps repaint within a frame of the input,
# and a later reaction is the freshness check's to catch. After a change, quiet for three
# frames (50 ms: an animation at 20 frames/s or more changes within it) or for twice the
# longest pause between two changes (an animation slowed down by a busy CPU), counting
# pauses up to SETTLE_FRAME_GAP_S (a 10 frames/s animation) so that a clock ticking once a
# second does not stretch the wait. 24 px of tolerance: a blinking text caret (1-2 px wide,
# <= 20 px tall) does not keep the agent waiting, but a 16x16 spinner (up to 256 px) does.
SETTLE_MIN_S = 0.0
SETTLE_MAX_S = 2.0
SETTLE_INTERVAL_S = 0.008
SETTLE_REACTION_S = 0.017
SETTLE_QUIET_S = 0.05
SETTLE_FRAME_GAP_S = 0.1
SETTLE_TOLERANCE_PX = 24


class Screen:
    """Captures one monitor with mss; one mss instance per thread, as mss requires.

    `display` names the X display (a private desktop); None is $DISPLAY, the user's.
    """

    def __init__(self, monitor_index: int | None = None, *, display: str | None = None) -> None:
        self.display = display
        if display is None:
            _check_display()
        _reuse_frame_memory()
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
                inst = factory(display=self.display) if self.display else factory()
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
        names = _randr_names(self.display) if sys.platform.startswith("linux") else {}
        if names:
            result = [replace(m, name=names.get(m.geometry(), "")) for m in result]
        if result and not any(m.primary for m in result):
            # X11 without RandR primary: the monitor at the origin is what users call primary.
            origin = next((m for m in result if m.left == 0 and m.top == 0), result[0])
            result = [replace(m, primary=m is origin) for m in result]
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
            m = replace(m, scale=scale)
            self.monitor = m
        # Kept for settle: the screen right before an action (the loop captures it for the
        # freshness check), so a change that started before settle's first grab still counts.
        self._local.last_raw = shot.raw
        return Frame(_bgra_to_rgb(shot.raw, width, height), width, height, m, time.time())

    def _grab_raw(self, region: dict[str, int]) -> bytes | bytearray:
        """The region's raw BGRA bytes (mss's own buffer: no 8-33 MB copy per grab)."""
        try:
            raw: bytes | bytearray = self._mss().grab(region).raw  # type: ignore[attr-defined]
            return raw
        except Exception as exc:
            raise DisplayError(f"screen capture failed: {exc}") from exc

    def wait_until_stable(
        self,
        *,
        min_s: float = SETTLE_MIN_S,
        max_s: float = SETTLE_MAX_S,
        interval_s: float = SETTLE_INTERVAL_S,
        quiet_s: float = SETTLE_QUIET_S,
        tolerance_px: int = SETTLE_TOLERANCE_PX,
        cancel: threading.Event | None = None,
    ) -> float:
        """Wait until the screen is quiet, within [min_s, max_s]; returns seconds waited.

        Grabs at once and every interval_s; a grab that differs from the one before (the first:
        from the last capture) by more than tolerance_px pixels is a change (see
        frame_difference). Returns once min_s has
        passed and either nothing changed at all for SETTLE_REACTION_S, or nothing changed for
        quiet_s after the last change, or for twice the longest pause between changes that came
        SETTLE_FRAME_GAP_S apart or less (an animation) if that is longer.
        """
        start = time.monotonic()
        m = self.monitor
        region = {"left": m.left, "top": m.top, "width": m.width, "height": m.height}
        previous = self._grab_raw(region)
        now = start
        last_change: float | None = None
        longest_gap = 0.0
        before = getattr(self._local, "last_raw", None)
        if before is not None and frame_difference(before, previous) > tolerance_px:
            last_change = start  # the action's effect began before the first grab
        while True:
            if last_change is None:
                quiet, needed = now - start, min(quiet_s, SETTLE_REACTION_S)
            else:
                quiet, needed = now - last_change, max(quiet_s, 2 * longest_gap)
            if quiet >= needed and now - start >= min_s:
                return now - start
            elapsed = time.monotonic() - start
            if elapsed >= max_s:
                return elapsed
            # The next grab: one interval after the last, or as soon as the quiet time would be
            # reached; never past max_s; a stop ends the wait at once.
            wait = min(interval_s, needed - quiet) if quiet < needed else interval_s
            pause = max(0.0, min(now + wait, start + max_s) - time.monotonic())
            if cancel is not None:
                if cancel.wait(pause):
                    return time.monotonic() - start
            else:
                time.sleep(pause)
            current = self._grab_raw(region)
            now = time.monotonic()
            if frame_difference(previous, current) > tolerance_px:
                if last_change is not None and now - last_change <= SETTLE_FRAME_GAP_S:
                    longest_gap = max(longest_gap, now - last_change)
                last_change = now
            previous = current


def _randr_names(display: str | None) -> dict[str, str]:
    """RandR 1.5 monitor names by geometry (mss lists the monitors but not their names)."""
    import contextlib
    import io

    try:
        from Xlib import display as xdisplay

        # python-xlib prints an empty XAUTHORITY file's warning to stdout, where the CLI
        # prints the run's answer.
        with contextlib.redirect_stdout(io.StringIO()):
            dpy: Any = xdisplay.Display(display)
    except Exception:  # not X, or no server: names are a nicety
        return {}
    try:
        if not dpy.has_extension("RANDR"):
            return {}
        reply = dpy.screen().root.xrandr_get_monitors(True)
        names = {}
        for m in reply.monitors:
            geometry = f"{m.width_in_pixels}x{m.height_in_pixels}{m.x:+d}{m.y:+d}"
            names[geometry] = str(dpy.get_atom_name(m.name))
        return names
    except Exception:  # RandR < 1.5 has no monitors request: names stay unknown
        return {}
    finally:
        dpy.close()


def frame_difference(
    a: bytes | bytearray, b: bytes | bytearray, *, bytes_per_pixel: int = 4
) -> int:
    """How many pixels differ between two frames of the same region (raw BGRA, or RGB with 3)."""
    if a == b:  # memcmp: the common case costs well under a millisecond even at 4K
        return 0
    if len(a) != len(b):
        return max(len(a), len(b)) // bytes_per_pixel
    import numpy as np

    if bytes_per_pixel == 4:  # one uint32 compare a pixel
        return int(np.count_nonzero(np.frombuffer(a, np.uint32) != np.frombuffer(b, np.uint32)))
    diff = np.frombuffer(a, np.uint8) != np.frombuffer(b, np.uint8)
    return int(np.count_nonzero(diff.reshape(-1, bytes_per_pixel).any(axis=1)))


_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_FRAME_HEAP_BYTES = 128 << 20
_tuned = False


def _reuse_frame_memory() -> None:
    """Let glibc reuse freed frame buffers instead of mapping fresh pages for each frame.

    glibc serves blocks over its mmap threshold with fresh mappings, and every first touch of
    a page faults: for 6-33 MB frames that costs 3-10 ms a copy on this VM (capture went from
    14 ms to 3 ms at 1080p). Raising the thresholds keeps up to 128 MB of freed heap for reuse.
    """
    global _tuned
    if _tuned or not sys.platform.startswith("linux"):
        return
    _tuned = True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, _FRAME_HEAP_BYTES // 2)
        libc.mallopt(_M_TRIM_THRESHOLD, _FRAME_HEAP_BYTES)
    except (OSError, AttributeError):
        pass  # not glibc (musl): frames still work, only slower


def _bgra_to_rgb(raw: bytes | bytearray, width: int, height: int) -> bytes:
    """mss's BGRA as RGB bytes; Pillow's unpacker is ~4x faster than mss's .rgb slicing."""
    from PIL import Image

    return Image.frombuffer("RGB", (width, height), raw, "raw", "BGRX", 0, 1).tobytes()
