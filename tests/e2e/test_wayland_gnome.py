"""End to end on GNOME (Wayland): `main.py run` through xdg-desktop-portal on a headless mutter.

The portal's sharing dialog is answered through AT-SPI, as a person would answer it. Checked:
capture (real pictures), a click, a key press, exact typing of what the layout has by keys and
of what it has not through the clipboard (the step says so), a declined dialog and a stream
lost mid-run as one line each.
"""

from __future__ import annotations

import io
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.recording import read_steps
from tests.gnome import Gnome, skip_without_gnome
from tests.support.scripted_server import Reply, ScriptedServer, xml_call

skip_without_gnome()

ROOT = Path(__file__).resolve().parents[2]
EXACT = 'Grüße, 世界 <ok> & "q"'
PLAIN = 'plain <ok> & "q" ABC'


@pytest.fixture(scope="module")
def gnome() -> Iterator[Gnome]:
    """One headless GNOME for the module."""
    session = Gnome.start()
    try:
        yield session
    finally:
        session.stop()


def run_cli(gnome: Gnome, server: ScriptedServer, runs: Path) -> Any:
    """`main.py run` in the GNOME session, unattended; the backend is chosen from the session."""
    cmd = [sys.executable, "main.py", "run", "type into the terminal", "--endpoint", server.url]
    cmd += ["--runs-dir", str(runs), "--approve", "auto"]
    return subprocess.run(cmd, cwd=ROOT, env=gnome.env, capture_output=True, text=True, timeout=180)


def test_a_run_through_the_portal_clicks_types_and_records(gnome: Gnome, tmp_path: Path) -> None:
    from PIL import Image

    # Listing monitors needs no permission: no dialog (none is answered here).
    listed = subprocess.run(
        [sys.executable, "main.py", "monitors"],
        cwd=ROOT, env=gnome.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert listed.returncode == 0 and listed.stdout == "1: 1920x1080+0+0 (primary)\n"
    out = tmp_path / "typed.txt"
    term = gnome.foot(f"cat > {out}")
    gnome.wait(out.exists, "foot's cat")
    script = [
        Reply(xml_call(action="left_click", coordinate=[500, 500])),
        Reply(xml_call(action="type", text=EXACT)),
        Reply(xml_call(action="type", text=PLAIN + "\n")),
        Reply(xml_call(action="key", keys=["ctrl", "d"])),
        Reply(xml_call(action="terminate", status="success")),
    ]
    server = ScriptedServer(script)
    dialog = gnome.answer_dialog("share")
    try:
        proc = run_cli(gnome, server, tmp_path / "runs")
    finally:
        server.close()
        dialog.join()
    assert dialog.answered == [0]  # type: ignore[attr-defined]
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr

    assert term.wait(timeout=20) == 0  # ctrl+d reached the terminal
    assert out.read_bytes() == (EXACT + PLAIN + "\n").encode()
    (run_dir,) = [d for d in (tmp_path / "runs").iterdir() if d.is_dir()]
    steps = read_steps(run_dir / "steps.jsonl")[0]
    assert [s["execution"]["ok"] for s in steps[:4]] == [True, True, True, True]
    # The characters the us layout lacks went through the clipboard, and the step says so.
    pasted = steps[1]["execution"]
    assert pasted["via"] == "clipboard" and "'ß' (U+00DF)" in pasted["detail"]
    assert "'世' (U+4E16)" in pasted["detail"] and "not seen taken" not in pasted["detail"]
    assert "via" not in steps[2]["execution"]  # the plain text went by keys
    shots = [
        Image.open(io.BytesIO((run_dir / s["screenshot"]).read_bytes())).convert("RGB")
        for s in steps
    ]
    assert all(s.size == (1920, 1080) for s in shots)
    assert all(len(s.getcolors(1 << 24) or []) > 2 for s in shots)
    assert shots[2].tobytes() != shots[3].tobytes()  # the typed line appeared
    # xdg-desktop-portal 1.16 has RemoteDesktop version 1, which cannot remember a permission:
    # no persist_mode is asked for and no token is kept (the dialog appears every run).
    assert not (Path(gnome.env["XDG_STATE_HOME"]) / "deskpilot").exists()


def test_a_declined_dialog_is_one_line(gnome: Gnome, tmp_path: Path) -> None:
    server = ScriptedServer([])
    dialog = gnome.answer_dialog("cancel")
    try:
        proc = run_cli(gnome, server, tmp_path / "runs")
    finally:
        server.close()
        dialog.join()
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        "deskpilot: error: screen sharing and remote control were declined in the desktop's "
        "dialog: run again and choose Share (with 'Allow remote interaction' on)"
    ]
    assert server.requests == []


def test_the_apps_stop_hotkey_says_plainly_that_gnome_43_has_no_global_shortcuts(
    gnome: Gnome,
) -> None:
    # The app's hotkey (ui/hotkey.py, no Qt) picks the GlobalShortcuts portal on Wayland;
    # xdg-desktop-portal-gnome 43 does not implement it.
    code = (
        "from ui.hotkey import GlobalHotkey\n"
        "h = GlobalHotkey('<ctrl>+<alt>+<shift>+x', lambda: None)\n"
        "print(h.start(), h.how, h.error, sep='|')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT, env=gnome.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "False|GlobalShortcuts portal|global hotkey Ctrl+Alt+Shift+X unavailable: this desktop "
        "has no GlobalShortcuts portal (it came with KDE Plasma 5.27 and GNOME 48; wlroots "
        "desktops other than Hyprland lack it)\n"
    )


def test_sharing_that_stops_mid_run_ends_the_run_with_one_line(
    gnome: Gnome, tmp_path: Path
) -> None:
    # Last in the module: it ends the portal's GNOME backend (mutter then stops the session).
    # That sends no Session.Closed, so it checks the lost stream, not the revoked message.
    script = [Reply(xml_call(action="wait", time=3)), Reply(xml_call(action="wait", time=1))]
    server = ScriptedServer(script)
    dialog = gnome.answer_dialog("share")
    result: list[Any] = []
    runner = threading.Thread(
        target=lambda: result.append(run_cli(gnome, server, tmp_path / "runs"))
    )
    runner.start()
    try:
        gnome.wait(lambda: server.requests, "the first model request", 60)
        gnome.end_backend()
        runner.join(timeout=120)
    finally:
        server.close()
        dialog.join()
    (proc,) = result
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "deskpilot: error: screen capture failed: no frame from the portal's stream (was "
        "sharing stopped?)"
    )
    assert "Traceback" not in proc.stderr and len(server.requests) == 1
