"""The executor on a private Xvfb, against real apps (a Qt probe window and xterm); no mocks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from actions.executor import ExecResult, Executor, FailSafeTriggered
from actions.screen import CoordinateSpace, Monitor, model_to_screen, screen_to_model
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
from actions.xtyping import XTyper
from tests.support.x11 import (
    ProbeApp,
    XTerm,
    move_pointer,
    pointer_position,
    shell_quote,
    wait_until,
)

pytestmark = [pytest.mark.x11, pytest.mark.timeout(120)]

MONITOR = Monitor(index=1, left=0, top=0, width=1920, height=1080, primary=True)
RELATIVE = CoordinateSpace.relative()
ABSOLUTE = CoordinateSpace.absolute(1280, 720)
PROBE_GEOMETRY = (200, 150, 900, 700)
TRICKY = 'héllo wörld 你好 <> "quotes" ~!@#$%^&*()_+{}|:?'
# Qt's double-click interval is pinned to 400 ms in the probe app; wait it out between tests.
CLICK_GAP_S = 0.5
XTERM_POSITION = (1200, 100)


def _long_text() -> str:
    """200 characters mixing CJK, accented Latin, Greek, Cyrillic and ASCII: forces batching."""
    pieces = []
    for i in range(200):
        if i % 10 == 9:
            pieces.append(" ")
        elif i % 4 == 0:
            pieces.append(chr(0x4E00 + 37 * i))  # CJK ideographs, all distinct
        elif i % 4 == 1:
            pieces.append("àéîõüçñßøåÆŒ"[i % 12])
        elif i % 4 == 2:
            pieces.append("αβγδεжзийк"[i % 10])
        else:
            pieces.append("aZ9<>|~"[i % 7])
    return "".join(pieces)


LONG_TEXT = _long_text()


@pytest.fixture(scope="module")
def executor(xdisplay: str) -> Iterator[Executor]:
    """One executor for the module (as the app keeps one); its keymap is restored at the end."""
    ex = Executor(drag_duration_s=0.4)
    yield ex
    ex.close()


@pytest.fixture
def app(probe_app: Callable[..., ProbeApp]) -> ProbeApp:
    """The probe window at PROBE_GEOMETRY."""
    return probe_app(PROBE_GEOMETRY)


def run(executor: Executor, action: Action, space: CoordinateSpace = RELATIVE) -> ExecResult:
    """Execute and insist it worked."""
    result = executor.execute(action, space=space, monitor=MONITOR)
    assert result.ok, result
    return result


def model_point(screen: tuple[int, int], space: CoordinateSpace = RELATIVE) -> Point:
    """The model coordinate that lands on a screen pixel."""
    return screen_to_model(screen, space, MONITOR)


def canvas_point(app: ProbeApp, fx: float, fy: float) -> tuple[int, int]:
    """A screen pixel at fractions of the canvas."""
    x, y, w, h = app.rect("canvas")
    return x + int(w * fx), y + int(h * fy)


def focus_text_field(executor: Executor, app: ProbeApp) -> None:
    """Put the pointer over the text field: without a WM, focus follows the pointer."""
    run(executor, MouseMove(model_point(app.center("text_field"))))
    time.sleep(0.1)


def assert_at(event: dict[str, Any], expected: tuple[int, int]) -> None:
    """An event's global position is the expected pixel (within 1 px)."""
    x, y = int(event["x"]), int(event["y"])
    assert abs(x - expected[0]) <= 1 and abs(y - expected[1]) <= 1, (event, expected)


# -- mouse --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("space", "point"),
    [
        (RELATIVE, (300.0, 600.0)),
        (RELATIVE, (500.0, 777.7)),
        (ABSOLUTE, (300.0, 500.0)),
        (ABSOLUTE, (600.5, 420.25)),
    ],
)
def test_left_click_lands_where_model_to_screen_says(
    executor: Executor, app: ProbeApp, space: CoordinateSpace, point: Point
) -> None:
    expected = model_to_screen(point, space, MONITOR)
    result = run(executor, LeftClick(point), space)
    assert result.points == (expected,)
    presses = app.wait_event("press")
    app.wait_event("release")
    time.sleep(0.2)
    assert len(app.new_events("press")) == 1
    assert presses[0]["button"] == "left"
    assert_at(presses[0], expected)
    assert app.new_events("dblclick") == []


