"""A step in words: the action, the decision, the result and the timings (no Qt).

The timeline, the debugger and the main window all describe steps through these functions,
so a step reads the same everywhere. Model-written text passes through agent/textsafe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, assert_never

from actions.types import (
    Action,
    Answer,
    DoubleClick,
    HScroll,
    Key,
    LeftClick,
    LeftClickDrag,
    MiddleClick,
    MouseMove,
    RightClick,
    Scroll,
    Terminate,
    TripleClick,
    Type,
    Wait,
)
from agent.records import StepRecord
from agent.textsafe import one_line, quote, visible


def _at(point: tuple[float, float]) -> str:
    return f"({point[0]:g}, {point[1]:g})"


def action_words(action: Action) -> str:
    """An action as a person would say it: 'Click at (500, 500)', 'Type "hello"'."""
    match action:
        case LeftClick(coordinate=c):
            return f"Click at {_at(c)}"
        case RightClick(coordinate=c):
            return f"Right-click at {_at(c)}"
        case MiddleClick(coordinate=c):
            return f"Middle-click at {_at(c)}"
        case DoubleClick(coordinate=c):
            return f"Double-click at {_at(c)}"
        case TripleClick(coordinate=c):
            return f"Triple-click at {_at(c)}"
        case MouseMove(coordinate=c):
            return f"Move the pointer to {_at(c)}"
        case LeftClickDrag(coordinate=end, start_coordinate=start):
            origin = _at(start) if start is not None else "the pointer"
            return f"Drag from {origin} to {_at(end)}"
        case Scroll(pixels=n):
            return f"Scroll {'up' if n > 0 else 'down'} {abs(n)}"
        case HScroll(pixels=n):
            return f"Scroll {'right' if n > 0 else 'left'} {abs(n)}"
        case Type(text=text):
            return "Type " + quote(visible(text, keep=""), 120)
        case Key(keys=keys):
            return "Press " + visible("+".join(keys), keep="")
        case Wait(time=t):
            return f"Wait {t:g} s"
        case Terminate(status=status):
            return f"Finish: {status}"
        case Answer(text=text):
            return "Answer: " + one_line(text, 120)
        case _:
            assert_never(action)


class DecisionLike(Protocol):
    """A decision as made (agent.approval.Decision) or as recorded (DecisionRecord)."""

    @property
    def kind(self) -> str: ...  # noqa: D102
    @property
    def by(self) -> str: ...  # noqa: D102
    @property
    def note(self) -> str | None: ...  # noqa: D102
    @property
    def breakpoint(self) -> str | None: ...  # noqa: D102


def decision_words(decision: DecisionLike | None) -> str:
    """A decision: 'approved by you', 'rejected by you: note', 'blocked by your rules'."""
    if decision is None:
        return "not decided"
    kind, by = decision.kind, decision.by
    note = one_line(decision.note or "", 200)
    if by == "rules":
        return f"blocked by your rules{f': {note}' if note else ''}"
    who = {
        "user": "by you",
        "auto": "automatically",
        "guarded": "by the guarded mode",
        "runaway": "(the run repeated itself)",
        "final": "(the run's last step)",
    }.get(by, f"by {by}" if by else "")
    verb = {
        "approve": "approved",
        "edit": "edited",
        "skip": "skipped",
        "reject": "rejected",
        "stop": "stopped",
    }.get(kind, kind or "decided")
    text = f"{verb} {who}".strip()
    if decision.breakpoint:
        text += f" at breakpoint {one_line(decision.breakpoint, 60)}"
    return f"{text}: {note}" if note else text


def result_words(step: StepRecord) -> str:
    """What came of a step: done, failed, invalid output, not executed."""
    if step.interrupted:
        return "interrupted while it ran (it may have run)"
    if step.parse_error:
        return "invalid output: " + one_line(step.parse_error, 200)
    if step.error:
        return "error: " + one_line(step.error, 200)
    execution = step.execution
    if execution is not None and execution.executed is not False:
        if execution.ok:
            return "done"
        return "failed: " + one_line(execution.error or "unknown error", 200)
    if step.action is not None and step.action.get("action") in ("terminate", "answer"):
        return "run ended"
    return "not executed"


def timing_words(step: StepRecord) -> str:
    """Model time, first token, the whole step, and tokens: 'model 1.2 s · step 1.9 s · ...'."""
    parts = []
    for key, label in (("model_s", "model"), ("first_token_s", "first token"), ("total_s", "step")):
        value = step.timings.get(key)
        if isinstance(value, int | float):
            parts.append(f"{label} {value:.2f} s")
    prompt, completion = step.tokens.get("prompt"), step.tokens.get("completion")
    if isinstance(prompt, int) or isinstance(completion, int):
        parts.append(f"{prompt if prompt is not None else '?'} → {completion or 0} tokens")
    return " · ".join(parts)


@dataclass(frozen=True, slots=True)
class StepLines:
    """A step as the timeline shows it: a title and a detail line."""

    title: str
    detail: str
    thinking: str


def step_lines(step: StepRecord, action: Action | None) -> StepLines:
    """A recorded step's timeline text; `action` is the action it proposed (None: invalid)."""
    what = action_words(action) if action is not None else "no valid action"
    edited = step.decision is not None and step.decision.edited_action is not None
    title = f"Step {step.index + 1}: {what}" + (" (edited)" if edited else "")
    detail = " · ".join(
        part
        for part in (
            decision_words(step.decision) if step.decision is not None else "",
            result_words(step),
            timing_words(step),
        )
        if part
    )
    return StepLines(title, detail, visible(step.thinking).strip())
