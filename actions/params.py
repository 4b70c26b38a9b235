"""The parameters of computer_use actions: each one's schema, validation and JSON form, once.

actions.types says which action takes which of them; agent.protocol builds the tool schema
from both, and every reader of action arguments (the model's output, a recording, an edit in
the approval card) validates through `Param.check`.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from actions.errors import ArgumentError
from actions.keys import KeyNameError, chord_text, normalize_chord, split_plus

if TYPE_CHECKING:  # actions.screen imports Point from here (through actions.types)
    from actions.screen import CoordinateSpace

# A point in the model's coordinate space (relative 0-1000, or pixels of the resized image).
Point = tuple[float, float]

MAX_TEXT_CHARS = 10_000
MAX_KEYS = 8
MAX_KEY_CHARS = 32
MAX_SCROLL_CLICKS = 100
# Longer waits are refused when read and capped when run; the user can always stop earlier.
MAX_WAIT_S = 60.0

# Fills a parameter's description: where the coordinate convention of the space goes.
CONVENTION = "{convention}"

Check = Callable[[object, str, "CoordinateSpace"], Any]


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter: its schema, what it says to the model, how it is checked and written."""

    name: str
    schema: Mapping[str, object]
    # The start of its description in the tool schema ("{convention}" where the convention
    # goes); who requires it is added from the actions that take it.
    about: str
    check: Check
    to_json: Callable[[Any], object] = lambda value: value
    required: bool = True
    # Its value is a point on the screen that the action touches.
    point: bool = False

    def optional(self) -> Param:
        """The same parameter, which may be left out (its field defaults to None)."""
        return replace(self, required=False)

    def checked_by(self, check: Check) -> Param:
        """The same parameter, validated more strictly by one action (typed text)."""
        return replace(self, check=check)

    @property
    def verbatim(self) -> bool:
        """Whether its value is a string written verbatim (the others are JSON values)."""
        return self.schema.get("type") == "string"


def kind(value: object) -> str:
    """The JSON name of a value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def dim(value: float) -> str:
    """A size for display: integral sizes without the trailing .0."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def number(value: object, what: str) -> float:
    """A finite real number (bool excluded: JSON true is not 1)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ArgumentError(f"{what} must be a number, not {kind(value)}")
    try:
        result = float(value)
    except OverflowError:
        raise ArgumentError(f"{what} is too large") from None
    if not math.isfinite(result):
        raise ArgumentError(f"{what} must be finite, not {result}")
    return result


def _point(value: object, what: str, space: CoordinateSpace) -> Point:
    """An [x, y] pair of finite numbers inside the coordinate space."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        if isinstance(value, list | tuple):
            raise ArgumentError(f"{what} must be [x, y], got {len(value)} numbers")
        raise ArgumentError(f"{what} must be [x, y], not {kind(value)} {{}}", value)
    x = number(value[0], f"{what} x")
    y = number(value[1], f"{what} y")
    point = (x, y)
    if not space.contains(point):
        if space.kind == "relative":
            where = "the relative 0-1000 range"
        else:
            where = f"the {dim(space.width)}x{dim(space.height)} screenshot"
        raise ArgumentError(f"{what} [{x:g}, {y:g}] is outside {where}")
    return point


def _point_json(p: Point) -> list[float | int]:
    """A point as JSON numbers, integers where exact."""
    return [int(v) if float(v).is_integer() else v for v in p]


def _keys(value: object, what: str, space: CoordinateSpace) -> tuple[str, ...]:
    """A key combination: a list of key names, or one "ctrl+c"-style string."""
    items: list[object]
    if isinstance(value, str):
        items = [value]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise ArgumentError(f"{what} must be a list of strings, not {kind(value)}")
    if not items:
        raise ArgumentError(f"{what} is empty")
    if len(items) > MAX_KEYS:
        raise ArgumentError(f"{len(items)} keys; at most {MAX_KEYS} at once")
    keys: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ArgumentError(f"{what} must be strings, not {kind(item)}")
        if len(item) > MAX_KEYS * (MAX_KEY_CHARS + 1):
            raise ArgumentError("key {} is too long", item)
        if not item.strip():
            raise ArgumentError("empty key")
        keys.extend(split_plus(item))
        if len(keys) > MAX_KEYS:
            raise ArgumentError(f"more than {MAX_KEYS} keys at once")
    for key in keys:
        if len(key) > MAX_KEY_CHARS:
            raise ArgumentError(f"key {{}} is longer than {MAX_KEY_CHARS} characters", key)
        _check_unicode(key, what)
    # An unknown key name is not a valid action: refuse it here, before anyone approves it.
    try:
        normalize_chord(keys)
    except KeyNameError:
        # KeyNameError names the key in repr form: say it again, shown by the caller.
        raise ArgumentError("unknown key in {}", chord_text(keys)) from None
    return tuple(keys)


