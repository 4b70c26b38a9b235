"""What every model backend takes and returns: chat messages in, one completion out."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol


class BackendError(RuntimeError):
    """A backend failure with a one-line, user-facing message saying what to do."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        # True when sending the same request again may succeed (for the local worker: after the
        # restart that the next request does): the loop may retry, then offer Retry/Restart.
        self.retryable = retryable


class Cancelled(BackendError):
    """Generation was stopped on request; never retryable."""

    def __init__(self, message: str = "generation stopped") -> None:
        super().__init__(message, retryable=False)


@dataclass(frozen=True, slots=True)
class ImagePart:
    """A screenshot in a message: PNG bytes encoded once, and the file the recorder wrote."""

    png: bytes
    width: int
    height: int
    path: str | None = None


Part = str | ImagePart


Role = Literal["system", "user", "assistant", "tool"]
# How a conversation's earlier steps are sent: "native" is Qwen 3.5's trained multi-step shape
# (assistant turns with tool_calls, then tool turns holding the result and the screenshot);
# "legacy" sends calls as assistant text and results as user turns (for servers that refuse
# images in tool messages). agent/prompt.py builds the first and converts to the second.
Conversation = Literal["native", "legacy"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One chat turn; content is text and images in order."""

    role: Role
    content: tuple[Part, ...]
    # An assistant turn's calls; a tool turn names the call it answers.
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None

    def text(self) -> str:
        """The message's text parts joined (images left out)."""
        return "".join(p for p in self.content if isinstance(p, str))


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A structured tool call as an OpenAI-compatible server returns it."""

    name: str
    arguments: str
    id: str | None = None


@dataclass(slots=True)
class Completion:
    """The model's whole answer to one request, with counts and timings."""

    content: str
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    first_token_s: float | None = None
    total_s: float = 0.0
    # The tools went in the system prompt: the server refused `tools` (llama.cpp without --jinja).
    tools_in_prompt: bool = False
    conversation: Conversation | None = None  # the shape the request was sent in


@dataclass(frozen=True, slots=True)
class Delta:
    """A streamed piece of the answer: thinking (reasoning) or visible content."""

    kind: Literal["reasoning", "content"]
    text: str


OnDelta = Callable[[Delta], None]


class Backend(Protocol):
    """A model that answers chat messages; blocking, streaming through on_delta, cancellable.

    The on_delta contract, the same for every backend: on_delta is called on the thread that
    called complete() (the loop thread), in stream order, and never after complete() returns
    or raises; a backend that reads on a helper thread hands the deltas over to it. An
    exception raised by on_delta stops the request and propagates out of complete()
    unchanged. Setting `cancel` (from any thread, on_delta included) stops the request
    promptly: complete() raises Cancelled unless the answer was already whole, and on_delta
    gets at most the delta already in hand.
    """

    model: str

    def complete(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[dict[str, object]],
        *,
        on_delta: OnDelta | None = None,
        cancel: threading.Event | None = None,
    ) -> Completion:
        """Send one request; raise BackendError (or Cancelled) with a user-facing message."""
        ...

    def describe(self) -> dict[str, object]:
        """What to record about this backend (never secrets)."""
        ...

    def close(self) -> None:
        """Release connections and processes."""
        ...
