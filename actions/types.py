"""The action vocabulary of Qwen 3.5's computer_use tool: one frozen dataclass per action."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

# A point in the model's coordinate space (relative 0-1000, or pixels of the resized image).
Point: TypeAlias = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Key:
    """Press the keys together (a chord), release them in reverse order."""

    keys: tuple[str, ...]
    name = "key"


@dataclass(frozen=True, slots=True)
class Type:
    """Type the text exactly as given."""

    text: str
    name = "type"


@dataclass(frozen=True, slots=True)
class MouseMove:
    """Move the pointer to a point."""

    coordinate: Point
    name = "mouse_move"


@dataclass(frozen=True, slots=True)
class LeftClick:
    """Click the left button at a point."""

    coordinate: Point
    name = "left_click"


@dataclass(frozen=True, slots=True)
class LeftClickDrag:
    """Press the left button at start (or where the pointer is) and release it at coordinate."""

    coordinate: Point
    start_coordinate: Point | None = None
    name = "left_click_drag"


@dataclass(frozen=True, slots=True)
class RightClick:
    """Click the right button at a point."""

    coordinate: Point
    name = "right_click"


@dataclass(frozen=True, slots=True)
class MiddleClick:
    """Click the middle button at a point."""

    coordinate: Point
    name = "middle_click"


@dataclass(frozen=True, slots=True)
class DoubleClick:
    """Double-click the left button at a point."""

    coordinate: Point
    name = "double_click"


@dataclass(frozen=True, slots=True)
class TripleClick:
    """Triple-click the left button at a point."""

    coordinate: Point
    name = "triple_click"


@dataclass(frozen=True, slots=True)
class Scroll:
    """Turn the wheel vertically by `pixels` clicks (positive: up), at a point if given."""

    pixels: int
    coordinate: Point | None = None
    name = "scroll"


@dataclass(frozen=True, slots=True)
class HScroll:
    """Turn the wheel horizontally by `pixels` clicks (positive: right), at a point if given."""

    pixels: int
    coordinate: Point | None = None
    name = "hscroll"


@dataclass(frozen=True, slots=True)
class Wait:
    """Wait for the screen to change."""

    time: float
    name = "wait"


@dataclass(frozen=True, slots=True)
class Terminate:
    """End the task, reporting success or failure."""

    status: Literal["success", "failure"]
    name = "terminate"


@dataclass(frozen=True, slots=True)
class Answer:
    """End the task with an answer for the user."""

    text: str
    name = "answer"


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

ACTION_TYPES: dict[str, type[Action]] = {
    cls.name: cls
    for cls in (
        Key,
        Type,
        MouseMove,
        LeftClick,
        LeftClickDrag,
        RightClick,
        MiddleClick,
        DoubleClick,
        TripleClick,
        Scroll,
        HScroll,
        Wait,
        Terminate,
        Answer,
    )
}

POINTER_ACTIONS = (MouseMove, LeftClick, RightClick, MiddleClick, DoubleClick, TripleClick)
FINAL_ACTIONS = (Terminate, Answer)


def action_name(action: Action) -> str:
    """The computer_use name of an action (e.g. "left_click")."""
    return action.name


def action_arguments(action: Action) -> dict[str, object]:
    """The computer_use arguments of an action, as the model would write them."""
    args: dict[str, object] = {"action": action.name}
    match action:
        case Key(keys=keys):
            args["keys"] = list(keys)
        case Type(text=text) | Answer(text=text):
            args["text"] = text
        case LeftClickDrag(coordinate=c, start_coordinate=s):
            if s is not None:
                args["start_coordinate"] = _point(s)
            args["coordinate"] = _point(c)
        case (
            MouseMove(coordinate=c)
            | LeftClick(coordinate=c)
            | RightClick(coordinate=c)
            | (MiddleClick(coordinate=c))
            | DoubleClick(coordinate=c)
            | TripleClick(coordinate=c)
        ):
            args["coordinate"] = _point(c)
        case Scroll(pixels=p, coordinate=c) | HScroll(pixels=p, coordinate=c):
            if c is not None:
                args["coordinate"] = _point(c)
            args["pixels"] = p
        case Wait(time=t):
            args["time"] = t
        case Terminate(status=s):
            args["status"] = s
    return args


def _point(p: Point) -> list[float | int]:
    """A point as JSON numbers, integers where exact."""
    return [int(v) if float(v).is_integer() else v for v in p]


def describe(action: Action) -> str:
    """A short human-readable line for an action (terminal, captions, tool responses)."""
    args = action_arguments(action)
    del args["action"]
    inner = ", ".join(f"{k}={_short(v)}" for k, v in args.items())
    return f"{action.name}({inner})"


def _short(value: object) -> str:
    import json

    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."
