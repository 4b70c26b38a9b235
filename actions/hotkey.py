"""A global hotkey that X delivers to deskpilot alone (XGrabKey): it never reaches another app.

pynput's listener only observes the keyboard (X RECORD), so the focused application received
the kill switch too: an xterm got a stray byte and the next command failed. A passive grab on
the root window takes the key away from every other client while it is held by us.
"""

from __future__ import annotations

import os
import select
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# pynput-style modifier names -> X modifier masks (Mod1 is Alt, Mod4 is Super on every
# common keymap: the same assumption xdotool and the window managers make).
_MODIFIER_MASKS: dict[str, int] = {
    "ctrl": 1 << 2,  # ControlMask
    "control": 1 << 2,
    "shift": 1 << 0,  # ShiftMask
    "alt": 1 << 3,  # Mod1Mask
    "cmd": 1 << 6,  # Mod4Mask
    "super": 1 << 6,
    "win": 1 << 6,
    "meta": 1 << 6,
}
_LOCK, _NUMLOCK = 1 << 1, 1 << 4  # LockMask, Mod2Mask: held or not, the hotkey must work
# Named keys in pynput's syntax whose X keysym name differs.
_KEY_NAMES = {
    "esc": "Escape",
    "enter": "Return",
    "space": "space",
    "tab": "Tab",
    "backspace": "BackSpace",
    "delete": "Delete",
    "insert": "Insert",
    "home": "Home",
    "end": "End",
    "page_up": "Prior",
    "page_down": "Next",
    "pause": "Pause",
    "print_screen": "Print",
    "scroll_lock": "Scroll_Lock",
    "up": "Up",
    "down": "Down",
    "left": "Left",
    "right": "Right",
}


class HotkeyError(ValueError):
    """A combination that cannot be grabbed; the message says why in one line."""


@dataclass(frozen=True, slots=True)
class Combo:
    """A parsed combination: X modifier mask and the keysym name of the key."""

    modifiers: int
    key: str


def parse_combo(combo: str) -> Combo:
    """Parse pynput syntax ("<ctrl>+<alt>+<shift>+x"); HotkeyError when it is not one key."""
    mask, keys = 0, []
    for raw in combo.split("+"):
        part = raw.strip().lower()
        name = part[1:-1] if part.startswith("<") and part.endswith(">") else part
        if not name:
            raise HotkeyError(f"hotkey {combo!r}: empty key name")
        if name in _MODIFIER_MASKS:
            mask |= _MODIFIER_MASKS[name]
        elif name.rstrip("_lr") in _MODIFIER_MASKS:  # ctrl_l, alt_r: the modifier itself
            mask |= _MODIFIER_MASKS[name.rstrip("_lr")]
        else:
            keys.append(name)
    if len(keys) != 1:
        raise HotkeyError(f"hotkey {combo!r} must name exactly one key besides its modifiers")
    key = keys[0]
    if key in _KEY_NAMES:
        key = _KEY_NAMES[key]
    elif len(key) > 1 and key[0] == "f" and key[1:].isdigit():
        key = key.upper()
    return Combo(mask, key)


class XHotkey:
    """Grabs one combination on the root window and calls back (on its own thread) when pressed."""

    def __init__(self, combo: str, callback: Callable[[], None]) -> None:
        self.combo = parse_combo(combo)
        self._callback = callback
        self._display: Any = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = -1, -1
        self._keycode = 0

    def start(self) -> None:
        """Grab the key; HotkeyError when there is no X server or another client holds it."""
        if not os.environ.get("DISPLAY"):
            raise HotkeyError("no X display to grab the hotkey on")
        from Xlib import XK, X, display, error

        try:
            d = display.Display()
        except Exception as exc:  # no server, no authorisation: one line, never a traceback
            raise HotkeyError(f"cannot open the X display: {exc}") from None
        keysym = XK.string_to_keysym(self.combo.key)
        keycode = d.keysym_to_keycode(keysym) if keysym else 0
        if not keycode:
            d.close()
            raise HotkeyError(f"the key {self.combo.key!r} is not on this keyboard")
        root = d.screen().root
        catcher = error.CatchError(error.BadAccess)
        for extra in (0, _LOCK, _NUMLOCK, _LOCK | _NUMLOCK):
            root.grab_key(
                keycode,
                self.combo.modifiers | extra,
                True,
                X.GrabModeAsync,
                X.GrabModeAsync,
                onerror=catcher,
            )
        d.sync()
        if catcher.get_error() is not None:
            d.close()
            raise HotkeyError("another application already uses this combination")
        self._display, self._keycode = d, int(keycode)
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._listen, name="deskpilot-hotkey", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        from Xlib import X

        d = self._display
        relevant = ~(_LOCK | _NUMLOCK)
        while not self._stopping.is_set():
            try:
                while d.pending_events():
                    event = d.next_event()
                    if (
                        event.type == X.KeyPress
                        and event.detail == self._keycode
                        and (event.state & relevant & 0xFF) == self.combo.modifiers
                    ):
                        self._callback()
                select.select([d.fileno(), self._wake_r], [], [], 1.0)
            except Exception:  # the display went away: the hotkey is simply gone
                return

    def stop(self) -> None:
        """Release the grab and end the listening thread."""
        self._stopping.set()
        if self._wake_w >= 0:
            os.write(self._wake_w, b"x")
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=2.0)
        d, self._display = self._display, None
        if d is not None:
            try:
                from Xlib import X

                d.screen().root.ungrab_key(self._keycode, X.AnyModifier)
                d.sync()
                d.close()
            except Exception:  # the server went first: nothing is grabbed any more
                pass
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r, self._wake_w = -1, -1
