"""Exact Unicode typing and key chords on X11 through XTEST, independent of the keyboard layout.

Each character is looked up in the live keymap (level 0 or 1 of the active group, adding
Shift where needed). Characters the keymap lacks are bound to spare keycodes (keycodes with
no keysyms) before any of the text is typed, because clients read the keymap lazily: a
keycode that is rebound while the client still has its events queued comes out as the new
character. Bindings therefore stay in place (cached for reuse) until close().

A text with more such characters than there are spare keycodes is typed in batches. Before a
keycode typed earlier is rebound, the receiving client must have handled those keys: the
typer pings the focused window (EWMH _NET_WM_PING, answered in event order by Qt, GTK,
Chromium...) and waits for the answer; for clients without it (xterm) it waits `settle_s`.
"""

from __future__ import annotations

import random
import select
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from actions.keys import MODIFIERS, X_KEYSYMS, KeyNameError

__all__ = ["TypingCancelled", "XTyper", "char_keysym", "release_held_input", "validate_text"]

NO_SYMBOL = 0
_SHIFT_MASK = 1 << 0
_LOCK_MASK = 1 << 2
_BUTTON_MASKS = {1: 1 << 8, 2: 1 << 9, 3: 1 << 10, 4: 1 << 11, 5: 1 << 12}


class TypingCancelled(RuntimeError):
    """Typing stopped because the cancel event was set; `typed` characters went out."""

    def __init__(self, typed: int) -> None:
        super().__init__(f"typing cancelled after {typed} characters")
        self.typed = typed


def validate_text(text: str) -> list[str]:
    """The text as strokes ("\\r\\n" and "\\r" become "\\n"); ValueError on control chars."""
    strokes: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\r":
            strokes.append("\n")
            i += 2 if text[i + 1 : i + 2] == "\n" else 1
            continue
        if ch not in ("\n", "\t"):
            category = unicodedata.category(ch)
            if category == "Cc":
                raise ValueError(
                    f"cannot type control character U+{ord(ch):04X} at index {i}: "
                    "only \\n and \\t are typed (as Return and Tab); use the key action for others"
                )
            if category == "Cs":
                raise ValueError(f"cannot type lone surrogate U+{ord(ch):04X} at index {i}")
        strokes.append(ch)
        i += 1
    return strokes


def char_keysym(ch: str) -> int:
    """The X keysym of a printable character: Latin-1 keysyms equal the code point."""
    cp = ord(ch)
    if 0x20 <= cp <= 0x7E or 0xA0 <= cp <= 0xFF:
        return cp
    return 0x01000000 + cp


def _keysym_char(keysym: int) -> str | None:
    """The character a keysym stands for, for Latin-1 and Unicode keysyms only."""
    if 0x20 <= keysym <= 0x7E or 0xA0 <= keysym <= 0xFF:
        return chr(keysym)
    if 0x01000100 <= keysym <= 0x0110FFFF:
        return chr(keysym - 0x01000000)
    return None


def _name_keysym(xname: str) -> int:
    """The keysym for an X keysym name; python-xlib spells the XF86 ones "XF86_...".."""
    from Xlib import XK

    keysym = int(XK.string_to_keysym(xname))
    if keysym == NO_SYMBOL and xname.startswith("XF86"):
        XK.load_keysym_group("xf86")
        keysym = int(XK.string_to_keysym("XF86_" + xname[4:]))
    if keysym == NO_SYMBOL:
        raise KeyNameError(f"no X keysym named {xname!r}")
    return keysym


def key_keysym(key: str) -> int:
    """The keysym of a canonical key name (see actions.keys) or of a single character."""
    if key in X_KEYSYMS:
        return _name_keysym(X_KEYSYMS[key])
    if len(key) == 1:
        if key == "\n":
            return _name_keysym("Return")
        if key == "\t":
            return _name_keysym("Tab")
        validate_text(key)
        return char_keysym(key)
    raise KeyNameError(f"unknown key {key!r}: normalise it with actions.keys.normalize_key first")


