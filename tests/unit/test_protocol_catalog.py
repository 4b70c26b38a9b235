"""Each action is declared once (actions.types): schema, validation, JSON form and points follow."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pytest

import actions.types as types
from actions.freshness import action_areas
from actions.params import COORDINATE, Param, Point, number
from actions.screen import CoordinateSpace, Monitor
from actions.types import (
    ACTION_TYPES,
    FINAL_ACTIONS,
    ActionSpec,
    Answer,
    HScroll,
    Key,
    LeftClick,
    LeftClickDrag,
    MouseMove,
    Scroll,
    Terminate,
    Type,
    Wait,
    _declare,
    _Declared,
    action_arguments,
    action_points,
)
from agent.backends.base import Completion
from agent.protocol import (
    STRING_PARAMS,
    ProtocolError,
    format_tool_call,
    parse_arguments,
    parse_completion,
    tool_schema,
    tools_system_text,
)

REL = CoordinateSpace.relative()
ABS = CoordinateSpace.absolute(1280, 720)
MONITOR = Monitor(1, 0, 0, 1920, 1080)

# The system text Qwen 3.5 sees, as it was before the actions were declared once: a change
# to any action's declaration that alters what the model reads must change these on purpose.
PINNED = {
    "relative": "025ab8d415727acf7bf6bd54114bb00e72af88f0e84b1ad3dda556d275a0ab34",
    "1280x720": "a59dc064d7425a03ec242d4c6708c17e3d62f08362e5de8f9e6e2f65b34415e2",
}


def _properties(space: CoordinateSpace) -> dict[str, dict[str, object]]:
    function = tool_schema(space)["function"]
    assert isinstance(function, dict)
    return function["parameters"]["properties"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("space, name", [(REL, "relative"), (ABS, "1280x720")])
def test_the_system_text_is_byte_identical(space: CoordinateSpace, name: str) -> None:
    text = tools_system_text([tool_schema(space)])
    assert hashlib.sha256(text.encode()).hexdigest() == PINNED[name]


def test_every_declared_action_and_parameter_is_in_the_schema() -> None:
    props = _properties(REL)
    action = props.pop("action")
    assert action["enum"] == list(ACTION_TYPES)
    for name, cls in ACTION_TYPES.items():
        assert f"* `{name}`: {cls.spec.doc}" in str(action["description"])
        for param in cls.spec.params:
            prop = props[param.name]
            assert {k: v for k, v in prop.items() if k != "description"} == dict(param.schema)
            assert str(prop["description"]).startswith(param.about.split("{")[0])
    # Nothing in the schema that no action declares.
    assert set(props) == {p.name for cls in ACTION_TYPES.values() for p in cls.spec.params}
    assert {n for n in props if props[n].get("type") == "string"} | {"action"} == STRING_PARAMS


def test_each_description_names_the_actions_that_take_the_parameter() -> None:
    props = _properties(REL)
    for name, prop in props.items():
        if name == "action":
            continue
        text = str(prop["description"])
        usage = text[text.index("Required") if "Required" in text else text.index("Optional") :]
        required, _, optional = usage.partition("ptional")
        for action, cls in ACTION_TYPES.items():
            takes = [p for p in cls.spec.params if p.name == name]
            part = required if takes and takes[0].required else optional
            named = f"`{action}`" in part or f"`action={action}`" in part
            grouped = cls.spec.group is not None and cls.spec.group in part
            assert bool(takes) == (named or grouped), (name, action)


@pytest.mark.parametrize("cls", list(ACTION_TYPES.values()), ids=list(ACTION_TYPES))
def test_the_json_form_holds_exactly_the_declared_parameters(cls: type[types.Action]) -> None:
    examples = {
        "keys": ["ctrl", "s"],
        "text": "hi",
        "coordinate": [10, 20],
        "start_coordinate": [30, 40],
        "pixels": -2,
        "time": 1.5,
        "status": "success",
    }
    args = {"action": cls.spec.name} | {p.name: examples[p.name] for p in cls.spec.params}
    action = parse_arguments(args, REL)
    assert type(action) is cls
    assert action_arguments(action) == args  # parameter order included
    assert parse_completion(Completion(format_tool_call(action)), REL).action == action
    required = [p.name for p in cls.spec.params if p.required]
    for name in required:
        with pytest.raises(ProtocolError, match=f"missing parameter '{name}'"):
            parse_arguments({k: v for k, v in args.items() if k != name}, REL)


def test_points_come_from_the_point_parameters() -> None:
    assert action_points(LeftClickDrag((5, 6), (1, 2))) == ((1, 2), (5, 6))
    assert action_points(LeftClickDrag((5, 6))) == ((5, 6),)
    assert action_points(Scroll(3)) == ()
    assert action_points(HScroll(3, (7, 8))) == ((7, 8),)
    assert action_points(Key(("a",))) == action_points(Wait(1.0)) == ()
    assert FINAL_ACTIONS == (Terminate, Answer)
    assert [c.spec.button for c in (LeftClick, MouseMove, LeftClickDrag)] == ["left", None, "left"]


def _seconds(value: object, what: str, space: CoordinateSpace) -> float:
    seconds = number(value, what)
    if not 0 < seconds <= 5:
        raise types.ArgumentError(f"{what} {seconds:g} is not within (0, 5]")
    return seconds


SECONDS = Param("seconds", {"type": "number"}, "How long to rest there.", _seconds)


@dataclass(frozen=True, slots=True)
class Hover(_Declared):
    """An action declared only here: it must reach the schema, the parser and freshness."""

    coordinate: Point
    seconds: float
    spec = ActionSpec(
        "hover", "Rest the cursor on `coordinate` for `seconds`.", (COORDINATE, SECONDS)
    )


def test_a_new_declaration_shows_up_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ACTION_TYPES, "hover", _declare(Hover)["hover"])
    props = _properties(REL)
    assert "hover" in props["action"]["enum"]  # type: ignore[operator]
    assert "* `hover`: Rest the cursor on `coordinate` for `seconds`." in str(
        props["action"]["description"]
    )
    assert props["seconds"] == {
        "description": "How long to rest there. Required only by `action=hover`.",
        "type": "number",
    }
    assert "`mouse_move`, `left_click_drag` and `hover`; optional" in str(
        props["coordinate"]["description"]
    )
    hover = parse_arguments({"action": "hover", "coordinate": "[1, 2]", "seconds": "2"}, REL)
    assert hover == Hover((1, 2), 2.0)
    assert action_arguments(hover) == {"action": "hover", "coordinate": [1, 2], "seconds": 2.0}
    assert parse_completion(Completion(format_tool_call(hover)), REL).action == hover
    with pytest.raises(ProtocolError, match=r"seconds 9 is not within \(0, 5\]"):
        parse_arguments({"action": "hover", "coordinate": [1, 2], "seconds": 9}, REL)
    with pytest.raises(ProtocolError, match="unexpected parameter 'seconds' for left_click"):
        parse_arguments({"action": "left_click", "coordinate": [1, 2], "seconds": 1}, REL)
    (area,) = action_areas(hover, REL, MONITOR)
    assert area.what == action_areas(MouseMove((1, 2)), REL, MONITOR)[0].what


def test_fields_and_declared_parameters_must_agree() -> None:
    @dataclass(frozen=True, slots=True)
    class Undeclared(_Declared):
        coordinate: Point
        extra: int
        spec = ActionSpec("undeclared", "x", (COORDINATE,))

    with pytest.raises(TypeError, match="fields"):
        _declare(Undeclared)

    @dataclass(frozen=True, slots=True)
    class OptionalWithoutDefault(_Declared):
        coordinate: Point
        spec = ActionSpec("optional_without_default", "x", (COORDINATE.optional(),))

    with pytest.raises(TypeError, match="defaults to None"):
        _declare(OptionalWithoutDefault)

    @dataclass(frozen=True, slots=True)
    class Twice(_Declared):
        text: str
        spec = ActionSpec("type", "x", (types.TEXT,))

    with pytest.raises(TypeError, match="two actions named"):
        _declare(Type, Twice)
