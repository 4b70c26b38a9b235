"""One blocking question: a worker thread asks, another thread answers, a stop ends the wait.

The approval of an action and the choice after a backend failure are both this: the loop
thread blocks (never the GUI thread) until the answer arrives or the run is stopped. Waiting is
on a condition, woken by the answer or by the stop event itself, so nothing polls.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from agent.interrupts import StopEvent

T = TypeVar("T")
# A plain threading.Event cannot wake us when set; it is looked at this often instead.
_PLAIN_EVENT_CHECK_S = 0.25


class Question(Generic[T]):
    """Ask on one thread, answer from any; a stop answers `on_stop`."""

    def __init__(self, stop: threading.Event, on_stop: Callable[[], T]) -> None:
        self._stop = stop
        self._on_stop = on_stop
        self._cond = threading.Condition()
        self._answer: list[T] = []  # empty: not answered yet
        self._asking = False
        if isinstance(stop, StopEvent):
            stop.add_listener(self._wake)

    def ask(self, post: Callable[[], None]) -> T:
        """Post the question (e.g. emit a signal) and wait for its answer or a stop."""
        with self._cond:
            self._answer.clear()  # an answer to an earlier question is stale
            self._asking = True
        try:
            post()
            with self._cond:
                while not self._answer and not self._stop.is_set():
                    timeout = None if isinstance(self._stop, StopEvent) else _PLAIN_EVENT_CHECK_S
                    self._cond.wait(timeout)
                if self._answer:
                    return self._answer.pop()
            return self._on_stop()
        finally:
            with self._cond:
                self._asking = False

    def answer(self, value: T) -> None:
        """The answer (any thread); ignored when nothing is being asked."""
        with self._cond:
            if self._asking:
                self._answer[:] = [value]
                self._cond.notify_all()

    @property
    def asking(self) -> bool:
        """Whether a question waits for its answer."""
        return self._asking

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()
