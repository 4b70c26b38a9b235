"""A recording as an example in the prompt (`run --example RUN`), within its token budget."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from actions.screen import Frame, Monitor
from actions.types import Key, LeftClick, Type
from agent.backends.base import ChatMessage, ImagePart
from agent.demo import step_record
from agent.demo_example import example_from_run
from agent.prompt import EXAMPLE_INTRO, PromptBuilder, estimate_prompt_tokens
from agent.recording import Recorder
from tests.e2e.test_run_cli import only_run, run_cli
from tests.support.scripted_server import Reply, ScriptedServer, xml_call

MONITOR = Monitor(1, 0, 0, 1280, 800, primary=True)


def png(shade: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((800, 1280, 3), shade, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def demonstration(runs: Path, clicks: int = 5) -> Path:
    rec = Recorder(runs, {"task": "send the weekly report", "backend": {"kind": "person"}})
    frame = Frame(bytes(3), 1, 1, MONITOR, 0.0)
    actions = [LeftClick((100.0 * (i + 1), 500.0)) for i in range(clicks)]
    actions += [Type("weekly report"), Key(("ctrl", "enter"))]
    for i, action in enumerate(actions):
        shot = rec.save_screenshot(i, png(20 * i))
        rec.append_step(step_record(i, action, frame, shot, 0.0))
    rec.finish({"status": "success", "message": "done", "answer": None, "steps": len(actions)})
    return rec.dir


def test_the_example_fits_its_budget_and_follows_the_task(tmp_path: Path) -> None:
    run = demonstration(tmp_path / "runs")
    parts = example_from_run(run)
    text = parts[0]
    assert isinstance(text, str) and text.startswith(EXAMPLE_INTRO)
    assert "Task: send the weekly report" in text
    assert '6. type(text="weekly report")' in text and '7. key(keys=["ctrl", "enter"])' in text
    images = [p for p in parts if isinstance(p, ImagePart)]
    assert len(images) == 3 and all(i.width * i.height <= 640 * 400 for i in images)
    assert "before step 1 " in str(parts[1]) and "before step 5 " in str(parts[-2])
    cost = estimate_prompt_tokens([ChatMessage("user", parts)]) - 5
    assert cost <= 4000
    # A smaller budget keeps the steps and drops frames.
    small = example_from_run(run, budget=250)
    assert [p for p in small if isinstance(p, ImagePart)] == [] and "7. key" in str(small[0])
    # In the prompt: inside the first user message, after the task.
    screen = ImagePart(b"png", 1280, 800)
    msgs = PromptBuilder("send this week's report", example=parts).messages([], screen)
    first = msgs[1].content
    assert first[0] == "Task: send this week's report\n\n" and first[1] == text
    assert first[-2:] == ("\nCurrent screen:\n", screen)


def test_run_with_an_example_sends_it(xdisplay: str, tmp_path: Path) -> None:
    run = demonstration(tmp_path / "demo")
    server = ScriptedServer([Reply(xml_call(action="terminate", status="success"))])
    try:
        proc = run_cli(server, tmp_path / "runs", "--approve", "auto", "--example", str(run))
    finally:
        server.close()
    assert proc.returncode == 0, proc.stderr
    content: Any = server.requests[0]["messages"][1]["content"]
    texts = [p["text"] for p in content if p.get("type") == "text"]
    assert any("Task: send the weekly report" in t for t in texts)
    assert sum(1 for p in content if p.get("type") == "image_url") == 4  # 3 frames + the screen
    info, _, _ = only_run(tmp_path / "runs")
    assert info["settings"]["example"] is True
    bad = run_cli(server, tmp_path / "runs2", "--example", str(tmp_path))
    assert bad.returncode == 2 and "not a recording" in bad.stderr
