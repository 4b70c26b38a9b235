"""Watching a person's real input on X11 with the RECORD extension: keys and buttons as events.

RECORD copies every device event (and the requests we ask for) to a second connection, from
every client, without taking anything away from the applications. Each key press is turned
into a canonical key name (actions.keys) and, when it types one, the character, using our own
copy of the keymap: it follows the ChangeKeyboardMapping requests seen in the same stream,
because `xdotool type` binds a spare keycode just before the press and unbinds it right after.
Modifiers (Shift, Caps Lock, AltGr, Ctrl, Alt, Super) are tracked from the key events
themselves: the `state` of a recorded device event is not reliable. The keyboard group
(layout) is read once at the start.
"""

from __future__ import annotations

import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from actions.keys import X_KEYSYMS

__all__ = ["ButtonInput", "InputEvent", "KeyInput", "RecordError", "XInputRecorder"]

_CHANGE_KEYBOARD_MAPPING = 100  # core request opcode
_SHIFT_MASK, _LOCK_MASK = 1 << 0, 1 << 2

# X keysym names of modifier keys -> the canonical names chords use; "altgr" and "capslock"
# change the character typed instead.
_MODIFIER_KEYSYMS: dict[str, str] = {
    "Shift_L": "shift",
    "Shift_R": "shift",
    "Control_L": "ctrl",
    "Control_R": "ctrl",
    "Alt_L": "alt",
    "Alt_R": "alt",
    "Meta_L": "alt",
    "Meta_R": "alt",
    "Super_L": "win",
    "Super_R": "win",
    "Hyper_L": "win",
    "Hyper_R": "win",
    "ISO_Level3_Shift": "altgr",
    "Mode_switch": "altgr",
}
# X keysym name -> canonical name, the plain (left-hand) name where several share a keysym.
_CANONICAL: dict[str, str] = {}
for _name, _xname in X_KEYSYMS.items():
    _CANONICAL.setdefault(_xname, _name)
_CANONICAL.update({"Prior": "pageup", "Next": "pagedown", "KP_Enter": "enter"})


class RecordError(RuntimeError):
    """RECORD cannot be used (no X display, the extension is missing); one line."""


@dataclass(frozen=True, slots=True)
class KeyInput:
    """A key pressed or released: its canonical name, what it types, the modifiers held.

    `key` is the name of the key's first keysym ("a" for both a and A, "enter", "ctrl");
    `char` is the character the press types with the Shift, Caps Lock and AltGr state of that
    moment (None for keys that type nothing); `held` are the chord modifiers (ctrl, alt, win,
    shift) down when it was pressed, the key itself excluded. `t` is time.monotonic().
    """

    pressed: bool
    keycode: int
    key: str
    char: str | None
    held: frozenset[str]
    t: float


@dataclass(frozen=True, slots=True)
class ButtonInput:
    """A pointer button pressed or released (4-7 are wheel clicks) at global screen pixels."""

    pressed: bool
    button: int
    x: int
    y: int
    t: float


InputEvent = KeyInput | ButtonInput


def keysym_char(keysym: int) -> str | None:
    """The printable character of a Latin-1 or Unicode keysym (space included), or None."""
    if 0x20 <= keysym <= 0x7E or 0xA0 <= keysym <= 0xFF:
        return chr(keysym)
    if 0x01000100 <= keysym <= 0x0110FFFF:
        return chr(keysym - 0x01000000)
    return None


def char_keysym(ch: str) -> int:
    """The keysym of a printable character: Latin-1 keysyms equal the code point."""
    cp = ord(ch)
    return cp if 0x20 <= cp <= 0x7E or 0xA0 <= cp <= 0xFF else 0x01000000 + cp


