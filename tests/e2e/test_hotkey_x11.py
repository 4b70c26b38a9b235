"""The kill-switch hotkey is grabbed: it fires, and the focused application never sees it."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from actions.hotkey import Combo, HotkeyError, XHotkey, parse_combo
from tests.support.x11 import wait_until, x_env


def xdo(display: str, *args: str) -> None:
    """Real X input through xdotool."""
    subprocess.run(["xdotool", *args], env=x_env(display), check=True, timeout=20)


pytestmark = pytest.mark.x11


def test_parse_combo_reads_pynput_style_names() -> None:
    assert parse_combo("<ctrl>+<alt>+<shift>+x") == Combo((1 << 2) | (1 << 3) | 1, "x")
    assert parse_combo("<ctrl>+<f12>") == Combo(1 << 2, "F12")
    assert parse_combo("<cmd>+<esc>") == Combo(1 << 6, "Escape")
    with pytest.raises(HotkeyError):
        parse_combo("<ctrl>+<alt>")
    with pytest.raises(HotkeyError):
        parse_combo("<ctrl>+a+b")


def test_the_hotkey_fires_and_never_reaches_the_focused_app(
    xdisplay: str, probe_app: Any, tmp_path: Path
) -> None:
    probe = probe_app((40, 80, 600, 400))
    fired = threading.Event()
    hotkey = XHotkey("<ctrl>+<alt>+<shift>+x", fired.set)
    hotkey.start()
    try:
        x, y = probe.center("text_field")
        xdo(xdisplay, "mousemove", str(x), str(y), "click", "1")
        xdo(xdisplay, "type", "ab")
        probe.wait_text("ab")
        xdo(xdisplay, "key", "ctrl+alt+shift+x")
        assert fired.wait(10), "the hotkey did not fire"
        # With Caps Lock on, the combination still belongs to deskpilot.
        fired.clear()
        xdo(xdisplay, "key", "Caps_Lock", "ctrl+alt+shift+x", "Caps_Lock")
        assert fired.wait(10), "the hotkey did not fire with Caps Lock on"
        xdo(xdisplay, "type", "c")
        probe.wait_text("abc")
    finally:
        hotkey.stop()
    keys = [e for e in probe.events() if e["event"] == "key"]
    assert not [e for e in keys if str(e.get("text", "")).lower() == "x"], keys
    assert probe.text() == "abc"
    # Released: the same combination reaches applications again once deskpilot lets go.
    xdo(xdisplay, "key", "ctrl+alt+shift+x")
    wait_until(
        lambda: any(e["event"] == "key" and "x" in str(e).lower() for e in probe.new_events()),
        10,
        "the released combination to reach the app",
    )


def test_a_taken_combination_is_a_one_line_error(xdisplay: str) -> None:
    first = XHotkey("<ctrl>+<alt>+<shift>+y", lambda: None)
    first.start()
    try:
        from Xlib import display

        # Another client (its own connection) holding the same grab: BadAccess for the second.
        other = XHotkey("<ctrl>+<alt>+<shift>+y", lambda: None)
        with pytest.raises(HotkeyError, match="already uses"):
            other.start()
        assert display  # the module imported: python-xlib is present
    finally:
        first.stop()


def test_no_display_is_an_error_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(HotkeyError, match="no X display"):
        XHotkey("<ctrl>+q", lambda: None).start()
    assert "DISPLAY" not in os.environ
