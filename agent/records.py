"""The step record: the one definition of a line of steps.jsonl, and of its JSON form.

The loop and the MCP server fill a StepRecord; the recorder writes `to_json()`; replay, export,
the viewer and the MCP screenshot resource read `from_json()`. Keys keep their order: the
loop writes the very bytes it wrote before the record was typed (MCP call steps now write their
0-1000 space as the loop does, 1000.0 where they wrote 1000).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Final, Literal, TypeVar, cast

from actions.executor import ExecResult
from actions.screen import CoordinateSpace, Monitor
from actions.types import Action, action_arguments
from agent.approval import DecidedBy, Decision, DecisionKind
from agent.backends.base import Conversation, ToolCall
from agent.risk import Level, Risk
from agent.vision import Observation

# 1: the first format. 2 added each step's `prompt` (the messages sent). 3 writes a step that
# executes an action twice, `"phase": "executing"` before it acts and `"phase": "done"` after,
# and readers keep the last line of each index. from_json reads every version listed here:
# what an older version lacks takes its default (no prompt; phase "done").
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)

# An action as computer_use JSON arguments (actions.types.action_arguments), as the model or a
# person gave it: recorded as is, so a redacted or foreign one still reads.
ActionArgs = dict[str, Any]
Phase = Literal["executing", "done"]
T = TypeVar("T")


class _Unset(Enum):
    UNSET = "unset"


# A field that may be recorded as null is absent until it is set (finish_reason: no answer).
UNSET: Final = _Unset.UNSET


def now_iso(ts: float | None = None) -> str:
    """A UTC timestamp in ISO 8601 with milliseconds."""
    dt = datetime.fromtimestamp(time.time() if ts is None else ts, tz=UTC)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def monitor_json(m: Monitor) -> dict[str, Any]:
    """A monitor as recordings store it: origin and size in input pixels, and the scale."""
    return {
        "index": m.index,
        "left": m.left,
        "top": m.top,
        "width": m.width,
        "height": m.height,
        "scale": m.scale,
    }


def monitor_from_json(data: Mapping[str, Any]) -> Monitor:
    """A recorded monitor (the scale is 1 where it was not recorded)."""
    return Monitor(
        int(data["index"]),
        int(data["left"]),
        int(data["top"]),
        int(data["width"]),
        int(data["height"]),
        float(data.get("scale", 1.0)),
    )


def tool_call_json(call: ToolCall) -> dict[str, Any]:
    """A structured tool call as recordings store it (steps and prompts alike)."""
    return {"id": call.id, "name": call.name, "arguments": call.arguments}


def tool_call_from_json(data: Mapping[str, Any]) -> ToolCall:
    """A recorded tool call."""
    return ToolCall(str(data.get("name", "")), str(data.get("arguments", "")), data.get("id"))


def _size(value: Any) -> tuple[int, int]:
    return int(value[0]), int(value[1])


def _obj(value: Any) -> Mapping[str, Any] | None:
    """A JSON object, or None for null and anything that is not one."""
    return value if isinstance(value, Mapping) else None


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _args(value: Any) -> ActionArgs | None:
    """Recorded action arguments (a copy), or None; TypeError when they are not an object."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(f"action arguments must be an object, not {type(value).__name__}")
    return dict(value)


