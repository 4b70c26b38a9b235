"""End to end on Wayland: `main.py run` drives foot terminals on a headless sway (wlroots).

The same checks as on X11 (tests/e2e/test_run_cli.py), with a scripted Qwen 3.5 server: the
click lands on the terminal the model pointed at, exact Unicode arrives byte for byte, a key
press works, the recording holds real pictures of the session; and, on a second output at
scale 1.5 placed right of the first, a click lands where the model meant.
"""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actions.screen import CoordinateSpace, Monitor, screen_to_model
from agent.recording import read_steps
from tests.support.scripted_server import Reply, ScriptedServer, json_call, xml_call
from tests.wayland import Sway, skip_without_tools, sway_session

skip_without_tools()

ROOT = Path(__file__).resolve().parents[2]
REL = CoordinateSpace.relative()
EXACT = 'Grüße, 世界 <ok> & "q"'
CONFIG = """\
output HEADLESS-1 resolution 1920x1080 position 0 0 scale 1
output HEADLESS-2 resolution 1920x1080 position 1920 0 scale 1.5
workspace 1 output HEADLESS-1
workspace 2 output HEADLESS-2
xwayland disable
focus_follows_mouse no
default_border none
"""
FIRST = Monitor(1, 0, 0, 1920, 1080, 1.0, True)
SECOND = Monitor(2, 1920, 0, 1280, 720, 1.5, False)


@pytest.fixture(scope="module")
def sway() -> Iterator[Sway]:
    """One headless sway for the module: two outputs, the second at scale 1.5."""
    yield from sway_session(CONFIG, outputs=2)


def centre(window: dict[str, Any]) -> tuple[int, int]:
    """A window's centre in layout (logical) coordinates."""
    r = window["rect"]
    return r["x"] + r["width"] // 2, r["y"] + r["height"] // 2


def mp(point: tuple[int, int], monitor: Monitor) -> list[float]:
    """A layout point as the model would name it on that monitor (0-1000, rounded)."""
    x, y = screen_to_model(point, REL, monitor)
    return [round(x, 1), round(y, 1)]


def run_cli(sway: Sway, server: ScriptedServer, runs: Path, *extra: str) -> Any:
    """`main.py run` in the sway session, unattended; the backend is chosen from the session."""
    cmd = [sys.executable, "main.py", "run", "drive the terminal", "--endpoint", server.url]
    cmd += ["--runs-dir", str(runs), "--approve", "auto", *extra]
    env = dict(sway.env, HF_HUB_OFFLINE="1")
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


def recording(runs: Path) -> tuple[list[dict[str, Any]], Path]:
    """The steps of the only run in a runs folder."""
    (run_dir,) = [d for d in runs.iterdir() if d.is_dir()]
    return read_steps(run_dir / "steps.jsonl")[0], run_dir


def picture(path: Path) -> Any:
    """A recorded screenshot as a PIL image."""
    from PIL import Image

    return Image.open(io.BytesIO(path.read_bytes())).convert("RGB")


def test_a_run_clicks_the_right_terminal_and_types_exact_unicode(
    sway: Sway, tmp_path: Path
) -> None:
    left_file, right_file = tmp_path / "left.txt", tmp_path / "right.txt"
    left = sway.foot(f"cat > {left_file}")
    right = sway.foot(f"cat > {right_file}")
    # sway tiles them side by side and focuses the newest: only the click sends keys left.
    target = sway.window_of(left)
    assert target is not None and not target["focused"]
    assert sway.window_of(right)["rect"]["x"] > target["rect"]["x"]  # type: ignore[index]
    script = [
        Reply(xml_call(action="left_click", coordinate=mp(centre(target), FIRST))),
        Reply(json_call(action="type", text=EXACT + "\n")),
        Reply(xml_call(action="key", keys=["ctrl", "d"])),
        Reply("Done.\n" + xml_call(action="terminate", status="success")),
    ]
    server = ScriptedServer(script)
    try:
        proc = run_cli(sway, server, tmp_path / "runs")
    finally:
        server.close()
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr

    # The effects: the keys went to the clicked terminal only; ctrl+d ended its `cat`.
    assert left.wait(timeout=20) == 0
    assert left_file.read_bytes() == (EXACT + "\n").encode("utf-8")
    assert right.poll() is None and right_file.read_bytes() == b""

    steps, run_dir = recording(tmp_path / "runs")
    assert [s["action"]["action"] for s in steps] == ["left_click", "type", "key", "terminate"]
    assert all(s["execution"]["ok"] for s in steps[:3]), [s["execution"] for s in steps]
    assert steps[1]["execution"]["detail"] == f"typed {len(EXACT) + 1} characters"
    # Real pictures of the session: full size, not blank, and the typed line shows up in the
    # left terminal between the screenshot before typing and the one after.
    shots = [picture(run_dir / s["screenshot"]) for s in steps]
    assert all(s.size == (1920, 1080) for s in shots)
    assert all(len(s.getcolors(1 << 24) or []) > 2 for s in shots)
    left_box = (0, 0, 960, 1080)
    before, after = shots[1].crop(left_box), shots[2].crop(left_box)
    assert before.tobytes() != after.tobytes()
    assert steps[0]["screen"]["captured_size"] == [1920, 1080]
    right.terminate()


