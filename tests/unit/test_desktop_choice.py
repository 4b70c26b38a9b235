"""The desktop backend chosen from the session, and the wlroots helpers that need no compositor."""

from __future__ import annotations

from pathlib import Path

import pytest

from actions.desktop import choose_backend
from actions.desktop.portal import keysym_typable, layout_keysyms, open_portal_desktop
from actions.desktop.wire import OutputInfo, keymap_text
from actions.desktop.wlroots import (
    chord_keysyms,
    monitors_from_outputs,
    stroke_keysyms,
    untypable,
)
from actions.screen import CoordinateSpace, DisplayError, Monitor, model_to_screen
from actions.xtyping import validate_text


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DISPLAY": ":0"}, "x11"),
        ({"DISPLAY": ":0", "XDG_SESSION_TYPE": "x11"}, "x11"),
        # A Wayland session with XWayland: Wayland wins, X would see only XWayland windows.
        ({"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0", "SWAYSOCK": "/run/s"}, "wlroots"),
        ({"WAYLAND_DISPLAY": "wayland-1", "HYPRLAND_INSTANCE_SIGNATURE": "abc"}, "wlroots"),
        ({"WAYLAND_DISPLAY": "wayland-0", "XDG_CURRENT_DESKTOP": "labwc:wlroots"}, "wlroots"),
        ({"WAYLAND_DISPLAY": "wayland-0", "XDG_CURRENT_DESKTOP": "river"}, "wlroots"),
        ({"WAYLAND_DISPLAY": "wayland-0", "XDG_CURRENT_DESKTOP": "ubuntu:GNOME"}, "portal"),
        ({"WAYLAND_DISPLAY": "wayland-0", "XDG_CURRENT_DESKTOP": "KDE"}, "portal"),
        ({"XDG_SESSION_TYPE": "wayland", "XDG_CURRENT_DESKTOP": "GNOME"}, "portal"),
        # Xvfb started from a Wayland desktop's terminal for the tests: the session says x11.
        ({"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":9", "XDG_SESSION_TYPE": "x11"}, "x11"),
        ({}, "x11"),  # nothing at all: the X11 path explains there is no display
    ],
)
def test_the_session_chooses_the_backend(env: dict[str, str], expected: str) -> None:
    assert choose_backend(env) == expected


def test_a_requested_backend_overrides_the_session() -> None:
    sway = {"WAYLAND_DISPLAY": "wayland-1", "SWAYSOCK": "/run/s", "DISPLAY": ":0"}
    assert choose_backend(sway, "x11") == "x11"
    assert choose_backend({"DISPLAY": ":0"}, "wlroots") == "wlroots"
    with pytest.raises(ValueError, match="unknown display backend"):
        choose_backend(sway, "mir")


def test_the_portal_path_without_a_session_bus_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={tmp_path / 'no-bus'}")
    with pytest.raises(DisplayError) as err:
        open_portal_desktop({"XDG_CURRENT_DESKTOP": "GNOME", "WAYLAND_DISPLAY": "w"})
    message = str(err.value)
    assert message.startswith("cannot reach the D-Bus session bus for the portal")
    assert "\n" not in message


def test_text_is_checked_against_the_layout_keysyms() -> None:
    keymap = """xkb_keymap {
    xkb_symbols "pc+de" {
        key <AD01> { [ q, Q, at ] };
        key <AC10> { [ odiaeresis, Odiaeresis ] };
        key <AE12> { [ dead_acute, dead_grave ] };
        key <I123> { [ U4E16, 0x100754c ] };
    };
};"""
    keysyms = layout_keysyms(keymap)
    assert all(keysym_typable(ch, keysyms) for ch in "qQ@öÖ世界")
    assert not any(keysym_typable(ch, keysyms) for ch in "ßx")


def test_outputs_become_monitors_with_origin_and_scale() -> None:
    outputs = [
        OutputInfo(1, "DP-1", mode_width=3840, mode_height=2160, scale=2, logical_x=0,
                   logical_y=0, logical_width=2560, logical_height=1440),  # fractional 1.5
        OutputInfo(2, "HDMI-A-1", mode_width=1920, mode_height=1080, transform=1,
                   logical_x=-1080, logical_y=0, logical_width=1080, logical_height=1920),
    ]  # fmt: skip
    first, second = monitors_from_outputs(outputs)
    assert first == Monitor(1, 0, 0, 2560, 1440, 1.5, True)
    assert second == Monitor(2, -1080, 0, 1080, 1920, 1.0, False)
    # The one mapping: the model's centre of the rotated left monitor is a negative x.
    assert model_to_screen((500, 500), CoordinateSpace.relative(), second) == (-540, 960)


def test_text_becomes_one_keysym_a_character_with_nothing_dropped() -> None:
    strokes = validate_text('a\tb\r\nGrüße, 世界 <ok> & "q"')
    keysyms = stroke_keysyms(strokes)
    assert len(keysyms) == len(strokes) == 4 + 20
    assert keysyms[:4] == [0x61, 0xFF09, 0x62, 0xFF0D]  # a, Tab, b, Return
    assert keysyms[4:9] == [0x47, 0x72, 0xFC, 0xDF, 0x65]  # Grüße: Latin-1 keysyms
    assert keysyms[11:13] == [0x1004E16, 0x100754C]  # 世界: Unicode keysyms
    assert untypable(strokes) == []
    assert untypable(["a", "\ufffe", "\ufdd0"]) == ["\ufffe", "\ufdd0"]


def test_chords_carry_their_modifiers() -> None:
    assert chord_keysyms(("ctrl", "shift", "t")) == [
        (0xFFE3, "ctrl"), (0xFFE1, "shift"), (0x74, None),
    ]  # fmt: skip
    assert chord_keysyms(("win",)) == [(0xFFEB, "logo")]
    assert chord_keysyms(("enter",)) == [(0xFF0D, None)]


def test_a_keymap_puts_each_keysym_on_its_own_key() -> None:
    text = keymap_text([0x61, 0x1004E16])
    assert "<K0> = 9;" in text and "<K1> = 10;" in text
    assert "key <K0> {[ 0x61 ]};" in text and "key <K1> {[ 0x1004e16 ]};" in text
