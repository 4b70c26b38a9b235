"""Every signal that ends the process (SIGINT, SIGTERM, SIGHUP, SIGQUIT) stops a run like Ctrl-C.

Standard library only: main.py installs the handler before any other import, so a signal in
the first milliseconds of the process ends it with one line rather than a traceback.

The first signal sets the run's StopEvent (with a reason naming the signal) and, unless an
action is executing, raises Interrupted (a KeyboardInterrupt) into the main thread, which the
loop records and turns into the outcome "stopped", as it always did for Ctrl-C. While an
action executes, the signal only sets the stop event: the action sees it between two pieces
of input and lets go by itself, so no exception lands inside X11 code with a key or button
down. Later signals are noted and ignored: a stop in progress is never cut short, so it
always reaches the release of held input. The app (a Qt event loop) registers a callback
instead, and stops the run the way its Stop button does.
"""

from __future__ import annotations

import os
import signal
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Literal

__all__ = [
    "ENDING_SIGNALS",
    "Interrupted",
    "StopEvent",
    "deferred",
    "describe_signal",
    "install",
    "notify",
    "running",
    "stop_reason",
    "stopping",
    "watch",
]

ENDING_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
    if hasattr(signal, name)
)
_WHY = {
    "SIGINT": "Ctrl-C",
    "SIGTERM": "asked to end",
    "SIGHUP": "the terminal closed",
    "SIGQUIT": "Ctrl-\\",
}

Phase = Literal["starting", "running", "stopping", "app"]


def describe_signal(signum: int) -> str:
    """The outcome message for a signal, e.g. "interrupted by SIGTERM (asked to end)"."""
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    return f"interrupted by {name} ({_WHY.get(name, 'a signal')})"


class StopEvent(threading.Event):
    """A run's stop event that also says why it was set (which signal), for the outcome."""

    def __init__(self) -> None:
        super().__init__()
        self.reason: str | None = None
        self._listeners: list[Callable[[], None]] = []

    def stop(self, reason: str | None = None) -> None:
        """Set the event; the first reason given is kept."""
        if reason and self.reason is None:
            self.reason = reason
        self.set()

    def set(self) -> None:
        """Set the event and wake whoever waits on it (agent.question)."""
        super().set()
        for listener in list(self._listeners):
            listener()

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call `listener` whenever the event is set (at once if it already is)."""
        self._listeners.append(listener)
        if self.is_set():
            listener()


def stop_reason(stop: threading.Event, default: str) -> str:
    """Why a run stopped: the StopEvent's reason when it has one, else `default`."""
    reason = getattr(stop, "reason", None)
    return reason if isinstance(reason, str) and reason else default


class Interrupted(KeyboardInterrupt):
    """An ending signal, raised into the main thread as Ctrl-C's KeyboardInterrupt is."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.reason = describe_signal(signum)
        super().__init__(self.reason)


class _State:
    """What the handler needs; only the main thread (where handlers run) changes `phase`."""

    def __init__(self) -> None:
        self.phase: Phase = "starting"
        self.signum: int | None = None
        self.stop: StopEvent | None = None
        self.deferring = 0
        self.callback: Callable[[str], None] | None = None


_state = _State()


def install() -> None:
    """Handle every ending signal from now on (call first thing in the process)."""
    for sig in ENDING_SIGNALS:
        signal.signal(sig, _on_signal)


def running() -> None:
    """Start-up is over: a signal now raises Interrupted where the main thread is."""
    if _state.phase == "starting":
        _state.phase = "running"


def stopping() -> None:
    """Cleanup has begun (release input, restore the keymap): signals no longer interrupt it."""
    _state.phase = "stopping"


def watch(stop: StopEvent | None) -> None:
    """The stop event a signal sets (the run in progress), or None."""
    _state.stop = stop


def notify(callback: Callable[[str], None] | None) -> None:
    """App mode: a signal calls callback(reason) on the main thread instead of raising."""
    _state.callback = callback
    _state.phase = "app" if callback is not None else "running"


@contextmanager
def deferred() -> Iterator[None]:
    """While the main thread executes an action, a signal only sets the stop event."""
    main = threading.current_thread() is threading.main_thread()
    if main:
        _state.deferring += 1
    try:
        yield
    finally:
        if main:
            _state.deferring -= 1


def _on_signal(signum: int, frame: FrameType | None) -> None:
    first = _state.signum is None
    if first:
        _state.signum = signum
    if signum == getattr(signal, "SIGHUP", None):
        _detach_terminal()
    if not first:
        return  # the stop in progress goes on to release input; cutting it short could not
    reason = describe_signal(signum)
    if _state.stop is not None:
        _state.stop.stop(reason)
    if _state.phase == "app":
        if _state.callback is not None:
            _state.callback(reason)
        return
    if _state.phase == "starting":
        # Nothing started yet; os.write, since a signal may land inside a print to stderr.
        _write_stderr(f"deskpilot: {reason} while starting\n")
        raise SystemExit(1)
    if _state.phase == "stopping":
        return
    if _state.deferring and _state.stop is not None:
        return  # the executing action sees the stop event and lets go by itself
    raise Interrupted(signum)


def _write_stderr(text: str) -> None:
    """One line to fd 2, never raising (the terminal may be gone)."""
    try:
        os.write(2, text.encode("utf-8", "replace"))
    except OSError:
        pass


def _detach_terminal() -> None:
    """After a hang-up the terminal is gone: point its fds at /dev/null so writes cannot fail.

    Only character devices (a terminal) are replaced; pipes and files keep their output.
    """
    try:
        null = os.open(os.devnull, os.O_RDWR)
    except OSError:
        return
    try:
        for fd in (0, 1, 2):
            try:
                if stat.S_ISCHR(os.fstat(fd).st_mode):
                    os.dup2(null, fd)
            except OSError:
                continue
    finally:
        os.close(null)