@pytest.mark.parametrize(
    ("action_type", "button"), [(RightClick, "right"), (MiddleClick, "middle")]
)
def test_right_and_middle_click(
    executor: Executor, app: ProbeApp, action_type: type[RightClick | MiddleClick], button: str
) -> None:
    target = canvas_point(app, 0.3, 0.5)
    point = model_point(target)
    run(executor, action_type(point))
    press = app.wait_event("press")[0]
    release = app.wait_event("release")[0]
    assert press["button"] == release["button"] == button
    assert_at(press, model_to_screen(point, RELATIVE, MONITOR))


def test_double_click(executor: Executor, app: ProbeApp) -> None:
    time.sleep(CLICK_GAP_S)
    point = model_point(canvas_point(app, 0.5, 0.5))
    expected = model_to_screen(point, RELATIVE, MONITOR)
    run(executor, DoubleClick(point))
    dbl = app.wait_event("dblclick")
    app.wait_event("release", 2)
    time.sleep(0.2)
    # Qt reports the second press of a double click as the double-click event.
    assert len(app.new_events("press")) == 1
    assert len(dbl) == 1 and dbl[0]["button"] == "left"
    assert_at(dbl[0], expected)


def test_triple_click(executor: Executor, app: ProbeApp) -> None:
    time.sleep(CLICK_GAP_S)
    point = model_point(canvas_point(app, 0.6, 0.4))
    run(executor, TripleClick(point))
    app.wait_event("release", 3)
    time.sleep(0.2)
    presses = app.new_events("press")
    dbl = app.new_events("dblclick")
    assert len(presses) + len(dbl) == 3
    assert len(dbl) == 1
    for event in presses + dbl:
        assert_at(event, model_to_screen(point, RELATIVE, MONITOR))


def test_triple_click_selects_a_line_in_the_text_field(executor: Executor, app: ProbeApp) -> None:
    focus_text_field(executor, app)
    run(executor, Type("one two three"))
    app.wait_text("one two three")
    time.sleep(CLICK_GAP_S)
    x, y, _w, _h = app.rect("text_field")
    run(executor, TripleClick(model_point((x + 30, y + 12))))
    time.sleep(0.2)
    run(executor, Type("X"))
    # The whole line was selected by the triple click, so typing replaced it.
    app.wait_text("X")


def test_drag_with_start(executor: Executor, app: ProbeApp) -> None:
    start = model_point(canvas_point(app, 0.2, 0.3))
    end = model_point(canvas_point(app, 0.8, 0.7))
    s_px = model_to_screen(start, RELATIVE, MONITOR)
    e_px = model_to_screen(end, RELATIVE, MONITOR)
    result = run(executor, LeftClickDrag(coordinate=end, start_coordinate=start))
    assert result.points == (s_px, e_px)
    drag = app.wait_event("drag")[0]
    press = app.new_events("press")[0]
    release = app.new_events("release")[0]
    assert_at(press, s_px)
    assert_at(release, e_px)
    assert drag["moves"] >= 3, drag  # intermediate motion, not a jump
    straight = ((e_px[0] - s_px[0]) ** 2 + (e_px[1] - s_px[1]) ** 2) ** 0.5
    assert abs(drag["path_length"] - straight) <= 3, (drag, straight)
    moves = app.new_events("move")
    assert all(m["buttons"] == ["left"] for m in moves)


def test_drag_from_where_the_pointer_is(executor: Executor, app: ProbeApp) -> None:
    here = canvas_point(app, 0.7, 0.2)
    run(executor, MouseMove(model_point(here)))
    here_px = model_to_screen(model_point(here), RELATIVE, MONITOR)
    end = model_point(canvas_point(app, 0.3, 0.8))
    result = run(executor, LeftClickDrag(coordinate=end))
    assert result.points[0] == here_px
    drag = app.wait_event("drag")[0]
    assert_at({"x": drag["start"][0], "y": drag["start"][1]}, here_px)
    assert_at({"x": drag["end"][0], "y": drag["end"][1]}, model_to_screen(end, RELATIVE, MONITOR))


def test_scroll_up_and_down_at_a_point(executor: Executor, app: ProbeApp) -> None:
    point = model_point(canvas_point(app, 0.5, 0.6))
    expected = model_to_screen(point, RELATIVE, MONITOR)
    run(executor, Scroll(3, point))
    wheels = app.wait_event("wheel", 3)
    time.sleep(0.2)
    wheels = app.new_events("wheel")
    assert [(w["dx"], w["dy"]) for w in wheels] == [(0, 120)] * 3
    assert_at(wheels[0], expected)
    app.mark()
    run(executor, Scroll(-2))
    app.wait_event("wheel", 2)
    time.sleep(0.2)
    assert [(w["dx"], w["dy"]) for w in app.new_events("wheel")] == [(0, -120)] * 2


