"""Replaying recordings: re-execute recorded decisions, compare screens, ask the model again."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from actions.dispatch import ExecResult
from actions.screen import CoordinateSpace, Frame, Monitor
from actions.types import FINAL_ACTIONS, Action, Key, Type, action_arguments, describe
from actions.window import FocusedWindow
from agent.approval import DecidedBy, Decision
from agent.backends.base import Backend, ChatMessage, Completion
from agent.loop import ExecutorLike, ScreenLike
from agent.protocol import Proposal, ProtocolError, parse_arguments, parse_completion, tool_schema
from agent.recording import INTERRUPTED, Recorder, Recording, load_messages, prompt_messages
from agent.records import DecisionRecord, ExecutionRecord, StepRecord, now_iso
from agent.risk import SAFE, Risk, RiskGuard, RiskRules
from agent.secrets import MARKER

if TYPE_CHECKING:
    from agent.heal import Healer

# The screens are compared as grey thumbnails THUMB_WIDTH pixels wide: small enough that
# anti-aliasing, a blinking caret or a clock's seconds barely register, large enough that a
# moved window or an opened dialog does. A thumbnail pixel "changed" when its grey level moved
# by more than PIXEL_TOLERANCE of 255; the difference is the share of pixels that changed.
THUMB_WIDTH = 160
PIXEL_TOLERANCE = 32
DEFAULT_THRESHOLD = 0.02  # 2 % of the screen changed: stop (or ask) before acting


def screen_difference(recorded_png: bytes, live: Any) -> float:
    """Share (0..1) of the screen that differs between a recorded PNG and a live PIL image."""
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(recorded_png)) as rec:
        rec_grey = rec.convert("L")
    height = max(1, round(rec_grey.height * THUMB_WIDTH / rec_grey.width))
    size = (THUMB_WIDTH, height)
    a = np.asarray(rec_grey.resize(size, Image.Resampling.BOX), dtype=np.int16)
    b = np.asarray(live.convert("L").resize(size, Image.Resampling.BOX), dtype=np.int16)
    return float(np.mean(np.abs(a - b) > PIXEL_TOLERANCE))


def step_geometry(step: StepRecord) -> tuple[CoordinateSpace, Monitor] | None:
    """The coordinate space and monitor a step was recorded with; None if it saw no screen."""
    if step.screen is None:
        return None
    return step.screen.coords, step.screen.monitor


def executed_action(step: StepRecord) -> Action | None:
    """The action a step really executed (after any edit), or None if nothing ran."""
    execution = step.execution
    if execution is None or not execution.action or step.screen is None:
        return None
    return parse_arguments(execution.action, step.screen.coords)


def recorded_action(step: StepRecord) -> Action | None:
    """The action the model proposed at a step, or None (invalid output, no step)."""
    if not step.action or step.screen is None:
        return None
    try:
        return parse_arguments(step.action, step.screen.coords)
    except ProtocolError:
        return None


Verdict = Literal["go", "skip", "stop"]


class Gate(Protocol):
    """The risk rules as a live run applies them: judged where keys go now, with typed state."""

    def assess(self, action: Action) -> Risk:
        """Safe, risky or blocked for this action on the desktop as it is now."""
        ...

    def executed(self, action: Action) -> None:
        """The action ran: remember what it typed where."""
        ...


class LiveGate:
    """A Gate over the user's risk rules and the focused window, as a live run judges."""

    def __init__(
        self, rules: RiskRules, focus: Callable[[], FocusedWindow | None] | None = None
    ) -> None:
        from actions.window import FocusProbe

        self.guard = RiskGuard(rules)
        # focus: the session's (where keys go on its desktop); else an X probe of our own.
        self._probe = FocusProbe() if focus is None else None
        self._focus = focus or (self._probe.focused if self._probe is not None else None)
        self._window_now: FocusedWindow | None = None

    def _window(self, action: Action) -> FocusedWindow | None:
        if not isinstance(action, Type | Key) or self._focus is None:
            return None
        return self._focus()

    def assess(self, action: Action) -> Risk:
        """The rules' verdict with where keys go now and what was typed there before."""
        self._window_now = self._window(action)
        return self.guard.assess(action, window=self._window_now)

    def executed(self, action: Action) -> None:
        """Remember what the action typed, where it was last judged to go."""
        self.guard.executed(action, window=self._window_now)

    def close(self) -> None:
        """Drop the X connection of its own, if any."""
        if self._probe is not None:
            self._probe.close()


