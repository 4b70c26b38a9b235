"""Several monitors on one Xvfb (RandR 1.5): list them, act on each, calibrate each.

The layout: B (primary, 1280x1024 at +1920+176: a primary away from the origin), A
(1920x1080 at the origin) and C (800x600 at +400+1080, below A). Clicks named in each
monitor's own 0-1000 coordinates must land within 2 px of where they were meant to.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from actions.executor import Executor
from actions.screen import CoordinateSpace, Monitor, Screen, screen_to_model
from actions.types import LeftClick, Type
from tests.support.x11 import (
    shell_quote,
    start_probe_app,
    start_xterm,
    start_xvfb,
    wait_until,
    x_env,
)

pytestmark = [pytest.mark.x11, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
REL = CoordinateSpace.relative()
LAYOUT = [
    # name, geometry (W/mm x H/mm + X + Y), outputs: the first takes the server's one output
    # ("screen"), or the whole-screen monitor stays listed beside them.
    ("*B", "1280/338x1024/270+1920+176", "none"),
    ("A", "1920/508x1080/285+0+0", "screen"),
    ("C", "800/200x600/150+400+1080", "none"),
]


@pytest.fixture(scope="module")
def multi() -> Iterator[str]:
    """A 3200x1680 Xvfb split into the three monitors of LAYOUT."""
    xrandr = shutil.which("xrandr")
    if xrandr is None:
        pytest.skip("xrandr is not installed: apt-get install -y x11-xserver-utils")
    server = start_xvfb(3200, 1680)  # started with -noreset: the monitors survive clients
    try:
        for name, geometry, outputs in LAYOUT:
            subprocess.run(
                [xrandr, "--setmonitor", name, geometry, outputs],
                env=x_env(server.display),
                check=True,
                capture_output=True,
                timeout=10,
            )
        yield server.display
    finally:
        server.close()


@pytest.fixture(scope="module")
def monitors(multi: str) -> dict[str, Monitor]:
    """The monitors as deskpilot sees them, by RandR name."""
    return {m.name: m for m in Screen(display=multi).list_monitors()}


def _cli(display: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = x_env(display, XDG_SESSION_TYPE="x11")
    env.pop("WAYLAND_DISPLAY", None)  # this X server (XAUTHORITY has its cookie), whatever else
    return subprocess.run(
        [sys.executable, "main.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_monitors_lists_what_randr_reports(multi: str) -> None:
    proc = _cli(multi, "monitors")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "1: B 1280x1024+1920+176 (primary)",
        "2: A 1920x1080+0+0",
        "3: C 800x600+400+1080",
    ]
    assert Screen(display=multi).monitor.name == "B"  # the default is the primary


def test_clicks_land_on_each_monitor_and_keys_follow(
    multi: str, monitors: dict[str, Monitor], tmp_path: Path
) -> None:
    ex = Executor(display=multi)
    apps = []
    try:
        for name, m in sorted(monitors.items()):
            # The probe window fills most of its monitor; its canvas is the bottom half.
            geometry = (m.left + 40, m.top + 40, m.width - 80, m.height - 80)
            apps.append(
                (m, start_probe_app(multi, tmp_path / f"{name}.jsonl", geometry, f"probe {name}"))
            )
        for m, app in apps:
            x, y, w, h = app.rect("canvas")
            for target in [(x + 5, y + 5), (x + w - 6, y + h - 6), app.center("canvas")]:
                app.mark()
                point = screen_to_model(target, REL, m)
                named = (round(point[0], 1), round(point[1], 1))  # as a model names it
                result = ex.execute(LeftClick(named), space=REL, monitor=m)
                assert result.ok, result.error
                press = app.wait_event("press")[0]
                assert abs(press["x"] - target[0]) <= 2 and abs(press["y"] - target[1]) <= 2, (
                    m.name,
                    target,
                    press,
                )
        for _, app in apps:
            app.close()
        apps.clear()
        # Keys go where the click went, on a monitor below another, away from the origin.
        c = monitors["C"]
        out = tmp_path / "typed.txt"
        term = start_xterm(
            multi,
            f"cat > {shell_quote(out)}",
            position=(c.left + 100, c.top + 100),
            columns=40,
            rows=6,
            title="xterm on C",
        )
        try:
            result = ex.execute(
                LeftClick(screen_to_model(term.center(), REL, c)), space=REL, monitor=c
            )
            assert result.ok, result.error
            assert ex.execute(Type("on monitor C\n"), space=REL, monitor=c).ok
            wait_until(lambda: out.exists() and out.read_text() == "on monitor C\n", 15, "text")
        finally:
            term.close()
    finally:
        for _, app in apps:
            app.close()
        ex.close()


def test_calibrate_passes_on_every_monitor(multi: str) -> None:
    proc = _cli(multi, "calibrate")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("monitor ")]
    assert [line.split(":")[0] for line in lines] == [
        "monitor 1 B 1280x1024+1920+176 (primary)",
        "monitor 2 A 1920x1080+0+0",
        "monitor 3 C 800x600+400+1080",
    ]
    assert all(": ok:" in line for line in lines), proc.stdout
    assert "calibration passed" in proc.stdout


def test_calibrate_fails_with_a_hint_when_the_mapping_is_wrong(multi: str) -> None:
    scaled = _cli(multi, "calibrate", "--monitor", "1", "--scale", "1.25")
    assert scaled.returncode == 1, scaled.stdout + scaled.stderr
    assert "scale setting of about 1.25" in scaled.stdout
    # Monitor C captured where it is not: its targets are not in the screenshot.
    shifted = _cli(multi, "calibrate", "--monitor", "3", "--geometry", "800x600+400+900")
    assert shifted.returncode == 1, shifted.stdout + shifted.stderr
    assert "did not show in the screenshot" in shifted.stdout
    assert "calibration FAILED" in shifted.stdout


def test_calibrate_on_a_private_desktop(tmp_path: Path) -> None:
    if shutil.which("openbox") is None:
        pytest.skip("openbox is not installed: apt-get install -y --no-install-recommends openbox")
    env = dict(os.environ)
    for name in ("DISPLAY", "WAYLAND_DISPLAY"):  # no host display: headless
        env.pop(name, None)
    proc = subprocess.run(
        [
            sys.executable,
            "main.py",
            "calibrate",
            "--desktop",
            "private",
            "--desktop-size",
            "1024x768",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "headless, 1024x768, openbox" in proc.stderr
    assert "monitor 1 screen 1024x768+0+0 (primary): ok" in proc.stdout