def test_hscroll_right_and_left(executor: Executor, app: ProbeApp) -> None:
    point = model_point(canvas_point(app, 0.4, 0.6))
    run(executor, HScroll(4, point))
    app.wait_event("wheel", 4)
    time.sleep(0.2)
    wheels = app.new_events("wheel")
    # X button 7 is "scroll right"; Qt reports rightward turns as a negative angleDelta.x
    # (the content moves left), exactly as for a real tilt wheel.
    assert [(w["dx"], w["dy"]) for w in wheels] == [(-120, 0)] * 4
    assert_at(wheels[0], model_to_screen(point, RELATIVE, MONITOR))
    app.mark()
    run(executor, HScroll(-1, point))
    app.wait_event("wheel", 1)
    time.sleep(0.2)
    assert [(w["dx"], w["dy"]) for w in app.new_events("wheel")] == [(120, 0)]


def test_mouse_move_to_a_corner_is_nudged_off_the_fail_safe(executor: Executor) -> None:
    for point, expected in [
        ((0.0, 0.0), (1, 1)),
        ((1000.0, 0.0), (1918, 1)),
        ((0.0, 1000.0), (1, 1078)),
        ((1000.0, 1000.0), (1918, 1078)),
    ]:
        result = run(executor, MouseMove(point))
        assert result.points == (expected,)
        assert pointer_position(executor_display()) == expected
    run(executor, MouseMove((500.0, 500.0)))


def test_pointer_in_a_corner_stops_the_run(executor: Executor, app: ProbeApp) -> None:
    display = executor_display()
    move_pointer(display, 0, 0)
    try:
        with pytest.raises(FailSafeTriggered):
            executor.execute(LeftClick((500.0, 500.0)), space=RELATIVE, monitor=MONITOR)
        with pytest.raises(FailSafeTriggered):
            executor.execute(Type("abc"), space=RELATIVE, monitor=MONITOR)
        with pytest.raises(FailSafeTriggered):
            executor.execute(Key(("ctrl", "a")), space=RELATIVE, monitor=MONITOR)
    finally:
        move_pointer(display, 960, 540)
    time.sleep(0.2)
    assert app.new_events("press") == []
    assert app.new_events("key") == []


# -- keys ---------------------------------------------------------------------------------


def _wait_key(app: ProbeApp, name: str) -> dict[str, Any]:
    events = app.wait_for(
        lambda evs: [e for e in evs if e["event"] == "key" and e["name"] == name],
        10.0,
        f"key {name}",
    )
    return dict(events[0])


def test_keys_reach_the_focused_field(executor: Executor, app: ProbeApp) -> None:
    focus_text_field(executor, app)
    cases: list[tuple[tuple[str, ...], str, set[str]]] = [
        (("Return",), "Key_Return", set()),
        (("f5",), "Key_F5", set()),
        (("pgdn",), "Key_PageDown", set()),
        (("Page_Up",), "Key_PageUp", set()),
        (("ArrowLeft",), "Key_Left", set()),
        (("esc",), "Key_Escape", set()),
        (("ctrl+shift+t",), "Key_T", {"ctrl", "shift"}),
        (("Control_L", "a"), "Key_A", {"ctrl"}),
        (("ctrl", "C"), "Key_C", {"ctrl"}),  # "Ctrl+C" names the key, no shift added
        (("alt+f4",), "Key_F4", {"alt"}),
        (("home",), "Key_Home", set()),
        (("KP_Enter",), "Key_Return", set()),
    ]
    for keys, name, modifiers in cases:
        app.mark()
        result = run(executor, Key(keys))
        event = _wait_key(app, name)
        assert set(event["modifiers"]) - {"keypad"} == modifiers, (keys, event)
        assert result.detail.startswith("pressed ")


def test_ctrl_a_selects_all_so_typing_replaces_it(executor: Executor, app: ProbeApp) -> None:
    focus_text_field(executor, app)
    run(executor, Type("first line\nsecond"))
    app.wait_text("first line\nsecond")
    run(executor, Key(("ctrl", "a")))
    run(executor, Type("replaced"))
    app.wait_text("replaced")
    run(executor, Key(("Return",)))
    run(executor, Key(("BackSpace",)))
    run(executor, Key(("shift+Home",)))
    run(executor, Key(("delete",)))
    app.wait_text("")


@pytest.mark.parametrize("char", ["<", ">", "+", "é", "Ω", "你", "?", "A"])
def test_single_character_keys_type_themselves(
    executor: Executor, app: ProbeApp, char: str
) -> None:
    focus_text_field(executor, app)
    run(executor, Key((char,)))
    app.wait_text(char)


