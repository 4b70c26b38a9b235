"""Grouping a person's key and button events into steps (agent/demo_gestures.py), no X needed."""

from __future__ import annotations

from actions.xrecord import ButtonInput, KeyInput
from agent.demo_gestures import Gesture, GestureBuilder


def keys(text: str, t0: float = 1.0) -> list[KeyInput]:
    """Press and release events typing `text` with no modifier."""
    out = []
    for i, ch in enumerate(text):
        t = t0 + i * 0.05
        out += [
            KeyInput(True, 10, ch.lower(), ch, frozenset(), t),
            KeyInput(False, 10, ch.lower(), None, frozenset(), t + 0.01),
        ]
    return out


def build(
    events: list[KeyInput | ButtonInput], ignore: frozenset[str] = frozenset()
) -> list[Gesture]:
    got: list[Gesture] = []
    begun: list[float] = []
    builder = GestureBuilder(got.append, begun.append, ignore)
    for e in events:
        builder.feed(e)
    builder.flush()
    assert all(g.started in begun for g in got)  # each step's screenshot was asked for
    return got


def test_typing_merges_until_return_and_backspace_takes_back() -> None:
    events = keys("héllo")
    events += [
        KeyInput(True, 22, "backspace", None, frozenset(), 2.0),
        KeyInput(True, 10, "o", "ö", frozenset(), 2.1),
    ]
    events += [KeyInput(True, 36, "enter", None, frozenset(), 3.0), *keys("x", 4.0)]
    got = build(events)
    assert [(g.kind, g.text, g.keys) for g in got] == [
        ("type", "héllö", ()),
        ("key", "", ("enter",)),
        ("type", "x", ()),
    ]
    assert got[0].started == 1.0


def test_chords_and_the_stop_hotkey() -> None:
    ctrl = [KeyInput(True, 37, "ctrl", None, frozenset(), 1.0)]
    held = frozenset({"ctrl"})
    events = ctrl + [
        KeyInput(True, 38, "a", "a", held, 1.1),
        KeyInput(False, 38, "a", None, held, 1.2),
    ]
    events += [KeyInput(False, 37, "ctrl", None, frozenset(), 1.3)]
    events += [
        KeyInput(True, 50, "shift", None, frozenset(), 2.0),
        KeyInput(True, 23, "tab", None, frozenset({"shift"}), 2.1),
    ]
    events += [KeyInput(False, 50, "shift", None, frozenset(), 2.2)]
    stop = frozenset({"ctrl", "alt", "shift", "x"})
    events += [KeyInput(True, 53, "x", "X", frozenset({"ctrl", "alt", "shift"}), 3.0)]
    got = build(events, ignore=stop)
    assert [g.keys for g in got] == [("ctrl", "a"), ("shift", "tab")]
    assert got[0].started == 1.0  # from the first modifier: its screenshot precedes the chord


def test_clicks_double_clicks_drags_and_scrolls() -> None:
    b = ButtonInput
    events = [
        b(True, 1, 10, 10, 1.0),
        b(False, 1, 10, 10, 1.05),
        b(True, 1, 11, 10, 1.2),
        b(False, 1, 11, 10, 1.25),
    ]
    events += [b(True, 1, 100, 100, 2.0), b(False, 1, 300, 150, 2.5)]
    events += [
        b(True, 4, 50, 50, 3.0),
        b(False, 4, 50, 50, 3.0),
        b(True, 4, 50, 50, 3.1),
        b(True, 5, 50, 50, 3.2),
    ]
    events += [
        b(True, 3, 70, 70, 5.0),
        b(False, 3, 70, 70, 5.1),
        b(True, 1, 5, 5, 6.0),
        b(False, 1, 5, 5, 6.1),
    ]
    got = build(events)
    assert [(g.kind, g.points, g.clicks) for g in got] == [
        ("double_click", [(10, 10)], 0),
        ("left_click_drag", [(100, 100), (300, 150)], 0),
        ("scroll", [(50, 50)], 2),
        ("scroll", [(50, 50)], -1),
        ("right_click", [(70, 70)], 0),
        ("left_click", [(5, 5)], 0),
    ]
