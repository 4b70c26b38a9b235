"""A run's progress line: step n of max, elapsed time, and what the model is doing right now."""

from __future__ import annotations

import time

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

from ui.widgets import plain_label

TICK_MS = 200  # the seconds counters move five times a second: alive, not busy


def clock(seconds: float) -> str:
    """Elapsed time as m:ss (h:mm:ss past an hour)."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class RunProgress(QWidget):
    """'Step 3 of 30 · 0:42 · the model is thinking: 2.3 s, 57 tokens'."""

    changed = Signal(str)  # the whole line, for the control bar

    def __init__(self) -> None:
        super().__init__()
        self.step_label = self._label("Progress", "Which step the run is at, of its maximum")
        self.elapsed_label = self._label("Elapsed", "Time since the run started")
        self.activity = self._label(
            "Model activity", "What the model is doing: thinking, with seconds and tokens so far"
        )
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.step_label)
        layout.addWidget(self.elapsed_label)
        layout.addWidget(self.activity, 1)
        self.timer = QTimer(self)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self.refresh)
        self.reset()

    @staticmethod
    def _label(name: str, tip: str) -> QLabel:
        label = plain_label()
        label.setAccessibleName(name)
        label.setToolTip(tip)
        return label

    def reset(self) -> None:
        """No run: nothing to count."""
        self.timer.stop()
        self.max_steps = 0
        self.step = -1
        self.started = 0.0
        self.thinking_since: float | None = None
        self.tokens = 0
        self.doing = ""
        self.step_label.setText("No run yet")
        self.elapsed_label.setText("")
        self.activity.setText("")

    def start(self, max_steps: int) -> None:
        """A run begins: the clock starts."""
        self.reset()
        self.max_steps = max_steps
        self.started = time.monotonic()
        self.doing = "starting"
        self.timer.start()
        self.refresh()

    def step_started(self, step: int) -> None:
        """A step began (0-based): the model is asked once the screen is captured."""
        self.step = step
        self.thinking_since = time.monotonic()
        self.tokens = 0
        self.doing = "looking at the screen"
        self.refresh()

    def streamed(self, pieces: int = 1) -> None:
        """The model streamed text (one piece is about one token)."""
        self.tokens += pieces
        self.doing = "thinking"
        self.refresh()

    def set_doing(self, what: str) -> None:
        """What happens now, when the model is not generating ('waiting for you', 'acting')."""
        self.thinking_since = None
        self.doing = what
        self.refresh()

    def finish(self, what: str) -> None:
        """The run ended: the clock stops at its last value."""
        self.refresh()
        self.timer.stop()
        self.thinking_since = None
        self.doing = what
        self.activity.setText(what)
        self.changed.emit(self.line())

    def line(self) -> str:
        """The whole progress as one line."""
        parts = [self.step_label.text(), self.elapsed_label.text(), self.activity.text()]
        return " · ".join(p for p in parts if p)

    def refresh(self) -> None:
        """Redraw the counters."""
        if not self.timer.isActive():
            return
        now = time.monotonic()
        if self.step >= 0:
            of = f" of {self.max_steps}" if self.max_steps else ""
            self.step_label.setText(f"Step {self.step + 1}{of}")
        else:
            self.step_label.setText("Starting")
        self.elapsed_label.setText(clock(now - self.started))
        if self.thinking_since is not None:
            secs = now - self.thinking_since
            verb = "the model is thinking" if self.tokens else "the model is reading the screen"
            self.activity.setText(f"{verb}: {secs:.1f} s, {self.tokens} tokens")
        else:
            self.activity.setText(self.doing)
        self.changed.emit(self.line())
