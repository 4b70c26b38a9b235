"""Ending signals (SIGTERM, SIGHUP, SIGQUIT, SIGINT) reach a running Qt event loop."""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable

from PySide6.QtCore import QObject, QSocketNotifier

from agent import interrupts


class SignalBridge(QObject):
    """Ending signals (SIGTERM, SIGHUP, SIGQUIT, SIGINT) reach the Qt event loop.

    Python runs signal handlers only when the interpreter gets control; Qt's loop is C++. The C
    handler writes to a socket (signal.set_wakeup_fd) that a QSocketNotifier watches, so a
    Python slot runs at once, and with it agent.interrupts' handler, which calls `on_signal`.
    """

    def __init__(self, on_signal: Callable[[str], None]) -> None:
        super().__init__()
        self._read, self._write = socket.socketpair()
        self._read.setblocking(False)
        self._write.setblocking(False)
        self._old_fd = signal.set_wakeup_fd(self._write.fileno(), warn_on_full_buffer=False)
        self._notifier = QSocketNotifier(self._read.fileno(), QSocketNotifier.Type.Read, self)
        self._notifier.activated.connect(self._drain)
        interrupts.install()
        interrupts.notify(on_signal)

    def _drain(self) -> None:
        """Empty the wake-up socket; the signal's Python handler runs around this slot."""
        try:
            while self._read.recv(512):
                pass
        except OSError:
            pass  # drained (EAGAIN)

    def close(self) -> None:
        """Stop listening (the app is quitting)."""
        interrupts.notify(None)
        interrupts.stopping()
        self._notifier.setEnabled(False)
        signal.set_wakeup_fd(self._old_fd)
        self._read.close()
        self._write.close()
