"""What a run tells its viewers as it goes: one frozen dataclass per kind of loop event."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from actions.screen import CoordinateSpace, Frame
from agent.approval import Decision
from agent.backends.base import ImagePart
from agent.protocol import Proposal
from agent.risk import Risk

Outcome = Literal[
    "success",
    "failure",
    "answered",
    "stopped",
    "max_steps",
    "max_time",
    "invalid_output",
    "error",
]


@dataclass(frozen=True, slots=True)
class StepStarted:
    """A step begins: the screen is about to be captured."""

    step: int


@dataclass(frozen=True, slots=True)
class ScreenObserved:
    """The screenshot the model is shown (`image`) and the frame it was made from."""

    step: int
    image: ImagePart
    frame: Frame


@dataclass(frozen=True, slots=True)
class TextStreamed:
    """A streamed piece of the model's answer: thinking (reasoning) or visible content."""

    step: int
    kind: Literal["reasoning", "content"]
    text: str


@dataclass(frozen=True, slots=True)
class BackendFailed:
    """A model request failed; `retry_in_s` is when it is tried again (None: not retried)."""

    step: int
    error: str
    retry_in_s: float | None = None
    attempt: int | None = None  # which retry follows, from 1; None when none does


@dataclass(frozen=True, slots=True)
class ActionProposed:
    """The parsed answer, on the frame it was made for; `risk` is None without an action."""

    step: int
    proposal: Proposal
    space: CoordinateSpace
    frame: Frame
    risk: Risk | None


@dataclass(frozen=True, slots=True)
class OutputInvalid:
    """The answer held no valid action: nothing runs, the model is told why."""

    step: int
    error: str


@dataclass(frozen=True, slots=True)
class DecisionMade:
    """Who decided what about the proposed action (the risk rules' refusals included)."""

    step: int
    decision: Decision
    risk: Risk


@dataclass(frozen=True, slots=True)
class ScreenStale:
    """The screen changed where the action acts since it was decided: held back, not run."""

    step: int
    frame: Frame  # the live screen that differs
    reason: str
    in_a_row: int


@dataclass(frozen=True, slots=True)
class ActionExecuted:
    """The action ran; `error` says why it failed when not `ok`."""

    step: int
    ok: bool
    error: str | None


@dataclass(frozen=True, slots=True)
class RunFinished:
    """The run ended after `steps` steps."""

    steps: int
    outcome: Outcome
    message: str
    answer: str | None = None


Event = (
    StepStarted
    | ScreenObserved
    | TextStreamed
    | BackendFailed
    | ActionProposed
    | OutputInvalid
    | DecisionMade
    | ScreenStale
    | ActionExecuted
    | RunFinished
)
OnEvent = Callable[[Event], None]
