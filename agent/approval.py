"""Decisions on proposed actions: approve, edit, skip, reject with a note, or stop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal, TextIO

from actions.screen import CoordinateSpace
from actions.types import Action, describe
from agent.risk import SAFE, Risk
from agent.textsafe import one_line

DecisionKind = Literal["approve", "edit", "skip", "reject", "stop"]
ApprovalMode = Literal["ask", "guarded", "auto"]
APPROVAL_MODES: tuple[ApprovalMode, ...] = ("ask", "guarded", "auto")
# Who decided: the person asked, an approval mode's policy (ask: nobody could be asked), the
# loop for final actions (they touch nothing), the risk rules, or a runaway pause with nobody
# to ask.
DecidedBy = Literal["user", "ask", "guarded", "auto", "final", "rules", "runaway", "person"]
# Decisions made without waiting for anyone: their time is the run's own.
UNATTENDED: tuple[DecidedBy, ...] = ("auto", "guarded", "final")


@dataclass(frozen=True, slots=True)
class Decision:
    """What the user (or policy) decided; `action` is the edited action for "edit".

    Recorded as agent.records.DecisionRecord.
    """

    kind: DecisionKind
    action: Action | None = None
    note: str | None = None
    by: DecidedBy = "user"
    # Set by with_breakpoints: why the user was asked ("step 3", "kind left_click", "stepping").
    breakpoint: str | None = None
    # "Continue" at a breakpoint: approve (or edit) this action and leave stepping mode.
    # Not recorded: the next steps' decisions show it (no "breakpoint" field, "by": policy).
    resume: bool = False


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """What a decider is shown: the step, the proposed action, the model's thinking."""

    step: int
    action: Action
    thinking: str
    space: CoordinateSpace
    # Set when a breakpoint (or stepping after one) is why this is asked; deciders then
    # offer "continue" (approve and leave stepping mode).
    breakpoint: str | None = None
    # What the risk rules say (agent/risk.py); blocked actions never reach a decider.
    risk: Risk = SAFE
    # Set when the run should pause whatever the mode (the same action repeated on a screen
    # that does not change): one line saying why.
    attention: str | None = None
    # The MCP client that sent this action (its name and version as it introduced itself;
    # client-written text, shown through agent/textsafe.py); None for the run's own model.
    client: str | None = None


Decide = Callable[[ApprovalRequest], Decision]

STEPPING = "stepping"


def _action_name(action: Action) -> str:
    """The computer_use name of an action ("left_click", "type", ...)."""
    from actions.types import action_arguments

    return str(action_arguments(action)["action"])


@dataclass(frozen=True, slots=True)
class Breakpoints:
    """Where a run pauses for the user: before step numbers (1-based) or action kinds."""

    steps: frozenset[int] = frozenset()
    kinds: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        from actions.types import ACTION_TYPES

        bad_steps = sorted(n for n in self.steps if n < 1)
        if bad_steps:
            raise ValueError(f"breakpoint steps must be at least 1, not {bad_steps[0]}")
        unknown = sorted(self.kinds - set(ACTION_TYPES))
        if unknown:
            raise ValueError(
                f"unknown action kind {unknown[0]!r}; known: {', '.join(sorted(ACTION_TYPES))}"
            )

    @classmethod
    def parse(cls, steps: str = "", kinds: str = "") -> Breakpoints:
        """From comma-separated text ("2,5", "left_click,type"); ValueError says what is wrong."""
        numbers: set[int] = set()
        for part in steps.split(","):
            if part.strip():
                try:
                    numbers.add(int(part.strip()))
                except ValueError:
                    raise ValueError(f"breakpoint step {part.strip()!r} is not a number") from None
        names = {part.strip() for part in kinds.split(",") if part.strip()}
        return cls(frozenset(numbers), frozenset(names))

    def __bool__(self) -> bool:
        """Whether any breakpoint is set."""
        return bool(self.steps or self.kinds)

    def reason(self, request: ApprovalRequest) -> str | None:
        """Which breakpoint this request hits ("step 3", "kind left_click"), or None."""
        if request.step + 1 in self.steps:  # request.step is 0-based; users see 1-based
            return f"step {request.step + 1}"
        name = _action_name(request.action)
        if name in self.kinds:
            return f"kind {name}"
        return None

    def hit(self, request: ApprovalRequest) -> bool:
        """Whether the run pauses before this action."""
        return self.reason(request) is not None


class BreakpointDecider:
    """A Decide: the usual policy until a breakpoint, then ask for each action until continue."""

    def __init__(self, decide: Decide, ask: Decide, breakpoints: Breakpoints) -> None:
        self.decide = decide
        self.ask = ask
        self.breakpoints = breakpoints
        self.stepping = False

    def __call__(self, request: ApprovalRequest) -> Decision:
        """Decide one request; nothing here executes anything, it only chooses who decides."""
        reason = self.breakpoints.reason(request)
        if reason is None and not self.stepping:
            return self.decide(request)
        label = reason or STEPPING
        decision = self.ask(replace(request, breakpoint=label))
        # Continue leaves stepping mode; any other answer keeps stepping (stop ends the run).
        self.stepping = not decision.resume
        return replace(decision, breakpoint=label, resume=decision.resume)