@dataclass(frozen=True, slots=True)
class ScreenRecord:
    """What the model was shown: the monitor, the sizes on the way, the coordinate space."""

    monitor: Monitor
    captured_size: tuple[int, int]
    image_size: tuple[int, int]
    model_size: tuple[int, int]
    coords: CoordinateSpace

    @classmethod
    def of(cls, obs: Observation, space: CoordinateSpace) -> ScreenRecord:
        """The screen of an observation in a coordinate space."""
        frame = obs.frame
        return cls(
            frame.monitor,
            (frame.width, frame.height),
            (obs.image.width, obs.image.height),
            obs.model_size,
            space,
        )

    def to_json(self) -> dict[str, Any]:
        """As recorded."""
        c = self.coords
        return {
            "monitor": monitor_json(self.monitor),
            "captured_size": list(self.captured_size),
            "image_size": list(self.image_size),
            "model_size": list(self.model_size),
            "coords": {"kind": c.kind, "width": c.width, "height": c.height},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScreenRecord:
        """As read back."""
        c = data["coords"]
        kind: Literal["relative", "absolute"] = (
            "absolute" if c["kind"] == "absolute" else "relative"
        )
        return cls(
            monitor_from_json(data["monitor"]),
            _size(data["captured_size"]),
            _size(data["image_size"]),
            _size(data["model_size"]),
            CoordinateSpace(kind, float(c["width"]), float(c["height"])),
        )


@dataclass(frozen=True, slots=True)
class PromptRecord:
    """The messages sent at a step: those after the first `same_as_previous` of the step before.

    Messages are chat messages as agent.recording.encode_message writes them (images as paths).
    """

    same_as_previous: int
    count: int
    messages: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        """As recorded."""
        return {
            "same_as_previous": self.same_as_previous,
            "count": self.count,
            "messages": list(self.messages),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PromptRecord:
        """As read back."""
        return cls(int(data["same_as_previous"]), int(data["count"]), list(data["messages"]))


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """A decision as recorded: the edited action as arguments, the MCP client that asked."""

    kind: DecisionKind
    by: DecidedBy
    note: str | None = None
    edited_action: ActionArgs | None = None
    breakpoint: str | None = None  # only when a breakpoint asked: other lines lack the key
    client: str | None = None  # MCP act calls: the client that sent the action

    @classmethod
    def of(cls, decision: Decision, *, client: str | None = None) -> DecisionRecord:
        """A loop decision as recorded (`resume` is not: the next steps show it)."""
        edited = action_arguments(decision.action) if decision.action is not None else None
        return cls(decision.kind, decision.by, decision.note, edited, decision.breakpoint, client)

    def to_json(self) -> dict[str, Any]:
        """As recorded."""
        data: dict[str, Any] = {
            "kind": self.kind,
            "by": self.by,
            "note": self.note,
            "edited_action": self.edited_action,
        }
        if self.breakpoint is not None:
            data["breakpoint"] = self.breakpoint
        if self.client is not None:
            data["client"] = self.client
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DecisionRecord:
        """As read back."""
        return cls(
            cast(DecisionKind, data.get("kind")),
            cast(DecidedBy, data.get("by", "user")),
            _opt_str(data.get("note")),
            _args(data.get("edited_action")),
            _opt_str(data.get("breakpoint")),
            _opt_str(data.get("client")),
        )


@dataclass(frozen=True, slots=True)
class ExecutionRecord:
    """What execution did; a step held back before running says `executed: false`."""

    ok: bool
    error: str | None = None
    executed: bool | None = None  # recorded only when False: nothing ran
    detail: str | None = None
    points: tuple[tuple[int, int], ...] | None = None  # screen points the input went to
    action: ActionArgs | None = None  # what really ran (after any edit)
    # How text went in when not by keys alone: "clipboard" (recorded only when set).
    via: str | None = None

    @classmethod
    def of(cls, outcome: ExecResult, action: Action) -> ExecutionRecord:
        """An executor's result for the action it ran."""
        return cls(
            outcome.ok,
            outcome.error,
            detail=outcome.detail,
            points=tuple(outcome.points),
            action=action_arguments(action),
            via=outcome.via,
        )

    def to_json(self) -> dict[str, Any]:
        """As recorded."""
        data: dict[str, Any] = {"ok": self.ok}
        if self.executed is not None:
            data["executed"] = self.executed
        if self.detail is not None:
            data["detail"] = self.detail
        data["error"] = self.error
        if self.points is not None:
            data["points"] = [list(p) for p in self.points]
        if self.via is not None:
            data["via"] = self.via
        if self.action is not None:
            data["action"] = self.action
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExecutionRecord:
        """As read back."""
        points = data.get("points")
        if points is not None and not isinstance(points, list):
            raise TypeError("points must be a list")
        executed = data.get("executed")
        return cls(
            bool(data.get("ok")),
            _opt_str(data.get("error")),
            None if executed is None else bool(executed),
            _opt_str(data.get("detail")),
            None if points is None else tuple(_size(p) for p in points),
            _args(data.get("action")),
            _opt_str(data.get("via")),
        )


@dataclass(frozen=True, slots=True)
class FreshnessRecord:
    """The screen compared where the action acts, just before it would run."""

    stale: bool
    # Each area as actions.freshness.Change.to_json writes it.
    areas: list[dict[str, Any]]
    screenshot: str | None = None  # the live screen, when it had changed
    decision: DecisionRecord | None = None  # a person's, after too many changes in a row

    def to_json(self) -> dict[str, Any]:
        """As recorded."""
        data: dict[str, Any] = {"stale": self.stale, "areas": list(self.areas)}
        if self.screenshot is not None:
            data["screenshot"] = self.screenshot
        if self.decision is not None:
            data["decision"] = self.decision.to_json()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FreshnessRecord:
        """As read back."""
        decision = _obj(data.get("decision"))
        return cls(
            bool(data.get("stale")),
            list(data.get("areas") or []),
            _opt_str(data.get("screenshot")),
            None if decision is None else DecisionRecord.from_json(decision),
        )


@dataclass(frozen=True, slots=True)
class RunawayRecord:
    """The same action again on a screen that has not changed: why a person was asked."""

    repeats: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        """As recorded."""
        return {"repeats": self.repeats, "reason": self.reason}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunawayRecord:
        """As read back."""
        return cls(int(data.get("repeats", 0)), str(data.get("reason", "")))


@dataclass(frozen=True, slots=True)
class BackendErrorRecord:
    """A failed model request of the step."""

    error: str
    retryable: bool
    at: str

    def to_json(self) -> dict[str, Any]:
        """As recorded."""
        return {"error": self.error, "retryable": self.retryable, "at": self.at}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BackendErrorRecord:
        """As read back."""
        return cls(str(data.get("error", "")), bool(data.get("retryable")), str(data.get("at", "")))


@dataclass(frozen=True, slots=True)
class McpRecord:
    """A step made by an MCP call rather than the loop: which client, which tool."""

    client: str
    tool: str

    def to_json(self) -> dict[str, Any]:
        """As recorded."""
        return {"client": self.client, "tool": self.tool}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> McpRecord:
        """As read back."""
        return cls(str(data.get("client", "")), str(data.get("tool", "")))


def _risk_from_json(data: Mapping[str, Any]) -> Risk:
    level = data.get("level")
    if level not in ("safe", "risky", "blocked"):
        raise ValueError(f"unknown risk level {level!r}")
    return Risk(cast(Level, level), str(data.get("reason", "")), str(data.get("rule", "")))


# Every key a record of this version writes, in the order it writes them.
_KEYS = (
    "index", "phase", "started_at", "ended_at", "screenshot", "screen", "prompt", "tokens",
    "thinking", "raw_output", "tool_calls", "action", "parse_error", "decision", "execution",
    "result", "error", "timings", "mcp", "backend_errors", "finish_reason", "tools_in_prompt",
    "conversation", "risk", "runaway", "freshness", "to_run", "redacted", "interrupted",
)  # fmt: skip


@dataclass(slots=True)
class StepRecord:
    """One step of a run, as the loop fills it in and steps.jsonl stores it.

    The fields up to `timings` are always written; the later ones only when set (None, False
    or empty means absent), so a line says only what happened.
    """

    index: int
    phase: Phase = "done"
    started_at: str = field(default_factory=now_iso)
    ended_at: str | None = None
    screenshot: str | None = None  # relative to the run folder, once the file exists
    screen: ScreenRecord | None = None
    prompt: PromptRecord | None = None  # format 2 on
    # Token counts by name: visual, prompt_estimate, prompt, completion (null: not reported).
    tokens: dict[str, int | None] = field(default_factory=dict)
    thinking: str = ""
    raw_output: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    action: ActionArgs | None = None  # what the model proposed
    parse_error: str | None = None
    decision: DecisionRecord | None = None
    execution: ExecutionRecord | None = None
    result: str | None = None  # what the model is told about the step
    error: str | None = None
    # Seconds by stage: capture_s, encode_s, model_s, first_token_s, save_s, decide_s, ...
    timings: dict[str, float | None] = field(default_factory=dict)
    mcp: McpRecord | None = None
    backend_errors: list[BackendErrorRecord] = field(default_factory=list)
    finish_reason: str | None | Literal[_Unset.UNSET] = UNSET
    tools_in_prompt: bool = False  # the server refused `tools`: they went into the prompt
    conversation: Conversation | None = None  # the shape this step's request was sent in
    risk: Risk | None = None
    runaway: RunawayRecord | None = None
    freshness: FreshnessRecord | None = None
    to_run: ActionArgs | None = None  # written before the action runs
    redacted: list[str] = field(default_factory=list)  # the recorder's reasons, never the text
    interrupted: bool = False  # set by readers: the process ended while the action ran
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know

    def to_json(self) -> dict[str, Any]:
        """The line as written (without its newline): a JSON object."""
        data: dict[str, Any] = {
            "index": self.index,
            "phase": self.phase,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "screenshot": self.screenshot,
            "screen": None if self.screen is None else self.screen.to_json(),
            "prompt": None if self.prompt is None else self.prompt.to_json(),
            "tokens": dict(self.tokens),
            "thinking": self.thinking,
            "raw_output": self.raw_output,
            "tool_calls": [tool_call_json(c) for c in self.tool_calls],
            "action": self.action,
            "parse_error": self.parse_error,
            "decision": None if self.decision is None else self.decision.to_json(),
            "execution": None if self.execution is None else self.execution.to_json(),
            "result": self.result,
            "error": self.error,
            "timings": dict(self.timings),
        }
        if self.mcp is not None:
            data["mcp"] = self.mcp.to_json()
        if self.backend_errors:
            data["backend_errors"] = [e.to_json() for e in self.backend_errors]
        if self.finish_reason is not UNSET:
            data["finish_reason"] = self.finish_reason
        if self.tools_in_prompt:
            data["tools_in_prompt"] = True
        if self.conversation is not None:
            data["conversation"] = self.conversation
        if self.risk is not None:
            data["risk"] = self.risk.to_json()
        if self.runaway is not None:
            data["runaway"] = self.runaway.to_json()
        if self.freshness is not None:
            data["freshness"] = self.freshness.to_json()
        if self.to_run is not None:
            data["to_run"] = self.to_run
        if self.redacted:
            data["redacted"] = list(self.redacted)
        if self.interrupted:
            data["interrupted"] = True
        data.update(self.extra)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StepRecord:
        """A line read back, of any readable version; what it lacks takes its default.

        A part that does not read (a hand-edited or foreign line) is kept as is in `extra`,
        so to_json still gives it back.
        """
        extra = {k: v for k, v in data.items() if k not in _KEYS}

        def part(key: str, parse: Callable[[Mapping[str, Any]], T]) -> T | None:
            value = data.get(key)
            if value is None:
                return None
            try:
                if isinstance(value, Mapping):
                    return parse(value)
            except (KeyError, TypeError, ValueError, IndexError):
                pass
            extra[key] = value
            return None

        def parts(key: str, parse: Callable[[Mapping[str, Any]], T]) -> list[T]:
            value = data.get(key) or []
            try:
                if isinstance(value, list):
                    return [parse(v) for v in value]
            except (KeyError, TypeError, ValueError, IndexError, AttributeError):
                pass
            extra[key] = value
            return []

        def args(key: str) -> ActionArgs | None:
            try:
                return _args(data.get(key))
            except TypeError:
                extra[key] = data[key]
                return None

        index = data.get("index")
        conversation = data.get("conversation")
        return cls(
            index=index if isinstance(index, int) else 0,
            phase="executing" if data.get("phase") == "executing" else "done",
            started_at=str(data.get("started_at") or ""),
            ended_at=_opt_str(data.get("ended_at")),
            screenshot=_opt_str(data.get("screenshot")),
            screen=part("screen", ScreenRecord.from_json),
            prompt=part("prompt", PromptRecord.from_json),
            tokens=dict(_obj(data.get("tokens")) or {}),
            thinking=str(data.get("thinking") or ""),
            raw_output=str(data.get("raw_output") or ""),
            tool_calls=parts("tool_calls", tool_call_from_json),
            action=args("action"),
            parse_error=_opt_str(data.get("parse_error")),
            decision=part("decision", DecisionRecord.from_json),
            execution=part("execution", ExecutionRecord.from_json),
            result=_opt_str(data.get("result")),
            error=_opt_str(data.get("error")),
            timings=dict(_obj(data.get("timings")) or {}),
            mcp=part("mcp", McpRecord.from_json),
            backend_errors=parts("backend_errors", BackendErrorRecord.from_json),
            finish_reason=_opt_str(data["finish_reason"]) if "finish_reason" in data else UNSET,
            tools_in_prompt=bool(data.get("tools_in_prompt")),
            conversation=conversation if conversation in ("native", "legacy") else None,
            risk=part("risk", _risk_from_json),
            runaway=part("runaway", RunawayRecord.from_json),
            freshness=part("freshness", FreshnessRecord.from_json),
            to_run=args("to_run"),
            redacted=[str(r) for r in data.get("redacted") or ()],
            interrupted=bool(data.get("interrupted")),
            extra=extra,
        )
