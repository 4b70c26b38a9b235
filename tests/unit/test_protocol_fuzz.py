"""agent.protocol under fuzzing: hostile text never raises, and only whole, valid calls act."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
)

REL = CoordinateSpace.relative()
ABS = CoordinateSpace.absolute(1366, 768)
SPACES = st.sampled_from([REL, ABS])

# Example budgets (about 12,000 generated outputs in all, plus the exhaustive truncation sweep).
FAST = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                           HealthCheck.data_too_large],
)

FRAGMENTS = [
    "<tool_call>", "</tool_call>", "<function=computer_use>", "<function=other>", "</function>",
    "<parameter=action>", "<parameter=coordinate>", "<parameter=text>", "<parameter=keys>",
    "<parameter=pixels>", "<parameter=start_coordinate>", "</parameter>", "<think>", "</think>",
    "<function=", "<parameter=", ">", "<", "\n", " ", "left_click", "type", "key", "scroll",
    "wait", "terminate", "success", "[1, 2]", "[5000, 1]", "[NaN, 1]", "null", "5", "-3", "0.5",
    '{"name": "computer_use", "arguments": ', '{"action": "wait", "time": 1}', "{", "}", '"',
    ":", ",", "[", "]", "computer_use", '["ctrl", "c"]', "ctrl+c", "\u200b", "é", "你好",
]


def check(p: Proposal, space: CoordinateSpace) -> None:
    """The invariants every proposal keeps, whatever the input."""
    assert (p.action is None) != (p.error is None)
    if p.error is not None:
        assert "unexpected parser failure" not in p.error, p.error
        assert "\n" not in p.error and 0 < len(p.error) < 200
    else:
        assert p.action is not None
        assert parse_arguments(action_arguments(p.action), space) == p.action


# ------------------------------------------------------------------ strategies

def points(space: CoordinateSpace) -> st.SearchStrategy[tuple[float, float]]:
    """Valid points of a space: integers or floats, edges included."""
    def axis(limit: float) -> st.SearchStrategy[float]:
        return st.one_of(
            st.integers(0, int(limit)).map(float),
            st.floats(0, limit, allow_nan=False, allow_infinity=False),
            st.sampled_from([0.0, limit]),
        )
    return st.tuples(axis(space.width), axis(space.height))


def texts() -> st.SearchStrategy[str]:
    """Text to type: any Unicode, plus pieces that look like the protocol itself."""
    soup = st.lists(st.sampled_from(FRAGMENTS + ["a", "&", "\t", "  "]), min_size=1,
                    max_size=12).map("".join)
    return st.one_of(st.text(min_size=1, max_size=300), soup).filter(lambda t: "\x00" not in t)


def _typeable(text: str) -> bool:
    """Whether a keyboard can type it: no control characters but newline, tab and return."""
    import unicodedata

    return all(ch in "\n\t\r" or unicodedata.category(ch) != "Cc" for ch in text)


def _known_key(name: str) -> bool:
    """Whether the executor knows the key (unknown names are invalid output since issue 7)."""
    from actions.keys import KeyNameError, normalize_key

    try:
        normalize_key(name)
    except KeyNameError:
        return False
    return True


KEY_NAME = st.one_of(
    st.sampled_from(["ctrl", "alt", "shift", "super", "Return", "F4", "a", "+", "Page_Down"]),
    st.text(st.characters(exclude_characters="+", exclude_categories=["Cs"]), min_size=1,
            max_size=12).map(str.strip).filter(bool).filter(_known_key),
)


def actions(space: CoordinateSpace) -> st.SearchStrategy[Action]:
    """Every kind of valid action in a space."""
    p = points(space)
    pixels = st.integers(-100, 100).filter(bool)
    return st.one_of(
        st.lists(KEY_NAME, min_size=1, max_size=8).map(lambda ks: Key(tuple(ks))),
        texts().filter(_typeable).map(Type),
        texts().map(Answer),
        *(p.map(cls) for cls in (MouseMove, LeftClick, RightClick, MiddleClick, DoubleClick,
                                 TripleClick)),
        st.builds(LeftClickDrag, p, st.none() | p),
        st.builds(Scroll, pixels, st.none() | p),
        st.builds(HScroll, pixels, st.none() | p),
        st.one_of(st.integers(1, 60).map(float),
                  st.floats(0, 60, exclude_min=True, allow_nan=False)).map(Wait),
        st.sampled_from(["success", "failure"]).map(Terminate),  # type: ignore[arg-type]
    )


@st.composite
def space_and_action(draw: st.DrawFn) -> tuple[CoordinateSpace, Action]:
    space = draw(SPACES)
    return space, draw(actions(space))


def json_form(action: Action) -> str:
    """The JSON tool call form, "<" escaped as a careful writer would."""
    payload = json.dumps({"name": TOOL_NAME, "arguments": action_arguments(action)})
    return "<tool_call>\n" + payload.replace("<", "\\u003c") + "\n</tool_call>"


PREFIXES = ["", "I will act.\n", "<think>\nplan: act\n</think>\n\n", "plan: act\n</think>\n\n",
            "<think>\n\n</think>\n\n"]
SUFFIXES = ["", "\n", " Done.", "\nThat should work."]


@st.composite
def valid_outputs(draw: st.DrawFn) -> tuple[CoordinateSpace, Action, str, int]:
    """A valid output and where its call ends: (space, action, text, end of </tool_call>)."""
    space, action = draw(space_and_action())
    call = draw(st.sampled_from([format_tool_call, json_form]))(action)
    prefix = draw(st.sampled_from(PREFIXES))
    suffix = draw(st.sampled_from(SUFFIXES))
    return space, action, prefix + call + suffix, len(prefix) + len(call)


JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**30), 10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(["NaN", "Infinity", "[1, 2]", "ctrl+c", "success", "1e999", ""]),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=8,
)
# What each action requires, from its declaration: the drawn calls are mostly complete.
REQUIRED = {
    name: [p.name for p in cls.spec.params if p.required] for name, cls in ACTION_TYPES.items()
}
NUMBERS = st.one_of(st.integers(-5, 1400), st.floats(-5, 1400), st.booleans(),
                    st.sampled_from([float("nan"), float("inf"), 10**400]))
# Per parameter: values that are often valid, often nearly valid, sometimes anything.
VALUES: dict[str, st.SearchStrategy[object]] = {
    "coordinate": st.one_of(
        st.lists(st.integers(0, 1000), min_size=2, max_size=2),
        st.lists(NUMBERS, min_size=0, max_size=3),
        st.lists(st.integers(0, 1000), min_size=2, max_size=2).map(json.dumps),
        JSON_VALUES,
    ),
    "keys": st.one_of(
        st.lists(KEY_NAME, min_size=1, max_size=10),
        st.lists(KEY_NAME, min_size=1, max_size=4).map("+".join),
        st.lists(st.text(max_size=40), max_size=3),
        JSON_VALUES,
    ),
    "text": st.one_of(texts(), JSON_VALUES),
    "pixels": st.one_of(st.integers(-150, 150), st.floats(-150, 150), st.just("7"), JSON_VALUES),
    "time": st.one_of(st.floats(-5, 100), st.integers(-5, 100), st.just("2.5"), JSON_VALUES),
    "status": st.one_of(st.sampled_from(["success", "failure", " success", "done"]),
                        JSON_VALUES),
}
VALUES["start_coordinate"] = VALUES["coordinate"]
PARAM_NAMES = list(VALUES)


@st.composite
def argument_dicts(draw: st.DrawFn) -> dict[str, object]:
    """Argument objects a model might write: mostly a real action, any mix of parameters."""
    args: dict[str, object] = {}
    if draw(st.integers(0, 9)):
        action = draw(st.sampled_from(list(ACTION_TYPES)))
        args["action"] = action
        for name in REQUIRED[action]:
            if draw(st.integers(0, 9)):
                args[name] = draw(VALUES[name])
    else:
        args["action"] = draw(JSON_VALUES)
    if not draw(st.integers(0, 2)):
        for name in draw(st.lists(st.sampled_from(PARAM_NAMES), max_size=3, unique=True)):
            args[name] = draw(st.none() | VALUES[name])
    if not draw(st.integers(0, 7)):
        args[draw(st.text(max_size=6))] = draw(JSON_VALUES)
    return args


# ------------------------------------------------------------------ properties


@settings(max_examples=2000, **FAST)  # type: ignore[arg-type]
@given(st.text(max_size=400), st.text(max_size=50), SPACES)
def test_arbitrary_text_never_raises(content: str, reasoning: str, space: CoordinateSpace) -> None:
    check(parse_completion(Completion(content=content, reasoning=reasoning), space), space)


@settings(max_examples=1500, **FAST)  # type: ignore[arg-type]
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join), SPACES)
def test_tag_soup_never_raises(content: str, space: CoordinateSpace) -> None:
    check(parse_completion(Completion(content=content), space), space)


@settings(max_examples=2000, **FAST)  # type: ignore[arg-type]
@given(argument_dicts(), SPACES, st.sampled_from(["direct", "xml", "json", "structured"]))
def test_arbitrary_arguments(args: dict[str, object], space: CoordinateSpace, how: str) -> None:
    if how == "direct":
        try:
            action = parse_arguments(args, space)
        except ProtocolError as exc:
            assert "\n" not in str(exc) and len(str(exc)) < 200
        else:
            assert parse_arguments(action_arguments(action), space) == action
        return
    if how == "xml":
        body = "".join(
            f"<parameter={k}>\n{v if isinstance(v, str) else json.dumps(v)}\n</parameter>\n"
            for k, v in args.items()
        )
        completion = Completion(f"<tool_call>\n<function={TOOL_NAME}>\n{body}</function>\n"
                                "</tool_call>")
    elif how == "json":
        completion = Completion("<tool_call>" + json.dumps({"name": TOOL_NAME, "arguments": args})
                                + "</tool_call>")
    else:
        completion = Completion("", tool_calls=[ToolCall(TOOL_NAME, json.dumps(args), "id")])
    check(parse_completion(completion, space), space)


@settings(max_examples=2000, **FAST)  # type: ignore[arg-type]
@given(space_and_action())
def test_round_trip(case: tuple[CoordinateSpace, Action]) -> None:
    space, action = case
    p = parse_completion(Completion(format_tool_call(action)), space)
    assert p.error is None, (p.error, format_tool_call(action))
    assert p.action == action
    check(p, space)


@settings(max_examples=2000, **FAST)  # type: ignore[arg-type]
@given(valid_outputs(), st.data())
def test_truncation(case: tuple[CoordinateSpace, Action, str, int], data: st.DataObject) -> None:
    space, action, text, call_end = case
    cut = data.draw(st.integers(0, len(text)))
    # A length limit ended it: unlike a stop on </tool_call>, nothing missing is forgiven.
    p = parse_completion(Completion(text[:cut], finish_reason="length"), space)
    check(p, space)
    if cut >= call_end:
        assert p.action == action  # only trailing text after </tool_call> was lost
    else:
        assert p.action is None, (cut, text)


@settings(max_examples=150, **FAST)  # type: ignore[arg-type]
@given(valid_outputs())
def test_truncation_sweep(case: tuple[CoordinateSpace, Action, str, int]) -> None:
    space, action, text, call_end = case
    assert parse_completion(Completion(text), space).action == action
    # Every cut point (up to ~400 of them), as a length-limited completion would end.
    step = max(1, len(text) // 400)
    for cut in range(0, len(text), step):
        p = parse_completion(Completion(text[:cut], finish_reason="length"), space)
        assert (p.action is not None) == (cut >= call_end), (cut, text)


@settings(max_examples=1500, **FAST)  # type: ignore[arg-type]
@given(valid_outputs(), st.lists(st.tuples(st.integers(0, 10**6),
                                           st.one_of(st.sampled_from(FRAGMENTS),
                                                     st.text(min_size=1, max_size=3))),
                                 min_size=1, max_size=3))
def test_insertions(case: tuple[CoordinateSpace, Action, str, int],
                    inserts: list[tuple[int, str]]) -> None:
    space, _action, text, _end = case
    for where, piece in inserts:
        at = where % (len(text) + 1)
        text = text[:at] + piece + text[at:]
    check(parse_completion(Completion(text), space), space)


@settings(max_examples=500, **FAST)  # type: ignore[arg-type]
@given(valid_outputs(), st.data())
def test_deletions_and_duplicates(case: tuple[CoordinateSpace, Action, str, int],
                                  data: st.DataObject) -> None:
    space, _action, text, call_end = case
    start = data.draw(st.integers(0, len(text)))
    stop = data.draw(st.integers(start, len(text)))
    check(parse_completion(Completion(text[:start] + text[stop:]), space), space)
    # The same call twice is never executed once.
    twice = parse_completion(Completion(text[:call_end] + "\n" + text[:call_end]), space)
    check(twice, space)
    assert twice.action is None
