"""Healing without X: per-target checks, one model request per moved target, and a person (or a
stop) when the model cannot re-ground; the model is a scripted stand-in."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from actions.screen import CoordinateSpace, Frame, Monitor
from actions.types import Action, LeftClick, Type
from agent.backends.base import Completion
from agent.demo import step_record
from agent.heal import Healer, region_difference
from agent.recording import Recorder, read_run
from agent.replay import Check, replay
from tests.replay.conftest import FakeBackend
from tests.support.scripted_server import xml_call

MONITOR = Monitor(1, 0, 0, 400, 300, primary=True)
REL = CoordinateSpace.relative()


def desktop(button_at: tuple[int, int]) -> np.ndarray:
    """A grey screen with a white 'button' (40x20) at a pixel position."""
    img = np.full((300, 400, 3), 60, dtype=np.uint8)
    x, y = button_at
    img[y : y + 20, x : x + 40] = 240
    img[y + 8 : y + 12, x + 10 : x + 30] = 0  # its label
    return img


def frame(img: np.ndarray) -> Frame:
    return Frame(img.tobytes(), 400, 300, MONITOR, 0.0)


def png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def recording(runs: Path) -> Path:
    """Click the button at (100, 100)'s middle, then type."""
    rec = Recorder(
        runs, {"task": "press the button", "backend": {"kind": "person"}, "settings": {}}
    )
    img = desktop((100, 100))
    for i, action in enumerate([LeftClick((300.0, 367.0)), Type("hi")]):
        shot = rec.save_screenshot(i, png(img))
        rec.append_step(step_record(i, action, frame(img), shot, 0.0))
    rec.finish({"status": "success", "message": "done", "answer": None, "steps": 2})
    return rec.dir


class Screen:
    def __init__(self, img: np.ndarray) -> None:
        self.img = img

    def capture(self) -> Frame:
        return frame(self.img)

    def wait_until_stable(self, *, min_s: float, max_s: float, cancel: object = None) -> float:
        return 0.0


class Executor:
    def __init__(self) -> None:
        self.done: list[Action] = []

    def execute(
        self, action: Action, *, space: Any, monitor: Any, cancel: threading.Event | None = None
    ) -> Any:
        self.done.append(action)

        class Result:
            ok, error, detail, points = True, None, "done", ()

        return Result()


def test_region_difference_sees_the_target_only() -> None:
    here, moved = desktop((100, 100)), desktop((250, 200))
    recorded, live = Image.fromarray(here), Image.fromarray(moved)
    assert region_difference(recorded, Image.fromarray(here), (300.0, 367.0), REL) == 0.0
    assert region_difference(recorded, live, (300.0, 367.0), REL) > 0.3
    assert region_difference(recorded, live, (900.0, 50.0), REL) == 0.0  # far from both


def run(tmp_path: Path, live: np.ndarray, replies: list[Completion], answer: str = "go") -> Any:
    run_dir = recording(tmp_path / "runs")
    backend = FakeBackend(replies)
    healer = Healer(run_dir, lambda: backend, task="press the button")
    executor, checks = Executor(), []

    def confirm(check: Check) -> Any:
        checks.append(check)
        return answer if check.differs else "go"

    result = replay(
        read_run(run_dir), screen=Screen(live), executor=executor, confirm=confirm, healer=healer
    )
    return result, executor.done, backend.sent, healer, checks


def test_an_unchanged_target_costs_no_request(tmp_path: Path) -> None:
    result, done, sent, healer, _ = run(tmp_path, desktop((100, 100)), [])
    assert result.ok and done == [LeftClick((300.0, 367.0)), Type("hi")]
    assert sent == [] and healer.requests == 0
    assert [(n.checked, n.healed) for n in healer.notes] == [(True, False), (False, False)]


def test_a_moved_target_is_re_grounded_once(tmp_path: Path) -> None:
    answer = Completion(xml_call(action="left_click", coordinate=[675, 700]))
    result, done, sent, healer, _ = run(tmp_path, desktop((250, 200)), [answer])
    assert result.ok and done == [LeftClick((675.0, 700.0)), Type("hi")]
    assert len(sent) == 1 and healer.requests == 1
    note = healer.notes[0]
    assert note.healed and note.action == {"action": "left_click", "coordinate": [675, 700]}
    user = sent[0][-1]
    assert "left_click" in user.content[0] and len(user.content) == 4  # text, crop, text, live


def test_when_the_model_cannot_a_person_decides(tmp_path: Path) -> None:
    wrong = Completion(xml_call(action="terminate", status="failure"))
    result, done, _, healer, checks = run(tmp_path, desktop((250, 200)), [wrong], answer="stop")
    assert not result.ok and done == []
    assert checks[0].differs and "could not re-ground" in str(checks[0].note)
    assert healer.notes[0].error is not None and "terminate" in healer.notes[0].error
