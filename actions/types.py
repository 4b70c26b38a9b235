"""The action vocabulary of Qwen 3.5's computer_use tool: one declaration per action.

Each action is a frozen dataclass whose `spec` declares everything else about it: its name,
its line in the tool description, its parameters (actions.params, in the order the model
writes them), the button it presses, and what it acts on. The tool schema, validation, the
JSON form (recordings), the points it touches (overlay, guard, freshness, risk rules) and
the executors' click details all come from here; `_declare` checks that the fields and the
declared parameters agree, so a field added without its parameter fails at import.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeAlias, get_args

from actions.errors import ArgumentError
from actions.params import (
    COORDINATE,
    KEYS,
    PIXELS,
    START_COORDINATE,
    STATUS,
    TEXT,
    TIME,
    TYPED_TEXT,
    Param,
    Point,
    kind,
)

if TYPE_CHECKING:  # actions.screen imports Point from here
    from actions.screen import CoordinateSpace

__all__ = [
    "ACTION_TYPES",
    "FINAL_ACTIONS",
    "POINTER_ACTIONS",
    "Action",
    "ActionSpec",
    "Answer",
    "ArgumentError",
    "Button",
    "DoubleClick",
    "HScroll",
    "Key",
    "LeftClick",
    "LeftClickDrag",
    "MiddleClick",
    "MouseMove",
    "Point",
    "RightClick",
    "Scroll",
    "Terminate",
    "TripleClick",
    "Type",
    "Wait",
    "action_arguments",
    "action_from_json",
    "action_name",
    "action_points",
    "describe",
]

Button = Literal["left", "right", "middle"]


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """Everything about one action besides its field values."""

    name: str
    # Its line in the tool description ("* `name`: doc").
    doc: str
    # In the order the model writes them (and the recording keeps them).
    params: tuple[Param, ...] = ()
    # The button it presses and how often (a drag presses and holds: 0 clicks).
    button: Button | None = None
    clicks: int = 0
    # Named together in parameter descriptions ("Required by the click actions, ...").
    group: str | None = None
    # Without a point it acts on the focused window (keys, text, a scroll where the pointer is).
    focus: bool = False
    # It ends the task.
    final: bool = False


class _Declared:
    """What every action has: its declaration, and its name from it."""

    __slots__ = ()
    spec: ClassVar[ActionSpec]
    name: ClassVar[str]


def _click(name: str, doc: str, button: Button, clicks: int) -> ActionSpec:
    """A click action: a button pressed `clicks` times at one point."""
    return ActionSpec(
        name, doc, (COORDINATE,), button=button, clicks=clicks, group="the click actions"
    )


@dataclass(frozen=True, slots=True)
class Key(_Declared):
    """Press the keys together (a chord), release them in reverse order."""

    keys: tuple[str, ...]
    spec = ActionSpec(
        "key",
        'Press the keys in `keys` together as one combination, e.g. ["ctrl", "c"]; a single '
        "key is a list of one.",
        (KEYS,),
        focus=True,
    )


@dataclass(frozen=True, slots=True)
class Type(_Declared):
    """Type the text exactly as given."""

    text: str
    spec = ActionSpec(
        "type",
        "Type the string `text` on the keyboard, exactly as given.",
        (TYPED_TEXT,),
        focus=True,
    )


@dataclass(frozen=True, slots=True)
class MouseMove(_Declared):
    """Move the pointer to a point."""

    coordinate: Point
    spec = ActionSpec("mouse_move", "Move the cursor to `coordinate`.", (COORDINATE,))


@dataclass(frozen=True, slots=True)
class LeftClick(_Declared):
    """Click the left button at a point."""

    coordinate: Point
    spec = _click("left_click", "Click the left mouse button at `coordinate`.", "left", 1)


@dataclass(frozen=True, slots=True)
class LeftClickDrag(_Declared):
    """Press the left button at start (or where the pointer is) and release it at coordinate."""

    coordinate: Point
    start_coordinate: Point | None = None
    spec = ActionSpec(
        "left_click_drag",
        "Press the left button at `start_coordinate` (or where the cursor is, if omitted), "
        "drag to `coordinate` and release.",
        (START_COORDINATE.optional(), COORDINATE),
        button="left",
    )


@dataclass(frozen=True, slots=True)
class RightClick(_Declared):
    """Click the right button at a point."""

    coordinate: Point
    spec = _click("right_click", "Click the right mouse button at `coordinate`.", "right", 1)


@dataclass(frozen=True, slots=True)
class MiddleClick(_Declared):
    """Click the middle button at a point."""

    coordinate: Point
    spec = _click("middle_click", "Click the middle mouse button at `coordinate`.", "middle", 1)


@dataclass(frozen=True, slots=True)
class DoubleClick(_Declared):
    """Double-click the left button at a point."""

    coordinate: Point
    spec = _click("double_click", "Double-click the left mouse button at `coordinate`.", "left", 2)


@dataclass(frozen=True, slots=True)
class TripleClick(_Declared):
    """Triple-click the left button at a point."""

    coordinate: Point
    spec = _click(
        "triple_click",
        "Triple-click the left mouse button at `coordinate` (selects a line or paragraph).",
        "left",
        3,
    )


@dataclass(frozen=True, slots=True)
class Scroll(_Declared):
    """Turn the wheel vertically by `pixels` clicks (positive: up), at a point if given."""

    pixels: int
    coordinate: Point | None = None
    spec = ActionSpec(
        "scroll",
        "Turn the mouse wheel vertically by `pixels` clicks (positive scrolls up, negative "
        "down), over `coordinate` if given.",
        (COORDINATE.optional(), PIXELS),
        focus=True,
    )


@dataclass(frozen=True, slots=True)
class HScroll(_Declared):
    """Turn the wheel horizontally by `pixels` clicks (positive: right), at a point if given."""

    pixels: int
    coordinate: Point | None = None
    spec = ActionSpec(
        "hscroll",
        "Turn the mouse wheel horizontally by `pixels` clicks (positive scrolls right, "
        "negative left), over `coordinate` if given.",
        (COORDINATE.optional(), PIXELS),
        focus=True,
    )


@dataclass(frozen=True, slots=True)
class Wait(_Declared):
    """Wait for the screen to change."""

    time: float
    spec = ActionSpec("wait", "Wait `time` seconds for something on the screen to change.", (TIME,))


@dataclass(frozen=True, slots=True)
class Terminate(_Declared):
    """End the task, reporting success or failure."""

    status: Literal["success", "failure"]
    spec = ActionSpec(
        "terminate", "End the task and report `status`: success or failure.", (STATUS,), final=True
    )


@dataclass(frozen=True, slots=True)
class Answer(_Declared):
    """End the task with an answer for the user."""

    text: str
    spec = ActionSpec(
        "answer",
        "End the task with `text` as the answer to the user's question.",
        (TEXT,),
        final=True,
    )


# Every action: a new one is declared above, listed here and given its `case` in actions.dispatch.
Action: TypeAlias = (
    Key
    | Type
    | MouseMove
    | LeftClick
    | LeftClickDrag
    | RightClick
    | MiddleClick
    | DoubleClick
    | TripleClick
    | Scroll
    | HScroll
    | Wait
    | Terminate
    | Answer
)


def _declare(*classes: type[Action]) -> dict[str, type[Action]]:
    """The actions by name, after checking each one's fields against its declared parameters."""
    table: dict[str, type[Action]] = {}
    for cls in classes:
        spec = cls.spec
        declared = {p.name: p for p in spec.params}
        found = {f.name: f for f in fields(cls)}
        if len(declared) != len(spec.params) or set(declared) != set(found):
            raise TypeError(f"{cls.__name__}: fields {sorted(found)} != params {sorted(declared)}")
        for name, param in declared.items():
            optional = found[name].default is None
            if param.required == optional or (not optional and found[name].default is not MISSING):
                raise TypeError(
                    f"{cls.__name__}.{name}: a required parameter has no default, "
                    "an optional one defaults to None"
                )
        if spec.name in table:
            raise TypeError(f"two actions named {spec.name!r}")
        cls.name = spec.name
        table[spec.name] = cls
    return table