def with_breakpoints(decide: Decide, ask: Decide, breakpoints: Breakpoints) -> Decide:
    """`decide` until a breakpoint is hit, then `ask` for every action until "continue"."""
    if not breakpoints:
        return decide
    return BreakpointDecider(decide, ask, breakpoints)


def auto_approve(request: ApprovalRequest) -> Decision:
    """Approve everything (the `auto` mode without anyone to ask)."""
    return Decision("approve", by="auto")


def asks_person(mode: ApprovalMode, request: ApprovalRequest) -> bool:
    """Whether a mode puts this action to a person (the one rule for the runner and the app).

    ask: every action. guarded: risky actions and runaway pauses. auto: runaway pauses only.
    """
    if mode == "ask" or request.attention is not None:
        return True
    return mode == "guarded" and request.risk.level != "safe"


def policy(mode: ApprovalMode, ask: Decide | None) -> Decide:
    """The Decide for a mode; `ask` is a person (None: nobody can answer, e.g. stdin not a TTY).

    ask: every action goes to the person. guarded: risky actions and runaway pauses go to the
    person, the rest run. auto: only runaway pauses go to the person. With nobody to ask, a
    risky action is refused (the model is told why) and a runaway pause stops the run.
    """
    if mode == "ask":
        if ask is None:
            raise ValueError("ask mode needs someone to ask")
        return ask

    def decide(request: ApprovalRequest) -> Decision:
        if not asks_person(mode, request):
            return Decision("approve", by=mode)
        if ask is not None:
            return ask(request)
        if request.attention is not None:
            return Decision("stop", by="runaway", note=f"{request.attention}; nobody to ask")
        return Decision(
            "reject",
            by="guarded",
            note=f"risky ({request.risk.reason}) and nobody is at a terminal to approve it",
        )

    return decide


class TerminalApprover:
    """Asks on a terminal: Enter approves, e edits, s skips, r rejects with a note, q stops.

    At a breakpoint (request.breakpoint set) `c` continues: approve and leave stepping mode.
    """

    PROMPT = "  [Enter] approve  [e] edit  [s] skip  [r] reject  [q] stop > "
    BREAK_PROMPT = "  [Enter] approve  [c] continue  [e] edit  [s] skip  [r] reject  [q] stop > "

    def __init__(self, inp: TextIO, out: TextIO) -> None:
        self.inp = inp
        self.out = out

    def _ask(self, prompt: str) -> str | None:
        self.out.write(prompt)
        self.out.flush()
        line = self.inp.readline()
        if line == "":  # end of input: nobody is there to approve
            return None
        return line.rstrip("\r\n")

    def __call__(self, request: ApprovalRequest) -> Decision:
        """Ask until the answer is one of the choices."""
        from agent.protocol import ProtocolError, parse_arguments

        at_break = request.breakpoint is not None
        where = f" [breakpoint: {request.breakpoint}]" if at_break else ""
        # The action and its reasons quote model text: shown with every control made visible.
        shown = one_line(describe(request.action))
        self.out.write(f"step {request.step + 1}: {shown}{where}\n")
        if request.client is not None:
            self.out.write(f"  asked by MCP client: {one_line(request.client, 80)}\n")
        if request.risk.level != "safe":
            self.out.write(f"  {request.risk.level}: {one_line(request.risk.reason)}\n")
        if request.attention is not None:
            self.out.write(f"  paused: {one_line(request.attention)}\n")
        while True:
            answer = self._ask(self.BREAK_PROMPT if at_break else self.PROMPT)
            if answer is None:
                return Decision("stop", note="end of input")
            choice = answer.strip().lower()
            if choice in ("", "y", "yes", "a"):
                return Decision("approve")
            if choice == "c" and at_break:
                return Decision("approve", resume=True)
            if choice == "s":
                return Decision("skip")
            if choice == "q":
                return Decision("stop")
            if choice == "r":
                note = self._ask("  note for the model > ")
                return Decision("reject", note=(note or "").strip() or None)
            if choice == "e":
                edited = self._edit(request, parse_arguments, ProtocolError)
                if edited is not None:
                    return edited
                continue
            self.out.write(f"  please answer Enter, {'c, ' if at_break else ''}e, s, r or q\n")

    def _edit(
        self,
        request: ApprovalRequest,
        parse: Callable[[dict[str, object], CoordinateSpace], Action],
        error_type: type[Exception],
    ) -> Decision | None:
        """Read a replacement action as computer_use JSON arguments, validated like model output."""
        import json

        from actions.types import action_arguments

        current = json.dumps(action_arguments(request.action), ensure_ascii=False)
        self.out.write(f"  current: {one_line(current)}\n")
        line = self._ask("  new action as JSON (empty keeps it) > ")
        if not line or not line.strip():
            return None
        try:
            data = json.loads(line)
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object")
            action = parse(data, request.space)
        except (ValueError, error_type) as exc:
            self.out.write(f"  not a valid action: {one_line(str(exc))}\n")
            return None
        return Decision("edit", action=action)
