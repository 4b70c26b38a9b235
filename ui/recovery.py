"""After a backend failure: ask the GUI Retry / Restart worker / Stop, and swap the backend.

The loop is handed its backend once; `CurrentBackend` forwards each request to whatever the
controller holds now, so a restart (a new worker process, a new client) applies to the same run.
`RecoveryPrompt` is the loop's `recover`: like GuiApprover it blocks the loop thread, never the
GUI thread, on one agent.question.Question that the GUI answers, and a stop ends the wait.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Literal

from agent.backends.base import BackendError, ChatMessage, Completion, OnDelta
from agent.question import Question

Choice = Literal["retry", "restart", "stop"]
CHOICES: tuple[Choice, ...] = ("retry", "restart", "stop")


class CurrentBackend:
    """A Backend that forwards to the controller's current backend (swapped by a restart)."""

    def __init__(self, current: Callable[[], Any]) -> None:
        self._current = current

    def _backend(self) -> Any:
        backend = self._current()
        if backend is None:
            raise BackendError(
                "the model backend is not running; press Restart worker", retryable=True
            )
        return backend

    @property
    def model(self) -> str:
        """The current backend's model name."""
        return str(self._backend().model)

    def complete(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[dict[str, object]],
        *,
        on_delta: OnDelta | None = None,
        cancel: threading.Event | None = None,
    ) -> Completion:
        """One request to whichever backend is current when it is sent."""
        result: Completion = self._backend().complete(
            messages, tools, on_delta=on_delta, cancel=cancel
        )
        return result

    def describe(self) -> dict[str, object]:
        """The current backend's facts."""
        facts: dict[str, object] = self._backend().describe()
        return facts

    def close(self) -> None:
        """Nothing: the controller owns (and closes) the real backend."""


class RecoveryPrompt:
    """The loop's `recover`: True to send the request again, False to end the run."""

    def __init__(
        self,
        stop: threading.Event,
        ask: Callable[[str], None],
        restart: Callable[[], None],
    ) -> None:
        self._stop = stop
        self._ask = ask
        self._restart = restart
        self._question: Question[Choice] = Question(stop, lambda: "stop")

    def __call__(self, error: BackendError) -> bool:
        """Called on the loop thread after retries failed; blocks until the user chooses."""
        message = " ".join(str(error).split())
        while True:
            choice = self._wait(message)
            if choice == "retry":
                return True
            if choice == "stop":
                self._stop.set()  # Stop on the bar is the user's stop: the run ends "stopped"
                return False
            try:
                self._restart()  # on this (the loop) thread: the GUI stays responsive
            except Exception as exc:  # the rebuilt backend failed too: say so and ask again
                if self._stop.is_set():
                    return False
                message = "restart failed: " + " ".join(str(exc).split())
                continue
            return not self._stop.is_set()

    def _wait(self, message: str) -> Choice:
        return self._question.ask(lambda: self._ask(message))

    def answer(self, choice: Choice) -> None:
        """The GUI's choice (any thread)."""
        if choice not in CHOICES:
            raise ValueError(f"unknown recovery choice {choice!r}")
        self._question.answer(choice)
