"""Stand-ins for the loop's model, screen, executor and person, where no real one is wanted."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from actions.executor import ExecResult
from actions.screen import CoordinateSpace, Frame, Monitor
from actions.types import Action
from agent.approval import ApprovalRequest, Decision, DecisionKind
from agent.backends.base import ChatMessage, Completion, OnDelta

MONITOR = Monitor(1, 0, 0, 64, 48, primary=True)


class FakeScreen:
    """A tiny screen that changes a little at every capture, or never when `still`."""

    monitor = MONITOR

    def __init__(self, still: bool = False) -> None:
        self.n = 0
        self.still = still

    def capture(self) -> Frame:
        """A frame of one grey level, a new one each time unless still."""
        self.n += 0 if self.still else 1
        return Frame(bytes([self.n % 256]) * (64 * 48 * 3), 64, 48, MONITOR, time.time())

    def wait_until_stable(
        self, *, min_s: float, max_s: float, cancel: threading.Event | None = None
    ) -> float:
        """Already stable."""
        return 0.0


class RecordingExecutor:
    """Records every action it is asked to perform (in `done`) and performs none."""

    def __init__(self, points: tuple[tuple[int, int], ...] = ()) -> None:
        self.done: list[Action] = []
        self.points = points

    def execute(
        self,
        action: Action,
        *,
        space: CoordinateSpace,
        monitor: Monitor,
        cancel: threading.Event | None = None,
    ) -> ExecResult:
        """Note the action; report success (touching `points`)."""
        self.on_execute(action)
        self.done.append(action)
        return ExecResult(ok=True, detail=f"did {action.name}", points=self.points)

    def on_execute(self, action: Action) -> None:
        """What a test wants to happen (or check) as an action runs; nothing here."""


class Person:
    """A person who answers every question the same way, and keeps the questions."""

    def __init__(self, kind: DecisionKind = "reject") -> None:
        self.kind: DecisionKind = kind
        self.requests: list[ApprovalRequest] = []

    def __call__(self, request: ApprovalRequest) -> Decision:
        """The same answer as always."""
        self.requests.append(request)
        return Decision(self.kind)


class ScriptedBackend:
    """The model, scripted: `answer` gives each reply; every message list sent is kept in `sent`.

    think_s: how long each answer takes (a stop cuts it short), as a real model's would.
    """

    model = "fake"
    kind = "fake"

    def __init__(self, replies: Sequence[Completion] = (), *, think_s: float = 0.0) -> None:
        self.replies = list(replies)
        self.think_s = think_s
        self.sent: list[list[ChatMessage]] = []

    def complete(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[dict[str, object]],
        *,
        on_delta: OnDelta | None = None,
        cancel: threading.Event | None = None,
    ) -> Completion:
        """Keep the messages; think; the next answer."""
        self.sent.append(list(messages))
        if self.think_s:
            (cancel or threading.Event()).wait(self.think_s)
        return self.answer(len(self.sent) - 1, messages)

    def answer(self, n: int, messages: Sequence[ChatMessage]) -> Completion:
        """The reply to request n (from 0): the nth of `replies`."""
        return self.replies[n]

    def describe(self) -> dict[str, object]:
        """What run.json records of the backend."""
        return {"kind": self.kind}

    def close(self) -> None:
        """Nothing to release."""
