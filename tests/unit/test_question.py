"""agent.question: the one blocking question of approval and recovery."""

from __future__ import annotations

import threading
import time

from agent.interrupts import StopEvent
from agent.question import Question


def test_the_answer_from_another_thread_ends_the_wait() -> None:
    stop = StopEvent()
    question: Question[str] = Question(stop, lambda: "stopped")
    asked = threading.Event()
    answer = threading.Timer(0.05, lambda: question.answer("yes"))
    assert question.ask(lambda: (asked.set(), answer.start())) == "yes"
    assert asked.is_set() and not question.asking


def test_a_stop_wakes_the_wait_at_once() -> None:
    stop = StopEvent()
    question: Question[str] = Question(stop, lambda: "stopped")
    threading.Timer(0.05, lambda: stop.stop("by the user")).start()
    t0 = time.monotonic()
    assert question.ask(lambda: None) == "stopped"
    # Woken by the event itself, not by a poll (a plain Event is looked at every 0.25 s).
    assert time.monotonic() - t0 < 0.2


def test_an_answer_nobody_asked_for_is_not_kept_for_the_next_question() -> None:
    stop = threading.Event()  # a plain Event works too, looked at now and then
    question: Question[str] = Question(stop, lambda: "stopped")
    question.answer("stale")
    threading.Timer(0.05, lambda: question.answer("fresh")).start()
    assert question.ask(lambda: None) == "fresh"
    threading.Timer(0.05, stop.set).start()
    assert question.ask(lambda: None) == "stopped"
