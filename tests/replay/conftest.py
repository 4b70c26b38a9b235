"""Recordings made by the real loop with a stand-in screen, executor and model (no X needed)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from actions.screen import Frame, Monitor
from actions.types import Action
from agent.backends.base import Completion, ToolCall
from agent.loop import LoopSettings, run_task
from agent.recording import Recorder
from tests.support.fakes import FakeScreen, RecordingExecutor, ScriptedBackend
from tests.support.scripted_server import xml_call

MONITOR = Monitor(0, 0, 0, 320, 200, primary=True)


class ShadedScreen(FakeScreen):
    """A 320x200 'desktop' whose colour changes after every executed action."""

    monitor = MONITOR

    def __init__(self) -> None:
        super().__init__()
        self.shade = 40

    def capture(self) -> Frame:
        """A flat frame with a bright square whose place depends on the state."""
        import numpy as np

        img = np.full((200, 320, 3), self.shade, dtype=np.uint8)
        x = (self.shade * 3) % 260
        img[60:120, x : x + 60] = 230
        return Frame(img.tobytes(), 320, 200, MONITOR, 0.0)


class ShadingExecutor(RecordingExecutor):
    """Records actions instead of performing them, and changes the screen as acting would."""

    def __init__(self, screen: ShadedScreen) -> None:
        super().__init__(points=((10, 20),))
        self.screen = screen

    def on_execute(self, action: Action) -> None:
        """Acting changes the screen."""
        self.screen.shade += 30


class FakeBackend(ScriptedBackend):
    """Answers from a script and keeps every message list it was sent."""

    model = "fake-qwen"


HOSTILE = '<script>alert(1)</script><img src="http://evil.example/x.png"> & "quotes"'

SCRIPT = [
    Completion(
        xml_call(action="left_click", coordinate=[500, 500]),
        reasoning="Click the middle. " + HOSTILE,
        prompt_tokens=1200,
        completion_tokens=30,
    ),
    Completion("I am not sure what to do."),  # invalid: no tool call
    Completion(xml_call(action="type", text="héllo <b>")),  # the user edits it
    Completion(xml_call(action="key", keys=["ctrl", "s"])),  # the user rejects it
    Completion(
        "",
        tool_calls=[ToolCall("computer_use", '{"action": "scroll", "pixels": -3}', "c1")],
    ),
    Completion("Done. " + xml_call(action="terminate", status="success")),
]


@dataclass
class Made:
    """A recording made by the real loop, with what the stand-ins saw."""

    dir: Path
    backend: FakeBackend
    executor: ShadingExecutor


def decider() -> Callable[[Any], Any]:
    """Approve, except: edit step 3's text and reject step 4 with a note."""
    from actions.types import Type
    from agent.approval import Decision

    def decide(request: Any) -> Decision:
        if request.step == 2:
            return Decision("edit", action=Type("edited <i>"), note="fix the text")
        if request.step == 3:
            return Decision("reject", note="not now")
        return Decision("approve", by="auto")

    return decide


def make_recording(runs: Path, history_images: int = 2) -> Made:
    """Run SCRIPT through run_task and return the recording's folder."""
    screen = ShadedScreen()
    executor = ShadingExecutor(screen)
    backend = FakeBackend(list(SCRIPT))
    settings = LoopSettings(max_steps=10, history_images=history_images, settle_min_s=0.0)
    recorder = Recorder(
        runs,
        {
            "task": "save the file",
            "model": backend.model,
            "backend": backend.describe(),
            "approval": "ask",
            "monitor": {"index": 0, "left": 0, "top": 0, "width": 320, "height": 200},
            "settings": settings.to_json(),
        },
    )
    result = run_task(
        "save the file",
        backend=backend,
        screen=screen,
        executor=executor,
        decide=decider(),
        recorder=recorder,
        settings=settings,
    )
    assert result.outcome == "success", result
    return Made(recorder.dir, backend, executor)


@pytest.fixture
def made(tmp_path: Path) -> Made:
    """A finished six-step recording."""
    return make_recording(tmp_path / "runs")
