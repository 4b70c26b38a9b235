"""Recordings made by the real loop with a stand-in screen, executor and model (no X needed)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from actions.screen import CoordinateSpace, Frame, Monitor
from actions.types import Action
from agent.backends.base import ChatMessage, Completion, OnDelta, ToolCall
from agent.loop import LoopSettings, run_task
from agent.recording import Recorder
from tests.support.scripted_server import xml_call

MONITOR = Monitor(0, 0, 0, 320, 200, primary=True)


class FakeScreen:
    """A 320x200 'desktop' whose colour changes after every executed action."""

    monitor = MONITOR

    def __init__(self) -> None:
        self.shade = 40

    def capture(self) -> Frame:
        """A flat frame with a bright square whose place depends on the state."""
        import numpy as np

        img = np.full((200, 320, 3), self.shade, dtype=np.uint8)
        x = (self.shade * 3) % 260
        img[60:120, x : x + 60] = 230
        return Frame(img.tobytes(), 320, 200, MONITOR, 0.0)

    def wait_until_stable(self, *, min_s: float, max_s: float, cancel: object = None) -> float:
        """Nothing moves by itself here."""
        return 0.0


@dataclass
class FakeExecutor:
    """Records actions instead of performing them."""

    screen: FakeScreen
    done: list[Action] = field(default_factory=list)

    def execute(
        self,
        action: Action,
        *,
        space: CoordinateSpace,
        monitor: Monitor,
        cancel: threading.Event | None = None,
    ) -> Any:
        """Pretend to act, and change the screen."""
        self.done.append(action)
        self.screen.shade += 30

        @dataclass
        class Result:
            ok: bool = True
            detail: str = "done"
            error: str | None = None
            points: tuple[tuple[int, int], ...] = ((10, 20),)

        return Result()


@dataclass
class FakeBackend:
    """Answers from a script and keeps every message list it was sent."""

    replies: list[Completion]
    model: str = "fake-qwen"
    sent: list[list[ChatMessage]] = field(default_factory=list)

    def complete(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[dict[str, object]],
        *,
        on_delta: OnDelta | None = None,
        cancel: threading.Event | None = None,
    ) -> Completion:
        """The next scripted reply."""
        self.sent.append(list(messages))
        return self.replies[len(self.sent) - 1]

    def describe(self) -> dict[str, object]:
        """What the recorder stores."""
        return {"kind": "fake"}

    def close(self) -> None:
        """Nothing to release."""


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
    executor: FakeExecutor


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
    screen = FakeScreen()
    executor = FakeExecutor(screen)
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
