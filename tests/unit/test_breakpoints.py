"""The breakpoint policy: which requests hit, stepping until continue, the terminal's `c`."""

from __future__ import annotations

import io

import pytest

from actions.screen import CoordinateSpace
from actions.types import Action, Key, LeftClick, Type
from agent.approval import (
    ApprovalRequest,
    Breakpoints,
    Decision,
    TerminalApprover,
    auto_approve,
    with_breakpoints,
)
from agent.records import DecisionRecord

REL = CoordinateSpace.relative()


def req(step: int, action: Action | None = None) -> ApprovalRequest:
    return ApprovalRequest(step, action or LeftClick((1, 1)), "", REL)


def test_steps_are_one_based_and_kinds_match_computer_use_names() -> None:
    bp = Breakpoints(frozenset({3}), frozenset({"type"}))
    assert not bp.hit(req(0)) and not bp.hit(req(3))
    assert bp.reason(req(2)) == "step 3"
    assert bp.reason(req(5, Type("x"))) == "kind type"
    assert bp.reason(req(5, Key(("ctrl", "a")))) is None
    assert not Breakpoints() and bp


def test_parse_and_validation() -> None:
    bp = Breakpoints.parse(" 2, 5,,", "left_click, key")
    assert bp == Breakpoints(frozenset({2, 5}), frozenset({"left_click", "key"}))
    assert Breakpoints.parse("", "") == Breakpoints()
    for steps, kinds, message in [
        ("0", "", "at least 1"),
        ("-2", "", "at least 1"),
        ("two", "", "not a number"),
        ("", "wiggle", "unknown action kind 'wiggle'"),
    ]:
        with pytest.raises(ValueError, match=message):
            Breakpoints.parse(steps, kinds)


def test_without_breakpoints_the_decider_is_unchanged() -> None:
    assert with_breakpoints(auto_approve, auto_approve, Breakpoints()) is auto_approve


def test_stepping_from_the_breakpoint_until_continue() -> None:
    asked: list[ApprovalRequest] = []
    answers = [Decision("approve"), Decision("skip"), Decision("approve", resume=True)]

    def ask(request: ApprovalRequest) -> Decision:
        asked.append(request)
        return answers.pop(0)

    decide = with_breakpoints(auto_approve, ask, Breakpoints(frozenset({2})))
    got = [decide(req(i)) for i in range(6)]
    assert [r.step for r in asked] == [1, 2, 3]
    assert [r.breakpoint for r in asked] == ["step 2", "stepping", "stepping"]
    assert [(d.kind, d.by, d.breakpoint) for d in got] == [
        ("approve", "auto", None),
        ("approve", "user", "step 2"),
        ("skip", "user", "stepping"),
        ("approve", "user", "stepping"),
        ("approve", "auto", None),
        ("approve", "auto", None),
    ]
    assert DecisionRecord.of(got[1]).to_json()["breakpoint"] == "step 2"
    # Recordings without breakpoints unchanged.
    assert "breakpoint" not in DecisionRecord.of(got[0]).to_json()


def test_a_kind_breakpoint_hits_again_after_continue() -> None:
    asked: list[str | None] = []

    def ask(request: ApprovalRequest) -> Decision:
        asked.append(request.breakpoint)
        return Decision("approve", resume=True)

    decide = with_breakpoints(auto_approve, ask, Breakpoints(kinds=frozenset({"type"})))
    for i, action in enumerate([LeftClick((1, 1)), Type("a"), LeftClick((1, 1)), Type("b")]):
        decide(req(i, action))
    assert asked == ["kind type", "kind type"]


def test_terminal_offers_continue_only_at_a_breakpoint() -> None:
    out = io.StringIO()
    approver = TerminalApprover(io.StringIO("c\n"), out)
    assert approver(req(0)) == Decision("stop", note="end of input")  # `c` means nothing here
    assert "please answer Enter, e, s" in out.getvalue()
    out = io.StringIO()
    approver = TerminalApprover(io.StringIO("c\n"), out)
    decision = approver(ApprovalRequest(2, LeftClick((1, 1)), "", REL, breakpoint="step 3"))
    assert decision == Decision("approve", resume=True)
    assert "[breakpoint: step 3]" in out.getvalue() and "[c] continue" in out.getvalue()
