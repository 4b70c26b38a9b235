"""Stand-ins for the loop's screen and executor where no X display is wanted (unit tests)."""

from __future__ import annotations

import threading
import time

from actions.executor import ExecResult
from actions.screen import CoordinateSpace, Frame, Monitor
from actions.types import Action

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

    def __init__(self) -> None:
        self.done: list[Action] = []

    def execute(
        self,
        action: Action,
        *,
        space: CoordinateSpace,
        monitor: Monitor,
        cancel: threading.Event | None = None,
    ) -> ExecResult:
        """Note the action; report success."""
        self.done.append(action)
        return ExecResult(ok=True, detail=f"did {action.name}")
