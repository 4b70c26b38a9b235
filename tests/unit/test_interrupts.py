"""agent.interrupts in a child process: one stop for every ending signal, deferred while acting."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from agent.interrupts import StopEvent, describe_signal, stop_reason

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import os, signal
    from agent import interrupts

    interrupts.install()
    interrupts.running()
    stop = interrupts.StopEvent()
    interrupts.watch(stop)
    with interrupts.deferred():
        os.kill(os.getpid(), signal.SIGTERM)  # while "acting": only the stop event
        for _ in range(1000):
            pass
        print("deferred: no exception, stop", stop.is_set(), stop.reason)
    os.kill(os.getpid(), signal.SIGHUP)  # a second signal: noted, ignored
    for _ in range(1000):
        pass
    print("second signal ignored; reason still", stop.reason)
    """
)

CHILD_RAISE = textwrap.dedent(
    """
    import os, signal, time
    from agent import interrupts

    interrupts.install()
    interrupts.running()
    stop = interrupts.StopEvent()
    interrupts.watch(stop)
    try:
        os.kill(os.getpid(), signal.SIGQUIT)
        time.sleep(5)
    except KeyboardInterrupt as exc:
        print("raised:", type(exc).__name__, exc, stop.is_set())
    interrupts.stopping()
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.01)
    print("stopping: not interrupted")
    """
)


def run_child(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_a_signal_while_acting_only_sets_the_stop_and_a_second_is_ignored() -> None:
    out = run_child(CHILD).splitlines()
    assert out == [
        "deferred: no exception, stop True interrupted by SIGTERM (asked to end)",
        "second signal ignored; reason still interrupted by SIGTERM (asked to end)",
    ]


def test_elsewhere_it_raises_like_ctrl_c_and_never_during_cleanup() -> None:
    out = run_child(CHILD_RAISE).splitlines()
    assert out == [
        "raised: Interrupted interrupted by SIGQUIT (Ctrl-\\) True",
        "stopping: not interrupted",
    ]


def test_the_stop_reason() -> None:
    import threading

    stop = StopEvent()
    assert stop_reason(stop, "stopped by the user") == "stopped by the user"
    stop.stop(describe_signal(15))
    stop.stop("later reasons do not replace the first")
    assert stop.is_set() and stop_reason(stop, "x") == "interrupted by SIGTERM (asked to end)"
    assert stop_reason(threading.Event(), "plain") == "plain"
