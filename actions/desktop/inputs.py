"""Runs computer_use actions on any desktop that offers a low-level pointer and keyboard.

The X11 Executor (actions.executor) keeps its own pyautogui/XTEST dispatch; the Wayland
desktops share this one, over the `Input` primitives each of them implements.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol, assert_never

from actions.desktop.clipboard import CLIPBOARD_HINT, PASTE_KEYS, PasteError
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
        """Raise ValueError naming characters that can be neither typed nor pasted here."""
        ...

    def to_paste(self, strokes: list[str]) -> tuple[set[str], str]:
        """The characters keys cannot type here (pasted instead), and why keys cannot."""
        ...

    def type_strokes(self, strokes: list[str]) -> None:
        """Type characters exactly ("\\n" is Return, "\\t" Tab); to_paste() holds none of them."""
        ...

    def release(self) -> list[str]:
        """Release every button and key this input may hold; returns what it released."""
        ...

    def close(self) -> None:
        """Free the input devices."""
        ...


class _Cancelled(Exception):
    """The action's cancel event was set."""


class Paster(Protocol):
    """Puts text into the focused window by pasting it (actions.desktop.clipboard)."""

    def paste(self, text: str, press: Callable[[], None]) -> bool:
        """Offer text, call press() to send the paste keys; True once it was seen taken."""
        ...


class InputExecutor:
    """Executes actions through an Input; failures return ok=False, as with the X11 Executor.

    Characters the keys cannot type are pasted through `clipboard` (None: refused whole).
    """

    def __init__(
        self,
        inputs: Input,
        *,
        clipboard: Paster | None = None,
        drag_duration_s: float = _DRAG_S,
    ) -> None:
        self.inputs = inputs
        self.clipboard = clipboard
        self.drag_duration_s = drag_duration_s
        self._via: str | None = None  # how the last action's text went in, when not by keys
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
        self._via = None
        try:
            if cancel is not None and cancel.is_set():
                raise _Cancelled("cancelled before it started")
            detail, points = self._run(action, space, monitor, cancel)
        except _Cancelled as exc:
            return ExecResult(False, f"{action.name} cancelled", error=str(exc),
                              duration_s=time.monotonic() - start, via=self._via)  # fmt: skip
        except Exception as exc:  # OS and compositor failures are the step's outcome
            text = " ".join(str(exc).split()) or type(exc).__name__
            return ExecResult(False, f"{action.name} failed", error=f"{type(exc).__name__}: {text}",
                              duration_s=time.monotonic() - start, via=self._via)  # fmt: skip
        return ExecResult(True, detail, points=points, duration_s=time.monotonic() - start,
                          via=self._via)  # fmt: skip

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
        paste, why = self.inputs.to_paste(strokes)
        if paste and self.clipboard is None:
            raise ValueError(
                f"cannot type {shown_chars(paste)} on this desktop ({why}) and no clipboard tool "
                f"is installed to paste them (run `{CLIPBOARD_HINT}`); nothing was typed"
            )
        typed = pasted = 0
        unseen = False  # a paste not seen taken (a window that reads the clipboard)
        for run, by_paste in runs(strokes, paste):
            if by_paste:
                self._via = "clipboard"
                if cancel is not None and cancel.is_set():
                    raise _Cancelled(f"typing cancelled after {typed} characters")
                with self._lock:
                    try:
                        unseen |= not self._paste("".join(run))
                    except PasteError as exc:
                        raise PasteError(
                            f"{exc}; typed {typed} of {len(strokes)} characters before it"
                        ) from exc
                typed += len(run)
                pasted += len(run)
                continue
            for at in range(0, len(run), TEXT_PIECE):
                piece = run[at : at + TEXT_PIECE]
                if cancel is not None and cancel.is_set():
                    raise _Cancelled(f"typing cancelled after {typed} characters")
                with self._lock:
                    self.inputs.type_strokes(piece)
                typed += len(piece)
        if pasted:
            seen = (
                " (the paste was not seen taken: only a paste of the primary selection, as "
                "terminals do, can be seen)"
                if unseen
                else ""
            )
            return (
                f"typed {typed} characters; {pasted} of them ({shown_chars(paste)}) pasted through "
                f"the clipboard with {'+'.join(PASTE_KEYS)}, since {why}{seen}; the clipboard "
                "was restored"
            )
        return f"typed {typed} characters"

    def _paste(self, text: str) -> bool:
        assert self.clipboard is not None
        return self.clipboard.paste(text, lambda: self.inputs.chord(PASTE_KEYS))

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


def runs(strokes: list[str], paste: set[str]) -> list[tuple[list[str], bool]]:
    """The strokes cut into runs to type and runs to paste, in order ("\\n", "\\t" are typed)."""
    result: list[tuple[list[str], bool]] = []
    for ch in strokes:
        by_paste = ch in paste and ch not in ("\n", "\t")
        if result and result[-1][1] == by_paste:
            result[-1][0].append(ch)
        else:
            result.append(([ch], by_paste))
    return result


def shown_chars(chars: set[str]) -> str:
    """Characters named for a person: 'ß' (U+00DF), at most eight."""
    ordered = sorted(chars)
    shown = ", ".join(f"{ch!r} (U+{ord(ch):04X})" for ch in ordered[:8])
    return shown + (f" and {len(ordered) - 8} more" if len(ordered) > 8 else "")
