"""The global kill-switch hotkey; the app works without it and says so."""

from __future__ import annotations

from collections.abc import Callable

from actions.hotkey import HotkeyError, XHotkey


class GlobalHotkey:
    """Grabs one key combination system-wide (it reaches no other app); calls back on its thread."""

    def __init__(self, combo: str, callback: Callable[[], None]) -> None:
        self.combo = combo
        self._callback = callback
        self._grab: XHotkey | None = None
        self.error: str | None = None

    def start(self) -> bool:
        """Grab the combination; on failure `error` says why (no X, bad combination, taken)."""
        try:
            grab = XHotkey(self.combo, self._callback)
            grab.start()
        except HotkeyError as exc:
            self.error = f"global hotkey {describe_combo(self.combo)} unavailable: {exc}"
            return False
        except ImportError as exc:
            self.error = f"global hotkey unavailable ({exc})"
            return False
        self._grab = grab
        return True

    def stop(self) -> None:
        """Release the grab; no listening thread outlives the window."""
        grab, self._grab = self._grab, None
        if grab is not None:
            grab.stop()


def describe_combo(combo: str) -> str:
    """A readable form of a pynput-style combination, e.g. Ctrl+Alt+Shift+X."""
    return "+".join(part.strip("<>").capitalize() for part in combo.split("+"))
