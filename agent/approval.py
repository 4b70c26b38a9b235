"""Decisions on proposed actions: approve, edit, skip, reject with a note, or stop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TextIO

from actions.screen import CoordinateSpace
from actions.types import Action, describe

DecisionKind = Literal["approve", "edit", "skip", "reject", "stop"]


@dataclass(frozen=True, slots=True)
class Decision:
    """What the user (or policy) decided; `action` is the edited action for "edit"."""

    kind: DecisionKind
    action: Action | None = None
    note: str | None = None
    by: str = "user"

    def to_json(self) -> dict[str, object]:
        """The decision as recorded in steps.jsonl."""
        from actions.types import action_arguments

        return {
            "kind": self.kind,
            "by": self.by,
            "note": self.note,
            "edited_action": action_arguments(self.action) if self.action is not None else None,
        }


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """What a decider is shown: the step, the proposed action, the model's thinking."""

    step: int
    action: Action
    thinking: str
    space: CoordinateSpace


Decide = Callable[[ApprovalRequest], Decision]


def auto_approve(request: ApprovalRequest) -> Decision:
    """Approve everything (the `auto` mode)."""
    return Decision("approve", by="auto")


class TerminalApprover:
    """Asks on a terminal: Enter approves, e edits, s skips, r rejects with a note, q stops."""

    PROMPT = "  [Enter] approve  [e] edit  [s] skip  [r] reject  [q] stop > "

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

        self.out.write(f"step {request.step + 1}: {describe(request.action)}\n")
        while True:
            answer = self._ask(self.PROMPT)
            if answer is None:
                return Decision("stop", note="end of input")
            choice = answer.strip().lower()
            if choice in ("", "y", "yes", "a"):
                return Decision("approve")
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
            self.out.write("  please answer Enter, e, s, r or q\n")

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
        self.out.write(f"  current: {current}\n")
        line = self._ask("  new action as JSON (empty keeps it) > ")
        if not line or not line.strip():
            return None
        try:
            data = json.loads(line)
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object")
            action = parse(data, request.space)
        except (ValueError, error_type) as exc:
            self.out.write(f"  not a valid action: {exc}\n")
            return None
        return Decision("edit", action=action)
