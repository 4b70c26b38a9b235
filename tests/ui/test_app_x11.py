"""End to end: the real app window on a private Xvfb drives the probe app from a scripted model.

The app runs in a subprocess (QT_QPA_PLATFORM=xcb; this process's Qt stays offscreen) and is
operated only through real X input (xdotool): approve one action, edit one by clicking on the
screenshot, reject one with a note, then stop with Esc. tests/support/app_hooks.py runs it and
logs its widgets' screen rectangles and its state (DESKPILOT_UI_LOG) and grabs its window
(DESKPILOT_UI_SHOTS); the app's own code has no test hooks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from actions.screen import CoordinateSpace, Monitor, model_to_screen, screen_to_model
from agent.recording import read_steps
from tests.support.scripted_server import Reply, ScriptedServer, xml_call
from tests.support.x11 import move_pointer, require_tool, wait_until, x_env

pytestmark = [pytest.mark.x11, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
MONITOR = Monitor(1, 0, 0, 1920, 1080, primary=True)
REL = CoordinateSpace.relative()
DOC_IMAGES = ROOT / "docs" / "images"


def mp(point: tuple[int, int]) -> list[float]:
    x, y = screen_to_model(point, REL, MONITOR)
    return [round(x, 1), round(y, 1)]


class AppLog:
    """The app's test log: one JSON object a line."""

    def __init__(self, path: Path, proc: subprocess.Popen[bytes], err: Path) -> None:
        self.path, self.proc, self.err = path, proc, err

    def events(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
        return out

    def wait(self, event: str, timeout_s: float = 30, **match: Any) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"the app exited: {self.err.read_text()[-2000:]}")
            for e in self.events():
                if e["event"] == event and all(e.get(k) == v for k, v in match.items()):
                    return e
            return None

        return dict(wait_until(probe, timeout_s, f"app event {event} {match}"))


def xdo(display: str, *args: str) -> None:
    subprocess.run([require_tool("xdotool"), *args], env=x_env(display), timeout=10, check=True)


def click(display: str, x: float, y: float) -> None:
    move_pointer(display, int(x), int(y))
    xdo(display, "click", "1")


def centre(rect: list[float]) -> tuple[float, float]:
    return rect[0] + rect[2] / 2, rect[1] + rect[3] / 2


def start_app(
    display: str, tmp_path: Path, settings_toml: str
) -> tuple[subprocess.Popen[bytes], AppLog]:
    """The app (as `python main.py` starts it) on the display, watched by support/app_hooks."""
    config = tmp_path / "config"
    (config / "deskpilot").mkdir(parents=True)
    (config / "deskpilot" / "settings.toml").write_text(settings_toml, encoding="utf-8")
    log, shots, err = tmp_path / "ui.jsonl", tmp_path / "shots", tmp_path / "app.err"
    env = x_env(
        display,
        QT_QPA_PLATFORM="xcb",
        XDG_CONFIG_HOME=str(config),
        DESKPILOT_UI_LOG=str(log),
        DESKPILOT_UI_SHOTS=str(shots),
        DESKPILOT_UI_GEOMETRY="960,80,950,980",
        QT_ACCESSIBILITY="0",
        NO_AT_BRIDGE="1",
        QT_IM_MODULE="",
        QT_LOGGING_RULES="qt.qpa.*=false",
    )
    env.pop("WAYLAND_DISPLAY", None)
    with err.open("wb") as err_fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.app_hooks"],
            cwd=ROOT,
            env=env,
            stdout=err_fh,
            stderr=err_fh,
        )
    return proc, AppLog(log, proc, err)