def test_ctrl_plus_spelling_means_the_plus_key(executor: Executor, app: ProbeApp) -> None:
    focus_text_field(executor, app)
    run(executor, Key(("ctrl++",)))
    event = _wait_key(app, "Key_Plus")
    assert "ctrl" in event["modifiers"]


def test_unknown_key_fails_cleanly(executor: Executor, app: ProbeApp) -> None:
    result = executor.execute(Key(("hyperdrive",)), space=RELATIVE, monitor=MONITOR)
    assert not result.ok
    assert result.error is not None and "unknown key" in result.error
    assert "\n" not in result.error


# -- typing -------------------------------------------------------------------------------


def test_type_exact_unicode_into_qt(executor: Executor, app: ProbeApp) -> None:
    focus_text_field(executor, app)
    result = run(executor, Type(TRICKY))
    assert result.detail == f"typed {len(TRICKY)} characters"
    app.wait_text(TRICKY)


def test_type_newline_and_tab_into_qt(executor: Executor, app: ProbeApp) -> None:
    focus_text_field(executor, app)
    run(executor, Type("a\tb\nc\r\nd"))
    app.wait_text("a\tb\nc\nd")


def test_type_long_mixed_text_into_qt(executor: Executor, app: ProbeApp) -> None:
    focus_text_field(executor, app)
    run(executor, Type(LONG_TEXT))
    app.wait_text(LONG_TEXT, timeout_s=30)


def _type_into_xterm(
    executor: Executor, xterm: Callable[..., XTerm], tmp_path: Path, text: str
) -> bytes:
    out = tmp_path / "typed.txt"
    term = xterm(f"cat > {shell_quote(out)}", position=XTERM_POSITION)
    x, y = term.center()
    run(executor, MouseMove(model_point((x, y))))
    time.sleep(0.1)
    run(executor, Type(text))
    run(executor, Key(("Return",)))
    run(executor, Key(("ctrl", "d")))
    assert term.wait_exit(timeout_s=20) == 0
    return out.read_bytes()


def test_type_exact_unicode_into_xterm(
    executor: Executor, xterm: Callable[..., XTerm], tmp_path: Path
) -> None:
    data = _type_into_xterm(executor, xterm, tmp_path, TRICKY)
    assert data == (TRICKY + "\n").encode("utf-8")


def test_type_long_mixed_text_into_xterm(
    executor: Executor, xterm: Callable[..., XTerm], tmp_path: Path
) -> None:
    data = _type_into_xterm(executor, xterm, tmp_path, LONG_TEXT)
    assert data.decode("utf-8") == LONG_TEXT + "\n"


def test_small_spare_pool_types_in_many_batches(
    executor: Executor, xdisplay: str, app: ProbeApp
) -> None:
    """Three spare keycodes for ~100 distinct unmapped characters: dozens of rebinding rounds."""
    executor.close()  # give its spare keycodes back; it makes a new typer when next needed
    text = LONG_TEXT[:120]
    x, y = app.center("text_field")
    move_pointer(xdisplay, x, y)
    typer = XTyper(max_spare=3, settle_s=0.15)
    try:
        assert typer.type_text(text) == len(text)
        app.wait_text(text, timeout_s=30)
    finally:
        typer.close()


def test_control_characters_are_refused(executor: Executor, app: ProbeApp) -> None:
    focus_text_field(executor, app)
    result = executor.execute(Type("ok\x07no"), space=RELATIVE, monitor=MONITOR)
    assert not result.ok
    assert result.error is not None and "U+0007" in result.error
    time.sleep(0.3)
    assert app.text() == ""  # nothing typed: the text is checked before the first key


def test_typing_can_be_cancelled(executor: Executor, app: ProbeApp) -> None:
    focus_text_field(executor, app)
    cancel = threading.Event()
    timer = threading.Timer(0.3, cancel.set)
    timer.start()
    try:
        result = executor.execute(Type("x" * 2000), space=RELATIVE, monitor=MONITOR, cancel=cancel)
    finally:
        timer.cancel()
    assert not result.ok
    assert result.error is not None and "cancelled" in result.error
    time.sleep(0.3)
    assert 0 < len(app.text()) < 2000


