"""The one place that moves the mouse and presses keys: runs computer_use actions on the desktop."""

from __future__ import annotations

import math
import os
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, assert_never

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
from actions.xpointer import BUTTONS

__all__ = ["ExecResult", "Executor", "FailSafeTriggered", "MAX_WAIT_S"]

# A model asking to wait longer than this gets this much; the user can always stop earlier.
MAX_WAIT_S = 60.0
_WAIT_SLICE_S = 0.05
# Between the calls of one action; the last call of each action passes _pause=False, since
# the loop's settle waits for the screen after every action anyway (20 ms of pure latency).
_PYAUTOGUI_PAUSE_S = 0.02
# A drag moves the pointer in steps this far apart: apps see motion, and a stop lands between
# two steps, so it is never more than one step late.
_DRAG_STEP_S = 0.02
_DRAG_MAX_STEPS = 500
# release_all waits at most this long for the input burst in flight (a tap, a drag step).
_RELEASE_WAIT_S = 1.0

_pyautogui_module: Any = None
_pyautogui_lock = threading.Lock()


class FailSafeTriggered(RuntimeError):
    """The user pushed the pointer into a screen corner (pyautogui's fail-safe): stop the run."""


@dataclass(frozen=True, slots=True)
class ExecResult:
    """What executing one action did."""

    ok: bool
    detail: str
    points: tuple[tuple[int, int], ...] = ()
    error: str | None = None
    duration_s: float = 0.0
    # How text went in when not by keys alone: "clipboard" (pasted; actions/desktop/clipboard.py).
    via: str | None = None


class _Cancelled(Exception):
    """The cancel event was set before or during an action."""


def _use_x11(display: str | None = None) -> bool:
    """Whether input goes through X11 (XTEST) rather than pyautogui's other backends."""
    return sys.platform not in ("win32", "darwin") and bool(display or os.environ.get("DISPLAY"))


def _ensure_xauthority() -> None:
    """Point XAUTHORITY at a stand-in file when the named one is missing (Xlib, pyautogui fail)."""
    if sys.platform in ("win32", "darwin"):
        return
    path = os.environ.get("XAUTHORITY") or os.path.expanduser("~/.Xauthority")
    if os.path.exists(path):
        return
    folder = tempfile.mkdtemp(prefix="deskpilot-xauth-")
    stand_in = os.path.join(folder, "Xauthority")
    with open(stand_in, "wb") as fp:
        fp.write(_PLACEHOLDER_XAUTH_ENTRY)
    os.environ["XAUTHORITY"] = stand_in


