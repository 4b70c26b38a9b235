"""The Wayland stop shortcut: its trigger in the portal's form, and a bus without a portal."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from actions.desktop.shortcuts import PortalShortcut, preferred_trigger
from actions.hotkey import HotkeyError


def test_combinations_become_the_shortcut_specifications_triggers() -> None:
    assert preferred_trigger("<ctrl>+<alt>+<shift>+x") == "CTRL+ALT+SHIFT+x"
    assert preferred_trigger("<super>+<esc>") == "LOGO+Escape"
    assert preferred_trigger("<ctrl>+<f12>") == "CTRL+F12"
    with pytest.raises(HotkeyError):
        preferred_trigger("<ctrl>+a+b")


@pytest.fixture
def bare_bus(tmp_path: Path) -> Iterator[str]:
    """A private session bus that can start no service (so no portal)."""
    if shutil.which("dbus-daemon") is None:
        pytest.skip("dbus-daemon not installed: run `apt-get install dbus`")
    services = tmp_path / "services"
    services.mkdir()
    config = tmp_path / "bus.conf"
    config.write_text(
        "<busconfig><type>session</type><listen>unix:tmpdir=/tmp</listen>"
        f"<servicedir>{services}</servicedir>"
        '<policy context="default"><allow send_destination="*" eavesdrop="true"/>'
        '<allow eavesdrop="true"/><allow own="*"/></policy></busconfig>'
    )
    bus = subprocess.Popen(
        ["dbus-daemon", f"--config-file={config}", "--nofork", "--print-address=1"],
        stdout=subprocess.PIPE,
    )
    assert bus.stdout is not None
    address = bus.stdout.readline().decode().strip()
    try:
        yield address
    finally:
        bus.terminate()
        bus.wait(timeout=10)
        bus.stdout.close()


def test_without_a_portal_the_shortcut_fails_with_one_line(
    bare_bus: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", bare_bus)
    shortcut = PortalShortcut("<ctrl>+<alt>+<shift>+x", lambda: None)
    with pytest.raises(HotkeyError) as caught:
        shortcut.start()
    assert str(caught.value) == "no xdg-desktop-portal is running"
    assert "\n" not in str(caught.value)


def test_without_a_session_bus_the_shortcut_fails_with_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={tmp_path / 'none'}")
    with pytest.raises(HotkeyError) as caught:
        PortalShortcut("<ctrl>+<alt>+<shift>+x", lambda: None).start()
    assert str(caught.value).startswith("no D-Bus session bus (")
    assert os.linesep not in str(caught.value)
