"""The one action dispatch (actions.dispatch) over a recording Input (actions.desktop.inputs)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from actions.desktop.clipboard import PasteError
from actions.desktop.inputs import TEXT_PIECE, InputDevice, InputExecutor
from actions.dispatch import ActionExecutor, FailSafeTriggered
from actions.executor import Executor
from actions.screen import CoordinateSpace, Monitor
from actions.types import (
    HScroll,
    Key,
    LeftClick,
    LeftClickDrag,
    MouseMove,
    RightClick,
    Scroll,
    Type,
    Wait,
)

REL = CoordinateSpace.relative()
# A second output right of a 1920-wide first one, at scale 2: logical 1280x720.
SECOND = Monitor(2, 1920, 0, 1280, 720, 2.0)


class Recording:
    """An Input that records what it was asked to do."""

    def __init__(self, cancel_after_pieces: threading.Event | None = None) -> None:
        self.calls: list[tuple[object, ...]] = []
        self.cancel = cancel_after_pieces

    def move(self, x: int, y: int) -> None:
        self.calls.append(("move", x, y))

    def button(self, button: str, pressed: bool) -> None:
        self.calls.append(("button", button, pressed))

    def wheel(self, clicks: int, *, horizontal: bool) -> None:
        self.calls.append(("wheel", clicks, horizontal))

    def chord(self, keys: tuple[str, ...]) -> None:
        self.calls.append(("chord", keys))

    def check_text(self, strokes: list[str]) -> None:
        if "\ufffe" in strokes:
            raise ValueError("cannot type U+FFFE; nothing was typed")

    def to_paste(self, strokes: list[str]) -> tuple[set[str], str]:
        return {ch for ch in strokes if ch in "ßü世"}, "the layout lacks them"

    def type_strokes(self, strokes: list[str]) -> None:
        self.calls.append(("type", "".join(strokes)))
        if self.cancel is not None:
            self.cancel.set()  # a stop arrives while the first piece is typed

    def release(self) -> list[str]:
        self.calls.append(("release",))
        return ["left"]

    def close(self) -> None:
        self.calls.append(("close",))


def test_points_map_through_the_one_mapping_and_wheels_turn_the_right_way() -> None:
    inputs = Recording()
    ex = InputExecutor(inputs)
    result = ex.execute(RightClick((500, 500)), space=REL, monitor=SECOND)
    assert result.ok and result.points == ((1920 + 640, 360),)
    assert inputs.calls == [
        ("move", 2560, 360), ("button", "right", True), ("button", "right", False),
    ]  # fmt: skip
    inputs.calls.clear()
    assert ex.execute(Scroll(3), space=REL, monitor=SECOND).detail == "scrolled up 3 clicks"
    assert ex.execute(HScroll(-2), space=REL, monitor=SECOND).ok
    assert inputs.calls == [("wheel", -3, False), ("wheel", -2, True)]
    assert ex.execute(Key(("Control_L", "c")), space=REL, monitor=SECOND).detail == "pressed ctrl+c"
    assert inputs.calls[-1] == ("chord", ("ctrl", "c"))


def test_text_goes_out_in_pieces_and_a_stop_ends_it_between_two() -> None:
    stop = threading.Event()
    inputs = Recording(stop)
    text = "y" * (TEXT_PIECE + 5)
    result = InputExecutor(inputs).execute(Type(text), space=REL, monitor=SECOND, cancel=stop)
    assert not result.ok and result.error == f"typing cancelled after {TEXT_PIECE} characters"
    assert inputs.calls == [("type", "y" * TEXT_PIECE)]
    bad = InputExecutor(Recording()).execute(Type("a\x07b"), space=REL, monitor=SECOND)
    assert not bad.ok and "U+0007" in (bad.error or "")  # refused whole: nothing typed
    inputs = Recording()
    late = "a" * (TEXT_PIECE * 2) + "\ufffe"  # the character no piece but the last holds
    bad = InputExecutor(inputs).execute(Type(late), space=REL, monitor=SECOND)
    assert not bad.ok and inputs.calls == []


def test_a_cancelled_drag_lets_go_of_the_button() -> None:
    stop = threading.Event()

    class StopMidDrag(Recording):
        def move(self, x: int, y: int) -> None:
            super().move(x, y)
            if ("button", "left", True) in self.calls:
                stop.set()  # the user stops while the button is down

    inputs = StopMidDrag()
    ex = InputExecutor(inputs)
    drag = LeftClickDrag((900, 900), start_coordinate=(100, 100))
    result = ex.execute(drag, space=REL, monitor=SECOND, cancel=stop)
    assert not result.ok and result.detail == "left_click_drag cancelled"
    assert inputs.calls[-1] == ("button", "left", False)
    assert ex.release_all() == ["left"]


def test_every_desktop_runs_the_one_dispatch() -> None:
    # The X11 host and the Wayland inputs are devices of actions.dispatch; neither has a
    # dispatch of its own to drift from it.
    for cls in (Executor, InputExecutor):
        assert issubclass(cls, ActionExecutor)
        assert not {"_run", "execute", "_click", "_drag", "_scroll"} & set(vars(cls))


def test_a_drag_without_start_begins_where_the_pointer_was_put() -> None:
    inputs = Recording()
    ex = InputExecutor(inputs, drag_duration_s=0.04)
    unknown = ex.execute(LeftClickDrag((500, 500)), space=REL, monitor=SECOND)
    assert not unknown.ok and "the pointer is unknown" in (unknown.error or "")
    assert inputs.calls == []
    assert ex.execute(MouseMove((0, 0)), space=REL, monitor=SECOND).ok
    result = ex.execute(LeftClickDrag((500, 500)), space=REL, monitor=SECOND)
    assert result.ok and result.points == ((1920, 0), (2560, 360))
    assert inputs.calls[-2:] == [("move", 2560, 360), ("button", "left", False)]


class TrippingDevice(InputDevice):
    """An InputDevice whose fail-safe trips once the pointer has moved."""

    def check(self) -> None:
        if any(call[0] == "move" for call in self.inputs.calls):  # type: ignore[attr-defined]
            raise FailSafeTriggered("fail-safe")


def test_a_tripped_fail_safe_stops_the_run_and_lets_go() -> None:
    inputs = Recording()
    ex = ActionExecutor(TrippingDevice(inputs))
    with pytest.raises(FailSafeTriggered):
        ex.execute(LeftClick((10, 10)), space=REL, monitor=SECOND)
    assert inputs.calls == [("move", 1932, 7), ("release",)]  # no click after the move


def test_a_wait_ends_at_a_stop_on_every_desktop() -> None:
    stop = threading.Event()
    threading.Timer(0.05, stop.set).start()
    result = InputExecutor(Recording()).execute(Wait(5.0), space=REL, monitor=SECOND, cancel=stop)
    assert not result.ok and (result.error or "").startswith("wait cancelled after 0.")


class Pasting:
    """A Paster that records the text and presses the paste keys, as the clipboard does."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def paste(self, text: str, press: Callable[[], None]) -> bool:
        self.texts.append(text)
        press()
        return True


