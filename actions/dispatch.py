"""The one dispatch of computer_use actions, over any low-level pointer and keyboard.

ActionExecutor runs every action (the one `match`), with the timing, cancelling and
letting-go that all desktops share; a `Device` supplies the input primitives: the host's
XTEST or pyautogui (actions.executor), or a Wayland desktop's virtual devices
(actions.desktop.inputs).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol, assert_never

from actions.keys import chord_text, normalize_chord
from actions.params import MAX_WAIT_S
from actions.screen import CoordinateSpace, Monitor, model_to_screen
from actions.types import (
    Action,
    Answer,
    Button,
    DoubleClick,
    HScroll,
    Key,
    LeftClick,
    LeftClickDrag,
    MiddleClick,
    MouseMove,
    Point,
    RightClick,
    Scroll,
    Terminate,
    TripleClick,
    Type,
    Wait,
)

__all__ = ["ActionExecutor", "Cancelled", "Device", "ExecResult", "FailSafeTriggered", "Gate"]

_WAIT_SLICE_S = 0.05
# Between the input calls of one action (a move and its click); the loop's settle waits for
# the screen after every action, so none follows the last call.
STEP_S = 0.02
# A drag moves the pointer in steps this far apart: apps see motion, and a stop lands between
# two steps, so it is never more than one step late.
_DRAG_STEP_S = 0.02
_DRAG_MAX_STEPS = 500
# release_all waits at most this long for the input burst in flight (a tap, a drag step).
_RELEASE_WAIT_S = 1.0

Pixel = tuple[int, int]


class FailSafeTriggered(RuntimeError):
    """The user pushed the pointer into a screen corner (pyautogui's fail-safe): stop the run."""


class Cancelled(Exception):
    """The action's cancel event was set before or while it ran."""


@dataclass(frozen=True, slots=True)
class ExecResult:
    """What executing one action did."""

    ok: bool
    detail: str
    points: tuple[Pixel, ...] = ()
    error: str | None = None
    duration_s: float = 0.0
    # How text went in when not by keys alone: "clipboard" (pasted; actions/desktop/clipboard.py).
    via: str | None = None


class Gate:
    """One action's way to the device: bursts under the lock, while not cancelled or tripped."""

    def __init__(
        self, lock: threading.RLock, cancel: threading.Event | None, device: Device
    ) -> None:
        self.lock = lock
        self.cancel = cancel
        self._device = device

    @contextmanager
    def burst(self) -> Iterator[None]:
        """One uninterrupted piece of input (a stop never lands inside it)."""
        with self.lock:
            if self.cancelled():
                raise Cancelled("cancelled while it ran")
            self._device.check()
            yield

    def pause(self, seconds: float = STEP_S) -> None:
        """A pause between two bursts, ended early by a cancel."""
        if self.cancel is None:
            time.sleep(seconds)
        elif self.cancel.wait(seconds):
            raise Cancelled("cancelled while it ran")

    def cancelled(self) -> bool:
        """Whether the action was cancelled."""
        return self.cancel is not None and self.cancel.is_set()


class Device(Protocol):
    """A pointer and keyboard in global screen (input) pixels: what ActionExecutor drives."""

    def aim(self, x: int, y: int) -> Pixel:
        """The pixel to act at for (x, y) (the host keeps off its fail-safe corners)."""
        ...

    def position(self) -> Pixel | None:
        """Where the pointer is, if this device can know."""
        ...

    def move(self, x: int, y: int) -> None:
        """Put the pointer at (x, y)."""
        ...

    def click(self, x: int, y: int, button: Button) -> None:
        """Press and release a button with the pointer at (x, y)."""
        ...

    def button(self, button: Button, pressed: bool) -> None:
        """Press or release a button where the pointer is."""
        ...

    def scroll(self, clicks: int, *, horizontal: bool) -> None:
        """Turn the wheel: positive clicks scroll up (vertical) or right (horizontal)."""
        ...

    def press_chord(self, keys: tuple[str, ...], gate: Gate) -> None:
        """Press canonical keys (actions.keys) together, release them in reverse order."""
        ...

    def type_text(self, text: str, gate: Gate) -> str:
        """Type text exactly; returns the detail line ("typed N characters")."""
        ...

    def last_via(self) -> str | None:
        """How the last type_text put text in when not by keys alone ("clipboard"), else None."""
        ...

    def check(self) -> None:
        """Raise FailSafeTriggered when the user asks for a stop through the pointer."""
        ...

    def is_fail_safe(self, exc: Exception) -> bool:
        """Whether an error raised by the device is its own fail-safe stop."""
        ...

    def after_click(self) -> None:
        """What a click implies besides the click (focus, where no window manager gives it)."""
        ...

    def let_go(self, button: Button) -> None:
        """Release a button an unfinished drag holds (the one input allowed after a stop)."""
        ...

    def release(self) -> list[str]:
        """Release every button and key this device may hold; returns what it released."""
        ...

    def close(self) -> None:
        """Free the device."""
        ...


class ActionExecutor:
    """Executes actions through a Device; expected failures return ok=False, never raise."""

    def __init__(
        self,
        device: Device,
        *,
        lock: threading.RLock | None = None,
        drag_duration_s: float = 0.4,
        click_interval_s: float = 0.05,
    ) -> None:
        self.device = device
        self.drag_duration_s = drag_duration_s
        self.click_interval_s = click_interval_s
        # Held while input is sent (one tap, one drag step, one click): release_all takes it,
        # so once it returns, the action in flight sees its cancel before sending anything more.
        self._lock = lock if lock is not None else threading.RLock()

    def execute(
        self,
        action: Action,
        *,
        space: CoordinateSpace,
        monitor: Monitor,
        cancel: threading.Event | None = None,
    ) -> ExecResult:
        """Perform one action; FailSafeTriggered propagates, other failures return ok=False."""
        start = time.monotonic()
        gate = Gate(self._lock, cancel, self.device)

        def via() -> str | None:
            return self.device.last_via() if isinstance(action, Type) else None

        try:
            if gate.cancelled():
                raise Cancelled("cancelled before it started")
            detail, points = self._run(action, space, monitor, gate)
        except FailSafeTriggered:
            self._release_quietly()
            raise
        except Cancelled as exc:
            return ExecResult(
                ok=False,
                detail=f"{action.name} cancelled",
                error=str(exc),
                duration_s=time.monotonic() - start,
                via=via(),
            )
        except Exception as exc:  # OS, X and compositor failures are the step's outcome
            if self.device.is_fail_safe(exc):
                self._release_quietly()
                raise FailSafeTriggered(
                    "fail-safe: the pointer is in a screen corner; the run was stopped"
                ) from exc
            return ExecResult(
                ok=False,
                detail=f"{action.name} failed",
                error=_one_line(exc),
                duration_s=time.monotonic() - start,
                via=via(),
            )
        return ExecResult(
            ok=True, detail=detail, points=points, duration_s=time.monotonic() - start, via=via()
        )

    def release_all(self) -> list[str]:
        """Release held mouse buttons and keys (for stop); returns what it released.

        Call it after setting the running action's cancel event (from any thread): it waits for
        the input burst in flight, and after it returns that action sends nothing more.
        """
        acquired = self._lock.acquire(timeout=_RELEASE_WAIT_S)
        try:
            return self.device.release()
        finally:
            if acquired:
                self._lock.release()

    def close(self) -> None:
        """Free the device (keymaps changed for typing, connections, helper processes)."""
        self.device.close()

    def _release_quietly(self) -> None:
        """release_all for error paths: never raises over the original error."""
        try:
            self.release_all()
        except Exception:  # the original error matters more than a failed release
            pass

    # -- the one dispatch ---------------------------------------------------------------

    def _run(
        self, action: Action, space: CoordinateSpace, monitor: Monitor, gate: Gate
    ) -> tuple[str, tuple[Pixel, ...]]:
        """Execute an action; returns a detail line and the screen points touched."""
        match action:
            case MouseMove(coordinate=c):
                x, y = self._map(c, space, monitor)
                with gate.burst():
                    self.device.move(x, y)
                return f"moved to ({x}, {y})", ((x, y),)
            case LeftClick() | RightClick() | MiddleClick() | DoubleClick() | TripleClick():
                button, clicks = action.spec.button, action.spec.clicks
                assert button is not None  # every click action declares its button
                return self._click(action.coordinate, space, monitor, button, clicks, gate)
            case LeftClickDrag(coordinate=c, start_coordinate=s):
                return self._drag(s, c, space, monitor, gate)
            case Scroll(pixels=p, coordinate=c):
                return self._scroll(p, c, space, monitor, gate, horizontal=False)
            case HScroll(pixels=p, coordinate=c):
                return self._scroll(p, c, space, monitor, gate, horizontal=True)
            case Key(keys=keys):
                names = normalize_chord(keys)
                self.device.press_chord(names, gate)
                return f"pressed {chord_text(names)}", ()
            case Type(text=text):
                return self.device.type_text(text, gate), ()
            case Wait(time=t):
                return self._wait(t, gate), ()
            case Terminate(status=status):
                return f"terminate ({status}): nothing to execute", ()
            case Answer():
                return "answer: nothing to execute", ()
            case _:
                assert_never(action)

    def _map(self, point: Point, space: CoordinateSpace, monitor: Monitor) -> Pixel:
        """Model point to the screen pixel the device acts at."""
        return self.device.aim(*model_to_screen(point, space, monitor))

    def _move_then_pause(self, x: int, y: int, gate: Gate) -> None:
        """Put the pointer where the action acts, and let the app see it there first."""
        with gate.burst():
            self.device.move(x, y)
        gate.pause()

    def _click(
        self,
        point: Point,
        space: CoordinateSpace,
        monitor: Monitor,
        button: Button,
        clicks: int,
        gate: Gate,
    ) -> tuple[str, tuple[Pixel, ...]]:
        x, y = self._map(point, space, monitor)
        self._move_then_pause(x, y, gate)
        for n in range(clicks):
            if n:
                gate.pause(self.click_interval_s)
            # Press and release in one burst: a stop never lands between them.
            with gate.burst():
                self.device.click(x, y, button)
        self.device.after_click()
        what = {1: "click", 2: "double-click", 3: "triple-click"}[clicks]
        return f"{button} {what} at ({x}, {y})", ((x, y),)

    def _drag(
        self,
        start: Point | None,
        end: Point,
        space: CoordinateSpace,
        monitor: Monitor,
        gate: Gate,
    ) -> tuple[str, tuple[Pixel, ...]]:
        ex, ey = self._map(end, space, monitor)
        if start is not None:
            sx, sy = self._map(start, space, monitor)
            self._move_then_pause(sx, sy, gate)
        else:
            where = self.device.position()
            if where is None:
                raise ValueError("left_click_drag without start_coordinate: the pointer is unknown")
            sx, sy = where
        with gate.burst():
            self.device.move(sx, sy)
            self.device.button("left", True)
        released = False
        try:
            gate.pause()
            # Intermediate motion, so apps see a drag rather than a jump; the steps are short
            # so that a stop lets go of the button at once.
            steps = max(2, min(_DRAG_MAX_STEPS, round(self.drag_duration_s / _DRAG_STEP_S)))
            interval = self.drag_duration_s / steps
            for n in range(1, steps + 1):
                gate.pause(interval)
                x = round(sx + (ex - sx) * n / steps)
                y = round(sy + (ey - sy) * n / steps)
                with gate.burst():
                    self.device.move(x, y)
            with gate.burst():
                self.device.move(ex, ey)
                self.device.button("left", False)
            released = True
        finally:
            if not released:
                # Cancelled or failed with the button down: the one input allowed after a stop.
                try:
                    self.device.let_go("left")
                except Exception:  # the original error matters more than a failed release
                    pass
        return f"dragged ({sx}, {sy}) -> ({ex}, {ey})", ((sx, sy), (ex, ey))

    def _scroll(
        self,
        clicks: int,
        point: Point | None,
        space: CoordinateSpace,
        monitor: Monitor,
        gate: Gate,
        *,
        horizontal: bool,
    ) -> tuple[str, tuple[Pixel, ...]]:
        points: tuple[Pixel, ...] = ()
        if point is not None:
            x, y = self._map(point, space, monitor)
            self._move_then_pause(x, y, gate)
            points = ((x, y),)
        amount = int(clicks)
        with gate.burst():
            self.device.scroll(amount, horizontal=horizontal)
        if horizontal:
            way = "right" if amount > 0 else "left"
        else:
            way = "up" if amount > 0 else "down"
        where = f" at {points[0]}" if points else ""
        return f"scrolled {way} {abs(amount)} clicks{where}", points

    def _wait(self, seconds: float, gate: Gate) -> str:
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"wait time must be a finite number of seconds >= 0, not {seconds!r}")
        target = min(float(seconds), MAX_WAIT_S)
        deadline = time.monotonic() + target
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if gate.cancel is not None:
                if gate.cancel.wait(min(_WAIT_SLICE_S, left)):
                    raise Cancelled(f"wait cancelled after {target - left:.2f} s")
            else:
                time.sleep(min(_WAIT_SLICE_S, left))
        capped = f" (capped from {seconds:g} s)" if target < seconds else ""
        return f"waited {target:g} s{capped}"


def _one_line(exc: BaseException) -> str:
    """An exception as one short line for ExecResult.error."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    line = f"{type(exc).__name__}: {text}"
    return line if len(line) <= 300 else line[:297] + "..."