class _Keymap:
    """Our copy of the core keyboard mapping, kept current from the recorded requests."""

    def __init__(self, display: Any) -> None:
        self.min_keycode = int(display.display.info.min_keycode)
        count = int(display.display.info.max_keycode) - self.min_keycode + 1
        self.rows: dict[int, list[int]] = {
            self.min_keycode + i: [int(k) for k in row]
            for i, row in enumerate(display.get_keyboard_mapping(self.min_keycode, count))
        }
        state = int(display.screen().root.query_pointer().mask)
        self.group = (state >> 13) & 3  # XKB puts the active group in bits 13-14
        self.caps_lock = bool(state & _LOCK_MASK)

    def change(self, data: bytes, swapped: bool) -> None:
        """Apply a ChangeKeyboardMapping request as recorded (its raw bytes)."""
        if len(data) < 8:
            return
        count, first, per = data[1], data[4], data[5]
        order = (">" if sys.byteorder == "little" else "<") if swapped else "="
        needed = 8 + 4 * count * per
        if per == 0 or len(data) < needed:
            return
        syms = struct.unpack(f"{order}{count * per}I", data[8:needed])
        for i in range(count):
            self.rows[first + i] = list(syms[i * per : (i + 1) * per])

    def keysym(self, keycode: int, column: int) -> int:
        """The keysym at a column of a keycode's row, falling back to column 0 (as X does)."""
        row = self.rows.get(keycode, [])
        if column < len(row) and row[column]:
            return row[column]
        # One keysym only: X treats it as both levels (upper case for a letter).
        if column % 2 == 1 and (column - 1) < len(row) and row[column - 1]:
            base = row[column - 1]
            char = keysym_char(base)
            if char is not None and char.upper() != char and len(char.upper()) == 1:
                return char_keysym(char.upper())
            return base
        return row[0] if row else 0


_NAMES: dict[int, str] = {}


def _keysym_name(keysym: int) -> str | None:
    """The X name of a keysym ("Return", "Shift_L", "XF86AudioMute"), or None."""
    if not _NAMES:
        from Xlib import XK

        XK.load_keysym_group("xf86")
        for attr, value in vars(XK).items():
            if attr.startswith("XK_") and isinstance(value, int):
                name = attr[3:]
                name = "XF86" + name[5:] if name.startswith("XF86_") else name
                _NAMES.setdefault(value, name)
    return _NAMES.get(keysym)


def key_name(keysym: int) -> str | None:
    """The canonical (actions.keys) name of a keysym: a character, "enter", "f5"...; or None."""
    xname = _keysym_name(keysym)
    if xname is not None and xname in _MODIFIER_KEYSYMS:
        return _MODIFIER_KEYSYMS[xname]
    if xname is not None and xname in _CANONICAL:
        return _CANONICAL[xname]
    char = keysym_char(keysym)
    if char == " ":
        return "space"
    if char is not None:
        return char.lower() if len(char.lower()) == 1 else char
    return None