def test_characters_the_keys_lack_are_pasted_in_order_and_the_step_says_so() -> None:
    inputs, clipboard = Recording(), Pasting()
    ex = InputExecutor(inputs, clipboard=clipboard)
    result = ex.execute(Type("Grüße\nab世"), space=REL, monitor=SECOND)
    assert result.ok and result.via == "clipboard"
    assert clipboard.texts == ["üß", "世"]  # one paste for each run of such characters
    assert inputs.calls == [
        ("type", "Gr"), ("chord", ("shift", "insert")), ("type", "e\nab"),
        ("chord", ("shift", "insert")),
    ]  # fmt: skip
    assert result.detail.startswith("typed 9 characters; 3 of them ('ß' (U+00DF), 'ü' (U+00FC),")
    plain = ex.execute(Type("plain"), space=REL, monitor=SECOND)
    assert plain.ok and plain.via is None and plain.detail == "typed 5 characters"


def test_without_a_clipboard_tool_such_text_is_refused_whole() -> None:
    inputs = Recording()
    result = InputExecutor(inputs).execute(Type("abc ß"), space=REL, monitor=SECOND)
    assert not result.ok and inputs.calls == []
    assert "'ß' (U+00DF)" in (result.error or "") and "wl-clipboard" in (result.error or "")
    assert (result.error or "").endswith("nothing was typed")


def test_a_paste_nobody_takes_fails_the_step_saying_how_far_it_got() -> None:
    class Refused(Pasting):
        def paste(self, text: str, press: Callable[[], None]) -> bool:
            press()
            raise PasteError("the focused window did not take the text pasted with Shift+Insert")

    result = InputExecutor(Recording(), clipboard=Refused()).execute(
        Type("ab ß cd"), space=REL, monitor=SECOND
    )
    assert not result.ok and result.via == "clipboard"
    assert (result.error or "").endswith("typed 3 of 7 characters before it")