@dataclass(frozen=True, slots=True)
class Check:
    """What the replayer asks about before a step: the action, its risk, the screen change."""

    index: int
    action: Action
    difference: float
    threshold: float
    risk: Risk = SAFE
    # With healing (agent/heal.py): what the per-target check found, said instead of the
    # whole-screen difference; `difference` is then 0 (as recorded or healed) or 1 (neither).
    note: str | None = None

    @property
    def differs(self) -> bool:
        """Whether the live screen differs from the recording beyond the threshold."""
        return self.difference > self.threshold


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """How a replay ended: ok, or the step and reason it stopped at."""

    ok: bool
    message: str
    executed: int

    @property
    def exit_code(self) -> int:
        """0 when every recorded action ran, 1 otherwise."""
        return 0 if self.ok else 1


def replay(
    recording: Recording,
    *,
    screen: ScreenLike,
    executor: ExecutorLike,
    confirm: Callable[[Check], Verdict],
    threshold: float = DEFAULT_THRESHOLD,
    log: Callable[[str], None] = lambda line: None,
    stop: threading.Event | None = None,
    gate: Gate | None = None,
    params: Mapping[str, str] | None = None,
    healer: Healer | None = None,
    recorder: Recorder | None = None,
    decided_by: DecidedBy = "user",
) -> ReplayResult:
    """Re-execute a recording's executed actions in order, checking the screen before each.

    With a gate, every action is judged by the same risk rules as a live run: a blocked one
    ends the replay before it runs, in every mode, and `confirm` sees each action's risk.
    `params` fill a routine's {NAME} placeholders in typed text (agent/routine.py). With a
    healer, each pointer action's target is checked instead of the whole screen, and
    re-grounded by the model when it moved (agent/heal.py); `confirm` then sees a step the
    model could not re-ground as differing, so a person decides (or the replay stops).
    With a recorder, the replay is itself recorded like a run: each step's live screen, action,
    risk, decision, check (and healing) on disk before the action runs, its execution after;
    `recorder.finish` is the caller's.
    """
    out = _ReplayRecording(recorder, decided_by)
    settings = recording.info.get("settings") or {}
    settle_min = float(settings.get("settle_min_s", 0.1))
    settle_max = float(settings.get("settle_max_s", 2.0))
    executed = 0
    for step in recording.records:
        index = step.index
        try:
            action = executed_action(step)
        except ProtocolError as exc:
            return ReplayResult(False, f"step {index + 1}: unreadable action: {exc}", executed)
        if step.interrupted:
            # The recorded process ended while this ran: unknown how much of it happened.
            log(f"step {index + 1}: {INTERRUPTED}; not replayed")
            continue
        if action is None or isinstance(action, FINAL_ACTIONS):
            kind = step.decision.kind if step.decision is not None else None
            why = f"decision {kind}" if kind else step.parse_error or "nothing executed"
            log(f"step {index + 1}: nothing to replay ({why})")
            continue
        if params and isinstance(action, Type):
            from agent.routine import fill_text

            action = Type(fill_text(action.text, params))
        if isinstance(action, Type) and MARKER in action.text:
            # Never type the marker into someone's password field: the secret is not recorded.
            return ReplayResult(
                False,
                f"step {index + 1}: the typed text was a secret and is not recorded; "
                "type it yourself, then replay from the next step",
                executed,
            )
        geometry = step_geometry(step)
        assert geometry is not None  # executed_action found one
        space, monitor = geometry
        note = None
        live = screen.capture()
        heal: dict[str, object] | None = None
        if healer is not None:
            fix = healer.check_and_fix(step, action, live, space)
            note = fix.note.line()
            heal = fix.note.to_json()
            log(f"step {index + 1}: {note}")
            action = fix.action or action  # not re-grounded: a person decides on the recorded one
            difference = 0.0 if fix.action is not None else 1.0
        else:
            recorded = (recording.dir / str(step.screenshot)).read_bytes()
            difference = screen_difference(recorded, live.to_pil())
        risk = gate.assess(action) if gate is not None else SAFE
        rec = out.step(live, space, action, risk, index, difference, heal)
        if risk.level == "blocked":
            out.decided(rec, Decision("reject", by="rules", note=risk.reason))
            return ReplayResult(False, _blocked(index, risk), executed)
        verdict = confirm(Check(index, action, difference, threshold, risk, note))
        if verdict == "stop" or (stop is not None and stop.is_set()):
            out.decided(rec, Decision("stop", note="replay stopped before this step"))
            return ReplayResult(False, f"stopped before step {index + 1}", executed)
        if verdict == "skip":
            out.decided(rec, Decision("skip", note="skipped in the replay"))
            log(f"step {index + 1}: skipped")
            continue
        if gate is not None:
            # Judged again at the last moment: where keys go may have changed while someone
            # decided. Worse than what was approved means nothing runs.
            now = gate.assess(action)
            if now.level == "blocked":
                return ReplayResult(False, _blocked(index, now), executed)
            if now.level == "risky" and risk.level == "safe":
                return ReplayResult(
                    False,
                    f"step {index + 1}: became risky before it ran ({now.reason}); "
                    "nothing was executed",
                    executed,
                )
        out.executing(rec, action)
        result = executor.execute(action, space=space, monitor=monitor, cancel=stop)
        out.executed(rec, result, action)
        if gate is not None:
            gate.executed(action)
        if not result.ok:
            return ReplayResult(
                False, f"step {index + 1}: {describe(action)} failed: {result.error}", executed
            )
        executed += 1
        log(f"step {index + 1}: executed {describe(action)}")
        screen.wait_until_stable(min_s=settle_min, max_s=settle_max)
    return ReplayResult(True, f"replayed {executed} actions", executed)


