"""Renders a live run's loop events: the timeline, the thinking, the run log, the progress line.

`RunPresenter.on_event` is the one place the app reads loop events; everything it shows of a
step goes through ui/step_text, as the debugger does for a recording. The model's streamed
answer (its tool call as XML) is never shown raw: only the thinking streams, and the parsed
action appears in words once the answer is complete.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QPlainTextEdit

from actions.screen import CoordinateSpace
from actions.types import describe
from agent.approval import Decision
from agent.events import (
    ActionExecuted,
    ActionProposed,
    BackendFailed,
    DecisionMade,
    Event,
    OutputInvalid,
    ScreenStale,
    StepStarted,
    TextStreamed,
)
from agent.protocol import Proposal
from agent.risk import Risk
from agent.textsafe import visible
from ui.progress import RunProgress
from ui.step_text import StepLines, action_words, decision_words
from ui.timeline import THUMB, StepTimeline
from ui.widgets import LiveView, one_line, plain_label, plain_tip, risk_text

LOG_LINES = 500  # the run log keeps this many lines


@dataclass
class LiveStep:
    """What the timeline knows of one step of the running task."""

    title: str = ""
    described: str = ""  # describe(action): the log's exact form, parameters and all
    decision: str = ""
    result: str = ""
    model_s: float | None = None
    tokens: int = 0
    thinking: list[str] = field(default_factory=list)

    def lines(self, index: int) -> StepLines:
        """The step as the timeline shows it."""
        timing = f"model {self.model_s:.1f} s, {self.tokens} tokens" if self.model_s else ""
        detail = " · ".join(p for p in (self.decision, self.result, timing) if p)
        return StepLines(
            f"Step {index + 1}: {self.title or 'the model is thinking'}",
            detail,
            visible("".join(self.thinking)).strip(),
        )


class RunPresenter(QObject):
    """Turns loop events into what the window shows; `status` carries the one-line state."""

    status = Signal(str)

    def __init__(self, view: LiveView, progress: RunProgress) -> None:
        super().__init__()
        self.view = view
        self.progress = progress
        self.timeline = StepTimeline()
        self.step_label = plain_label("Ready. Type a task and press Start (Ctrl+Enter).")
        self.step_label.setAccessibleName("Status")
        self.step_label.setWordWrap(True)
        self.thinking = QPlainTextEdit()
        self.thinking.setReadOnly(True)
        self.thinking.setAccessibleName("Thinking")
        self.thinking.setPlaceholderText("The model's thinking appears here as it streams.")
        # One line per notable event: risky, blocked and refused actions, backend faults.
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setAccessibleName("Run log")
        self.log_view.setMaximumBlockCount(LOG_LINES)
        self.log_view.setPlaceholderText("Every step, and what was refused, blocked or failed.")
        self.steps: dict[int, LiveStep] = {}
        self.step_t0 = 0.0
        self.streaming = -1  # the step whose thinking the pane shows as it streams
        self.timeline.currentRowChanged.connect(self._show_thinking)

    def reset(self, max_steps: int) -> None:
        """A new run: nothing of the previous one stays."""
        self.steps = {}
        self.timeline.clear()
        self.thinking.clear()
        self.log_view.clear()
        self.streaming = -1
        self.view.clear()
        self.progress.start(max_steps)

    def _step(self, index: int) -> LiveStep:
        return self.steps.setdefault(index, LiveStep())

    def _row(self, index: int, thumb: QImage | None = None) -> None:
        self.timeline.set_row(index, self._step(index).lines(index), thumb)

    # -- the one dispatch of loop events ---------------------------------------------------

    def on_event(self, event: Event) -> None:
        """Show one loop event."""
        match event:
            case StepStarted(step=n):
                self.step_t0 = time.monotonic()
                self.progress.step_started(n)
                self.streaming = n
                self.thinking.clear()
                self._row(n)
                self.timeline.scrollToBottom()
                self.set_status(f"step {n + 1}: looking at the screen")
            case TextStreamed(step=n, kind=kind, text=text):
                step = self._step(n)
                step.tokens += 1
                self.progress.streamed()
                if kind == "reasoning":
                    step.thinking.append(text)
                    if self.streaming == n:
                        cursor = self.thinking.textCursor()
                        cursor.movePosition(cursor.MoveOperation.End)
                        cursor.insertText(visible(text))  # controls made visible
                if step.tokens == 1:
                    self.set_status(f"step {n + 1}: the model is thinking")
            case ActionProposed(step=n, proposal=prop, space=space, risk=risk):
                self._on_proposal(n, prop, space, risk)
            case OutputInvalid(step=n, error=error):
                shown = one_line(error, 300)
                self._step(n).result = f"invalid output: {shown}"
                self._row(n)
                self.set_status(f"step {n + 1}: invalid output, nothing executed")
                self.add_log(f"step {n + 1}: invalid output, nothing executed — {shown}")
            case DecisionMade(step=n, decision=decision, risk=risk):
                self._step(n).decision = decision_words(decision)
                self._row(n)
                self._on_decision(n, decision, risk)
            case BackendFailed():
                self._on_backend_error(event)
            case ScreenStale(step=n, reason=reason):
                line = f"step {n + 1}: the screen changed before the action ran; not executed"
                self._step(n).result = "not executed: the screen changed"
                self._row(n)
                self.set_status(f"{line}; asking the model again")
                self.add_log(f"{line} — {one_line(reason, 160)}")
            case ActionExecuted(step=n, ok=ok, error=error):
                step = self._step(n)
                step.result = "done" if ok else f"failed: {one_line(str(error), 200)}"
                self._row(n)
                if not ok:
                    self.set_status(f"step {n + 1}: the action failed: {error}")
                    self.add_log(f"step {n + 1}: the action failed: {one_line(str(error), 160)}")
                else:
                    self.progress.set_doing("acting done; waiting for the screen to settle")

    def _on_proposal(
        self, n: int, prop: Proposal, space: CoordinateSpace, risk: Risk | None
    ) -> None:
        step = self._step(n)
        step.model_s = time.monotonic() - self.step_t0
        # The parsed thinking replaces the streamed text: it holds no tool call.
        step.thinking = [prop.thinking] if prop.thinking else step.thinking
        if self.streaming == n:
            self.thinking.setPlainText(visible(prop.thinking or "".join(step.thinking)))
        warn = risk_text(risk)
        if prop.action is not None:
            step.title = action_words(prop.action)
            step.described = one_line(describe(prop.action), 100)
            self.view.set_action(prop.action, space, editable=False)
        else:
            step.title = "no valid action"
        self._row(n)
        self.progress.set_doing("deciding")
        self.set_status(
            f"step {n + 1}: {step.title}{f' ({warn})' if warn else ''} (model {step.model_s:.1f} s)"
        )
        self.add_log(f"step {n + 1}: {step.title}{f' ({warn})' if warn else ''}")

    def _on_decision(self, step: int, decision: Decision, risk: Any) -> None:
        """Status and one log line; blocked and refused actions always say why."""
        n, what = step + 1, self._step(step).described or "the action"
        note = one_line(decision.note or "", 160)
        if decision.by == "rules":
            line = f"step {n}: BLOCKED, not executed: {what} — {note}"
            self.set_status(f"step {n}: blocked by your rules, not executed: {note}")
        elif decision.kind in ("skip", "reject") and decision.by != "user":
            line = f"step {n}: refused, not executed: {what} — {note or decision.by}"
            self.set_status(f"step {n}: refused: {note or decision.by}")
        elif decision.kind in ("skip", "reject"):
            verb = "skipped" if decision.kind == "skip" else "rejected"
            line = f"step {n}: {verb} by you, not executed: {what}"
            line += f" — note: {note}" if note else ""
            self.set_status(f"step {n}: {verb}")
        elif decision.kind == "stop":
            line = f"step {n}: stopped before {what}" + (f" — {note}" if note else "")
            self.set_status(f"step {n}: stop")
        else:
            self.set_status(f"step {n}: {decision.kind}")
            self.progress.set_doing("acting")
            warn = risk_text(risk)
            if not warn:
                return  # safe and approved: the timeline says it
            by = "by you" if decision.by == "user" else f"by {decision.by}"
            line = f"step {n}: {decision.kind}d {by}: {what} ({warn})"
        self.add_log(line)

    def _on_backend_error(self, event: BackendFailed) -> None:
        """A model request failed: say so, and when it is retried."""
        error = one_line(event.error, 200)
        again = event.retry_in_s
        if again is not None:
            text = f"model backend: {error}; retrying in {again:g} s"
        else:
            text = f"model backend: {error}; retries did not help"
        self.set_status(text)
        self.add_log(f"step {event.step + 1}: {text}")

    # -- other things the window shows -------------------------------------------------------

    def on_observed(self, step: int, image: QImage) -> None:
        """A step's screenshot: its thumbnail in the timeline."""
        thumb = image.scaled(
            THUMB, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation
        )
        self._row(step, thumb)

    def waiting(self, step: int, request_action: Any, why: str) -> None:
        """An action waits for the user."""
        self.progress.set_doing("waiting for you")
        if why:
            what = one_line(describe(request_action), 100)
            self.add_log(f"step {step + 1}: waiting for you: {what} — {why}")

    def add_log(self, line: str) -> None:
        """One line in the run log (with the time)."""
        self.log_view.appendPlainText(f"{time.strftime('%H:%M:%S')} {visible(line)}")

    def set_status(self, text: str) -> None:
        """The one-line state under the progress line (and on the control bar)."""
        self.step_label.setText(visible(text))
        self.step_label.setToolTip(plain_tip(text))
        self.status.emit(text)

    def _show_thinking(self, row: int) -> None:
        """A timeline row chosen: the pane shows that step's thinking, as text."""
        step = self.steps.get(row)
        if step is None:
            return
        self.streaming = row if row == max(self.steps) else -1
        self.thinking.setPlainText(visible("".join(step.thinking)))
