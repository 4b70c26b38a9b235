"""The desktop backend chosen from the session, and the wlroots helpers that need no compositor."""

from __future__ import annotations

from pathlib import Path

import pytest

from actions.desktop import choose_backend
from actions.desktop.portal import keysym_typable, layout_keysyms, open_portal_desktop
from actions.desktop.wire import OutputInfo
from actions.desktop.wlroots import (
    monitors_from_outputs,
    untypable,
    wtype_chord_args,
    wtype_text_args,
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


def test_text_becomes_wtype_arguments_with_nothing_dropped() -> None:
    strokes = validate_text('-a\tb\r\nGrüße, 世界 <ok> & "q"\n--x')
    assert wtype_text_args(strokes) == [
        "-k", "minus", "a", "-k", "Tab", "b", "-k", "Return",
        'Grüße, 世界 <ok> & "q"', "-k", "Return", "-k", "minus", "-k", "minus", "x",
    ]  # fmt: skip
    assert untypable(strokes) == []
    assert untypable(["a", "\ufffe", "\ufdd0"]) == ["U+FFFE", "U+FDD0"]


def test_chords_press_in_order_and_release_in_reverse() -> None:
    assert wtype_chord_args(("ctrl", "shift", "t")) == [
        "-M", "ctrl", "-M", "shift", "-P", "0x74", "-p", "0x74", "-m", "shift", "-m", "ctrl",
    ]  # fmt: skip
    assert wtype_chord_args(("win",)) == ["-M", "logo", "-m", "logo"]
    assert wtype_chord_args(("enter",)) == ["-P", "Return", "-p", "Return"]