def end_app(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_the_app_approves_edits_rejects_and_stops(
    xdisplay: str, probe_app: Any, tmp_path: Path
) -> None:
    probe = probe_app((40, 80, 880, 700))
    a = probe.center("canvas")
    cx, cy, cw, ch = probe.rect("canvas")
    b = (cx + cw // 4, cy + ch // 4)  # what the model proposes at step 2
    c = (cx + 3 * cw // 4, cy + 3 * ch // 4)  # where the user moves it
    field = probe.center("text_field")
    note = "not there, use the canvas"
    script = [
        Reply(xml_call(action="left_click", coordinate=mp(a)), reasoning="Click the canvas."),
        Reply(xml_call(action="left_click", coordinate=mp(b))),
        Reply(xml_call(action="type", text="should not appear")),
        Reply(xml_call(action="left_click", coordinate=mp(field))),
    ]
    server = ScriptedServer(script)
    runs = tmp_path / "runs"
    proc, app = start_app(
        xdisplay,
        tmp_path,
        f'task = "click around"\nbackend = "openai"\nendpoint = "{server.url}"\n'
        f'approval = "step"\nmax_steps = 10\nruns_dir = "{runs}"\n',
    )
    shots = tmp_path / "shots"
    try:
        ready = app.wait("ready")
        click(xdisplay, *centre(ready["rects"]["start"]))

        # Step 1: approve with the button.
        app.wait("shots", step=0)
        step1 = app.wait("approval", step=0)
        assert "left_click" in step1["action"]
        probe.mark()
        click(xdisplay, *centre(step1["rects"]["approve"]))
        press = probe.wait_event("press")[0]
        assert abs(press["x"] - a[0]) <= 1 and abs(press["y"] - a[1]) <= 1

        # Step 2: click point c on the screenshot, then approve: the edit runs at c.
        app.wait("shots", step=1)
        step2 = app.wait("approval", step=1)
        px, py, pw, ph = step2["rects"]["picture"]
        click(xdisplay, px + (c[0] + 0.5) * pw / 1920, py + (c[1] + 0.5) * ph / 1080)
        probe.mark()
        click(xdisplay, *centre(step2["rects"]["approve"]))
        press = probe.wait_event("press")[0]
        tolerance = 1920 / pw + 1  # one screenshot pixel on the scaled view
        assert abs(press["x"] - c[0]) <= tolerance and abs(press["y"] - c[1]) <= tolerance

        # Step 3: reject the typing with a note.
        app.wait("shots", step=2)
        step3 = app.wait("approval", step=2)
        assert "type" in step3["action"]
        click(xdisplay, *centre(step3["rects"]["note"]))
        xdo(xdisplay, "type", "--delay", "5", note)
        click(xdisplay, *centre(step3["rects"]["reject"]))

        # Step 4: the note reached the model; stop with Esc.
        step4 = app.wait("approval", step=3)
        move_pointer(xdisplay, *(int(v) for v in centre(step4["rects"]["view"])))
        xdo(xdisplay, "key", "Escape")
        finished = app.wait("finished")
    finally:
        server.close()
        end_app(proc)
    assert finished["outcome"] == "stopped"
    assert note in json.dumps(server.requests[3]["messages"][-1])
    assert len(server.requests) == 4
    assert probe.text() == ""  # the rejected typing never happened
    print(f"GUI stall max during the run: {finished['stall_max_ms']} ms")
    assert finished["stall_max_ms"] < 250  # the goal is 50 ms (measured 22-37); CI is noisy

    # The recording matches what happened.
    run_dir = Path(finished["run_dir"])
    steps = read_steps(run_dir / "steps.jsonl")[0]
    kinds = [s["decision"]["kind"] for s in steps]
    assert kinds == ["approve", "edit", "reject", "stop"]
    edited = steps[1]["decision"]["edited_action"]
    assert model_to_screen(tuple(edited["coordinate"]), REL, MONITOR) == (press["x"], press["y"])
    assert steps[1]["execution"]["ok"] and steps[1]["execution"]["action"] == edited
    assert steps[2]["decision"]["note"] == note and steps[2]["execution"] is None
    info = json.loads((run_dir / "run.json").read_text())
    # An old settings file says "step": the run records the one word the CLI uses too.
    assert info["outcome"]["status"] == "stopped" and info["approval"] == "ask"

    # The control bar is masked out of what the model saw.
    from PIL import Image

    bx, by, bw, bh = step1["rects"]["bar"]
    shot = Image.open(run_dir / steps[0]["screenshot"]).convert("RGB")
    k = shot.width / 1920
    assert shot.getpixel((int((bx + bw / 2) * k), int((by + bh / 2) * k))) == (128, 128, 128)

    if os.environ.get("DESKPILOT_DOC_IMAGES"):  # refresh the README's pictures on request
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copy(shots / "window-step2.png", DOC_IMAGES / "app-approval.png")
        shutil.copy(shots / "control-bar.png", DOC_IMAGES / "app-control-bar.png")


def test_the_global_hotkey_stops_an_unattended_run_mid_generation(
    xdisplay: str, probe_app: Any, tmp_path: Path
) -> None:
    probe = probe_app((40, 80, 880, 700))
    a = probe.center("canvas")
    script = [
        Reply(xml_call(action="left_click", coordinate=mp(a))),
        Reply(xml_call(action="terminate", status="success"), delay_s=30),  # a slow model
    ]
    server = ScriptedServer(script)
    runs = tmp_path / "runs"
    proc, app = start_app(
        xdisplay,
        tmp_path,
        f'task = "click once"\nbackend = "openai"\nendpoint = "{server.url}"\n'
        f'approval = "auto"\nruns_dir = "{runs}"\n',
    )
    try:
        ready = app.wait("ready")
        assert ready["hotkey_error"] is None, ready["hotkey_error"]
        click(xdisplay, *centre(ready["rects"]["start"]))
        press = probe.wait_event("press")[0]  # approved by the policy, with no window in the way
        assert abs(press["x"] - a[0]) <= 1 and abs(press["y"] - a[1]) <= 1
        wait_until(lambda: len(server.requests) == 2, 20, "the second model request")
        xdo(xdisplay, "key", "ctrl+alt+shift+x")
        finished = app.wait("finished", timeout_s=10)
    finally:
        server.close()
        end_app(proc)
    assert finished["outcome"] == "stopped"
    print(f"GUI stall max during an unattended run: {finished['stall_max_ms']} ms")
    assert finished["stall_max_ms"] < 250
    run_dir = Path(finished["run_dir"])
    steps = read_steps(run_dir / "steps.jsonl")[0]
    assert steps[0]["decision"] == {
        "kind": "approve", "by": "auto", "note": None, "edited_action": None
    }  # fmt: skip
    assert steps[1]["error"] == "generation stopped by the user"


def test_no_display_means_a_one_line_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc = subprocess.run(
        [sys.executable, "main.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "deskpilot run" in proc.stderr
