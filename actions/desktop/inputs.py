"""The Wayland desktops' input: their `Input` primitives as a Device of the one dispatch.

wlroots and the portal each implement `Input`; InputExecutor runs actions on it through
actions.dispatch, the same dispatch the X11 Executor uses.
"""

from __future__ import annotations

from typing import Protocol

from actions.dispatch import ActionExecutor, Cancelled, Gate
from actions.types import Button
from actions.xtyping import validate_text

__all__ = ["TEXT_PIECE", "Input", "InputDevice", "InputExecutor"]

# Text goes out in pieces this long, so a stop ends typing between two pieces.
TEXT_PIECE = 32


class Input(Protocol):
    """The pointer and keyboard of one desktop, in global logical (input) coordinates."""

    def move(self, x: int, y: int) -> None:
        """Put the pointer at (x, y)."""
        ...

    def button(self, button: str, pressed: bool) -> None:
        """Press or release left, right or middle."""
        ...

    def wheel(self, clicks: int, *, horizontal: bool) -> None:
        """Turn the wheel: positive clicks scroll down (vertical) or right (horizontal)."""
        ...

    def chord(self, keys: tuple[str, ...]) -> None:
        """Press canonical keys (actions.keys) together, release them in reverse order."""
        ...

    def check_text(self, strokes: list[str]) -> None:
        """Raise ValueError naming the characters this input cannot type (before any is typed)."""
        ...

    def type_strokes(self, strokes: list[str]) -> str | None:
        """Type characters exactly ("\\n" is Return, "\\t" Tab); a note when a fallback was used."""
        ...

    def release(self) -> list[str]:
        """Release every button and key this input may hold; returns what it released."""
        ...

    def close(self) -> None:
        """Free the input devices."""
        ...


class InputDevice:
    """An Input as a Device: it only adds where the pointer was last put."""

    def __init__(self, inputs: Input) -> None:
        self.inputs = inputs
        self._pointer: tuple[int, int] | None = None

    def aim(self, x: int, y: int) -> tuple[int, int]:
        """Any pixel: a compositor has no fail-safe corners."""
        return x, y

    def position(self) -> tuple[int, int] | None:
        """Where this device last put the pointer (a compositor does not say)."""
        return self._pointer

    def move(self, x: int, y: int) -> None:
        """Put the pointer at (x, y)."""
        self.inputs.move(x, y)
        self._pointer = (x, y)

    def click(self, x: int, y: int, button: Button) -> None:
        """Press and release where the pointer is (the dispatch has just moved it to (x, y))."""
        self.inputs.button(button, True)
        self.inputs.button(button, False)

    def button(self, button: Button, pressed: bool) -> None:
        """Press or release a button."""
        self.inputs.button(button, pressed)

    def scroll(self, clicks: int, *, horizontal: bool) -> None:
        """The model's positive vertical clicks scroll up; the wheel's positive clicks go down."""
        self.inputs.wheel(clicks if horizontal else -clicks, horizontal=horizontal)

    def press_chord(self, keys: tuple[str, ...], gate: Gate) -> None:
        """The chord in one burst."""
        with gate.burst():
            self.inputs.chord(keys)

    def type_text(self, text: str, gate: Gate) -> str:
        """Exact text in pieces; refused whole, before anything is typed, if any is untypable."""
        strokes = validate_text(text)  # control characters are refused before anything is typed
        self.inputs.check_text(strokes)  # so is the whole text when one character cannot be
        notes: list[str] = []
        typed = 0
        for at in range(0, len(strokes), TEXT_PIECE):
            piece = strokes[at : at + TEXT_PIECE]
            if gate.cancelled():
                raise Cancelled(f"typing cancelled after {typed} characters")
            with gate.burst():
                note = self.inputs.type_strokes(piece)
            if note and note not in notes:
                notes.append(note)
            typed += len(piece)
        return f"typed {typed} characters" + "".join(f"; {n}" for n in notes)

    def check(self) -> None:
        """No fail-safe: the user stops a run from the app or with Ctrl-C."""

    def is_fail_safe(self, exc: Exception) -> bool:
        """Never: an Input has no fail-safe of its own."""
        return False

    def after_click(self) -> None:
        """Nothing: the compositor gives the clicked window the keyboard."""

    def let_go(self, button: Button) -> None:
        """Release the button an unfinished drag holds."""
        self.inputs.button(button, False)

    def release(self) -> list[str]:
        """Release every button and key the Input may hold."""
        return self.inputs.release()

    def close(self) -> None:
        """Free the input devices."""
        self.inputs.close()


class InputExecutor(ActionExecutor):
    """Executes actions through an Input; failures return ok=False, as with the X11 Executor."""

    def __init__(self, inputs: Input, *, drag_duration_s: float = 0.4) -> None:
        super().__init__(InputDevice(inputs), drag_duration_s=drag_duration_s)
        self.inputs = inputs
