"""The Wayland desktops' input: their `Input` primitives as a Device of the one dispatch.

wlroots and the portal each implement `Input`; InputExecutor runs actions on it through
actions.dispatch, the same dispatch the X11 Executor uses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from actions.desktop.clipboard import CLIPBOARD_HINT, PASTE_KEYS, PasteError
from actions.dispatch import ActionExecutor, Cancelled, Gate
from actions.types import Button
from actions.xtyping import validate_text

__all__ = ["TEXT_PIECE", "Input", "InputDevice", "InputExecutor", "Paster"]

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
        """Raise ValueError naming characters that can be neither typed nor pasted here."""
        ...

    def to_paste(self, strokes: list[str]) -> tuple[set[str], str]:
        """The characters keys cannot type here (pasted instead), and why keys cannot."""
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


class Paster(Protocol):
    """Puts text into the focused window by pasting it (actions.desktop.clipboard)."""

    def paste(self, text: str, press: Callable[[], None]) -> bool:
        """Offer text, call press() to send the paste keys; True once it was seen taken."""
        ...


class InputDevice:
    """An Input as a Device: it adds where the pointer was last put, and pasting.

    Characters the keys cannot type are pasted through `clipboard` (None: refused whole).
    """

    def __init__(self, inputs: Input, clipboard: Paster | None = None) -> None:
        self.inputs = inputs
        self.clipboard = clipboard
        self._pointer: tuple[int, int] | None = None
        self._via: str | None = None  # how the last text went in, when not by keys alone

    def last_via(self) -> str | None:
        """How the last type_text put text in when not by keys alone ("clipboard")."""
        return self._via

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
        """Exact text: typed in pieces, what keys cannot type pasted; refused whole up front."""
        self._via = None
        strokes = validate_text(text)  # control characters are refused before anything is typed
        self.inputs.check_text(strokes)  # so is the whole text when one character cannot be
        paste, why = self.inputs.to_paste(strokes)
        if paste and self.clipboard is None:
            raise ValueError(
                f"cannot type {shown_chars(paste)} on this desktop ({why}) and no clipboard tool "
                f"is installed to paste them (run `{CLIPBOARD_HINT}`); nothing was typed"
            )
        notes: list[str] = []
        typed = pasted = 0
        unseen = False  # a paste not seen taken (a window that reads the clipboard)
        for run, by_paste in runs(strokes, paste):
            if gate.cancelled():
                raise Cancelled(f"typing cancelled after {typed} characters")
            if by_paste:
                self._via = "clipboard"
                with gate.burst():
                    try:
                        unseen |= not self._paste("".join(run))
                    except PasteError as exc:
                        raise PasteError(
                            f"{exc}; typed {typed} of {len(strokes)} characters before it"
                        ) from exc
                typed += len(run)
                pasted += len(run)
                continue
            for at in range(0, len(run), TEXT_PIECE):
                piece = run[at : at + TEXT_PIECE]
                if gate.cancelled():
                    raise Cancelled(f"typing cancelled after {typed} characters")
                with gate.burst():
                    note = self.inputs.type_strokes(piece)
                if note and note not in notes:
                    notes.append(note)
                typed += len(piece)
        detail = f"typed {typed} characters" + "".join(f"; {n}" for n in notes)
        if not pasted:
            return detail
        seen = (
            " (the paste was not seen taken: only a paste of the primary selection, as "
            "terminals do, can be seen)"
            if unseen
            else ""
        )
        return (
            f"{detail}; {pasted} of them ({shown_chars(paste)}) pasted through the clipboard "
            f"with {'+'.join(PASTE_KEYS)}, since {why}{seen}; the clipboard was restored"
        )

    def _paste(self, text: str) -> bool:
        assert self.clipboard is not None
        return self.clipboard.paste(text, lambda: self.inputs.chord(PASTE_KEYS))

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

    def __init__(
        self, inputs: Input, *, clipboard: Paster | None = None, drag_duration_s: float = 0.4
    ) -> None:
        super().__init__(InputDevice(inputs, clipboard), drag_duration_s=drag_duration_s)
        self.inputs = inputs


def runs(strokes: list[str], paste: set[str]) -> list[tuple[list[str], bool]]:
    """The strokes cut into runs to type and runs to paste, in order ("\\n", "\\t" are typed)."""
    result: list[tuple[list[str], bool]] = []
    for ch in strokes:
        by_paste = ch in paste and ch not in ("\n", "\t")
        if result and result[-1][1] == by_paste:
            result[-1][0].append(ch)
        else:
            result.append(([ch], by_paste))
    return result


def shown_chars(chars: set[str]) -> str:
    """Characters named for a person: 'ß' (U+00DF), at most eight."""
    ordered = sorted(chars)
    shown = ", ".join(f"{ch!r} (U+{ord(ch):04X})" for ch in ordered[:8])
    return shown + (f" and {len(ordered) - 8} more" if len(ordered) > 8 else "")
