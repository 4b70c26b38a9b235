"""The global kill-switch hotkey (pynput); the app works without it and says so."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class GlobalHotkey:
    """Listens for one key combination system-wide and calls back on pynput's thread."""

    def __init__(self, combo: str, callback: Callable[[], None]) -> None:
        self.combo = combo
        self._callback = callback
        self._listener: Any = None
        self.error: str | None = None

    def start(self) -> bool:
        """Start listening; on failure `error` says why (no X, no pynput, bad combination)."""
        try:
            from pynput import keyboard  # imports fail without a display: that is expected
        except Exception as exc:
            self.error = f"global hotkey unavailable ({type(exc).__name__}: {exc})".split("\n")[0]
            return False
        try:
            listener = keyboard.GlobalHotKeys({self.combo: self._callback})
            listener.daemon = True
            listener.start()
        except Exception as exc:
            self.error = f"global hotkey {self.combo!r} unavailable: {exc}"
            return False
        self._listener = listener
        return True

    def stop(self) -> None:
        """Stop listening."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()
            listener.join(timeout=1.0)  # no listener thread outlives the window


def describe_combo(combo: str) -> str:
    """A readable form of a pynput combination, e.g. Ctrl+Alt+Shift+X."""
    return "+".join(part.strip("<>").capitalize() for part in combo.split("+"))
