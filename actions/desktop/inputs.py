"""Runs computer_use actions on any desktop that offers a low-level pointer and keyboard.

The X11 Executor (actions.executor) keeps its own pyautogui/XTEST dispatch; the Wayland
desktops share this one, over the `Input` primitives each of them implements.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol, assert_never

from actions.executor import MAX_WAIT_S, ExecResult
from actions.keys import normalize_chord
from actions.screen import CoordinateSpace, Monitor, model_to_screen
from actions.types import (
    Action,
    Answer,
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
from actions.xtyping import validate_text

# Text goes out in pieces this long, so a stop ends typing between two pieces.
TEXT_PIECE = 32
_STEP_S = 0.02
_DRAG_S = 0.4
_RELEASE_WAIT_S = 1.0


class Input(Protocol):
    """The pointer and keyboard of one desktop, in global logical (input) coordinates."""

    def move(self, x: int, y: int) -> None:
        """Put the pointer at (x, y)."""
        ...

    def button(self, button: str, pressed: bool) -> None:
        """Press or release left, right or middle."""
        ...

    def wheel(self, clicks: int, *, horizontal: bool) -> None:
        """Turn the wheel: positive clicks scroll down (vertical) or right (horizontal)."""
        ...

    def chord(self, keys: tuple[str, ...]) -> None:
        """Press canonical keys (actions.keys) together, release them in reverse order."""
        ...

    def check_text(self, strokes: list[str]) -> None:
        """Raise ValueError naming the characters this input cannot type (before any is typed)."""
        ...

    def type_strokes(self, strokes: list[str]) -> str | None:
        """Type characters exactly ("\\n" is Return, "\\t" Tab); a note when a fallback was used."""
        ...

    def release(self) -> list[str]:
        """Release every button and key this input may hold; returns what it released."""
        ...

    def close(self) -> None:
        """Free the input devices."""
        ...


class _Cancelled(Exception):
    """The action's cancel event was set."""