def test_a_click_on_a_scaled_second_output_lands_where_the_model_meant(
    sway: Sway, tmp_path: Path
) -> None:
    listed = subprocess.run(
        [sys.executable, "main.py", "monitors"],
        cwd=ROOT, env=sway.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        "1: 1920x1080+0+0 (primary)",
        "2: 1280x720+1920+0 scale 1.5",
    ]
    sway.msg("workspace", "2")
    out = tmp_path / "scaled.txt"
    term = sway.foot(f"cat > {out}")
    sway.msg("workspace", "1")  # the keyboard goes back to the first output
    window = sway.window_of(term)
    assert window is not None and not window["focused"]
    script = [
        Reply(xml_call(action="left_click", coordinate=mp(centre(window), SECOND))),
        Reply(xml_call(action="type", text="scaled ✓\n")),
        Reply(xml_call(action="key", keys=["ctrl", "d"])),
        Reply(xml_call(action="terminate", status="success")),
    ]
    server = ScriptedServer(script)
    try:
        proc = run_cli(sway, server, tmp_path / "runs", "--monitor", "2")
    finally:
        server.close()
    assert proc.returncode == 0, proc.stderr
    assert term.wait(timeout=20) == 0
    assert out.read_bytes() == "scaled ✓\n".encode()
    steps, _ = recording(tmp_path / "runs")
    # The output is captured at its physical size; clicks are in logical layout pixels.
    assert steps[0]["screen"]["captured_size"] == [1920, 1080]
    assert steps[0]["execution"]["points"] == [list(centre(window))]


def test_text_keys_cannot_type_is_pasted_and_the_clipboard_restored(
    sway: Sway, tmp_path: Path
) -> None:
    # Noncharacters have no keysym: they go through the clipboard; the rest through keys.
    text = "a\ufdd0b \uffff!"
    subprocess.run(
        ["wl-copy", "what the user had"], env=sway.env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, timeout=10, check=True,
    )  # fmt: skip
    sway.msg("workspace", "3")
    out = tmp_path / "pasted.txt"
    term = sway.foot(f"cat > {out}")
    script = [
        Reply(json_call(action="type", text=text + "\n")),
        Reply(xml_call(action="key", keys=["ctrl", "d"])),
        Reply(xml_call(action="terminate", status="success")),
    ]
    server = ScriptedServer(script)
    try:
        proc = run_cli(sway, server, tmp_path / "runs")
    finally:
        server.close()
    assert proc.returncode == 0, proc.stderr
    assert term.wait(timeout=20) == 0
    assert out.read_bytes() == (text + "\n").encode("utf-8")
    steps, _ = recording(tmp_path / "runs")
    execution = steps[0]["execution"]
    assert execution["ok"] and execution["via"] == "clipboard"
    assert "'\\ufdd0' (U+FDD0)" in execution["detail"]
    assert "not seen taken" not in execution["detail"]
    assert "via" not in steps[1]["execution"]  # written only when text went in another way
    restored = subprocess.run(
        ["wl-paste", "--no-newline"], env=sway.env, capture_output=True, timeout=10, check=False
    )
    assert restored.stdout == b"what the user had"
