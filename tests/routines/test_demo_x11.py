"""`main.py demo` records what real X input (xdotool, XTEST) does to a real Qt app."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from agent.recording import read_run
from tests.routines.support import DemoProcess, rel, xdo

GEOMETRY = (100, 100, 800, 600)


def test_a_demonstration_records_clicks_text_chords_scrolls_and_drags(
    probe_app: Any, tmp_path: Path
) -> None:
    app = probe_app(GEOMETRY, title="demo probe")
    field, canvas = app.center("text_field"), app.center("canvas")
    demo = DemoProcess(tmp_path / "runs", "--task", "fill in the form")
    try:
        run_dir = demo.ready()
        time.sleep(0.3)
        xdo("mousemove", str(field[0]), str(field[1]), "click", "1")
        time.sleep(0.3)  # the field logs no presses; it keeps the focus anyway
        # xdotool types ö and 世 by remapping a spare keycode; a slower pace keeps a loaded
        # machine's Qt from reading a key before its new mapping (the person's input, not ours).
        xdo("type", "--delay", "80", "héllo wörld 世界 <ok>")
        app.wait_text("héllo wörld 世界 <ok>")
        xdo("key", "Return")
        app.wait_text("héllo wörld 世界 <ok>\n")
        xdo("key", "ctrl+a")
        app.wait_event("key", 1)
        cx, cy = canvas
        xdo("mousemove", str(cx), str(cy), "click", "--repeat", "3", "--delay", "80", "4")
        app.wait_event("wheel", 3)
        time.sleep(0.8)  # the scroll ends (SCROLL_GAP_S)
        xdo("mousemove", str(cx - 100), str(cy), "click", "--repeat", "2", "--delay", "80", "1")
        app.wait_event("dblclick")
        time.sleep(0.6)  # past the double-click time: the next press is a new gesture
        xdo("mousemove", str(cx - 200), str(cy - 50), "mousedown", "1")
        xdo("mousemove", str(cx + 150), str(cy + 40))
        xdo("mouseup", "1")
        app.wait_event("drag")
        time.sleep(0.3)
        code, err = demo.interrupt()
    finally:
        demo.kill()
    assert code == 0, err
    assert f"recording demonstration to {run_dir}" in err
    recording = read_run(run_dir)
    assert recording.info["ended_at"] is not None and recording.warnings == []
    assert recording.info["outcome"]["steps"] == 7
    got = [s["action"] for s in recording.steps]
    assert got == [
        {"action": "left_click", "coordinate": rel(field)},
        {"action": "type", "text": "héllo wörld 世界 <ok>"},
        {"action": "key", "keys": ["enter"]},
        {"action": "key", "keys": ["ctrl", "a"]},
        {"action": "scroll", "coordinate": rel(canvas), "pixels": 3},
        {"action": "double_click", "coordinate": rel((cx - 100, cy))},
        {
            "action": "left_click_drag",
            "start_coordinate": rel((cx - 200, cy - 50)),
            "coordinate": rel((cx + 150, cy + 40)),
        },
    ], got
    for step in recording.steps:
        assert step["decision"]["by"] == "person"
        assert step["execution"]["action"] == step["action"]
        with Image.open(io.BytesIO((run_dir / step["screenshot"]).read_bytes())) as img:
            assert img.size == (1920, 1080)
    # Each screenshot is from before its action: the field is empty before the typing,
    # and holds the text before the Return.
    fx, fy, fw, fh = app.rect("text_field")

    def dark_pixels(index: int) -> int:
        """Text (dark pixels) in the field in a step's screenshot; a caret is a few dozen."""
        with Image.open(run_dir / recording.steps[index]["screenshot"]) as img:
            field_img = img.convert("L").crop((fx + 4, fy + 4, fx + fw - 4, fy + fh - 4))
            return int((np.asarray(field_img) < 100).sum())

    assert dark_pixels(1) < 60  # before typing: the field is empty
    assert dark_pixels(2) > 150  # before Return: the text is there


def test_the_stop_hotkey_ends_it_unrecorded_and_secrets_stay_out(
    probe_app: Any, tmp_path: Path
) -> None:
    app = probe_app(GEOMETRY, title="demo secret")
    field = app.center("text_field")
    env_secret = "hunter2-Kx9!pass"
    os.environ["DEMO_TEST_SECRET"] = env_secret
    try:
        demo = DemoProcess(tmp_path / "runs", "--secret-env", "DEMO_TEST_SECRET")
    finally:
        del os.environ["DEMO_TEST_SECRET"]
    try:
        run_dir = demo.ready()
        time.sleep(0.3)
        xdo("mousemove", str(field[0]), str(field[1]), "click", "1")
        time.sleep(0.3)
        xdo("type", "--delay", "20", f"login {env_secret}")
        app.wait_text(f"login {env_secret}")
        xdo("key", "ctrl+alt+shift+x")
        code = demo.proc.wait(timeout=30)
        _, err = demo.proc.communicate(timeout=10)
    finally:
        demo.kill()
    assert code == 0, err
    assert b"the stop hotkey" in err
    recording = read_run(run_dir)
    assert [s["action"]["action"] for s in recording.steps] == ["left_click", "type"]
    assert recording.steps[1]["action"]["text"] == "login [REDACTED]"
    assert app.text() == f"login {env_secret}"  # the hotkey never reached the app
    for path in (run_dir / "steps.jsonl", run_dir / "run.json"):
        assert env_secret not in path.read_text(encoding="utf-8")
    assert env_secret.encode() not in err
