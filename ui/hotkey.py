"""The global kill-switch hotkey; the app works without it and says so.

On X11 an X key grab (actions/hotkey.py); on Wayland the GlobalShortcuts portal
(actions/desktop/shortcuts.py), where the desktop has it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Protocol

from actions.desktop import choose_backend
from actions.desktop.shortcuts import PortalShortcut
from actions.hotkey import HotkeyError, XHotkey


class _Grab(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


class GlobalHotkey:
    """Grabs one key combination system-wide (it reaches no other app); calls back on its thread."""

    def __init__(self, combo: str, callback: Callable[[], None]) -> None:
        self.combo = combo
        self._callback = callback
        self._grab: _Grab | None = None
        self.error: str | None = None
        self.how = "X11 key grab"

    def start(self) -> bool:
        """Grab the combination; on failure `error` says why (no X, bad combination, taken)."""
        try:
            grab: _Grab
            if choose_backend(dict(os.environ)) == "x11":
                grab = XHotkey(self.combo, self._callback)
            else:  # Wayland gives no client a key grab: the desktop's portal binds it, if any
                grab = PortalShortcut(self.combo, self._callback)
                self.how = "GlobalShortcuts portal"
            grab.start()
        except HotkeyError as exc:
            self.error = f"global hotkey {describe_combo(self.combo)} unavailable: {exc}"
            return False
        except ImportError as exc:
            self.error = f"global hotkey unavailable ({exc})"
            return False
        self._grab = grab
        if isinstance(grab, PortalShortcut) and grab.bound_to is None:
            # KDE Plasma 5.27 registers the shortcut without keys and leaves them to the person.
            self.error = (
                f"global hotkey {describe_combo(self.combo)} not set: the desktop registered "
                "deskpilot's stop shortcut without keys; give it keys in the desktop's shortcut "
                "settings"
            )
            return False
        return True

    def stop(self) -> None:
        """Release the grab; no listening thread outlives the window."""
        grab, self._grab = self._grab, None
        if grab is not None:
            grab.stop()


def describe_combo(combo: str) -> str:
    """A readable form of a pynput-style combination, e.g. Ctrl+Alt+Shift+X."""
    return "+".join(part.strip("<>").capitalize() for part in combo.split("+"))