def test_close_restores_the_keymap(executor: Executor, xdisplay: str, app: ProbeApp) -> None:
    from Xlib import display as xdisplay_mod

    executor.close()  # the module's executor may hold spare keycodes: start from a clean map
    dpy = xdisplay_mod.Display(xdisplay)
    try:
        first = dpy.display.info.min_keycode
        count = dpy.display.info.max_keycode - first + 1
        before = [list(r) for r in dpy.get_keyboard_mapping(first, count)]
        x, y = app.center("text_field")
        move_pointer(xdisplay, x, y)
        ex = Executor()
        assert ex.execute(Type("ŵ€漢"), space=RELATIVE, monitor=MONITOR).ok
        app.wait_text("ŵ€漢")
        during = [list(r) for r in dpy.get_keyboard_mapping(first, count)]
        assert during != before
        ex.close()
        after = [list(r) for r in dpy.get_keyboard_mapping(first, count)]

        def syms(rows: list[list[int]]) -> list[list[int]]:
            return [[k for k in r if k] for r in rows]

        assert syms(after) == syms(before)
    finally:
        dpy.close()


# -- release, wait, final actions ---------------------------------------------------------


def test_release_all_lets_go_of_buttons_and_modifiers(
    executor: Executor, app: ProbeApp, xdisplay: str
) -> None:
    import subprocess

    from tests.support.x11 import x_env

    x, y = canvas_point(app, 0.5, 0.5)
    move_pointer(xdisplay, x, y)
    subprocess.run(["xdotool", "mousedown", "1"], env=x_env(xdisplay), check=True, timeout=10)
    subprocess.run(["xdotool", "keydown", "ctrl"], env=x_env(xdisplay), check=True, timeout=10)
    app.wait_event("press")
    released = executor.release_all()
    assert "button1" in released
    assert any(r.startswith("keycode") for r in released)
    app.wait_event("release")

    from Xlib import XK
    from Xlib import display as xdisplay_mod

    dpy = xdisplay_mod.Display(xdisplay)
    try:
        mask = int(dpy.screen().root.query_pointer().mask)
        assert mask & (0x1F << 8) == 0, f"a button is still down: {mask:#x}"
        assert mask & 0x04 == 0, f"ctrl is still down: {mask:#x}"
        control_l = dpy.keysym_to_keycode(XK.string_to_keysym("Control_L"))
        assert not dpy.query_keymap()[control_l // 8] & (1 << (control_l % 8))
    finally:
        dpy.close()


def test_wait_sleeps_and_honours_cancel(executor: Executor) -> None:
    t0 = time.monotonic()
    result = run(executor, Wait(0.3))
    assert 0.28 <= time.monotonic() - t0 < 2.0
    assert result.detail.startswith("waited")
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    t0 = time.monotonic()
    result = executor.execute(Wait(30.0), space=RELATIVE, monitor=MONITOR, cancel=cancel)
    assert not result.ok and result.error is not None and "cancelled" in result.error
    assert time.monotonic() - t0 < 2.0


def test_terminate_and_answer_do_nothing(executor: Executor, app: ProbeApp) -> None:
    before = pointer_position(executor_display())
    assert run(executor, Terminate("success")).ok
    assert run(executor, Answer("42")).ok
    time.sleep(0.2)
    assert pointer_position(executor_display()) == before
    assert app.new_events() == []


def test_cancel_set_before_start_executes_nothing(executor: Executor, app: ProbeApp) -> None:
    cancel = threading.Event()
    cancel.set()
    point = model_point(canvas_point(app, 0.5, 0.5))
    result = executor.execute(LeftClick(point), space=RELATIVE, monitor=MONITOR, cancel=cancel)
    assert not result.ok
    time.sleep(0.3)
    assert app.new_events("press") == []


def executor_display() -> str:
    """The private display (the fixture set DISPLAY for the session)."""
    import os

    return os.environ["DISPLAY"]


def test_helpers_wait_until_times_out() -> None:
    with pytest.raises(TimeoutError):
        wait_until(lambda: False, 0.1, "nothing")


def test_typer_syncs_with_qt_by_ping_but_not_with_xterm(
    xdisplay: str, app: ProbeApp, xterm: Callable[..., XTerm], tmp_path: Path
) -> None:
    typer = XTyper()
    try:
        move_pointer(xdisplay, *app.center("text_field"))
        assert typer.sync_focus_client() is True  # Qt answers _NET_WM_PING
        term = xterm(f"cat > {shell_quote(tmp_path / 'x')}", position=XTERM_POSITION)
        move_pointer(xdisplay, *term.center())
        assert typer.sync_focus_client() is False  # xterm does not: time-based settle
        move_pointer(xdisplay, 5, 1070)
        assert typer.sync_focus_client() is False  # the bare root window
    finally:
        typer.close()