@dataclass(frozen=True, slots=True)
class _Stroke:
    """One key to tap: its keycode and whether Shift must be held."""

    keycode: int
    shift: bool


class _Keymap:
    """A snapshot of the core keyboard mapping and the modifier state it is read under."""

    def __init__(self, display: Any, owned: set[int]) -> None:
        self.min_keycode = int(display.display.info.min_keycode)
        max_keycode = int(display.display.info.max_keycode)
        count = max_keycode - self.min_keycode + 1
        self.rows: list[list[int]] = [
            [int(k) for k in row] for row in display.get_keyboard_mapping(self.min_keycode, count)
        ]
        mods = display.get_modifier_mapping()
        self.modifier_keycodes: set[int] = {int(k) for row in mods for k in row if k}
        shift_codes = [int(k) for k in mods[0] if k]
        self.shift_keycode = shift_codes[0] if shift_codes else 0
        state = int(display.screen().root.query_pointer().mask)
        # With XKB, bits 13-14 of the core state carry the active group (layout).
        self.group = (state >> 13) & 3
        self.caps_lock = bool(state & _LOCK_MASK)
        self._index: dict[int, tuple[int, int]] = {}
        first, second = 2 * self.group, 2 * self.group + 1
        for offset, row in enumerate(self.rows):
            keycode = self.min_keycode + offset
            if keycode in owned:
                continue
            for level, column in ((0, first), (1, second)):
                if column < len(row) and row[column] != NO_SYMBOL:
                    # The first (lowest) keycode/level wins: the main block before extras.
                    self._index.setdefault(row[column], (keycode, level))
            if not self.shift_keycode and row and row[0] == 0xFFE1:  # Shift_L
                self.shift_keycode = keycode

    def row(self, keycode: int) -> list[int]:
        """The keysyms of a keycode."""
        return self.rows[keycode - self.min_keycode]

    def spare_keycodes(self) -> list[int]:
        """Keycodes with no keysyms at all (and no modifier role): free to bind."""
        return [
            self.min_keycode + offset
            for offset, row in enumerate(self.rows)
            if all(k == NO_SYMBOL for k in row)
            and self.min_keycode + offset not in self.modifier_keycodes
        ]

    def stroke(self, keysym: int) -> _Stroke | None:
        """How to produce a keysym with the current map, or None when it is not mapped."""
        found = self._index.get(keysym)
        if found is None:
            return None
        keycode, level = found
        shift = level == 1
        if self.caps_lock and self._is_case_pair(keycode):
            # Caps Lock swaps the levels of letter keys; Shift undoes it.
            shift = not shift
        return _Stroke(keycode, shift)

    def _is_case_pair(self, keycode: int) -> bool:
        row = self.row(keycode)
        first, second = 2 * self.group, 2 * self.group + 1
        if second >= len(row):
            return False
        lower, upper = _keysym_char(row[first]), _keysym_char(row[second])
        return (
            lower is not None and upper is not None and lower != upper and (lower.upper() == upper)
        )


