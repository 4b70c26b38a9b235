"""Take over a private desktop from the live view: the user's clicks and keys go in there.

The agent is paused while the user works; input reaches the private display through the same
Executor and coordinate mapping the agent uses, on a thread of its own (X round trips and exact
typing never stall the window). The view shows the private desktop live while taking over.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QImage, QKeyEvent

from actions.screen import CoordinateSpace, Monitor
from actions.types import Action, Key, LeftClick, MiddleClick, RightClick, Scroll, Type
from ui.run_controller import frame_image

# Qt keys that type nothing, by the key names the executor knows.
_NAMED_KEYS: dict[int, str] = {
    Qt.Key.Key_Return: "Return",
    Qt.Key.Key_Enter: "KP_Enter",
    Qt.Key.Key_Backspace: "BackSpace",
    Qt.Key.Key_Tab: "Tab",
    Qt.Key.Key_Backtab: "Tab",
    Qt.Key.Key_Escape: "Escape",
    Qt.Key.Key_Delete: "Delete",
    Qt.Key.Key_Insert: "Insert",
    Qt.Key.Key_Home: "Home",
    Qt.Key.Key_End: "End",
    Qt.Key.Key_PageUp: "Prior",
    Qt.Key.Key_PageDown: "Next",
    Qt.Key.Key_Left: "Left",
    Qt.Key.Key_Right: "Right",
    Qt.Key.Key_Up: "Up",
    Qt.Key.Key_Down: "Down",
    Qt.Key.Key_Space: "space",
    **{getattr(Qt.Key, f"Key_F{n}"): f"F{n}" for n in range(1, 13)},
}
_MODIFIERS = (
    (Qt.KeyboardModifier.ControlModifier, "ctrl"),
    (Qt.KeyboardModifier.AltModifier, "alt"),
    (Qt.KeyboardModifier.MetaModifier, "super"),
    (Qt.KeyboardModifier.ShiftModifier, "shift"),
)
_ONLY_MODIFIER_KEYS = {
    Qt.Key.Key_Control,
    Qt.Key.Key_Alt,
    Qt.Key.Key_Shift,
    Qt.Key.Key_Meta,
    Qt.Key.Key_AltGr,
    Qt.Key.Key_CapsLock,
}


def key_action(event: QKeyEvent) -> Action | None:
    """The action a key press in the live view stands for, or None (a lone modifier)."""
    key = event.key()
    if key in _ONLY_MODIFIER_KEYS:
        return None
    mods = [name for flag, name in _MODIFIERS if event.modifiers() & flag]
    chorded = [m for m in mods if m != "shift"]
    text = event.text()
    if key not in _NAMED_KEYS and not chorded and text and text.isprintable():
        return Type(text)  # exact text, whatever the layout: as the agent types it
    if key in _NAMED_KEYS:
        name = _NAMED_KEYS[key]
    elif Qt.Key.Key_A <= key <= Qt.Key.Key_Z:
        name = chr(ord("a") + key - Qt.Key.Key_A)
    elif Qt.Key.Key_0 <= key <= Qt.Key.Key_9:
        name = chr(ord("0") + key - Qt.Key.Key_0)
    else:
        return None
    return Key((*mods, name))


def click_action(button: Qt.MouseButton, point: tuple[float, float]) -> Action:
    """The click a mouse press in the live view stands for, at a 0-1000 point.

    A double click arrives as two presses, each sent as it comes (the target app's own timing
    makes it a double click).
    """
    if button == Qt.MouseButton.RightButton:
        return RightClick(point)
    if button == Qt.MouseButton.MiddleButton:
        return MiddleClick(point)
    return LeftClick(point)


def scroll_action(point: tuple[float, float], steps: int) -> Action:
    """A wheel turn in the live view (positive: up), in the agent's scroll units."""
    return Scroll(pixels=steps * 120, coordinate=point)


class TakeOver(QObject):
    """Forwards the user's input to a private desktop and reports what it looks like now."""

    frame = Signal(QImage, object)  # the private desktop now, and its Monitor
    failed = Signal(str)  # one line: input or capture did not work

    def __init__(self, display: str) -> None:
        super().__init__()
        self.display = display
        self.space = CoordinateSpace.relative()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="deskpilot-takeover")
        self._executor: Any = None
        self._screen: Any = None

    def send(self, action: Action, monitor: Monitor) -> None:
        """Perform the user's action on the private desktop (on the take-over thread)."""
        self._pool.submit(self._send, action, monitor)

    def refresh(self) -> None:
        """Capture the private desktop; `frame` carries it (on the take-over thread)."""
        self._pool.submit(self._refresh)

    def _send(self, action: Action, monitor: Monitor) -> None:
        try:
            if self._executor is None:
                from actions.executor import Executor

                self._executor = Executor(display=self.display)
            result = self._executor.execute(action, space=self.space, monitor=monitor)
            if not result.ok:
                self.failed.emit(f"take over: {result.error}")
            self._refresh()
        except Exception as exc:  # the desktop went away: say so, keep the app up
            self.failed.emit(f"take over: {type(exc).__name__}: {exc}")

    def _refresh(self) -> None:
        try:
            if self._screen is None:
                from actions.screen import Screen

                self._screen = Screen(display=self.display)
            shot = self._screen.capture()
            self.frame.emit(frame_image(shot), shot.monitor)
        except Exception as exc:  # the desktop went away: say so, keep the app up
            self.failed.emit(f"take over: {type(exc).__name__}: {exc}")

    def close(self) -> None:
        """Release anything held on the private desktop and stop the thread."""

        def finish() -> None:
            if self._executor is not None:
                try:
                    self._executor.release_all()
                    self._executor.close()
                except Exception:  # the desktop is already gone: nothing is held there
                    pass
                self._executor = None

        self._pool.submit(finish)
        self._pool.shutdown(wait=True)
