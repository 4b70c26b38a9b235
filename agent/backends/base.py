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


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One chat turn; content is text and images in order."""

    role: Literal["system", "user", "assistant"]
    content: tuple[Part, ...]

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


@dataclass(frozen=True, slots=True)
class Delta:
    """A streamed piece of the answer: thinking (reasoning) or visible content."""

    kind: Literal["reasoning", "content"]
    text: str


OnDelta = Callable[[Delta], None]


class Backend(Protocol):
    """A model that answers chat messages; blocking, streaming through on_delta, cancellable."""

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
