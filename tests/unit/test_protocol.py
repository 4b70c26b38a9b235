"""agent.protocol: reading Qwen 3.5 tool calls in every format, and rejecting everything else."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest

from actions.screen import CoordinateSpace
from actions.types import (
    ACTION_TYPES,
    Action,
    Answer,
    DoubleClick,
    HScroll,
    Key,
    LeftClick,
    LeftClickDrag,
    MiddleClick,
    MouseMove,
    RightClick,
    Scroll,
    Terminate,
    TripleClick,
    Type,
    Wait,
    action_arguments,
)
from agent.backends.base import Completion, ToolCall
from agent.protocol import (
    TOOL_NAME,
    Proposal,
    ProtocolError,
    format_tool_call,
    parse_arguments,
    parse_completion,
    tool_schema,
    tools_system_text,
)

REL = CoordinateSpace.relative()
ABS = CoordinateSpace.absolute(1280, 720)

ACTIONS: list[Action] = [
    Key(("ctrl", "c")),
    Key(("Return",)),
    Key(("ctrl", "shift", "t")),
    Type("hello world"),
    MouseMove((10, 20)),
    LeftClick((512, 288)),
    LeftClick((0.5, 999.25)),
    LeftClickDrag((600, 400)),
    LeftClickDrag((600, 400), (100, 200)),
    RightClick((1000, 1000)),
    MiddleClick((1, 1)),
    DoubleClick((250, 750)),
    TripleClick((0, 0)),
    Scroll(-5),
    Scroll(3, (500, 500)),
    HScroll(2),
    HScroll(-4, (1000, 0)),
    Wait(2.5),
    Wait(1),
    Terminate("success"),
    Terminate("failure"),
    Answer("The answer is 42."),
]


def _id(action: Action) -> str:
    return f"{action.name}-{'-'.join(str(v) for v in action_arguments(action).values())}"[:60]


# ------------------------------------------------------------------ helpers (written on purpose
# independently of format_tool_call, so the reader is not only tested against its own writer)


def xml(*params: tuple[str, str], name: str = TOOL_NAME, wrap: bool = True) -> str:
    """A Qwen 3.5 XML call with raw parameter value texts."""
    body = "".join(f"<parameter={k}>\n{v}\n</parameter>\n" for k, v in params)
    inner = f"<function={name}>\n{body}</function>"
    return f"<tool_call>\n{inner}\n</tool_call>" if wrap else inner


def xml_args(args: Mapping[str, object], **kw: object) -> str:
    """An XML call from an arguments dict: strings verbatim, the rest as JSON."""
    params = [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in args.items()]
    return xml(*params, **kw)  # type: ignore[arg-type]


def jcall(args: object, name: str = TOOL_NAME) -> str:
    """A Qwen2.5/3-VL style JSON call."""
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': args})}\n</tool_call>"


def parse(content: str = "", space: CoordinateSpace = REL, **kw: object) -> Proposal:
    return parse_completion(Completion(content=content, **kw), space)  # type: ignore[arg-type]


def ok(p: Proposal) -> Action:
    assert p.error is None, p.error
    assert p.action is not None
    return p.action


# ------------------------------------------------------------------ every action, every format

THINKING = {
    "none": ("", ""),
    "reasoning": ("I should act now.", ""),
    "think_tags": ("", "<think>\nI should act now.\n</think>\n\n"),
    "close_only": ("", "I should act now.\n</think>\n\n"),
    "free_text": ("", "I should act now.\n\n"),
    "empty_think": ("", "<think>\n\n</think>\n\n"),
}


@pytest.mark.parametrize("thinking", list(THINKING))
@pytest.mark.parametrize("action", ACTIONS, ids=_id)
def test_xml_in_content(action: Action, thinking: str) -> None:
    reasoning, prefix = THINKING[thinking]
    p = parse(prefix + xml_args(action_arguments(action)), reasoning=reasoning)
    assert ok(p) == action
    if thinking not in ("none", "empty_think"):
        assert p.thinking == "I should act now."
    else:
        assert p.thinking == ""
    assert p.tool_call_id is None


@pytest.mark.parametrize("thinking", list(THINKING))
@pytest.mark.parametrize("action", ACTIONS, ids=_id)
def test_json_in_content(action: Action, thinking: str) -> None:
    reasoning, prefix = THINKING[thinking]
    p = parse(prefix + jcall(action_arguments(action)), reasoning=reasoning)
    assert ok(p) == action
    if thinking not in ("none", "empty_think"):
        assert p.thinking == "I should act now."


@pytest.mark.parametrize("thinking", list(THINKING))
@pytest.mark.parametrize("action", ACTIONS, ids=_id)
def test_structured_tool_calls(action: Action, thinking: str) -> None:
    reasoning, prefix = THINKING[thinking]
    arguments = json.dumps(action_arguments(action))
    call = ToolCall(TOOL_NAME, arguments, id="call_7")
    p = parse(prefix, reasoning=reasoning, tool_calls=[call])
    assert ok(p) == action
    assert p.tool_call_id == "call_7"
    assert p.raw.startswith(prefix)
    assert arguments in p.raw and "<tool_call>" in p.raw
    if thinking not in ("none", "empty_think"):
        assert p.thinking == "I should act now."


@pytest.mark.parametrize("action", ACTIONS, ids=_id)
def test_structured_values_as_json_strings(action: Action) -> None:
    # A server whose schema conversion failed passes values on as text: "[512, 288]", "5".
    args = {
        k: v if isinstance(v, str) else json.dumps(v) for k, v in action_arguments(action).items()
    }
    p = parse(tool_calls=[ToolCall(TOOL_NAME, json.dumps(args))])
    assert ok(p) == action


@pytest.mark.parametrize("action", ACTIONS, ids=_id)
def test_json_arguments_as_a_string(action: Action) -> None:
    p = parse(jcall(json.dumps(action_arguments(action))))
    assert ok(p) == action


@pytest.mark.parametrize("action", ACTIONS, ids=_id)
def test_xml_without_tool_call_wrapper(action: Action) -> None:
    bare = xml_args(action_arguments(action), wrap=False)
    assert ok(parse("Clicking now.\n" + bare)) == action
    # A model that forgot the opening tag but still wrote the closing one.
    assert ok(parse(bare + "\n</tool_call>")) == action


@pytest.mark.parametrize("action", ACTIONS, ids=_id)
def test_round_trip(action: Action) -> None:
    text = format_tool_call(action)
    assert ok(parse(text)) == action
    assert ok(parse(text, space=CoordinateSpace.absolute(1920, 1080))) == action


def test_round_trip_covers_every_action_type() -> None:
    assert {a.name for a in ACTIONS} == set(ACTION_TYPES)


def test_format_tool_call_is_the_template_xml() -> None:
    assert format_tool_call(LeftClick((512, 288))) == (
        "<tool_call>\n<function=computer_use>\n<parameter=action>\nleft_click\n</parameter>\n"
        "<parameter=coordinate>\n[512, 288]\n</parameter>\n</function>\n</tool_call>"
    )
    assert format_tool_call(Key(("ctrl", "c"))).count('["ctrl", "c"]') == 1


TRICKY_TEXTS = [
    "héllo wörld 你好 <>",
    "  leading and trailing spaces  ",
    "line one\nline two\n\nline four",
    "\nstarts and ends with a newline\n",
    "\n\n",
    " ",
    '{"action": "left_click", "coordinate": [1, 2]}',
    "[512, 288]",
    "null",
    "true",
    "42",
    "<b>bold</b> & <i>more</i> &amp; &lt;",
    "<tool_call>\n<function=computer_use>\n</function>\n</tool_call>",
    "a </parameter> b",
    "<parameter=text>",
    "</function>",
    "I think </think> therefore",
    "<think>",
    "tab\there\r\nwindows",
    "emoji 👍🏽 and zero\u200bwidth and rtl \u202e",
    "back\\slash \"quotes\" 'single'",
]


@pytest.mark.parametrize("text", TRICKY_TEXTS)
@pytest.mark.parametrize("kind", ["type", "answer"])
def test_text_is_exact(text: str, kind: str) -> None:
    action: Action = Type(text) if kind == "type" else Answer(text)
    assert ok(parse(format_tool_call(action))) == action
    if "think>" not in text:
        # Known limit: a literal <think>/</think> in unescaped JSON content reads as thinking
        # (format_tool_call escapes "<" for exactly this reason).
        assert ok(parse(jcall(action_arguments(action)))) == action
    structured = ToolCall(TOOL_NAME, json.dumps(action_arguments(action)))
    assert ok(parse(tool_calls=[structured])) == action


@pytest.mark.parametrize("text", [t for t in TRICKY_TEXTS if "</parameter>" not in t and
                                  "<parameter=" not in t and "</function>" not in t and
                                  "think>" not in t])
def test_text_exact_in_hand_written_xml(text: str) -> None:
    p = parse(xml(("action", "type"), ("text", text)))
    assert ok(p) == Type(text)


def test_xml_strips_exactly_one_newline_each_side() -> None:
    content = (
        "<tool_call>\n<function=computer_use>\n<parameter=action>\ntype\n</parameter>\n"
        "<parameter=text>\n\n  two\n\n</parameter>\n</function>\n</tool_call>"
    )
    assert ok(parse(content)) == Type("\n  two\n")
    # Values written without the newlines (seen from some models) are taken as they are.
    compact = (
        "<tool_call><function=computer_use><parameter=action>type</parameter>"
        "<parameter=text>x y</parameter></function></tool_call>"
    )
    assert ok(parse(compact)) == Type("x y")


def test_text_null_is_kept_when_the_action_takes_text() -> None:
    assert ok(parse(xml(("action", "type"), ("text", "null")))) == Type("null")


def test_nulls_for_unused_parameters_are_ignored() -> None:
    content = xml(
        ("action", "left_click"), ("coordinate", "[5, 6]"), ("text", "null"),
        ("keys", "null"), ("pixels", "null"), ("status", "null"), ("start_coordinate", "null"),
    )
    assert ok(parse(content)) == LeftClick((5, 6))
    args = {"action": "type", "text": "hi", "coordinate": None, "keys": None, "time": None}
    assert ok(parse(jcall(args))) == Type("hi")
    assert ok(parse(tool_calls=[ToolCall(TOOL_NAME, json.dumps(args))])) == Type("hi")


def test_absolute_space() -> None:
    space = ABS
    assert ok(parse(xml(("action", "left_click"), ("coordinate", "[1280, 720]")), space)) == (
        LeftClick((1280, 720))
    )
    assert ok(parse(jcall({"action": "double_click", "coordinate": [1100.5, 700]}), space)) == (
        DoubleClick((1100.5, 700))
    )
    p = parse(xml(("action", "left_click"), ("coordinate", "[1281, 5]")), space)
    assert p.action is None and "1280x720" in (p.error or "")
    p = parse(xml(("action", "left_click"), ("coordinate", "[5, 721]")), space)
    assert p.action is None and "outside" in (p.error or "")
    for action in ACTIONS:
        args = action_arguments(action)
        points = [v for k, v in args.items() if k.endswith("coordinate")]
        if all(isinstance(p, list) and p[1] <= 720 for p in points):
            assert ok(parse(format_tool_call(action), space)) == action


def test_coordinates_are_float_tuples() -> None:
    action = ok(parse(xml(("action", "left_click"), ("coordinate", "[512, 288]"))))
    assert isinstance(action, LeftClick)
    assert action.coordinate == (512.0, 288.0)
    assert all(type(v) is float for v in action.coordinate)


def test_thinking_and_free_text() -> None:
    p = parse("<think>\nplan A\n</think>\n\nNow I click.\n" + format_tool_call(LeftClick((1, 2))))
    assert ok(p) == LeftClick((1, 2))
    assert "plan A" in p.thinking and "Now I click." in p.thinking
    p = parse(format_tool_call(Wait(1)) + "\nDone.", reasoning="why")
    assert ok(p) == Wait(1)
    assert p.thinking.startswith("why")


def test_tool_call_inside_thinking_is_ignored() -> None:
    inner = format_tool_call(LeftClick((1, 2)))
    outer = format_tool_call(RightClick((3, 4)))
    assert ok(parse(f"<think>\nmaybe {inner}\n</think>\n\n{outer}")) == RightClick((3, 4))
    assert ok(parse(f"maybe {inner}\n</think>\n\n{outer}")) == RightClick((3, 4))
    assert ok(parse(outer, reasoning=f"maybe {inner}")) == RightClick((3, 4))


def test_truncated_thinking() -> None:
    p = parse("<think>\nI will click the button and then")
    assert p.action is None and "cut off inside thinking" in (p.error or "")
    assert "I will click" in p.thinking
    p = parse("<think>\nmaybe " + format_tool_call(LeftClick((1, 2))))
    assert p.action is None and "thinking" in (p.error or "")
    p = parse("", reasoning="a very long thought that", finish_reason="length")
    assert p.action is None and "cut off" in (p.error or "")


def test_raw_keeps_the_output() -> None:
    content = "<think>x</think>" + format_tool_call(Wait(2))
    assert parse(content).raw == content
    p = parse("thinking</think>", tool_calls=[ToolCall(TOOL_NAME, '{"action": "wait", "time": 2}')])
    assert p.raw.startswith("thinking</think>\n<tool_call>")
    assert '{"name": "computer_use", "arguments": {"action": "wait", "time": 2}}' in p.raw


# ------------------------------------------------------------------ parse_arguments


@pytest.mark.parametrize(
    "keys, expected",
    [
        (["ctrl", "c"], ("ctrl", "c")),
        ("ctrl+c", ("ctrl", "c")),
        ("ctrl + shift + t", ("ctrl", "shift", "t")),
        (["ctrl+c"], ("ctrl", "c")),
        (["ctrl+shift", "t"], ("ctrl", "shift", "t")),
        ("+", ("+",)),
        (["+"], ("+",)),
        ("ctrl++", ("ctrl", "+")),
        ("ctrl+shift++", ("ctrl", "shift", "+")),
        ("Return", ("Return",)),
        ('["alt", "F4"]', ("alt", "F4")),
        (("super",), ("super",)),
        (["a"] * 8, ("a",) * 8),
    ],
)
def test_keys_forms(keys: object, expected: tuple[str, ...]) -> None:
    assert parse_arguments({"action": "key", "keys": keys}, REL) == Key(expected)


@pytest.mark.parametrize(
    "args, message",
    [
        ({"action": "key", "keys": ["a"] * 9}, "at most 8"),
        ({"action": "key", "keys": "a+b+c+d+e+f+g+h+i"}, "more than 8"),
        ({"action": "key", "keys": ["x" * 33]}, "longer than 32"),
        ({"action": "key", "keys": ["ctrl", ""]}, "empty key"),
        ({"action": "key", "keys": "ctrl+"}, "ends with '+'"),
        ({"action": "key", "keys": "ctrl++c"}, "malformed key combination"),
        ({"action": "key", "keys": "ctrl+++c+"}, "ends with '+'"),
        ({"action": "key", "keys": 5}, "keys must be a list"),
        ({"action": "key", "keys": {"a": 1}}, "keys must be a list"),
        ({"action": "scroll", "pixels": 5.5}, "whole number"),
        ({"action": "scroll", "pixels": "abc"}, "pixels must be a number"),
        ({"action": "scroll", "pixels": 10**400}, "too large"),
        ({"action": "wait", "time": True}, "boolean"),
        ({"action": "left_click", "coordinate": (1, 2, 3)}, "3 numbers"),
        ({"action": "left_click", "coordinate": "NaN"}, "must be [x, y]"),
        ({"action": "left_click", "coordinate": ["NaN", 1]}, "must be a number"),
        ({"action": 5}, "action must be a string"),
        ({}, "missing parameter 'action'"),
        ({"action": "type", 3: "x"}, "not a string"),
    ],
)
def test_parse_arguments_errors(args: dict[object, object], message: str) -> None:
    with pytest.raises(ProtocolError, match=None) as info:
        parse_arguments(args, REL)  # type: ignore[arg-type]
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_parse_arguments_accepts_lenient_forms() -> None:
    assert parse_arguments({"action": " left_click ", "coordinate": [1, 2]}, REL) == (
        LeftClick((1, 2))
    )
    assert parse_arguments({"action": "scroll", "pixels": 5.0}, REL) == Scroll(5)
    assert parse_arguments({"action": "scroll", "pixels": "-3"}, REL) == Scroll(-3)
    assert parse_arguments({"action": "wait", "time": "0.5"}, REL) == Wait(0.5)
    assert parse_arguments({"action": "terminate", "status": "success\n"}, REL) == (
        Terminate("success")
    )
    assert parse_arguments({"action": "left_click", "coordinate": "[1, 2]"}, REL) == (
        LeftClick((1, 2))
    )
    assert parse_arguments({"action": "left_click", "coordinate": (1.5, 2)}, REL) == (
        LeftClick((1.5, 2))
    )
    assert parse_arguments({"action": "type", "text": "x" * 10_000}, REL) == Type("x" * 10_000)


@pytest.mark.parametrize("action", ACTIONS, ids=_id)
def test_parse_arguments_inverts_action_arguments(action: Action) -> None:
    assert parse_arguments(action_arguments(action), REL) == action


# ------------------------------------------------------------------ malformed corpus


def _c(*params: tuple[str, str]) -> str:
    return xml(*params)


CLICK = _c(("action", "left_click"), ("coordinate", "[100, 200]"))
TYPE = _c(("action", "type"), ("text", "hi"))
DEEP = "[" * 100_000 + "]" * 100_000

MALFORMED: list[tuple[str, Completion, str]] = [
    # unknown / missing / extra
    ("unknown-action", Completion(_c(("action", "click"), ("coordinate", "[1, 2]"))),
     "unknown action 'click'"),
    ("action-case", Completion(_c(("action", "Left_Click"), ("coordinate", "[1, 2]"))),
     "unknown action"),
    ("action-zero-width", Completion(_c(("action", "left\u200bclick"), ("coordinate", "[1, 2]"))),
     "unknown action"),
    ("action-empty", Completion(_c(("action", ""), ("coordinate", "[1, 2]"))), "unknown action"),
    ("missing-action", Completion(_c(("coordinate", "[1, 2]"))), "missing parameter 'action'"),
    ("no-params", Completion(_c()), "missing parameter 'action'"),
    ("missing-coordinate", Completion(_c(("action", "left_click"))),
     "missing parameter 'coordinate' for left_click"),
    ("missing-coordinate-drag", Completion(_c(("action", "left_click_drag"),
                                              ("start_coordinate", "[1, 2]"))),
     "missing parameter 'coordinate' for left_click_drag"),
    ("missing-text", Completion(_c(("action", "type"))), "missing parameter 'text' for type"),
    ("missing-answer-text", Completion(_c(("action", "answer"))),
     "missing parameter 'text' for answer"),
    ("missing-keys", Completion(_c(("action", "key"))), "missing parameter 'keys'"),
    ("missing-pixels", Completion(_c(("action", "scroll"), ("coordinate", "[1, 2]"))),
     "missing parameter 'pixels' for scroll"),
    ("missing-time", Completion(_c(("action", "wait"))), "missing parameter 'time'"),
    ("missing-status", Completion(_c(("action", "terminate"))), "missing parameter 'status'"),
    ("null-status", Completion(jcall({"action": "terminate", "status": None})),
     "missing parameter 'status'"),
    ("null-coordinate", Completion(_c(("action", "left_click"), ("coordinate", "null"))),
     "missing parameter 'coordinate'"),
    ("extra-text", Completion(_c(("action", "left_click"), ("coordinate", "[1, 2]"),
                                 ("text", "hi"))), "unexpected parameter 'text' for left_click"),
    ("extra-coordinate", Completion(_c(("action", "type"), ("text", "a"),
                                       ("coordinate", "[1, 2]"))),
     "unexpected parameter 'coordinate' for type"),
    ("extra-start", Completion(_c(("action", "left_click"), ("coordinate", "[1, 2]"),
                                  ("start_coordinate", "[3, 4]"))),
     "unexpected parameter 'start_coordinate' for left_click"),
    ("extra-wait-coordinate", Completion(jcall({"action": "wait", "time": 1,
                                                "coordinate": [1, 2]})),
     "unexpected parameter 'coordinate' for wait"),
    ("extra-unknown", Completion(_c(("action", "left_click"), ("coordinate", "[1, 2]"),
                                    ("button", "left"))), "unexpected parameter 'button'"),
    ("extra-keys-on-type", Completion(jcall({"action": "type", "text": "a", "keys": ["a"]})),
     "unexpected parameter 'keys' for type"),
    # coordinates
    ("coord-word", Completion(_c(("action", "left_click"), ("coordinate", "abc"))),
     "coordinate must be [x, y]"),
    ("coord-no-brackets", Completion(_c(("action", "left_click"), ("coordinate", "512, 288"))),
     "coordinate must be [x, y]"),
    ("coord-strings", Completion(_c(("action", "left_click"), ("coordinate", '["a", "b"]'))),
     "coordinate x must be a number"),
    ("coord-object", Completion(_c(("action", "left_click"), ("coordinate", '{"x": 1, "y": 2}'))),
     "coordinate must be [x, y]"),
    ("coord-one", Completion(_c(("action", "left_click"), ("coordinate", "[1]"))),
     "got 1 numbers"),
    ("coord-three", Completion(_c(("action", "left_click"), ("coordinate", "[1, 2, 3]"))),
     "got 3 numbers"),
    ("coord-empty", Completion(jcall({"action": "left_click", "coordinate": []})),
     "got 0 numbers"),
    ("coord-bool", Completion(_c(("action", "left_click"), ("coordinate", "[true, 5]"))),
     "coordinate x must be a number, not a boolean"),
    ("coord-bool-y", Completion(jcall({"action": "left_click", "coordinate": [5, False]})),
     "coordinate y must be a number, not a boolean"),
    ("coord-negative", Completion(_c(("action", "left_click"), ("coordinate", "[-1, 5]"))),
     "outside the relative 0-1000 range"),
    ("coord-1000.5", Completion(_c(("action", "left_click"), ("coordinate", "[1000.5, 5]"))),
     "outside"),
    ("coord-1001", Completion(_c(("action", "left_click"), ("coordinate", "[5, 1001]"))),
     "outside"),
    ("coord-nan", Completion(_c(("action", "left_click"), ("coordinate", "[NaN, 5]"))),
     "must be finite"),
    ("coord-nan-string", Completion("", tool_calls=[ToolCall(
        TOOL_NAME, '{"action": "left_click", "coordinate": "[5, NaN]"}')]), "must be finite"),
    ("coord-inf", Completion(_c(("action", "left_click"), ("coordinate", "[Infinity, 5]"))),
     "must be finite"),
    ("coord-1e999", Completion(_c(("action", "left_click"), ("coordinate", "[1e999, 5]"))),
     "must be finite"),
    ("coord-huge-int", Completion(_c(("action", "left_click"), ("coordinate", f"[{10**400}, 5]"))),
     "too large"),
    ("coord-nested", Completion(_c(("action", "left_click"), ("coordinate", "[[1, 2], [3, 4]]"))),
     "must be a number"),
    ("coord-deep", Completion(_c(("action", "left_click"), ("coordinate", DEEP))),
     "coordinate must be [x, y]"),
    ("drag-start-outside", Completion(_c(("action", "left_click_drag"),
                                         ("start_coordinate", "[-5, 5]"),
                                         ("coordinate", "[1, 2]"))),
     "start_coordinate [-5, 5] is outside"),
    ("scroll-coord-outside", Completion(_c(("action", "scroll"), ("pixels", "3"),
                                           ("coordinate", "[1, 2000]"))), "outside"),
    # numbers
    ("pixels-fraction", Completion(_c(("action", "scroll"), ("pixels", "5.5"))), "whole number"),
    ("pixels-zero", Completion(_c(("action", "scroll"), ("pixels", "0"))), "pixels is 0"),
    ("pixels-big", Completion(_c(("action", "hscroll"), ("pixels", "101"))), "beyond"),
    ("pixels-word", Completion(_c(("action", "scroll"), ("pixels", "abc"))),
     "pixels must be a number"),
    ("pixels-bool", Completion(_c(("action", "scroll"), ("pixels", "true"))), "boolean"),
    ("time-zero", Completion(_c(("action", "wait"), ("time", "0"))), "time 0 is not within"),
    ("time-negative", Completion(_c(("action", "wait"), ("time", "-1"))), "not within"),
    ("time-long", Completion(_c(("action", "wait"), ("time", "61"))), "not within"),
    ("time-nan", Completion(_c(("action", "wait"), ("time", "NaN"))), "finite"),
    ("status-word", Completion(_c(("action", "terminate"), ("status", "done"))),
     "status must be 'success' or 'failure'"),
    ("status-bool", Completion(jcall({"action": "terminate", "status": True})),
     "status must be"),
    # keys and text
    ("keys-empty", Completion(_c(("action", "key"), ("keys", "[]"))), "keys is empty"),
    ("keys-empty-string", Completion(_c(("action", "key"), ("keys", '[""]'))), "empty key"),
    ("keys-nine", Completion(jcall({"action": "key", "keys": list("abcdefghi")})), "at most 8"),
    ("keys-long", Completion(jcall({"action": "key", "keys": ["k" * 40]})), "longer than 32"),
    ("keys-numbers", Completion(_c(("action", "key"), ("keys", "[1, 2]"))),
     "keys must be strings"),
    ("keys-trailing-plus", Completion(_c(("action", "key"), ("keys", "ctrl+"))),
     "ends with '+'"),
    ("text-empty", Completion(_c(("action", "type"), ("text", ""))), "text is empty"),
    ("text-nul", Completion(jcall({"action": "type", "text": "a\x00b"})), "NUL"),
    ("text-long", Completion(jcall({"action": "type", "text": "x" * 10_001})),
     "at most 10000"),
    ("text-megabyte", Completion(_c(("action", "type"), ("text", "y" * 1_000_000))),
     "at most 10000"),
    ("text-number", Completion(jcall({"action": "type", "text": 5})),
     "text must be a string"),
    ("text-surrogate", Completion("", tool_calls=[ToolCall(
        TOOL_NAME, '{"action": "type", "text": "a\\ud800b"}')]), "lone surrogate"),
    # how many calls
    ("two-different", Completion(CLICK + "\n\n" + TYPE), "2 tool calls; reply with exactly one"),
    ("two-identical", Completion(CLICK + "\n\n" + CLICK), "2 tool calls"),
    ("three", Completion(CLICK + TYPE + CLICK), "3 tool calls"),
    ("xml-and-json", Completion(CLICK + jcall({"action": "wait", "time": 1})), "2 tool calls"),
    ("xml-and-bare", Completion(CLICK + xml(("action", "wait"), ("time", "1"), wrap=False)),
     "2 tool calls"),
    ("content-and-structured", Completion(CLICK, tool_calls=[ToolCall(
        TOOL_NAME, '{"action": "wait", "time": 1}')]), "2 tool calls"),
    ("two-structured", Completion("", tool_calls=[
        ToolCall(TOOL_NAME, '{"action": "wait", "time": 1}'),
        ToolCall(TOOL_NAME, '{"action": "wait", "time": 1}')]), "2 tool calls"),
    ("two-calls-one-broken", Completion(CLICK + _c(("action", "teleport"))), "2 tool calls"),
    # wrong function
    ("function-name", Completion(xml(("action", "left_click"), ("coordinate", "[1, 2]"),
                                     name="click")), "unknown function 'click'"),
    ("function-name-json", Completion(jcall({"action": "wait", "time": 1}, name="computer")),
     "unknown function 'computer'"),
    ("function-name-structured", Completion("", tool_calls=[ToolCall("bash", '{"cmd": "ls"}')]),
     "unknown function 'bash'"),
    # malformed XML
    # A length cut right after </function> is a cut, not a stop on </tool_call>.
    ("unclosed-tool-call", Completion(CLICK[: -len("</tool_call>")], finish_reason="length"),
     "unclosed <tool_call>"),
    ("partial-tool-call-close", Completion(CLICK[: -len("call>")], finish_reason="stop"),
     "unclosed <tool_call>"),
    ("unclosed-function", Completion("<tool_call>\n<function=computer_use>\n<parameter=action>"
                                     "\nwait\n</parameter>\n"), "unclosed <function=computer_use>"),
    ("unclosed-parameter-next", Completion(
        "<tool_call>\n<function=computer_use>\n<parameter=action>\nleft_click\n"
        "<parameter=coordinate>\n[1, 2]\n</parameter>\n</function>\n</tool_call>"),
     "unclosed <parameter=action>"),
    ("unclosed-parameter-end", Completion(
        "<tool_call>\n<function=computer_use>\n<parameter=action>\nleft_click\n"),
     "unclosed <parameter=action>"),
    ("unclosed-parameter-function", Completion(
        "<tool_call>\n<function=computer_use>\n<parameter=action>\nwait\n</function>\n"
        "</tool_call>"), "unclosed <parameter=action>"),
    ("parameter-outside-function", Completion(
        "<tool_call>\n<parameter=action>\nwait\n</parameter>\n</tool_call>"),
     "neither <function=...> nor a JSON object"),
    ("bare-parameter", Completion("<parameter=action>\nwait\n</parameter>"),
     "<parameter=...> outside a <function=...> block"),
    ("duplicate-parameter", Completion(_c(("action", "wait"), ("time", "1"), ("action", "wait"))),
     "duplicate parameter 'action'"),
    ("stray-close", Completion("done</tool_call>"), "stray </tool_call>"),
    ("stray-function-close", Completion("</function>"), "stray </function>"),
    ("stray-parameter-close", Completion("x</parameter>"), "stray </parameter>"),
    ("function-no-gt", Completion("<tool_call>\n<function=computer_use\n<parameter=action>"),
     "malformed <function=...> tag"),
    ("function-no-name", Completion("<tool_call>\n<function=>\n</function>\n</tool_call>"),
     "<function=> without a name"),
    ("text-between-params", Completion(
        "<tool_call>\n<function=computer_use>\n<parameter=action>\nwait\n</parameter>\nsoon\n"
        "<parameter=time>\n1\n</parameter>\n</function>\n</tool_call>"),
     "unexpected text inside <function=computer_use>"),
    ("text-after-function", Completion(
        "<tool_call>\n<function=computer_use>\n<parameter=action>\nwait\n</parameter>\n"
        "<parameter=time>\n1\n</parameter>\n</function>\nthen more\n</tool_call>"),
     "unexpected text inside <tool_call>"),
    ("tool-call-prose", Completion("<tool_call>click the button</tool_call>"),
     "neither <function=...> nor a JSON object"),
    ("tool-call-empty", Completion("<tool_call></tool_call>"), "neither"),
    ("tool-call-open-only", Completion("<tool_call>"), "unclosed <tool_call>"),
    ("think-after-answer", Completion("plan</think>\n\n<think>\n" + CLICK),
     "unexpected <think> after thinking had ended"),
    # malformed JSON
    ("json-broken", Completion('<tool_call>{"name": "computer_use", "arguments": {'
                               '"action": "wait", "time": 1}</tool_call>'), "malformed JSON"),
    ("json-single-quotes", Completion("<tool_call>{'name': 'computer_use'}</tool_call>"),
     "malformed JSON"),
    ("json-duplicate-key", Completion('<tool_call>{"name": "computer_use", "arguments": '
                                      '{"action": "wait", "time": 1, "time": 2}}</tool_call>'),
     "duplicate key 'time'"),
    ("json-no-arguments", Completion('<tool_call>{"name": "computer_use"}</tool_call>'),
     "no 'arguments'"),
    ("json-no-name", Completion('<tool_call>{"arguments": {}}</tool_call>'), "no string 'name'"),
    ("json-extra-key", Completion('<tool_call>{"name": "computer_use", "arguments": {}, '
                                  '"x": 1}</tool_call>'), "unexpected key 'x'"),
    ("json-arguments-list", Completion('<tool_call>{"name": "computer_use", "arguments": '
                                       '[1]}</tool_call>'), "arguments must be an object"),
    ("json-arguments-string-list", Completion(jcall("[1, 2]")), "arguments must be an object"),
    ("json-arguments-bad-string", Completion(jcall("{not json")), "malformed JSON arguments"),
    ("json-top-list", Completion("<tool_call>[1, 2]</tool_call>"), "neither"),
    ("json-deep", Completion('<tool_call>{"name": "computer_use", "arguments": '
                             + "{\"a\": " * 100_000 + "1" + "}" * 100_000 + "}</tool_call>"),
     "nested too deeply"),
    ("json-action-number", Completion(jcall({"action": 3})), "action must be a string"),
    ("json-unclosed", Completion('<tool_call>{"name": "computer_use", "arguments": {"action": '
                                 '"wait", "time": 1}}'), "unclosed <tool_call>"),
    ("structured-bad-json", Completion("", tool_calls=[ToolCall(TOOL_NAME, '{"action": ')]),
     "malformed JSON arguments"),
    ("structured-args-list", Completion("", tool_calls=[ToolCall(TOOL_NAME, "[]")]),
     "arguments must be an object"),
    ("structured-empty-args", Completion("", tool_calls=[ToolCall(TOOL_NAME, "")]),
     "missing parameter 'action'"),
    # no call at all
    ("empty", Completion(""), "no tool call"),
    ("whitespace", Completion(" \n\t\n"), "no tool call"),
    ("prose", Completion("I would click the OK button at (512, 288)."), "no tool call"),
    ("bare-json", Completion('{"name": "computer_use", "arguments": {"action": "wait", '
                             '"time": 1}}'), "no tool call"),
    ("fullwidth-tags", Completion("＜tool_call＞\n<function＝computer_use>\n＜/tool_call＞"),
     "no tool call"),
    ("only-thinking-tags", Completion("<think>\nhmm, what now?\n</think>\n\n"), "no tool call"),
    ("only-thinking-close", Completion("hmm, what now?\n</think>\n\n"), "no tool call"),
    ("only-reasoning", Completion("", reasoning="hmm, what now?"), "no tool call"),
    ("call-only-in-think", Completion("<think>\n" + CLICK + "\n</think>\n\nok"), "no tool call"),
    ("call-only-before-close", Completion(CLICK + "\n</think>\n\nok"), "no tool call"),
    ("call-only-in-reasoning", Completion("", reasoning=CLICK), "no tool call"),
    ("truncated-think", Completion("<think>\nI will " + CLICK[:30]), "cut off inside thinking"),
    ("truncated-think-with-call", Completion("<think>\nI will " + CLICK),
     "cut off inside thinking"),
    ("think-unclosed-structured", Completion("<think>\nI will ", tool_calls=[
        ToolCall(TOOL_NAME, '{"action": "wait", "time": 1}')]), "unfinished thinking"),
    ("length-cut", Completion("I will click", finish_reason="length"), "cut off (length limit)"),
    ("megabyte-junk", Completion("x<" * 500_000), "no tool call"),
    ("binary-junk", Completion(bytes(range(256)).decode("latin-1") * 100), "no tool call"),
    ("control-chars", Completion("\x00\x01\x1b[31m\u2028\ufeff"), "no tool call"),
]


@pytest.mark.parametrize("completion, expected", [pytest.param(c, e, id=i) for i, c, e in
                                                  MALFORMED])
def test_malformed(completion: Completion, expected: str) -> None:
    p = parse_completion(completion, REL)
    assert p.action is None
    assert p.error is not None
    assert expected in p.error, p.error
    assert "\n" not in p.error and len(p.error) < 200
    assert "unexpected parser failure" not in p.error


def test_corpus_is_large_and_ids_unique() -> None:
    ids = [i for i, _, _ in MALFORMED]
    assert len(ids) >= 60
    assert len(set(ids)) == len(ids)


# ------------------------------------------------------------------ declaration


def test_tool_schema_relative() -> None:
    schema = tool_schema(REL)
    assert schema["type"] == "function"
    function = schema["function"]
    assert isinstance(function, dict)
    assert function["name"] == TOOL_NAME
    assert "0-1000" in function["description"]
    assert "top" in function["description"] and "left" in function["description"]
    props = function["parameters"]["properties"]
    assert props["action"]["enum"] == list(ACTION_TYPES)
    assert len(props["action"]["enum"]) == 14
    assert set(props) == {"action", "keys", "text", "coordinate", "start_coordinate", "pixels",
                          "time", "status"}
    assert props["status"]["enum"] == ["success", "failure"]
    assert props["keys"]["items"] == {"type": "string"}
    assert function["parameters"]["required"] == ["action"]
    json.dumps(schema)  # must be plain JSON


def test_tool_schema_absolute() -> None:
    function = tool_schema(ABS)["function"]
    assert isinstance(function, dict)
    assert "1280x720" in function["description"]
    assert "0-1000" not in function["description"]
    assert "1280x720" in function["parameters"]["properties"]["coordinate"]["description"]


def test_tools_system_text_matches_the_template() -> None:
    tools = [tool_schema(REL)]
    text = tools_system_text(tools)
    assert text.startswith(
        "# Tools\n\nYou have access to the following functions:\n\n<tools>\n{\"type\": "
    )
    line = text.split("<tools>\n", 1)[1].split("\n</tools>", 1)[0]
    assert json.loads(line) == tools[0]
    assert line == json.dumps(tools[0], ensure_ascii=False)
    assert "\n</tools>\n\nIf you choose to call a function ONLY reply in the following format " \
        "with NO suffix:\n\n<tool_call>\n<function=example_function_name>\n" in text
    assert "an inner <function=...></function> block must be nested within " \
        "<tool_call></tool_call> XML tags\n" in text
    assert text.endswith("do not tell the user about function calls\n</IMPORTANT>")
    two = tools_system_text([{"name": "a"}, {"name": "ü"}])
    assert '<tools>\n{"name": "a"}\n{"name": "ü"}\n</tools>' in two


@pytest.mark.parametrize(
    "content",
    [
        '<tool_call>{"name": "x", "arguments": {}}</tool_call>' * 20_000,
        "<function=x></function>" * 40_000,
        "<function=x>" + "<parameter=p>\nv\n</parameter>" * 50_000 + "</function>",
        "x<" * 500_000,
        "<think>" + "a" * 3_000_000 + "</think>",
    ],
    ids=["json-calls", "bare-functions", "parameters", "junk", "long-thinking"],
)
def test_huge_outputs_are_rejected_quickly(content: str) -> None:
    import time

    start = time.perf_counter()
    p = parse(content)
    assert p.action is None and p.error
    assert time.perf_counter() - start < 2.0  # linear scanning: a quadratic one takes minutes


# ------------------------------------------------------------------ </tool_call> as a stop sequence


@pytest.mark.parametrize("finish", ["stop", None])
@pytest.mark.parametrize("after", ["", "\n", "\n  \n"])
def test_a_call_whose_only_defect_is_the_missing_final_close_is_valid(
    finish: str | None, after: str
) -> None:
    text = CLICK[: -len("</tool_call>")].rstrip("\n") + after
    assert text.endswith("</function>" + after)
    p = parse("Clicking.\n" + text, finish_reason=finish)
    assert ok(p) == LeftClick((100.0, 200.0))
    cut = TYPE[: -len("</tool_call>")]
    typed = parse("<think>\nplan\n</think>\n\n" + cut, finish_reason=finish)
    assert ok(typed) == Type("hi") and typed.thinking == "plan"


@pytest.mark.parametrize(
    "drop",
    [
        ">\n",  # ends "</function": the closing tag itself cut
        "</function>\n",  # the last parameter closed, </function> missing
        "\n</parameter>\n</function>\n",  # inside the last value
        "0]\n</parameter>\n</function>\n",
        "<parameter=coordinate>\n[100, 200]\n</parameter>\n</function>\n",
    ],
)
def test_a_call_cut_before_the_end_of_function_stays_invalid(drop: str) -> None:
    body = CLICK[: -len("</tool_call>")]
    assert body.endswith(drop)
    p = parse(body[: -len(drop)], finish_reason="stop")
    assert p.action is None and p.error


def test_a_missing_close_after_a_length_cut_stays_invalid() -> None:
    p = parse(CLICK[: -len("</tool_call>")], finish_reason="length")
    assert p.action is None and "unclosed <tool_call>" in (p.error or "")


def test_a_missing_close_is_forgiven_only_at_the_very_end() -> None:
    # Two calls, the first unclosed: not "one valid call".
    p = parse(CLICK[: -len("</tool_call>")] + CLICK, finish_reason="stop")
    assert p.action is None
    # A second call after it, or text after it, is still an error.
    p = parse(CLICK[: -len("</tool_call>")] + "then more", finish_reason="stop")
    assert p.action is None
    # JSON calls are not covered: the case is the XML form Qwen 3.5 writes.
    j = jcall({"action": "wait", "time": 1})
    assert parse(j[: -len("</tool_call>")], finish_reason="stop").action is None