class XTyper:
    """Types text and presses chords with XTEST; owns the spare-keycode bindings it makes."""

    def __init__(
        self,
        display_name: str | None = None,
        *,
        key_delay_s: float = 0.004,
        bind_delay_s: float = 0.05,
        settle_s: float = 0.3,
        ping_timeout_s: float = 5.0,
        max_spare: int | None = None,
        input_lock: threading.RLock | None = None,
    ) -> None:
        from Xlib import display as xdisplay
        from Xlib.ext import xtest

        self._display: Any = xdisplay.Display(display_name)
        if not self._display.has_extension("XTEST"):
            self._display.close()
            raise RuntimeError("the X server has no XTEST extension: cannot send input")
        self._fake_input = xtest.fake_input
        self.key_delay_s = key_delay_s
        self.bind_delay_s = bind_delay_s
        self.settle_s = settle_s
        self.ping_timeout_s = ping_timeout_s
        self._ping_display: Any = None
        self._ping_stamp = random.randrange(1, 1 << 31)
        self.max_spare = max_spare
        self._lock = threading.RLock()
        # Held around every tap and chord (shared with the executor): an emergency release
        # waits for it, and the next tap checks the cancel event under it.
        self._input_lock = input_lock or threading.RLock()
        # keysym -> keycode we bound it to, least recently used first.
        self._bound: OrderedDict[int, int] = OrderedDict()
        # keycode -> its keysyms before we bound it (restored on close).
        self._original: dict[int, list[int]] = {}
        # keycode -> when we last tapped it (a rebinding waits settle_s after that).
        self._last_used: dict[int, float] = {}
        self._held: list[int] = []
        self._shift_code = 0
        self._closed = False

    # -- public API ---------------------------------------------------------------------

    def type_text(
        self,
        text: str,
        *,
        cancel: threading.Event | None = None,
        check: Callable[[], None] | None = None,
    ) -> int:
        """Type text exactly; returns the number of characters typed.

        `check` runs before each character (the executor's fail-safe check) and may raise;
        `cancel` stops typing between characters (and during binding waits) with
        TypingCancelled; a key is never left down, since each tap is sent whole.
        """
        strokes = validate_text(text)
        if not strokes:
            return 0
        keysyms = [key_keysym(ch) for ch in strokes]
        typed = 0
        with self._lock:
            self._ensure_open()
            keymap = self._snapshot()
            for segment in self._segments(keysyms, keymap):
                plan = self._prepare(segment, keymap, cancel)
                if plan is None:
                    raise TypingCancelled(typed)
                for keysym in segment:
                    with self._input_lock:
                        if cancel is not None and cancel.is_set():
                            raise TypingCancelled(typed)
                        if check is not None:
                            check()
                        self._tap(plan[keysym])
                    typed += 1
                    if self.key_delay_s > 0:
                        time.sleep(self.key_delay_s)
                # The next segment rebinds keycodes: re-read the map it will change.
                keymap = self._snapshot()
        return typed

    def press_chord(
        self,
        keys: Sequence[str],
        *,
        check: Callable[[], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        """Press canonical keys (actions.keys names or characters) together; release reversed.

        A chord is sent whole or not at all: `cancel` set before it starts raises
        TypingCancelled(0).
        """
        if not keys:
            raise KeyNameError("no keys given")
        keysyms = [key_keysym(k) for k in keys]
        with self._lock:
            self._ensure_open()
            keymap = self._snapshot()
            unique = list(dict.fromkeys(keysyms))
            if len(self._missing(unique, keymap)) > self._capacity(keymap):
                raise RuntimeError("not enough spare keycodes to bind the chord's keys")
            plan = self._prepare(unique, keymap, cancel)
            if plan is None:
                raise TypingCancelled(0)
            with self._input_lock:
                if cancel is not None and cancel.is_set():
                    raise TypingCancelled(0)
                if check is not None:
                    check()
                self._chord(keys, keysyms, plan, keymap)

    def _chord(
        self, keys: Sequence[str], keysyms: list[int], plan: dict[int, _Stroke], keymap: _Keymap
    ) -> None:
        """Press the planned keys in order, then release them in reverse, whatever happens."""
        shift_held = any(k in ("shift", "shiftleft", "shiftright") for k in keys)
        pressed: list[int] = []
        try:
            for key, keysym in zip(keys, keysyms, strict=True):
                stroke = plan[keysym]
                wants_shift = stroke.shift and key not in MODIFIERS and not shift_held
                if wants_shift and keymap.shift_keycode:
                    self._press(keymap.shift_keycode, pressed)
                    shift_held = True
                self._press(stroke.keycode, pressed)
                self._last_used[stroke.keycode] = time.monotonic()
                time.sleep(self.key_delay_s)
        finally:
            for keycode in reversed(pressed):
                self._release(keycode)
            self._display.sync()

    def held_keycodes(self) -> list[int]:
        """Keycodes this typer pressed and has not released yet (for an emergency release)."""
        return list(self._held)

    def close(self) -> None:
        """Restore the keycodes this typer bound to what they were, and close the connection."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            from Xlib.error import ConnectionClosedError

            try:
                for keycode in list(self._held):
                    self._release(keycode)
                used = [self._last_used[kc] for kc in self._original if kc in self._last_used]
                if used and not self.sync_focus_client():
                    # As for a rebinding: keys typed moments ago must be handled first.
                    wait = max(used) + self.settle_s - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                for keycode, row in self._original.items():
                    self._display.change_keyboard_mapping(keycode, [row or [NO_SYMBOL]])
                self._display.sync()
            except (ConnectionClosedError, OSError):
                pass  # the X server is gone, and our bindings with it
            finally:
                self._bound.clear()
                self._original.clear()
                for dpy in (self._display, self._ping_display):
                    if dpy is not None:
                        try:
                            dpy.close()
                        except (ConnectionClosedError, OSError):
                            pass  # already closed by the server going away
                self._ping_display = None

    # -- internals ----------------------------------------------------------------------

    def _ensure_open(self) -> None:
        if self._closed:
            raise RuntimeError("XTyper is closed")

    def _snapshot(self) -> _Keymap:
        """Read the live keymap; drop cached bindings someone else has changed."""
        keymap = _Keymap(self._display, set(self._original))
        stale = False
        for keysym, keycode in list(self._bound.items()):
            row = keymap.row(keycode)
            if not row or row[0] != keysym:
                del self._bound[keysym]
                # Not ours any more: never "restore" over another program's binding.
                self._original.pop(keycode, None)
                stale = True
        if stale:
            keymap = _Keymap(self._display, set(self._original))
        self._shift_code = keymap.shift_keycode
        return keymap

    def _missing(self, keysyms: Sequence[int], keymap: _Keymap) -> list[int]:
        """Keysyms (unique, in order) that need a binding: neither mapped nor bound by us."""
        missing: list[int] = []
        for keysym in dict.fromkeys(keysyms):
            if keymap.stroke(keysym) is None and keysym not in self._bound:
                missing.append(keysym)
        return missing

    def _pool(self, keymap: _Keymap) -> tuple[list[int], list[int]]:
        """Free spare keycodes and the ones we own, within max_spare in total."""
        owned = [kc for kc in self._bound.values()]
        free = [kc for kc in keymap.spare_keycodes() if kc not in self._original]
        if self.max_spare is not None:
            free = free[: max(0, self.max_spare - len(owned))]
        return free, owned

    def _capacity(self, keymap: _Keymap) -> int:
        free, owned = self._pool(keymap)
        return len(free) + len(owned)

    def _segments(self, keysyms: list[int], keymap: _Keymap) -> list[list[int]]:
        """Split the text so each part's unmapped characters fit in the spare keycodes."""
        capacity = self._capacity(keymap)
        segments: list[list[int]] = []
        current: list[int] = []
        needed: set[int] = set()
        for keysym in keysyms:
            if keymap.stroke(keysym) is None and keysym not in needed:
                if capacity == 0:
                    ch = _keysym_char(keysym)
                    raise RuntimeError(
                        f"cannot type {ch!r}: it is not on the keyboard and the keymap has no "
                        "spare keycode to bind it to"
                    )
                if len(needed) == capacity:
                    segments.append(current)
                    current, needed = [], set()
                needed.add(keysym)
            current.append(keysym)
        if current:
            segments.append(current)
        return segments

    def _prepare(
        self, keysyms: Sequence[int], keymap: _Keymap, cancel: threading.Event | None = None
    ) -> dict[int, _Stroke] | None:
        """Bind what the keymap lacks (all at once, then settle) and plan every keysym.

        None when `cancel` was set during a wait (nothing rebound after it).
        """
        plan: dict[int, _Stroke] = {}
        needed: list[int] = []
        for keysym in dict.fromkeys(keysyms):
            stroke = keymap.stroke(keysym)
            if stroke is not None:
                plan[keysym] = stroke
            elif keysym in self._bound:
                self._bound.move_to_end(keysym)
                plan[keysym] = _Stroke(self._bound[keysym], False)
            else:
                needed.append(keysym)
        if not needed:
            return plan
        free, _owned = self._pool(keymap)
        targets: list[int] = []
        keep = set(keysyms)
        for _ in needed:
            if free:
                targets.append(free.pop(0))
                continue
            victim = next((ks for ks in self._bound if ks not in keep), None)
            if victim is None:
                raise RuntimeError("not enough spare keycodes for this part of the text")
            targets.append(self._bound.pop(victim))
        # A keycode typed before may still sit in a client's queue: let it drain first.
        used = [self._last_used[kc] for kc in targets if kc in self._last_used]
        if used and not self.sync_focus_client(cancel):
            wait = max(used) + self.settle_s - time.monotonic()
            if wait > 0 and _sleep(wait, cancel):
                return None
        if cancel is not None and cancel.is_set():
            return None
        for keysym, keycode in zip(needed, targets, strict=True):
            if keycode not in self._original:
                self._original[keycode] = list(keymap.row(keycode))
            # The same keysym on both levels, so Shift (held or not) cannot change it.
            self._display.change_keyboard_mapping(keycode, [[keysym, keysym]])
            self._bound[keysym] = keycode
            plan[keysym] = _Stroke(keycode, False)
        self._display.sync()
        # Clients fetch the new map when they see MappingNotify: give them a moment first.
        if _sleep(self.bind_delay_s, cancel):
            return None
        return plan

    def sync_focus_client(self, cancel: threading.Event | None = None) -> bool:
        """Ping the window that gets our keys; True once it answered (it handled them all).

        A _NET_WM_PING client answers from its event loop, so the answer comes after it
        processed every key (and keymap change) sent before the ping. False when there is no
        such window, it does not speak the protocol, it did not answer in time, or `cancel`
        was set while waiting.
        """
        from Xlib import X
        from Xlib.protocol import event

        client = self._focus_client()
        if client is None:
            return False
        dpy = self._ping_display
        wm_protocols = dpy.intern_atom("WM_PROTOCOLS")
        net_wm_ping = dpy.intern_atom("_NET_WM_PING")
        try:
            protocols = client.get_wm_protocols() or []
        except Exception:  # the window went away: nothing to wait for
            return False
        if net_wm_ping not in protocols:
            return False
        self._ping_stamp = (self._ping_stamp % 0x7FFFFFFF) + 1
        stamp = self._ping_stamp
        root = dpy.screen().root
        # The answer goes to the root window with SubstructureRedirect plus (Qt)
        # StructureNotify or (GTK, EWMH) SubstructureNotify: listen for both.
        root.change_attributes(event_mask=X.StructureNotifyMask | X.SubstructureNotifyMask)
        try:
            ping = event.ClientMessage(
                window=client,
                client_type=wm_protocols,
                data=(32, [net_wm_ping, stamp, client.id, 0, 0]),
            )
            client.send_event(ping, event_mask=0)
            dpy.flush()
            deadline = time.monotonic() + self.ping_timeout_s
            while True:
                while dpy.pending_events():
                    ev = dpy.next_event()
                    if (
                        ev.type == X.ClientMessage
                        and ev.client_type == wm_protocols
                        and list(ev.data[1][:2]) == [net_wm_ping, stamp]
                    ):
                        return True
                left = deadline - time.monotonic()
                if left <= 0 or (cancel is not None and cancel.is_set()):
                    return False
                select.select([dpy.fileno()], [], [], min(left, 0.05))
        finally:
            root.change_attributes(event_mask=0)
            dpy.sync()
            while dpy.pending_events():
                dpy.next_event()

    def _focus_client(self) -> Any:
        """The client (WM_STATE) window that receives keyboard input now, or None."""
        from Xlib import X
        from Xlib import display as xdisplay

        if self._ping_display is None:
            self._ping_display = xdisplay.Display(self._display.get_display_name())
        dpy = self._ping_display
        root = dpy.screen().root
        focus = dpy.get_input_focus().focus
        if isinstance(focus, int) or focus.id == root.id:
            # PointerRoot focus (no window manager): keys go to the window under the pointer.
            focus = root.query_pointer().child
            if isinstance(focus, int) or focus == X.NONE:
                return None
        window = dpy.create_resource_object("window", focus.id)
        try:
            # Up to the top-level window (a child of the root)...
            while True:
                parent = window.query_tree().parent
                if isinstance(parent, int) or parent.id == root.id:
                    break
                window = parent
            # ...then down to the client window inside a window manager's frame, if any.
            return _find_client(dpy, window, depth=3)
        except Exception:  # windows come and go: no client, no ping
            return None

    def _tap(self, stroke: _Stroke) -> None:
        """Press and release one key, with Shift around it when needed."""
        from Xlib import X

        shift_code = self._shift_code if stroke.shift else 0
        if shift_code:
            self._fake_input(self._display, X.KeyPress, shift_code)
        self._fake_input(self._display, X.KeyPress, stroke.keycode)
        self._fake_input(self._display, X.KeyRelease, stroke.keycode)
        if shift_code:
            self._fake_input(self._display, X.KeyRelease, shift_code)
        self._display.sync()
        self._last_used[stroke.keycode] = time.monotonic()

    def _press(self, keycode: int, pressed: list[int]) -> None:
        from Xlib import X

        self._fake_input(self._display, X.KeyPress, keycode)
        self._display.sync()
        pressed.append(keycode)
        self._held.append(keycode)

    def _release(self, keycode: int) -> None:
        from Xlib import X

        self._fake_input(self._display, X.KeyRelease, keycode)
        self._display.sync()
        if keycode in self._held:
            self._held.remove(keycode)


def _sleep(seconds: float, cancel: threading.Event | None) -> bool:
    """Sleep, or wait on `cancel`; True when it was set (the sleep ended early)."""
    if cancel is None:
        time.sleep(seconds)
        return False
    return cancel.wait(seconds)


def _find_client(dpy: Any, window: Any, depth: int) -> Any:
    """`window` if it has WM_STATE (a managed client) or no frame around it, else a child's."""
    wm_state = dpy.intern_atom("WM_STATE")
    if window.get_full_property(wm_state, 0) is not None:
        return window
    if depth > 0:
        for child in window.query_tree().children:
            found = _find_client(dpy, child, depth - 1)
            if found is not None and found.get_full_property(wm_state, 0) is not None:
                return found
    # Without a window manager nobody sets WM_STATE: the top-level is the client.
    return window


def release_held_input(
    display_name: str | None = None, extra_keycodes: Sequence[int] = ()
) -> list[str]:
    """Release held mouse buttons, modifier keys and `extra_keycodes`; returns what was released.

    Opens its own connection so it works while another thread is busy typing.
    """
    from Xlib import X
    from Xlib import display as xdisplay
    from Xlib.ext import xtest

    released: list[str] = []
    dpy: Any = xdisplay.Display(display_name)
    try:
        mask = int(dpy.screen().root.query_pointer().mask)
        for button, bit in _BUTTON_MASKS.items():
            if mask & bit:
                xtest.fake_input(dpy, X.ButtonRelease, button)
                released.append(f"button{button}")
        keys_down = dpy.query_keymap()
        modifier_codes = {int(k) for row in dpy.get_modifier_mapping() for k in row if k}
        candidates = sorted(modifier_codes | {int(k) for k in extra_keycodes})
        for keycode in candidates:
            if keys_down[keycode // 8] & (1 << (keycode % 8)):
                xtest.fake_input(dpy, X.KeyRelease, keycode)
                released.append(f"keycode{keycode}")
        dpy.sync()
    finally:
        dpy.close()
    return released