class _ReplayRecording:
    """The replay's own recording, step by step (nothing when there is no recorder)."""

    def __init__(self, recorder: Recorder | None, by: DecidedBy) -> None:
        self.recorder = recorder
        self.by = by
        self.count = 0

    def step(
        self,
        live: Frame,
        space: CoordinateSpace,
        action: Action,
        risk: Risk,
        source: int,
        difference: float,
        heal: dict[str, object] | None,
    ) -> StepRecord | None:
        """A new step for the action about to be decided, its live screen saved."""
        if self.recorder is None:
            return None
        from agent.records import ScreenRecord
        from agent.vision import prepare

        obs = prepare(live)
        rec = StepRecord(self.count, phase="executing")
        self.count += 1
        rec.screenshot = self.recorder.save_screenshot(rec.index, obs.image.png)
        rec.screen = ScreenRecord.of(obs, space)
        rec.action = action_arguments(action)
        rec.risk = risk
        rec.extra["replay"] = {"source_step": source, "difference": round(difference, 4)}
        if heal is not None:
            rec.extra["heal"] = heal
        return rec

    def decided(self, rec: StepRecord | None, decision: Decision) -> None:
        """A step that ends without running: its decision, written."""
        if rec is None or self.recorder is None:
            return
        rec.decision = DecisionRecord.of(decision)
        rec.phase = "done"
        rec.ended_at = now_iso()
        self.recorder.write_step(rec)

    def executing(self, rec: StepRecord | None, action: Action) -> None:
        """On disk before the action runs (RecordingError: it does not run)."""
        if rec is None or self.recorder is None:
            return
        rec.decision = DecisionRecord.of(Decision("approve", by=self.by))
        rec.to_run = action_arguments(action)
        self.recorder.write_step(rec)

    def executed(self, rec: StepRecord | None, result: ExecResult, action: Action) -> None:
        """What the action did."""
        if rec is None or self.recorder is None:
            return
        rec.execution = ExecutionRecord.of(result, action)
        rec.phase = "done"
        rec.ended_at = now_iso()
        self.recorder.write_step(rec)


def _blocked(index: int, risk: Risk) -> str:
    """The one-line reason a blocked step ended the replay."""
    return f"step {index + 1}: blocked by your rules ({risk.reason}); nothing was executed"


# --------------------------------------------------------------------------- ask again


@dataclass(frozen=True, slots=True)
class AskAgain:
    """A recorded step's proposal next to what the current backend proposes for it now."""

    index: int
    recorded: StepRecord
    proposal: Proposal
    completion: Completion
    messages: list[ChatMessage]


def step_messages(recording: Recording, index: int, task: str | None = None) -> list[ChatMessage]:
    """The messages sent at a step (screenshots read from the run), optionally with a new task."""
    recorded = prompt_messages(recording, index)
    if recorded is None:
        raise ValueError(
            f"step {index + 1} has no recorded prompt (format_version "
            f"{recording.info.get('format_version')}; prompts are recorded from version 2)"
        )
    messages = load_messages(recording, recorded)
    old_task = str(recording.info.get("task", ""))
    if task is not None and len(messages) > 1:
        first = messages[1]
        head = first.content[0]
        if isinstance(head, str) and head.startswith(f"Task: {old_task}"):
            # The task sits in the first user message, as agent.prompt writes it.
            new_head = f"Task: {task}" + head[len(f"Task: {old_task}") :]
            messages[1] = ChatMessage(first.role, (new_head, *first.content[1:]))
        else:
            raise ValueError("the recorded prompt does not start with the task; cannot edit it")
    return messages


def ask_again(
    recording: Recording,
    index: int,
    backend: Backend,
    *,
    task: str | None = None,
    cancel: threading.Event | None = None,
) -> AskAgain:
    """Send a recorded step's prompt to a backend again; executes nothing."""
    steps = {s.index: s for s in recording.records}
    if index not in steps:
        raise ValueError(f"the recording has no step {index + 1} (it has {len(steps)})")
    step = steps[index]
    geometry = step_geometry(step)
    if geometry is None:
        raise ValueError(f"step {index + 1} has no screenshot")
    messages = step_messages(recording, index, task)
    completion = backend.complete(messages, [tool_schema(geometry[0])], cancel=cancel)
    return AskAgain(index, step, parse_completion(completion, geometry[0]), completion, messages)