def _text(value: object, what: str, space: CoordinateSpace) -> str:
    """Text to type or answer: kept exactly, but bounded and free of NUL."""
    if not isinstance(value, str):
        raise ArgumentError(f"{what} must be a string, not {kind(value)}")
    if not value:
        raise ArgumentError(f"{what} is empty")
    if len(value) > MAX_TEXT_CHARS:
        raise ArgumentError(f"{what} is {len(value)} characters; at most {MAX_TEXT_CHARS}")
    if "\x00" in value:
        raise ArgumentError(f"{what} contains a NUL character")
    _check_unicode(value, what)
    return value


def _typeable(value: object, what: str, space: CoordinateSpace) -> str:
    """Text a keyboard can type: no control characters but newline, tab and carriage return."""
    text = _text(value, what, space)
    for i, ch in enumerate(text):
        if ch not in "\n\t\r" and unicodedata.category(ch) == "Cc":
            raise ArgumentError(
                f"{what} contains control character U+{ord(ch):04X} at index {i}: only \\n and "
                "\\t can be typed; use the key action for other keys"
            )
    return text


def _check_unicode(value: str, what: str) -> None:
    """Reject lone surrogates (possible through JSON escapes): nothing can type them."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ArgumentError(f"{what} is not valid Unicode (lone surrogate)") from None


def _pixels(value: object, what: str, space: CoordinateSpace) -> int:
    """Wheel clicks: a whole, non-zero number within the limit."""
    clicks = number(value, what)
    if not clicks.is_integer():
        raise ArgumentError(f"{what} must be a whole number, not {clicks:g}")
    if clicks == 0:
        raise ArgumentError(f"{what} is 0; scroll by a non-zero number of clicks")
    if abs(clicks) > MAX_SCROLL_CLICKS:
        raise ArgumentError(f"{what} {clicks:g} is beyond +/-{MAX_SCROLL_CLICKS} wheel clicks")
    return int(clicks)


def _time(value: object, what: str, space: CoordinateSpace) -> float:
    """Seconds to wait: more than 0, at most the limit."""
    seconds = number(value, what)
    if not 0.0 < seconds <= MAX_WAIT_S:
        raise ArgumentError(f"{what} {seconds:g} is not within (0, {MAX_WAIT_S:g}] seconds")
    return seconds


def _status(value: object, what: str, space: CoordinateSpace) -> Literal["success", "failure"]:
    """The end status of terminate."""
    if isinstance(value, str):
        status = value.strip()
        if status == "success":
            return "success"
        if status == "failure":
            return "failure"
    raise ArgumentError(f"{what} must be 'success' or 'failure', not {{}}", value)


_POINT_SCHEMA = {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}

KEYS = Param(
    "keys",
    {"type": "array", "items": {"type": "string"}},
    "The keys to press together.",
    _keys,
    to_json=list,
)
TEXT = Param("text", {"type": "string"}, "The text to type, or the answer.", _text)
TYPED_TEXT = TEXT.checked_by(_typeable)
COORDINATE = Param(
    "coordinate",
    _POINT_SCHEMA,
    f"(x, y): where the action happens, or where a drag ends. {CONVENTION}",
    _point,
    to_json=_point_json,
    point=True,
)
START_COORDINATE = Param(
    "start_coordinate",
    _POINT_SCHEMA,
    "(x, y): where a drag starts, in the same convention as `coordinate`.",
    _point,
    to_json=_point_json,
    point=True,
)
PIXELS = Param(
    "pixels",
    {"type": "number"},
    f"How many wheel clicks to scroll (a whole number, at most {MAX_SCROLL_CLICKS} either "
    "way); positive scrolls up or right, negative down or left.",
    _pixels,
)
TIME = Param(
    "time", {"type": "number"}, f"Seconds to wait (more than 0, at most {MAX_WAIT_S:g}).", _time
)
STATUS = Param(
    "status",
    {"type": "string", "enum": ["success", "failure"]},
    "Whether the task succeeded.",
    _status,
)