class InputExecutor:
    """Executes actions through an Input; failures return ok=False, as with the X11 Executor."""

    def __init__(self, inputs: Input, *, drag_duration_s: float = _DRAG_S) -> None:
        self.inputs = inputs
        self.drag_duration_s = drag_duration_s
        self._lock = threading.RLock()  # one burst of input at a time; release_all waits on it
        self._pointer: tuple[int, int] | None = None

    def execute(
        self,
        action: Action,
        *,
        space: CoordinateSpace,
        monitor: Monitor,
        cancel: threading.Event | None = None,
    ) -> ExecResult:
        """Perform one action."""
        start = time.monotonic()
        try:
            if cancel is not None and cancel.is_set():
                raise _Cancelled("cancelled before it started")
            detail, points = self._run(action, space, monitor, cancel)
        except _Cancelled as exc:
            return ExecResult(False, f"{action.name} cancelled", error=str(exc),
                              duration_s=time.monotonic() - start)  # fmt: skip
        except Exception as exc:  # OS and compositor failures are the step's outcome
            text = " ".join(str(exc).split()) or type(exc).__name__
            return ExecResult(False, f"{action.name} failed", error=f"{type(exc).__name__}: {text}",
                              duration_s=time.monotonic() - start)  # fmt: skip
        return ExecResult(True, detail, points=points, duration_s=time.monotonic() - start)

    def release_all(self) -> list[str]:
        """Release held buttons and keys; waits for the input burst in flight first."""
        acquired = self._lock.acquire(timeout=_RELEASE_WAIT_S)
        try:
            return self.inputs.release()
        finally:
            if acquired:
                self._lock.release()

    def close(self) -> None:
        """Free the input devices."""
        self.inputs.close()

    def _burst(self, cancel: threading.Event | None, send: Callable[[], None]) -> None:
        with self._lock:
            if cancel is not None and cancel.is_set():
                raise _Cancelled("cancelled while it ran")
            send()

    @staticmethod
    def _pause(cancel: threading.Event | None, seconds: float = _STEP_S) -> None:
        if cancel is None:
            time.sleep(seconds)
        elif cancel.wait(seconds):
            raise _Cancelled("cancelled while it ran")

    def _run(
        self,
        action: Action,
        space: CoordinateSpace,
        monitor: Monitor,
        cancel: threading.Event | None,
    ) -> tuple[str, tuple[tuple[int, int], ...]]:
        match action:
            case MouseMove(coordinate=c):
                x, y = model_to_screen(c, space, monitor)
                self._move(x, y, cancel)
                return f"moved to ({x}, {y})", ((x, y),)
            case LeftClick(coordinate=c):
                return self._click(c, space, monitor, "left", 1, cancel)
            case RightClick(coordinate=c):
                return self._click(c, space, monitor, "right", 1, cancel)
            case MiddleClick(coordinate=c):
                return self._click(c, space, monitor, "middle", 1, cancel)
            case DoubleClick(coordinate=c):
                return self._click(c, space, monitor, "left", 2, cancel)
            case TripleClick(coordinate=c):
                return self._click(c, space, monitor, "left", 3, cancel)
            case LeftClickDrag(coordinate=c, start_coordinate=s):
                return self._drag(s, c, space, monitor, cancel)
            case Scroll(pixels=p, coordinate=c):
                return self._scroll(p, c, space, monitor, cancel, horizontal=False)
            case HScroll(pixels=p, coordinate=c):
                return self._scroll(p, c, space, monitor, cancel, horizontal=True)
            case Key(keys=keys):
                names = normalize_chord(keys)
                self._burst(cancel, lambda: self.inputs.chord(names))
                return f"pressed {'+'.join(names)}", ()
            case Type(text=text):
                return self._type(text, cancel), ()
            case Wait(time=t):
                return self._wait(t, cancel), ()
            case Terminate(status=status):
                return f"terminate ({status}): nothing to execute", ()
            case Answer():
                return "answer: nothing to execute", ()
            case _:
                assert_never(action)

    def _move(self, x: int, y: int, cancel: threading.Event | None) -> None:
        self._burst(cancel, lambda: self.inputs.move(x, y))
        self._pointer = (x, y)

    def _click(
        self,
        point: Point,
        space: CoordinateSpace,
        monitor: Monitor,
        button: str,
        clicks: int,
        cancel: threading.Event | None,
    ) -> tuple[str, tuple[tuple[int, int], ...]]:
        x, y = model_to_screen(point, space, monitor)
        self._move(x, y, cancel)
        for n in range(clicks):
            self._pause(cancel, 0.05 if n else _STEP_S)

            def press_release() -> None:
                # Press and release in one burst: a stop never lands between them.
                self.inputs.button(button, True)
                self.inputs.button(button, False)

            self._burst(cancel, press_release)
        what = {1: "click", 2: "double-click", 3: "triple-click"}[clicks]
        return f"{button} {what} at ({x}, {y})", ((x, y),)

    def _drag(
        self,
        start: Point | None,
        end: Point,
        space: CoordinateSpace,
        monitor: Monitor,
        cancel: threading.Event | None,
    ) -> tuple[str, tuple[tuple[int, int], ...]]:
        ex, ey = model_to_screen(end, space, monitor)
        if start is not None:
            sx, sy = model_to_screen(start, space, monitor)
            self._move(sx, sy, cancel)
        elif self._pointer is not None:
            sx, sy = self._pointer
        else:
            raise ValueError("left_click_drag without start_coordinate: the pointer is unknown")
        self._pause(cancel)
        self._burst(cancel, lambda: self.inputs.button("left", True))
        released = False
        try:
            steps = max(2, round(self.drag_duration_s / _STEP_S))
            for n in range(1, steps + 1):
                self._pause(cancel, self.drag_duration_s / steps)
                self._move(round(sx + (ex - sx) * n / steps), round(sy + (ey - sy) * n / steps),
                           cancel)  # fmt: skip
            self._burst(cancel, lambda: self.inputs.button("left", False))
            released = True
        finally:
            if not released:
                self.inputs.button("left", False)  # the one input allowed after a stop
        return f"dragged ({sx}, {sy}) -> ({ex}, {ey})", ((sx, sy), (ex, ey))

    def _scroll(
        self,
        clicks: int,
        point: Point | None,
        space: CoordinateSpace,
        monitor: Monitor,
        cancel: threading.Event | None,
        *,
        horizontal: bool,
    ) -> tuple[str, tuple[tuple[int, int], ...]]:
        points: tuple[tuple[int, int], ...] = ()
        if point is not None:
            x, y = model_to_screen(point, space, monitor)
            self._move(x, y, cancel)
            self._pause(cancel)
            points = ((x, y),)
        amount = int(clicks)
        # The model's positive vertical clicks scroll up; the wheel's positive clicks go down.
        turns = amount if horizontal else -amount
        self._burst(cancel, lambda: self.inputs.wheel(turns, horizontal=horizontal))
        way = (
            ("right" if amount > 0 else "left") if horizontal else ("up" if amount > 0 else "down")
        )
        where = f" at {points[0]}" if points else ""
        return f"scrolled {way} {abs(amount)} clicks{where}", points

    def _type(self, text: str, cancel: threading.Event | None) -> str:
        strokes = validate_text(text)  # control characters are refused before anything is typed
        self.inputs.check_text(strokes)  # so is the whole text when one character cannot be
        notes: list[str] = []
        typed = 0
        for at in range(0, len(strokes), TEXT_PIECE):
            piece = strokes[at : at + TEXT_PIECE]
            if cancel is not None and cancel.is_set():
                raise _Cancelled(f"typing cancelled after {typed} characters")
            with self._lock:
                note = self.inputs.type_strokes(piece)
            if note and note not in notes:
                notes.append(note)
            typed += len(piece)
        return f"typed {typed} characters" + "".join(f"; {n}" for n in notes)

    def _wait(self, seconds: float, cancel: threading.Event | None) -> str:
        if not (seconds >= 0 and seconds != float("inf")):
            raise ValueError(f"wait time must be a finite number of seconds >= 0, not {seconds!r}")
        target = min(float(seconds), MAX_WAIT_S)
        if cancel is not None and cancel.wait(target):
            raise _Cancelled("wait cancelled")
        if cancel is None:
            time.sleep(target)
        capped = f" (capped from {seconds:g} s)" if target < seconds else ""
        return f"waited {target:g} s{capped}"