def _xauth_field(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


# One entry for a host that does not exist: it never matches (so no cookie is sent, as with
# no file), and python-xlib does not print "no xauthority details" as for an empty file.
_PLACEHOLDER_XAUTH_ENTRY = (
    struct.pack(">H", 256)  # FamilyLocal
    + _xauth_field(b"deskpilot-placeholder.invalid")
    + _xauth_field(b"0")
    + _xauth_field(b"")
    + _xauth_field(b"")
)


def _pyautogui() -> Any:
    """pyautogui, imported on first use (it opens the display at import time)."""
    global _pyautogui_module
    with _pyautogui_lock:
        if _pyautogui_module is None:
            _ensure_xauthority()
            import pyautogui

            pyautogui.FAILSAFE = True
            pyautogui.PAUSE = _PYAUTOGUI_PAUSE_S
            _pyautogui_module = pyautogui
        return _pyautogui_module


class _PyAutoGUIMouse:
    """pyautogui's mouse (Windows, macOS) behind the XPointer interface."""

    def size(self) -> tuple[int, int]:
        width, height = _pyautogui().size()
        return int(width), int(height)

    def position(self) -> tuple[int, int]:
        x, y = _pyautogui().position()
        return int(x), int(y)

    def move(self, x: int, y: int) -> None:
        _pyautogui().moveTo(x, y, _pause=False)

    def press(self, button: int) -> None:
        _pyautogui().mouseDown(button=_BUTTON_NAMES[button], _pause=False)

    def release(self, button: int) -> None:
        _pyautogui().mouseUp(button=_BUTTON_NAMES[button], _pause=False)

    def click(self, x: int, y: int, button: int) -> None:
        _pyautogui().click(x, y, button=_BUTTON_NAMES[button], _pause=False)

    def scroll(self, clicks: int, *, horizontal: bool = False) -> None:
        if horizontal:
            _pyautogui().hscroll(clicks, _pause=False)
        else:
            _pyautogui().scroll(clicks, _pause=False)

    def close(self) -> None:
        pass


_BUTTON_NAMES = {1: "left", 2: "middle", 3: "right"}


def _one_line(exc: BaseException) -> str:
    """An exception as one short line for ExecResult.error."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    line = f"{type(exc).__name__}: {text}"
    return line if len(line) <= 300 else line[:297] + "..."


def _chord_text(keys: tuple[str, ...]) -> str:
    """A chord as "ctrl+shift+t" for details."""
    return "+".join(keys)


class Executor:
    """Executes actions on one display: XTEST on X11 (mouse, keys, exact text), else pyautogui.

    `display` names the X display to act on (a private desktop); None is $DISPLAY, the user's.
    """

    def __init__(
        self,
        *,
        drag_duration_s: float = 0.4,
        click_interval_s: float = 0.05,
        display: str | None = None,
    ) -> None:
        self.display = display
        self._x11 = _use_x11(display)
        self.drag_duration_s = drag_duration_s
        self.click_interval_s = click_interval_s
        # Held while input is sent (one tap, one drag step, one click): release_all takes it,
        # so once it returns, the action in flight sees its cancel before sending anything more.
        self._input_lock = threading.RLock()
        self._typer: Any = None
        self._typer_lock = threading.Lock()
        self._focus: Any = None
        self._pointer: Any = None
        self._pointer_lock = threading.Lock()
        self._fail_safe: Any = None

    # -- public API ---------------------------------------------------------------------

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
        try:
            if cancel is not None and cancel.is_set():
                raise _Cancelled("cancelled before it started")
            detail, points = self._run(action, space, monitor, cancel)
        except FailSafeTriggered:
            self._release_quietly()
            raise
        except _Cancelled as exc:
            return ExecResult(
                ok=False,
                detail=f"{action.name} cancelled",
                error=str(exc),
                duration_s=time.monotonic() - start,
            )
        except Exception as exc:
            if _is_pyautogui_failsafe(exc):
                self._release_quietly()
                raise FailSafeTriggered(
                    "fail-safe: the pointer is in a screen corner; the run was stopped"
                ) from exc
            return ExecResult(
                ok=False,
                detail=f"{action.name} failed",
                error=_one_line(exc),
                duration_s=time.monotonic() - start,
            )
        return ExecResult(
            ok=True, detail=detail, points=points, duration_s=time.monotonic() - start
        )

    def release_all(self) -> list[str]:
        """Release held mouse buttons and modifier keys (for stop); returns what it released.

        Call it after setting the running action's cancel event (from any thread): it waits for
        the input burst in flight, and after it returns that action sends nothing more.
        """
        acquired = self._input_lock.acquire(timeout=_RELEASE_WAIT_S)
        try:
            return self._release_held()
        finally:
            if acquired:
                self._input_lock.release()

    def _release_held(self) -> list[str]:
        if self._x11:
            from actions.xtyping import release_held_input

            typer = self._typer
            held = typer.held_keycodes() if typer is not None else []
            return release_held_input(self.display, extra_keycodes=held)
        pg = _pyautogui()
        released: list[str] = []
        for button in ("left", "middle", "right"):
            try:
                pg.mouseUp(button=button, _pause=False)
                released.append(button)
            except Exception:  # best effort: releasing must never raise during a stop
                pass
        for key in ("shift", "ctrl", "alt", "win"):
            try:
                pg.keyUp(key, _pause=False)
                released.append(key)
            except Exception:  # best effort, as above
                pass
        return released

    def close(self) -> None:
        """Restore the keyboard mapping changed for typing and drop the X connections."""
        with self._typer_lock:
            typer, self._typer = self._typer, None
        if typer is not None:
            typer.close()
        if self._focus is not None:
            self._focus.close()
            self._focus = None
        with self._pointer_lock:
            pointer, self._pointer = self._pointer, None
            fail_safe, self._fail_safe = self._fail_safe, None
        for connection in (pointer, fail_safe):
            if connection is not None:
                connection.close()

    def _mouse(self) -> Any:
        """The mouse of the executor's display (XTEST on X11), created on first use."""
        with self._pointer_lock:
            if self._pointer is None:
                if self._x11:
                    from actions.xpointer import XPointer

                    _ensure_xauthority()
                    self._pointer = XPointer(self.display)
                else:
                    self._pointer = _PyAutoGUIMouse()
            return self._pointer

    def _check_fail_safe(self) -> None:
        """Stop when the user pushed their pointer into a screen corner (pyautogui's fail-safe)."""
        if not self._x11:
            _pyautogui().failSafeCheck()
            return
        if self.display is not None and self.display != os.environ.get("DISPLAY"):
            # A private desktop: the user's pointer is theirs to use (a hot corner must not
            # stop the agent), and Ctrl-C or the app's Stop end the run.
            return
        with self._pointer_lock:
            if self._fail_safe is None:
                from actions.xpointer import HostFailSafe

                self._fail_safe = HostFailSafe()
            fail_safe = self._fail_safe
        if fail_safe.triggered():
            raise FailSafeTriggered(
                "fail-safe: the pointer is in a screen corner; the run was stopped"
            )

    @contextmanager
    def _burst(self, cancel: threading.Event | None) -> Iterator[None]:
        """One uninterrupted piece of input, sent only if the action was not cancelled."""
        with self._input_lock:
            if cancel is not None and cancel.is_set():
                raise _Cancelled("cancelled while it ran")
            self._check_fail_safe()
            yield

    def _pause(self, cancel: threading.Event | None, seconds: float = _PYAUTOGUI_PAUSE_S) -> None:
        """pyautogui's pause between the calls of one action, ended early by a cancel."""
        if cancel is None:
            time.sleep(seconds)
        elif cancel.wait(seconds):
            raise _Cancelled("cancelled while it ran")

    def _focus_clicked_window(self) -> None:
        """Without a window manager, give the clicked window the keyboard, as a WM would."""
        if not self._x11:
            return
        if self._focus is None:
            from actions.focus import ClickFocus

            self._focus = ClickFocus(self.display)
        self._focus.after_click()

    def _restore_focus(self) -> None:
        """Without a window manager, keys go back to the last clicked window (see ClickFocus)."""
        if self._focus is not None:
            try:
                self._focus.before_keys()
            except Exception:  # focus is a courtesy; the keys still go where X sends them
                pass

    # -- the one dispatch ---------------------------------------------------------------

    def _run(
        self,
        action: Action,
        space: CoordinateSpace,
        monitor: Monitor,
        cancel: threading.Event | None,
    ) -> tuple[str, tuple[tuple[int, int], ...]]:
        """Execute an action; returns a detail line and the screen points touched."""
        match action:
            case MouseMove(coordinate=c):
                x, y = self._map(c, space, monitor)
                with self._burst(cancel):
                    self._mouse().move(x, y)
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
                return self._key(keys, cancel), ()
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

    # -- mouse --------------------------------------------------------------------------

    def _map(self, point: Point, space: CoordinateSpace, monitor: Monitor) -> tuple[int, int]:
        """Model point to screen pixel, kept 1 px off the fail-safe corners."""
        x, y = model_to_screen(point, space, monitor)
        width, height = self._mouse().size()
        if x in (0, width - 1) and y in (0, height - 1):
            # Landing on a corner would make our own next action trip the user's fail-safe.
            x = 1 if x <= 0 else width - 2
            y = 1 if y <= 0 else height - 2
        return x, y

    def _click(
        self,
        point: Point,
        space: CoordinateSpace,
        monitor: Monitor,
        button: str,
        clicks: int,
        cancel: threading.Event | None,
    ) -> tuple[str, tuple[tuple[int, int], ...]]:
        x, y = self._map(point, space, monitor)
        mouse = self._mouse()
        with self._burst(cancel):
            mouse.move(x, y)
        self._pause(cancel)
        for n in range(clicks):
            if n:
                self._pause(cancel, self.click_interval_s)
            # Press and release in one burst: a stop never lands between them.
            with self._burst(cancel):
                mouse.click(x, y, BUTTONS[button])
        self._focus_clicked_window()
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
        mouse = self._mouse()
        ex, ey = self._map(end, space, monitor)
        if start is not None:
            sx, sy = self._map(start, space, monitor)
            with self._burst(cancel):
                mouse.move(sx, sy)
            self._pause(cancel)
        else:
            sx, sy = mouse.position()
        with self._burst(cancel):
            mouse.move(sx, sy)
            mouse.press(BUTTONS["left"])
        released = False
        try:
            self._pause(cancel)
            # Intermediate motion, so apps see a drag rather than a jump; the steps are short
            # so that a stop lets go of the button at once.
            steps = max(2, min(_DRAG_MAX_STEPS, round(self.drag_duration_s / _DRAG_STEP_S)))
            interval = self.drag_duration_s / steps
            for n in range(1, steps + 1):
                self._pause(cancel, interval)
                x = round(sx + (ex - sx) * n / steps)
                y = round(sy + (ey - sy) * n / steps)
                with self._burst(cancel):
                    mouse.move(x, y)
            with self._burst(cancel):
                mouse.move(ex, ey)
                mouse.release(BUTTONS["left"])
            released = True
        finally:
            if not released:
                # Cancelled or failed with the button down: the one input allowed after a stop.
                self._release_quietly()
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
        mouse = self._mouse()
        points: tuple[tuple[int, int], ...] = ()
        if point is not None:
            x, y = self._map(point, space, monitor)
            with self._burst(cancel):
                mouse.move(x, y)
            self._pause(cancel)
            points = ((x, y),)
        amount = int(clicks)
        with self._burst(cancel):
            mouse.scroll(amount, horizontal=horizontal)
        if horizontal:
            way = "right" if amount > 0 else "left"
        else:
            way = "up" if amount > 0 else "down"
        where = f" at {points[0]}" if points else ""
        return f"scrolled {way} {abs(amount)} clicks{where}", points

    # -- keyboard -----------------------------------------------------------------------

    def _typer_instance(self) -> Any:
        """The XTEST typer, created on first use."""
        with self._typer_lock:
            if self._typer is None:
                from actions.xtyping import XTyper

                _ensure_xauthority()
                self._typer = XTyper(self.display, input_lock=self._input_lock)
            return self._typer

    def _key(self, keys: tuple[str, ...], cancel: threading.Event | None) -> str:
        names = normalize_chord(keys)
        self._check_fail_safe()
        if self._x11:
            self._restore_focus()
            from actions.xtyping import TypingCancelled

            # XTEST by keysym: pyautogui's X11 table types '>' for '<', lacks the media keys
            # and non-ASCII characters, and goes stale when the layout changes.
            try:
                self._typer_instance().press_chord(
                    names, check=self._check_fail_safe, cancel=cancel
                )
            except TypingCancelled as exc:
                raise _Cancelled(str(exc)) from exc
        else:
            pg = _pyautogui()
            bad = [k for k in names if not pg.isValidKey(k)]
            if bad:
                raise ValueError(f"cannot press {', '.join(map(repr, bad))} on this platform")
            with self._burst(cancel):
                pg.hotkey(*names, _pause=False)
        return f"pressed {_chord_text(names)}"

    def _type(self, text: str, cancel: threading.Event | None) -> str:
        self._check_fail_safe()
        if self._x11:
            self._restore_focus()
            from actions.xtyping import TypingCancelled

            try:
                typed = self._typer_instance().type_text(
                    text, cancel=cancel, check=self._check_fail_safe
                )
            except TypingCancelled as exc:
                raise _Cancelled(str(exc)) from exc
            return f"typed {typed} characters"
        if not all(ch in "\n\t" or 0x20 <= ord(ch) < 0x7F for ch in text):
            raise ValueError("typing non-ASCII text is only supported on X11")
        pg = _pyautogui()
        for ch in text:  # one character a burst, so a stop ends it between two
            with self._burst(cancel):
                pg.write(ch, _pause=False)
        return f"typed {len(text)} characters"

    # -- waiting ------------------------------------------------------------------------

    def _wait(self, seconds: float, cancel: threading.Event | None) -> str:
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"wait time must be a finite number of seconds >= 0, not {seconds!r}")
        target = min(float(seconds), MAX_WAIT_S)
        deadline = time.monotonic() + target
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if cancel is not None:
                if cancel.wait(min(_WAIT_SLICE_S, left)):
                    raise _Cancelled(f"wait cancelled after {target - left:.2f} s")
            else:
                time.sleep(min(_WAIT_SLICE_S, left))
        capped = f" (capped from {seconds:g} s)" if target < seconds else ""
        return f"waited {target:g} s{capped}"

    def _release_quietly(self) -> None:
        """release_all for error paths: never raises over the original error."""
        try:
            self.release_all()
        except Exception:  # the original error matters more than a failed release
            pass


def _is_pyautogui_failsafe(exc: BaseException) -> bool:
    """Whether an exception is pyautogui's fail-safe (checked without importing pyautogui)."""
    pg = _pyautogui_module
    return pg is not None and isinstance(exc, pg.FailSafeException)
