"""The app on Qt's own Wayland platform under a headless sway, and its windows kept out of
the captures there (ui/wayland.py): Wayland tells no client where its windows are, so they
are hidden for the moment of a capture instead of masked.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.wayland import Sway, skip_without_tools, sway_session

skip_without_tools()

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """\
output HEADLESS-1 resolution 1920x1080 position 0 0 scale 1
xwayland disable
focus_follows_mouse no
default_border none
"""


@pytest.fixture(scope="module")
def sway() -> Iterator[Sway]:
    """One headless sway for the module, without XWayland: Qt must speak Wayland."""
    yield from sway_session(CONFIG)


def qt_env(sway: Sway, **extra: str) -> dict[str, str]:
    """The sway session's environment for a Qt app on the wayland platform."""
    env = dict(sway.env, QT_QPA_PLATFORM="wayland", QT_ACCESSIBILITY="0", NO_AT_BRIDGE="1")
    env.update(HF_HUB_OFFLINE="1", QT_LOGGING_RULES="qt.qpa.*=false", **extra)
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)  # no bus: the hotkey must say so in one line
    return env


def events(log: Path) -> list[dict[str, Any]]:
    """The app's test log so far."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def test_the_app_runs_natively_on_wayland_and_is_captured_by_the_wlroots_desktop(
    sway: Sway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    config = tmp_path / "config"
    (config / "deskpilot").mkdir(parents=True)
    (config / "deskpilot" / "settings.toml").write_text('task = "nothing yet"\n')
    log, err = tmp_path / "ui.jsonl", tmp_path / "app.err"
    env = qt_env(sway, XDG_CONFIG_HOME=str(config), DESKPILOT_UI_LOG=str(log))
    with err.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.app_hooks"],  # the app, watched from outside
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=out,
        )
    sway.children.append(proc)
    try:
        ready = sway.wait(
            lambda: (
                next((e for e in events(log) if e["event"] == "ready"), None)
                or (proc.poll() is not None and {"exited": proc.returncode})
            ),
            "the app's ready event",
            60,
        )
        assert "exited" not in ready, err.read_text()
        window = sway.wait(lambda: sway.window_of(proc), "the app's window on sway")
        assert window["visible"] and window["shell"] == "xdg_shell"  # native, not XWayland
        # Off X11 the stop hotkey comes from the GlobalShortcuts portal; here is no bus at all.
        assert ready["hotkey_error"].startswith(
            "global hotkey Ctrl+Alt+Shift+X unavailable: no D-Bus session bus ("
        )
        assert "\n" not in ready["hotkey_error"]

        for name, value in sway.env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("DISPLAY", raising=False)
        from actions.desktop import open_desktop

        desktop = open_desktop()
        try:
            assert desktop.name == "wlroots"
            deadline = time.monotonic() + 20
            while True:  # the first frames may come before Qt has drawn the whole window
                frame = desktop.screen.capture()
                shot = Image.frombytes("RGB", (frame.width, frame.height), frame.rgb)
                r = window["rect"]
                area = shot.crop((r["x"], r["y"], r["x"] + r["width"], r["y"] + r["height"]))
                colours = len(area.getcolors(1 << 24) or [])
                if colours > 50 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        finally:
            desktop.close()
        buffer = io.BytesIO()
        shot.save(buffer, "PNG")
        (tmp_path / "app-on-sway.png").write_bytes(buffer.getvalue())
        assert (frame.width, frame.height) == (1920, 1080)
        assert colours > 50, f"the app's window looks blank ({colours} colours)"
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=20)
    assert "Traceback" not in err.read_text()


def test_the_apps_windows_leave_the_screen_while_it_is_captured(sway: Sway) -> None:
    probe = ROOT / "tests" / "support" / "wayland_hider_probe.py"
    done = subprocess.run(
        [sys.executable, str(probe)], cwd=ROOT, env=qt_env(sway), capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["platform"] == "wayland" and seen["wayland"]
    assert seen["before"] > 100_000  # the red window, as the wlroots desktop captures it
    assert seen["hidden"] == 0  # captured through MaskedScreen with the hider: not there
    assert seen["after"] > 100_000  # and back on the screen afterwards
