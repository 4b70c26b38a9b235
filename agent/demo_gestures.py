"""A person's key and button events grouped into the steps of a demonstration (no X here).

The rules (docs/routines.md):
- A press and release of button 1-3 is a click; presses of the same button within
  DOUBLE_CLICK_S and DOUBLE_CLICK_PX of each other add up to a double or triple click (left
  only; right and middle repeat as single clicks). A left press released more than DRAG_PX
  away is a drag.
- Wheel clicks (buttons 4-7) in one direction at one place, each within SCROLL_GAP_S of the
  last, are one scroll (positive: up or right).
- Keys that type a character (space included) add it to the pending `type`; Backspace takes
  back the last character of a pending `type` (the text is what ended up typed).
- Return, Tab, Escape, arrows and other keys that type nothing are `key` steps of their own,
  and they end the `type` before them: Return often submits, so a routine keeps it apart
  from the text a parameter replaces.
- A key pressed with Ctrl, Alt or Super held is a chord (`key` with the modifiers first);
  Shift with a key that types nothing is a chord too (shift+tab). A modifier pressed and
  released alone (Super opens a menu) is a `key` step; Shift alone is nothing.
Pointer motion alone is no step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from actions.xrecord import ButtonInput, InputEvent, KeyInput

DOUBLE_CLICK_S = 0.4  # GTK's and Qt's default double-click time
DOUBLE_CLICK_PX = 4
DRAG_PX = 6
SCROLL_GAP_S = 0.6
_CHORD_ORDER = ("ctrl", "alt", "shift", "win")
_CLICKS = {1: "left_click", 2: "middle_click", 3: "right_click"}
_MULTI = {1: "left_click", 2: "double_click", 3: "triple_click"}
# Wheel buttons: (kind, clicks per turn) with positive meaning up or right.
_WHEEL = {4: ("scroll", 1), 5: ("scroll", -1), 6: ("hscroll", -1), 7: ("hscroll", 1)}

ScreenPoint = tuple[int, int]


@dataclass(slots=True)
class Gesture:
    """One step a person made: an action kind with screen-pixel points, keys, text or clicks.

    `started` (time.monotonic()) is when its first input happened: its screenshot is the
    screen before that moment.
    """

    kind: str
    started: float
    points: list[ScreenPoint] = field(default_factory=list)
    keys: tuple[str, ...] = ()
    text: str = ""
    clicks: int = 0
    count: int = 1  # presses of a multi-click
    button: int = 0
    last: float = 0.0  # time of its latest input (double-click and scroll windows)


class GestureBuilder:
    """Feed it events in order; it calls `emit` with each finished gesture.

    `begin(t)` is called when a gesture's first input arrives (the caller keeps the screen
    from just before t). `ignore` is a chord (canonical names) never emitted: the stop hotkey.
    """

    def __init__(
        self,
        emit: Callable[[Gesture], None],
        begin: Callable[[float], None] = lambda t: None,
        ignore: frozenset[str] = frozenset(),
    ) -> None:
        self._emit = emit
        self._begin = begin
        self._ignore = ignore
        self._pending: Gesture | None = None
        self._press: ButtonInput | None = None  # a click button down, not yet released
        self._lone_modifier: str | None = None
        self._held_since: float | None = None  # first modifier press of the current chord

    def feed(self, event: InputEvent) -> None:
        """Take one event (in the order they happened)."""
        self.tick(event.t)
        if isinstance(event, ButtonInput):
            self._button(event)
        else:
            self._key(event)

    def tick(self, now: float) -> None:
        """Let time pass: a click whose double-click window is over, or a scroll, is done."""
        p = self._pending
        if p is None:
            return
        if p.kind in _MULTI.values() and self._press is None and now - p.last > DOUBLE_CLICK_S:
            self.flush()
        elif p.kind in ("scroll", "hscroll") and now - p.last > SCROLL_GAP_S:
            self.flush()

    def flush(self) -> None:
        """Emit what is pending (at the end, or before a different gesture)."""
        p, self._pending = self._pending, None
        if p is None:
            return
        if p.kind == "type" and not p.text:
            return  # typed and taken back: nothing happened
        if p.kind == "left_click":
            p.kind = _MULTI[min(p.count, 3)]
        self._emit(p)

    def _start(self, gesture: Gesture) -> Gesture:
        self.flush()
        self._begin(gesture.started)
        self._pending = gesture
        return gesture

    # ---------------------------------------------------------------- buttons

    def _button(self, ev: ButtonInput) -> None:
        if ev.button in _WHEEL:
            if ev.pressed:
                self._wheel(ev)
            return
        if ev.button not in _CLICKS:
            return
        self._lone_modifier = None
        if ev.pressed:
            self._press = ev
            p = self._pending
            repeat = (
                p is not None
                and p.kind == "left_click"
                and ev.button == 1
                and p.button == 1
                and ev.t - p.last <= DOUBLE_CLICK_S
                and _near(p.points[0], (ev.x, ev.y), DOUBLE_CLICK_PX)
            )
            if repeat and p is not None:
                p.count += 1
                p.last = ev.t
            else:
                kind = "left_click" if ev.button == 1 else _CLICKS[ev.button]
                self._start(Gesture(kind, ev.t, [(ev.x, ev.y)], button=ev.button, last=ev.t))
            return
        press, self._press = self._press, None
        if press is None or press.button != ev.button:
            return  # released a button pressed before recording began
        p = self._pending
        if p is None:
            return
        moved = not _near((press.x, press.y), (ev.x, ev.y), DRAG_PX)
        if ev.button == 1 and moved and p.count == 1:
            p.kind = "left_click_drag"
            p.points = [(press.x, press.y), (ev.x, ev.y)]
            self._pending = None
            self._emit(p)
            return
        p.last = ev.t
        if ev.button != 1:
            self.flush()  # no double right or middle click in the vocabulary: emit each

    def _wheel(self, ev: ButtonInput) -> None:
        kind, sign = _WHEEL[ev.button]
        p = self._pending
        if (
            p is not None
            and p.kind == kind
            and (p.clicks > 0) == (sign > 0)
            and ev.t - p.last <= SCROLL_GAP_S
            and _near(p.points[0], (ev.x, ev.y), DRAG_PX)
        ):
            p.clicks += sign
            p.last = ev.t
            return
        self._lone_modifier = None
        self._start(Gesture(kind, ev.t, [(ev.x, ev.y)], clicks=sign, last=ev.t))

    # ---------------------------------------------------------------- keys

    def _key(self, ev: KeyInput) -> None:
        modifier = ev.key in _CHORD_ORDER or ev.key == "altgr"
        if modifier:
            if ev.pressed:
                if not ev.held:
                    self._held_since = ev.t
                self._lone_modifier = ev.key if not ev.held else None
            else:
                lone = self._lone_modifier
                self._lone_modifier = None
                if lone == ev.key and lone not in ("shift", "altgr"):
                    self._chord((lone,), self._held_since or ev.t)
                if not ev.held:
                    self._held_since = None
            return
        if not ev.pressed:
            return
        self._lone_modifier = None
        command = ev.held & {"ctrl", "alt", "win"}
        if command or (ev.char is None and ev.held):
            mods = tuple(m for m in _CHORD_ORDER if m in ev.held)
            self._chord((*mods, ev.key), self._held_since or ev.t)
            return
        p = self._pending
        if ev.char is not None and ev.char.isprintable():
            if p is None or p.kind != "type":
                p = self._start(Gesture("type", self._held_since or ev.t))
            p.text += ev.char
            p.last = ev.t
            return
        if ev.key == "backspace" and p is not None and p.kind == "type" and p.text:
            p.text = p.text[:-1]
            return
        self._chord((ev.key,), ev.t)

    def _chord(self, keys: tuple[str, ...], started: float) -> None:
        if frozenset(keys) == self._ignore:
            return
        self._start(Gesture("key", started, keys=keys))
        self.flush()


def _near(a: ScreenPoint, b: ScreenPoint, px: int) -> bool:
    return abs(a[0] - b[0]) <= px and abs(a[1] - b[1]) <= px
