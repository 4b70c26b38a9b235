"""A step in words: the action, the decision, the result and the timings (no Qt).

The timeline, the debugger and the main window all describe steps through these functions,
so a step reads the same everywhere. Model-written text passes through agent/textsafe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, assert_never

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


def decision_words(decision: object) -> str:
    """A recorded decision: 'approved by you', 'rejected by you: note', 'blocked by your rules'."""
    if not isinstance(decision, dict):
        return "not decided"
    kind, by = str(decision.get("kind") or ""), str(decision.get("by") or "")
    note = one_line(str(decision.get("note") or ""), 200)
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
    if decision.get("breakpoint"):
        text += f" at breakpoint {one_line(str(decision['breakpoint']), 60)}"
    return f"{text}: {note}" if note else text


def result_words(step: dict[str, Any]) -> str:
    """What came of a step: done, failed, invalid output, not executed."""
    if step.get("interrupted"):
        return "interrupted while it ran (it may have run)"
    if step.get("parse_error"):
        return "invalid output: " + one_line(str(step["parse_error"]), 200)
    if step.get("error"):
        return "error: " + one_line(str(step["error"]), 200)
    execution = step.get("execution")
    if isinstance(execution, dict):
        if execution.get("ok"):
            return "done"
        return "failed: " + one_line(str(execution.get("error") or "unknown error"), 200)
    action = step.get("action")
    if isinstance(action, dict) and action.get("action") in ("terminate", "answer"):
        return "run ended"
    return "not executed"


def timing_words(step: dict[str, Any]) -> str:
    """Model time, first token, the whole step, and tokens: 'model 1.2 s · step 1.9 s · ...'."""
    timings = step.get("timings") or {}
    tokens = step.get("tokens") or {}
    parts = []
    for key, label in (("model_s", "model"), ("first_token_s", "first token"), ("total_s", "step")):
        value = timings.get(key)
        if isinstance(value, int | float):
            parts.append(f"{label} {value:.2f} s")
    prompt, completion = tokens.get("prompt"), tokens.get("completion")
    if isinstance(prompt, int) or isinstance(completion, int):
        parts.append(f"{prompt if prompt is not None else '?'} → {completion or 0} tokens")
    return " · ".join(parts)


@dataclass(frozen=True, slots=True)
class StepLines:
    """A step as the timeline shows it: a title and a detail line."""

    title: str
    detail: str
    thinking: str


def step_lines(step: dict[str, Any], action: Action | None) -> StepLines:
    """A recorded step's timeline text; `action` is the action it proposed (None: invalid)."""
    n = int(step.get("index", 0)) + 1
    what = action_words(action) if action is not None else "no valid action"
    decision = step.get("decision")
    edited = decision.get("edited_action") if isinstance(decision, dict) else None
    title = f"Step {n}: {what}" + (" (edited)" if edited else "")
    detail = " · ".join(
        part
        for part in (
            decision_words(decision) if decision is not None else "",
            result_words(step),
            timing_words(step),
        )
        if part
    )
    return StepLines(title, detail, visible(str(step.get("thinking") or "")).strip())