# Every action by name, in the order of the Action union (the order the tool schema lists them).
ACTION_TYPES: dict[str, type[Action]] = _declare(*get_args(Action))

# Actions at one point and nothing else (move and the clicks).
POINTER_ACTIONS: tuple[type[Action], ...] = tuple(
    cls for cls in ACTION_TYPES.values() if [p.name for p in cls.spec.params] == ["coordinate"]
)
FINAL_ACTIONS: tuple[type[Action], ...] = tuple(
    cls for cls in ACTION_TYPES.values() if cls.spec.final
)


def action_name(action: Action) -> str:
    """The computer_use name of an action (e.g. "left_click")."""
    return action.name


def action_arguments(action: Action) -> dict[str, object]:
    """The action's JSON form: its computer_use arguments, as the model would write them."""
    args: dict[str, object] = {"action": action.name}
    for param in action.spec.params:
        value = getattr(action, param.name)
        if value is not None:
            args[param.name] = param.to_json(value)
    return args


def action_from_json(arguments: Mapping[str, object], space: CoordinateSpace) -> Action:
    """An action from its JSON form (null values left out), validated; ArgumentError if not.

    Messages hold untrusted values apart (ArgumentError.message), for the caller to show.
    """
    given = dict(arguments)
    if "action" not in given:
        raise ArgumentError("missing parameter 'action'")
    raw = given.pop("action")
    if not isinstance(raw, str):
        raise ArgumentError(f"action must be a string, not {kind(raw)}")
    name = raw.strip()
    cls = ACTION_TYPES.get(name)
    if cls is None:
        raise ArgumentError("unknown action {}", name)
    params = {p.name: p for p in cls.spec.params}
    for key in given:
        if key not in params:
            raise ArgumentError(f"unexpected parameter {{}} for {name}", key)
    for key, param in params.items():
        if param.required and key not in given:
            raise ArgumentError(f"missing parameter '{key}' for {name}")
    values: dict[str, Any] = {
        key: param.check(given[key], key, space) for key, param in params.items() if key in given
    }
    return cls(**values)


def action_points(action: Action) -> tuple[Point, ...]:
    """The model points an action touches, in the order it touches them (a drag: start, end)."""
    points: list[Point] = []
    for param in action.spec.params:
        if param.point:
            value = getattr(action, param.name)
            if value is not None:
                points.append(value)
    return tuple(points)


def describe(action: Action) -> str:
    """A short human-readable line for an action (terminal, captions, tool responses)."""
    args = action_arguments(action)
    del args["action"]
    inner = ", ".join(f"{k}={_short(v)}" for k, v in args.items())
    return f"{action.name}({inner})"


def _short(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."