class XInputRecorder:
    """Calls `on_event` (on its own thread) for every key and button of every client.

    start() returns once RECORD is enabled; stop() ends it. Errors on the recording thread
    (the server went away) end it and are kept in `error`.
    """

    def __init__(self, on_event: Callable[[InputEvent], None], display: str | None = None) -> None:
        self._on_event = on_event
        self._display_name = display
        self._control: Any = None
        self._data: Any = None
        self._context: Any = None
        self._keymap: _Keymap | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._down: dict[int, str] = {}  # keycode -> modifier name, for modifiers held now
        # keycode -> name at its press: a release after xdotool unbound the keycode keeps it.
        self._pressed_names: dict[int, str] = {}
        self.error: str | None = None

    def start(self, timeout_s: float = 5.0) -> None:
        """Open two connections, create the RECORD context and start listening."""
        from Xlib import X, display
        from Xlib.ext import record

        try:
            self._control = display.Display(self._display_name)
            self._data = display.Display(self._display_name)
        except Exception as exc:  # no server, no authorisation: one line, never a traceback
            raise RecordError(f"cannot open the X display: {exc}") from None
        if not self._control.has_extension("RECORD"):
            self.close()
            raise RecordError("the X server has no RECORD extension: input cannot be watched")
        self._keymap = _Keymap(self._control)
        self._context = self._control.record_create_context(
            0,
            [record.AllClients],
            [
                {
                    "core_requests": (_CHANGE_KEYBOARD_MAPPING, _CHANGE_KEYBOARD_MAPPING),
                    "core_replies": (0, 0),
                    "ext_requests": (0, 0, 0, 0),
                    "ext_replies": (0, 0, 0, 0),
                    "delivered_events": (0, 0),
                    "device_events": (X.KeyPress, X.ButtonRelease),
                    "errors": (0, 0),
                    "client_started": False,
                    "client_died": False,
                }
            ],
        )
        self._control.sync()
        self._thread = threading.Thread(target=self._run, name="deskpilot-xrecord", daemon=True)
        self._thread.start()
        # enable_context blocks in the thread; its first reply (StartOfData) marks it live.
        if not self._ready.wait(timeout_s):
            self.stop()
            raise RecordError(self.error or "RECORD did not start")

    def _run(self) -> None:
        try:
            self._data.record_enable_context(self._context, self._reply)
        except Exception as exc:  # the server went away: recording simply ends
            self.error = f"input recording ended: {exc}"
        finally:
            self._ready.set()

    def _reply(self, reply: Any) -> None:
        from Xlib.ext import record

        if reply.category == record.StartOfData:
            self._ready.set()
            return
        data = bytes(reply.data)
        if reply.category == record.FromClient:
            if data and data[0] == _CHANGE_KEYBOARD_MAPPING and self._keymap is not None:
                self._keymap.change(data, bool(reply.client_swapped))
            return
        if reply.category != record.FromServer:
            return
        from Xlib.protocol import rq

        parser = rq.EventField(None)
        while len(data) >= 32:
            event, data = parser.parse_binary_value(data, self._data.display, None, None)
            try:
                self._event(event)
            except Exception as exc:  # a bug in a callback must not end the recording
                self.error = f"input event handling failed: {exc}"

    def _event(self, event: Any) -> None:
        from Xlib import X

        now = time.monotonic()
        kind = event.type & 0x7F
        if kind in (X.ButtonPress, X.ButtonRelease):
            pressed = kind == X.ButtonPress
            self._on_event(
                ButtonInput(pressed, int(event.detail), int(event.root_x), int(event.root_y), now)
            )
        elif kind in (X.KeyPress, X.KeyRelease):
            self._key(int(event.detail), kind == X.KeyPress, now)

    def _key(self, keycode: int, pressed: bool, now: float) -> None:
        keymap = self._keymap
        assert keymap is not None
        base = 2 * keymap.group
        first = keymap.keysym(keycode, base) or keymap.keysym(keycode, 0)
        name = key_name(first) if first else None
        if name is None:
            name = f"keycode{keycode}"
        if pressed:
            self._pressed_names[keycode] = name
        else:
            name = self._pressed_names.pop(keycode, name)
        held = frozenset(m for k, m in self._down.items() if k != keycode)
        modifier = _MODIFIER_KEYSYMS.get(_keysym_name(first) or "") if first else None
        if _keysym_name(first) == "Caps_Lock" and pressed:
            keymap.caps_lock = not keymap.caps_lock
        char = None
        if pressed and modifier is None:
            char = self._char(keymap, keycode, base, held)
        if modifier is not None:
            if pressed:
                self._down[keycode] = modifier
            else:
                self._down.pop(keycode, None)
        chord_held = frozenset(m for m in held if m != "altgr")
        self._on_event(KeyInput(pressed, keycode, name, char, chord_held, now))

    @staticmethod
    def _char(keymap: _Keymap, keycode: int, base: int, held: frozenset[str]) -> str | None:
        """The character a press types with Shift, Caps Lock and AltGr as they are now."""
        shift = "shift" in held
        column = base + (4 if "altgr" in held else 0)
        lower = keysym_char(keymap.keysym(keycode, column))
        upper = keysym_char(keymap.keysym(keycode, column + 1))
        if keymap.caps_lock and lower is not None and upper is not None:
            if lower != upper and lower.upper() == upper:
                shift = not shift  # Caps Lock swaps the levels of letter keys
        return upper if shift else lower

    def stop(self) -> None:
        """Disable the context (the listening thread then returns) and close the connections."""
        if self._control is not None and self._context is not None:
            try:
                self._control.record_disable_context(self._context)
                self._control.flush()
            except Exception:  # the server went first: nothing to disable
                pass
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=3.0)
        if self._control is not None and self._context is not None:
            try:
                self._control.record_free_context(self._context)
                self._control.flush()
            except Exception:
                pass
        self._context = None
        self.close()

    def close(self) -> None:
        """Close both connections."""
        for name in ("_data", "_control"):
            conn = getattr(self, name)
            setattr(self, name, None)
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # already gone
                    pass
