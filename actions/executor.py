"""The one place that moves the user's mouse and presses keys: actions on the host desktop.

Executor is the one dispatch (actions.dispatch) over the host's input: XTEST on X11 (mouse,
keys, exact text in any script), else pyautogui (Windows, macOS).
"""

from __future__ import annotations

import os
import struct
import sys
import tempfile
import threading
from typing import Any

from actions.dispatch import STEP_S, ActionExecutor, Cancelled, ExecResult, FailSafeTriggered, Gate
from actions.types import Button
from actions.xpointer import BUTTONS

__all__ = ["ExecResult", "Executor", "FailSafeTriggered"]

# pyautogui's pause between its calls; each call here passes _pause=False and the dispatch
# pauses instead (cancellably), and not after the last call of an action.
_PYAUTOGUI_PAUSE_S = STEP_S

_pyautogui_module: Any = None
_pyautogui_lock = threading.Lock()


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


class Executor(ActionExecutor):
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
        lock = threading.RLock()
        super().__init__(
            HostInput(display, lock),
            lock=lock,
            drag_duration_s=drag_duration_s,
            click_interval_s=click_interval_s,
        )
        self.display = display


class HostInput:
    """The host's pointer and keyboard (a Device): XTEST on X11, else pyautogui."""

    def __init__(self, display: str | None, lock: threading.RLock) -> None:
        self.display = display
        self._x11 = _use_x11(display)
        # The executor's input lock: the XTEST typer takes it for each key it sends.
        self._input_lock = lock
        self._typer: Any = None
        self._typer_lock = threading.Lock()
        self._focus: Any = None
        self._pointer: Any = None
        self._pointer_lock = threading.Lock()
        self._fail_safe: Any = None

    # -- pointer ------------------------------------------------------------------------

    def aim(self, x: int, y: int) -> tuple[int, int]:
        """(x, y) kept 1 px off the corners: landing on one would trip the user's fail-safe."""
        width, height = self._mouse().size()
        if x in (0, width - 1) and y in (0, height - 1):
            x = 1 if x <= 0 else width - 2
            y = 1 if y <= 0 else height - 2
        return x, y

    def position(self) -> tuple[int, int]:
        """Where the pointer is."""
        x, y = self._mouse().position()
        return int(x), int(y)

    def move(self, x: int, y: int) -> None:
        """Put the pointer at (x, y)."""
        self._mouse().move(x, y)

    def click(self, x: int, y: int, button: Button) -> None:
        """Press and release a button at (x, y)."""
        self._mouse().click(x, y, BUTTONS[button])

    def button(self, button: Button, pressed: bool) -> None:
        """Press or release a button where the pointer is."""
        mouse = self._mouse()
        (mouse.press if pressed else mouse.release)(BUTTONS[button])

    def scroll(self, clicks: int, *, horizontal: bool) -> None:
        """Wheel clicks, positive up or right (XPointer and pyautogui count the same way)."""
        self._mouse().scroll(clicks, horizontal=horizontal)

    def after_click(self) -> None:
        """Without a window manager, give the clicked window the keyboard, as a WM would."""
        if not self._x11:
            return
        if self._focus is None:
            from actions.focus import ClickFocus

            self._focus = ClickFocus(self.display)
        self._focus.after_click()

    def let_go(self, button: Button) -> None:
        """After an unfinished drag: release everything held (never raises)."""
        try:
            self.release()
        except Exception:  # the original error matters more than a failed release
            pass

    # -- keyboard -----------------------------------------------------------------------

    def press_chord(self, keys: tuple[str, ...], gate: Gate) -> None:
        """The chord by keysym on X11 (the live keymap), else through pyautogui's names."""
        self.check()
        if self._x11:
            self._restore_focus()
            from actions.xtyping import TypingCancelled

            # XTEST by keysym: pyautogui's X11 table types '>' for '<', lacks the media keys
            # and non-ASCII characters, and goes stale when the layout changes.
            try:
                self._typer_instance().press_chord(keys, check=self.check, cancel=gate.cancel)
            except TypingCancelled as exc:
                raise Cancelled(str(exc)) from exc
            return
        pg = _pyautogui()
        bad = [k for k in keys if not pg.isValidKey(k)]
        if bad:
            raise ValueError(f"cannot press {', '.join(map(repr, bad))} on this platform")
        with gate.burst():
            pg.hotkey(*keys, _pause=False)

    def last_via(self) -> str | None:
        """Never anything but keys: XTEST types any character through spare keycodes."""
        return None

    def type_text(self, text: str, gate: Gate) -> str:
        """Exact text through XTEST on X11 (any script); ASCII only through pyautogui."""
        self.check()
        if self._x11:
            self._restore_focus()
            from actions.xtyping import TypingCancelled

            try:
                typed = self._typer_instance().type_text(text, cancel=gate.cancel, check=self.check)
            except TypingCancelled as exc:
                raise Cancelled(str(exc)) from exc
            return f"typed {typed} characters"
        if not all(ch in "\n\t" or 0x20 <= ord(ch) < 0x7F for ch in text):
            raise ValueError("typing non-ASCII text is only supported on X11")
        pg = _pyautogui()
        for ch in text:  # one character a burst, so a stop ends it between two
            with gate.burst():
                pg.write(ch, _pause=False)
        return f"typed {len(text)} characters"

    # -- stopping -----------------------------------------------------------------------

    def check(self) -> None:
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

    def is_fail_safe(self, exc: Exception) -> bool:
        """Whether an error is pyautogui's fail-safe (checked without importing pyautogui)."""
        pg = _pyautogui_module
        return pg is not None and isinstance(exc, pg.FailSafeException)

    def release(self) -> list[str]:
        """Release held buttons and modifiers (XTEST: every key the typer holds too)."""
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

    # -- connections --------------------------------------------------------------------

    def _mouse(self) -> Any:
        """The mouse of the display (XTEST on X11), created on first use."""
        with self._pointer_lock:
            if self._pointer is None:
                if self._x11:
                    from actions.xpointer import XPointer

                    _ensure_xauthority()
                    self._pointer = XPointer(self.display)
                else:
                    self._pointer = _PyAutoGUIMouse()
            return self._pointer

    def _typer_instance(self) -> Any:
        """The XTEST typer, created on first use."""
        with self._typer_lock:
            if self._typer is None:
                from actions.xtyping import XTyper

                _ensure_xauthority()
                self._typer = XTyper(self.display, input_lock=self._input_lock)
            return self._typer

    def _restore_focus(self) -> None:
        """Without a window manager, keys go back to the last clicked window (see ClickFocus)."""
        if self._focus is not None:
            try:
                self._focus.before_keys()
            except Exception:  # focus is a courtesy; the keys still go where X sends them
                pass
