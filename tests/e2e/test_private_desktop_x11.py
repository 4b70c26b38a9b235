"""End to end: `main.py run --desktop ...` acts on a desktop of its own, leaving the user's alone.

The user's display is the session's Xvfb, with a decoy xterm under the pointer; the agent's is
a nested Xephyr window on it (--desktop private with DISPLAY set) or a headless Xvfb. Every
device event the user's server handles is recorded (X RECORD): the run must cause none.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.scripted_server import Reply, ScriptedServer, xml_call
from tests.support.x11 import InputRecorder, move_pointer, pointer_position, shell_quote

pytestmark = [pytest.mark.x11, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
SIZE = "800x600"  # small: the Xephyr window stays clear of the decoy


def _require(*programs: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        pytest.skip(
            f"{', '.join(missing)} not installed: apt-get install -y --no-install-recommends "
            "xserver-xephyr openbox (or run scripts/system-deps.sh)"
        )


def _started_pids(stderr: str) -> tuple[str, list[int]]:
    """The private display and the pids deskpilot reported starting."""
    match = re.search(r"private desktop (:\d+) .*; pids \[([\d, ]+)\]", stderr)
    assert match, stderr
    return match.group(1), [int(p) for p in match.group(2).split(",")]


def _alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _ticks_now() -> int:
    """Clock ticks since boot, as /proc/PID/stat counts a process's start."""
    return int(float(Path("/proc/uptime").read_text().split()[0]) * os.sysconf("SC_CLK_TCK"))


def _on_display(display: str, started_by: int) -> list[int]:
    """Live processes started before tick `started_by` whose environment names the display.

    The start bound keeps out a later X server elsewhere that reuses the display number.
    """
    found = []
    needle = f"DISPLAY={display}\0".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            started = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[19])
        except (OSError, ValueError, IndexError):
            continue
        if needle in environ + b"\0" and started <= started_by and _alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def _assert_all_gone(stderr: str, ended_at: int) -> None:
    display, pids = _started_pids(stderr)
    assert [p for p in pids if _alive(p)] == []
    left = _on_display(display, ended_at)
    assert left == [], [Path(f"/proc/{p}/cmdline").read_bytes() for p in left]


@pytest.mark.parametrize("desktop", ["private", "headless"])
def test_a_private_run_types_into_its_own_xterm_and_leaves_the_user_alone(
    desktop: str, xdisplay: str, xterm: Any, tmp_path: Path
) -> None:
    _require("openbox", *(["Xephyr"] if desktop == "private" else []))
    decoy_file = tmp_path / "decoy.txt"
    decoy = xterm(f"cat > {shell_quote(decoy_file)}", position=(1000, 650), columns=60, rows=8)
    # Keyboard focus follows the pointer on the bare host: anything typed there lands in the decoy.
    move_pointer(xdisplay, *decoy.center())
    before = pointer_position(xdisplay)
    out = tmp_path / "private.txt"
    opened = f"xterm -geometry 100x40+0+0 -e sh -c {shell_quote('cat > ' + str(out))}"
    script = [
        Reply(xml_call(action="left_click", coordinate=[300, 300])),
        Reply(xml_call(action="type", text="made in private\n")),
        Reply(xml_call(action="key", keys=["ctrl", "d"])),
        Reply(xml_call(action="terminate", status="success")),
    ]
    server = ScriptedServer(script)
    cmd = [
        sys.executable, "main.py", "run", "type into the terminal",
        "--endpoint", server.url, "--runs-dir", str(tmp_path / "runs"), "--approve", "auto",
        "--desktop", desktop, "--desktop-size", SIZE, "--open", opened,
    ]  # fmt: skip
    try:
        with InputRecorder(xdisplay) as recorder:
            recorder.mark("before")
            proc = subprocess.run(
                cmd, cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=90
            )
            recorder.mark("after")
            recorder.wait_mark("after")
            host_events = recorder.between("before", "after")
            ended_at = _ticks_now()
    finally:
        server.close()
    assert proc.returncode == 0, proc.stderr
    mode = "an Xephyr window" if desktop == "private" else "headless"
    assert mode in proc.stderr
    assert out.read_text(encoding="utf-8") == "made in private\n"
    (run_dir,) = (tmp_path / "runs").iterdir()
    info = json.loads((run_dir / "run.json").read_text())
    assert info["desktop"] == {"choice": desktop, "size": SIZE, "open": [opened]}
    # The user's display saw no key, button or motion at all, and the pointer stayed put.
    assert host_events == []
    assert pointer_position(xdisplay) == before
    assert decoy.proc.poll() is None
    assert decoy_file.read_bytes() == b""
    _assert_all_gone(proc.stderr, ended_at)


def test_sigterm_mid_run_ends_the_private_desktop(xdisplay: str, tmp_path: Path) -> None:
    _require("openbox")
    script = [Reply(xml_call(action="left_click", coordinate=[500, 500]))] * 3
    server = ScriptedServer(script)
    cmd = [
        sys.executable, "main.py", "run", "click", "--endpoint", server.url,
        "--runs-dir", str(tmp_path / "runs"), "--approve", "ask",
        "--desktop", "headless", "--desktop-size", SIZE, "--open", "xterm",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdin=subprocess.PIPE,  # never answered: the run waits for a decision
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "proposes" in line:
                break
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
        ended_at = _ticks_now()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        server.close()
    stderr = "".join(lines) + rest
    assert proc.returncode != 0
    _assert_all_gone(stderr, ended_at)


def test_only_cookie_holders_reach_the_private_desktop() -> None:
    _require("openbox")
    from actions.private_desktop import PrivateDesktop

    before = os.environ.get("XAUTHORITY")
    with PrivateDesktop.start("headless", (640, 480)) as desktop:
        xdpyinfo = shutil.which("xdpyinfo")
        assert xdpyinfo is not None, "xdpyinfo is in x11-utils (scripts/system-deps.sh)"
        stranger = dict(desktop.env(), XAUTHORITY=os.devnull)
        refused = subprocess.run([xdpyinfo], env=stranger, capture_output=True, timeout=10)
        assert refused.returncode != 0 and b"Authorization required" in refused.stderr
        admitted = subprocess.run([xdpyinfo], env=desktop.env(), capture_output=True, timeout=10)
        assert admitted.returncode == 0, admitted.stderr
        folder = Path(desktop.env()["XAUTHORITY"]).parent
        assert folder.stat().st_mode & 0o077 == 0
    assert os.environ.get("XAUTHORITY") == before
    assert not folder.exists()
