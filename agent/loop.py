"""The agent loop: observe, propose, decide, act, settle, record; read it top to bottom."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Literal

from actions.desktop import ActionTaker, DesktopScreen
from actions.executor import ExecResult, FailSafeTriggered
from actions.freshness import (
    CONFIRM_MAX_S,
    Rect,
    action_areas,
    compare,
    describe_changes,
    stale_changes,
)
from actions.screen import (
    SETTLE_MAX_S,
    SETTLE_MIN_S,
    CoordinateSpace,
    Frame,
    frame_difference,
)
from actions.types import (
    Action,
    Answer,
    HScroll,
    Key,
    Scroll,
    Terminate,
    Type,
    action_arguments,
    describe,
)
from actions.window import FocusedWindow
from agent.approval import (
    APPROVAL_MODES,
    UNATTENDED,
    ApprovalRequest,
    Decide,
    Decision,
    asks_person,
)
from agent.backends.base import Backend, BackendError, Cancelled, Completion, Delta, ImagePart
from agent.events import (
    ActionExecuted,
    ActionProposed,
    BackendFailed,
    DecisionMade,
    OnEvent,
    Outcome,
    OutputInvalid,
    RunFinished,
    ScreenObserved,
    ScreenStale,
    StepStarted,
    TextStreamed,
)
from agent.interrupts import deferred, stop_reason
from agent.prompt import (
    SYSTEM_PROMPT,
    SYSTEM_PROMPT_ABSOLUTE,
    HistoryEntry,
    PromptBuilder,
    echo_reply,
    estimate_prompt_tokens,
)
from agent.protocol import Proposal, format_tool_call, parse_completion, tool_schema
from agent.recording import INTERRUPTED, Recorder, RecordingError
from agent.records import (
    BackendErrorRecord,
    DecisionRecord,
    ExecutionRecord,
    FreshnessRecord,
    RunawayRecord,
    ScreenRecord,
    StepRecord,
    now_iso,
)
from agent.risk import SEVERITY, Risk, RiskGuard, RiskRules
from agent.vision import MAX_PIXELS, Observation, encode_png, prepare

SUCCESS_OUTCOMES = ("success", "answered")


# What the loop needs from a desktop's screen and input (declared once, in actions/desktop).
ScreenLike = DesktopScreen
ExecutorLike = ActionTaker


@dataclass(frozen=True, slots=True)
class LoopSettings:
    """Knobs of one run; the CLI and the app fill them."""

    max_steps: int = 30
    max_invalid: int = 3
    history_images: int = 3
    # Prompt window (docs/performance.md): screenshots dropped one at a time; the last
    # history_text steps in full, older ones as one-line summaries, trimmed in chunks.
    image_chunk: int = 1
    history_text: int = 4
    text_chunk: int = 4
    summary_steps: int = 8
    coords: Literal["relative", "absolute"] = "relative"
    max_pixels: int = MAX_PIXELS
    # No fixed minimum: settle returns once the screen is quiet (actions/screen.py), and a
    # late change is caught by the freshness check before the next action (issue 16).
    settle_min_s: float = SETTLE_MIN_S
    settle_max_s: float = SETTLE_MAX_S
    # Freshness: after this many actions in a row held back because the screen changed where
    # they act, a person decides (or the run stops when nobody can be asked).
    stale_limit: int = 3
    system_prompt: str | None = None
    # Runaway control: the repeat_limit-th identical action in a row on a screen that has not
    # changed waits for a person; a run ends after max_minutes of its own time (None: never).
    repeat_limit: int = 3
    max_minutes: float | None = 30.0
    # Backend errors marked retryable are retried after these delays before the run gives up
    # (or, in the app, asks whether to retry).
    retry_delays_s: tuple[float, ...] = (1.0, 4.0)
    # A recording shown as an example in the first user message (agent/demo_example.py).
    example: tuple[str | ImagePart, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Settings as recorded in run.json."""
        return {
            "max_steps": self.max_steps,
            "max_invalid": self.max_invalid,
            "history_images": self.history_images,
            "image_chunk": self.image_chunk,
            "history_text": self.history_text,
            "text_chunk": self.text_chunk,
            "summary_steps": self.summary_steps,
            "coords": self.coords,
            "max_pixels": self.max_pixels,
            "settle_min_s": self.settle_min_s,
            "settle_max_s": self.settle_max_s,
            "stale_limit": self.stale_limit,
            "custom_system_prompt": self.system_prompt is not None,
            "repeat_limit": self.repeat_limit,
            "max_minutes": self.max_minutes,
            "retry_delays_s": list(self.retry_delays_s),
            "example": bool(self.example),
        }


# Asked after a backend error that retries did not fix: True to try the request again.
Recover = Callable[[BackendError], bool]
# The focused window (actions.window.FocusProbe.focused), None when unknown.
FocusProbe = Callable[[], FocusedWindow | None]
# Where keys land: the focused window's rectangle on the screen (FocusProbe.rect), or None.
WindowArea = Callable[[], Rect | None]

# A screen "has not changed" when at most this many pixels differ: a blinking caret, a cursor.
UNCHANGED_TOLERANCE_PX = 64


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a run ended."""

    outcome: Outcome
    message: str
    steps: int
    answer: str | None = None
    run_dir: str | None = None

    @property
    def exit_code(self) -> int:
        """0 when the task succeeded or was answered, 1 otherwise."""
        return 0 if self.outcome in SUCCESS_OUTCOMES else 1


def _reply_text(completion: Completion) -> str:
    """The visible part of a reply (thinking removed) to echo back after an invalid output."""
    text = completion.content
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    parts = [text.strip()]
    # Arguments as JSON, not in repr form: a secret in them stays recognisable to the redactor.
    parts += [f"[tool call {c.name}: {_json(c.arguments)}]" for c in completion.tool_calls]
    return echo_reply("\n".join(p for p in parts if p))


def _json(value: object) -> str:
    """A string as it is; anything else as JSON text (what JSON cannot hold as its str)."""
    import json

    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def run_task(
    task: str,
    *,
    backend: Backend,
    screen: ScreenLike,
    executor: ExecutorLike,
    decide: Decide,
    recorder: Recorder,
    settings: LoopSettings = LoopSettings(),
    on_event: OnEvent | None = None,
    stop: threading.Event | None = None,
    rules: RiskRules | None = None,
    focus: FocusProbe | None = None,
    recover: Recover | None = None,
    window_area: WindowArea | None = None,
) -> RunResult:
    """Run one task to its end and record every step; expected failures end as outcomes."""
    run = _Run(task, backend, screen, executor, decide, recorder, settings, on_event, stop)
    run.rules, run.recover = rules or RiskRules.default(), recover
    run.guard = RiskGuard(run.rules)
    run.focus = focus or _unknown_window
    run.window_area = window_area or _unknown_area
    try:
        for index in range(settings.max_steps):
            if run.stop.is_set():
                return run.finish("stopped", stop_reason(run.stop, "stopped by the user"), index)
            over = run.over_time()
            if over is not None:
                return run.finish("max_time", over, index)
            ended = run.step(index)
            if ended is not None:
                return ended
        return run.finish(
            "max_steps", f"reached the limit of {settings.max_steps} steps", settings.max_steps
        )
    except KeyboardInterrupt as exc:
        run.stop.set()
        # A signal's Interrupted names it; a bare KeyboardInterrupt is Ctrl-C.
        return run.abort("stopped", stop_reason(run.stop, str(exc) or "interrupted (Ctrl-C)"))
    except RecordingError as exc:
        return run.recording_failed(exc)
    except Exception as exc:
        run.abort("error", f"internal error: {type(exc).__name__}: {exc}")
        raise
    finally:
        run.saver.shutdown(wait=True)


def _unknown_window() -> FocusedWindow | None:
    """The focus probe when none is given: the focused window is unknown."""
    return None


def _unknown_area() -> Rect | None:
    """Where the focused window is when nobody can tell: unknown."""
    return None


class _Run:
    """The state of one run: history, counters, and the step being recorded."""

    def __init__(
        self,
        task: str,
        backend: Backend,
        screen: ScreenLike,
        executor: ExecutorLike,
        decide: Decide,
        recorder: Recorder,
        settings: LoopSettings,
        on_event: OnEvent | None,
        stop: threading.Event | None,
    ) -> None:
        self.backend, self.screen, self.executor = backend, screen, executor
        self.decide, self.recorder, self.settings = decide, recorder, settings
        self.emit: OnEvent = on_event or (lambda event: None)
        self.stop = stop or threading.Event()
        system = settings.system_prompt or (
            SYSTEM_PROMPT if settings.coords == "relative" else SYSTEM_PROMPT_ABSOLUTE
        )
        self.builder = PromptBuilder(
            task,
            system_prompt=system,
            history_images=settings.history_images,
            image_chunk=settings.image_chunk,
            history_text=settings.history_text,
            text_chunk=settings.text_chunk,
            summary_steps=settings.summary_steps,
            example=settings.example,
        )
        # Screenshots are written on this thread while the model thinks: off the critical path.
        self.saver = ThreadPoolExecutor(1, thread_name_prefix="deskpilot-recorder")
        self.history: list[HistoryEntry] = []
        self.invalid_in_a_row = 0
        self.current: _Step | None = None
        # Set by run_task: the risk rules, where keys go, and who decides after backend errors.
        self.rules = RiskRules.default()
        # What was typed where since each window's last submit: the risk rules' state.
        self.guard = RiskGuard(self.rules)
        self.focus: FocusProbe = _unknown_window
        self.window_area: WindowArea = _unknown_area
        self.stale_in_a_row = 0  # actions held back in a row: the screen changed where they act
        self.recover: Recover | None = None
        self.started = time.monotonic()
        self.waiting_s = 0.0  # time spent waiting for a person: not the run's own time
        # Runaway control: the last executed action, the screen before it, and how many times
        # in a row it ran with the screen unchanged.
        self.last_action: Action | None = None
        self.last_rgb: bytes | None = None
        self.repeats = 0

    def over_time(self) -> str | None:
        """Why the run is out of time (its own time, waiting for people excluded), or None."""
        limit = self.settings.max_minutes
        if limit is None or limit <= 0:
            return None
        used = time.monotonic() - self.started - self.waiting_s
        if used < limit * 60:
            return None
        return f"reached the time limit of {limit:g} minutes"

    def finish(
        self, outcome: Outcome, message: str, steps: int, answer: str | None = None
    ) -> RunResult:
        """Write the outcome into run.json (or say why it could not be) and tell the viewer."""
        # The backend may have changed course mid-run (tools moved into the system prompt, or
        # the conversation back to the older shape).
        described = self.backend.describe()
        self.recorder.info["backend"] = described
        shape = described.get("conversation")
        if isinstance(shape, str):  # the shape the run ended in (a server may refuse native)
            self.recorder.info["conversation"] = shape
        try:
            self.recorder.finish(
                {"status": outcome, "message": message, "answer": answer, "steps": steps}
            )
        except RecordingError as exc:
            message = f"{message} (the outcome is not recorded: {exc})"
        self.emit(RunFinished(steps, outcome, message, answer))
        return RunResult(outcome, message, steps, answer, str(self.recorder.dir))

    def abort(self, outcome: Outcome, message: str) -> RunResult:
        """End mid-step, keeping what the interrupted step already has: no step is lost."""
        step = self.current
        if step is not None and not step.written:
            step.record.error = message
            if step.executing and step.record.execution is None:
                step.record.result = INTERRUPTED  # its input may have gone out, in part
            try:
                step.write()
            except RecordingError as exc:
                message = f"{message}; {exc}"
        return self.finish(outcome, message, 0 if step is None else step.index + 1)

    def recording_failed(self, exc: RecordingError) -> RunResult:
        """The recording cannot be written: end the run; an unrecorded action never runs."""
        step = self.current
        if step is not None and step.executing and not step.written:
            what = "the last action ran but its result could not be recorded"
        else:
            what = "nothing was executed"
        if step is not None:
            step.written = True  # nothing more is written for it
        return self.finish("error", f"{exc}; {what}", 0 if step is None else step.index + 1)

    def step(self, index: int) -> RunResult | None:
        """One step: observe, propose, decide, act, settle, record; a RunResult ends the run."""
        settings, recorder = self.settings, self.recorder
        step = self.current = _Step(index, recorder)
        self.emit(StepStarted(index))

        # Observe.
        frame: Frame = step.timed("capture_s", self.screen.capture)
        obs: Observation = step.timed("encode_s", prepare, frame, max_pixels=settings.max_pixels)
        step.save_later(self.saver, obs.image.png)
        # No path until the file exists: the local worker then takes the bytes instead.
        image = obs.image
        space = (
            CoordinateSpace.relative()
            if settings.coords == "relative"
            else CoordinateSpace.absolute(*obs.model_size)
        )
        step.observe(obs, space)
        self.emit(ScreenObserved(index, image, frame))

        # Propose.
        messages = self.builder.messages(self.history, image)
        tools = [tool_schema(space)]
        step.record.tokens["prompt_estimate"] = estimate_prompt_tokens(messages, tools)

        def on_delta(delta: Delta) -> None:
            self.emit(TextStreamed(index, delta.kind, delta.text))

        completion, failure = step.timed("model_s", self._complete, step, messages, tools, on_delta)
        # From here on the screenshot is on disk; the recorded prompt names its file.
        image = step.saved(image)
        step.record.prompt = recorder.prompt_record(self.builder.messages(self.history, image))
        if isinstance(failure, Cancelled):
            after_error = isinstance(failure, _StoppedAfterError)
            step.record.error = (
                str(failure)
                if after_error
                else stop_reason(self.stop, "generation stopped by the user")
            )
            step.write()
            why = (
                str(failure)
                if after_error
                else stop_reason(self.stop, "stopped by the user during generation")
            )
            return self.finish("stopped", why, index + 1)
        if failure is not None or completion is None:
            step.record.error = f"model backend: {failure}"
            step.write()
            return self.finish("error", f"model backend failed: {failure}", index + 1)
        proposal = parse_completion(completion, space)
        step.propose(completion, proposal)
        action = proposal.action
        # Where keys would go now: read only for keys and typing (one X round trip).
        window = self.focus() if isinstance(action, Type | Key) else None
        risk = (
            self.guard.assess(action, window=window, thinking=proposal.thinking)
            if action is not None
            else None
        )
        step.record.risk = risk
        self.emit(ActionProposed(index, proposal, space, frame, risk))

        if action is None:
            self._forget_last()
            return self._invalid(step, image, completion, proposal)
        self.invalid_in_a_row = 0
        assert risk is not None

        # Final actions touch nothing, so they need no approval.
        if isinstance(action, Terminate | Answer):
            step.decide(Decision("approve", by="final"))
            step.finish_result("Task ended.")
            if isinstance(action, Answer):
                return self.finish("answered", "the model answered", index + 1, action.text)
            if action.status == "success":
                return self.finish("success", "the model reports success", index + 1)
            return self.finish("failure", "the model reports failure", index + 1)

        reply = format_tool_call(action)
        # Blocked by the user's rules: never executed, in any mode, and nobody is asked.
        if risk.level == "blocked":
            return self._refuse(step, image, reply, action, risk)

        # Decide: nothing executes before its decision.
        repeats = self._repeats(action, frame)
        attention = None
        if repeats >= max(1, self.settings.repeat_limit):
            attention = f"the same action {repeats} times in a row and the screen has not changed"
            step.record.runaway = RunawayRecord(repeats, attention)
        request = ApprovalRequest(index, action, proposal.thinking, space, risk=risk)
        if attention is not None:
            request = replace(request, attention=attention)
        t_decide = time.monotonic()
        decision: Decision = step.timed("decide_s", self.decide, request)
        if decision.by not in UNATTENDED:
            self.waiting_s += time.monotonic() - t_decide
        step.decide(decision)
        self.emit(DecisionMade(index, decision, risk))
        if decision.kind == "stop" or self.stop.is_set():
            by_policy = decision.kind == "stop" and decision.by != "user" and decision.note
            step.finish_result(
                f"Stopped before execution: {decision.note}."
                if by_policy
                else "Stopped by the user before execution."
            )
            return self.finish(
                "stopped",
                str(decision.note) if by_policy else stop_reason(self.stop, "stopped by the user"),
                index + 1,
            )
        if decision.kind in ("skip", "reject"):
            self._forget_last()
            if decision.by == "user":
                verb = "skipped" if decision.kind == "skip" else "rejected"
                result = f"The user {verb} this action; nothing was executed."
                if decision.note:
                    result += f" The user says: {decision.note}"
            else:
                result = f"Refused, nothing was executed: {decision.note or decision.by}."
            step.finish_result(result)
            self.history.append(HistoryEntry(image, reply, result, describe(action)))
            return None
        to_run = decision.action if decision.kind == "edit" and decision.action else action
        # Judged again where keys go now (focus can move while a decision is made): blocked
        # stays blocked in every mode, a user's edit included; what a policy approved as safe
        # and is risky now does not run.
        window = self.focus() if isinstance(to_run, Type | Key) else None
        now = self.guard.assess(to_run, window=window, thinking=proposal.thinking)
        if now.level == "blocked":
            return self._refuse(step, image, reply, to_run, now)
        if (
            to_run is action
            and SEVERITY[now.level] > SEVERITY[risk.level]
            and decision.by in APPROVAL_MODES
            and asks_person(decision.by, replace(request, risk=now))
        ):
            return self._refuse_changed(step, image, reply, to_run, now)

        # Fresh screen (issue 16): held back, not executed, if the screen changed where to_run
        # acts since `frame` was taken; after stale_limit in a row a person decides.
        held, ended = self._hold_if_stale(step, image, reply, to_run, space, frame, request)
        if held:
            return ended

        # Record before acting: the step as decided, and what is about to run, are in the OS
        # before any input is sent, so a kill at any instant leaves no executed action
        # unrecorded. When that write fails (RecordingError), nothing runs.
        # A signal from here on only sets the stop: the action then lets go by itself between
        # two pieces of input (or does not start), and its result is recorded before the run
        # stops.
        with deferred():
            step.record.to_run = action_arguments(to_run)
            step.write_executing()

            # Act.
            try:
                outcome: ExecResult = step.timed(
                    "execute_s",
                    self.executor.execute,
                    to_run,
                    space=space,
                    monitor=frame.monitor,
                    cancel=self.stop,
                )
            except FailSafeTriggered:
                self.guard.executed(to_run, window=window, complete=False)
                step.execution(ExecutionRecord(False, "fail-safe: pointer in a screen corner"))
                step.finish_result("Stopped: the user triggered the fail-safe.")
                return self.finish(
                    "stopped", "pyautogui fail-safe: the pointer was moved to a corner", index + 1
                )
            step.execution(ExecutionRecord.of(outcome, to_run))
            self.guard.executed(to_run, window=window, complete=outcome.ok)
        if not outcome.ok:
            result = f"Execution failed: {outcome.error}"
        elif decision.kind == "edit":
            result = f"The user changed your action to {describe(to_run)}; it was executed."
        else:
            result = f"Executed {describe(to_run)}."
        self.emit(ActionExecuted(index, outcome.ok, outcome.error))

        # Settle: wait until the screen stops changing (bounded).
        step.record.timings["settle_s"] = round(
            self.screen.wait_until_stable(
                min_s=settings.settle_min_s, max_s=settings.settle_max_s, cancel=self.stop
            ),
            4,
        )
        step.finish_result(result)
        self.history.append(HistoryEntry(image, reply, result, describe(to_run)))
        # Runaway bookkeeping: an approved pause starts counting again from one.
        self.last_action = to_run
        self.last_rgb = frame.rgb
        self.repeats = 1 if attention is not None else repeats
        return None

    def _hold_if_stale(
        self,
        step: _Step,
        image: ImagePart,
        reply: str,
        action: Action,
        space: CoordinateSpace,
        frame: Frame,
        request: ApprovalRequest,
    ) -> tuple[bool, RunResult | None]:
        """Compare the live screen with `frame` where `action` acts: (held back, run result)."""
        window = self.window_area() if isinstance(action, Key | Type | Scroll | HScroll) else None
        areas = action_areas(action, space, frame.monitor, window)
        if not areas:
            self.stale_in_a_row = 0
            return False, None
        t = time.monotonic()
        live: Frame = self.screen.capture()
        changes = compare(frame, live, areas)
        stale = stale_changes(changes)
        if stale:  # look again once the screen is quiet: a passing repaint is no change
            self.screen.wait_until_stable(min_s=0.0, max_s=CONFIRM_MAX_S, cancel=self.stop)
            live = self.screen.capture()
            changes = compare(frame, live, areas)
            stale = stale_changes(changes)
        step.record.timings["fresh_s"] = round(time.monotonic() - t, 4)
        fresh = FreshnessRecord(bool(stale), [c.to_json() for c in changes])
        step.record.freshness = fresh
        if not stale:
            self.stale_in_a_row = 0
            return False, None
        self.stale_in_a_row += 1
        where = describe_changes(stale)
        # The live picture beside the step's own screenshot: both are in the recording.
        png = encode_png(live.rgb, live.width, live.height)
        shot = self.recorder.save_image(f"step-{step.index:04d}-live.png", png)
        fresh = step.record.freshness = replace(fresh, screenshot=shot)
        self.emit(ScreenStale(step.index, live, where, self.stale_in_a_row))
        if self.stale_in_a_row >= max(1, self.settings.stale_limit):
            n = self.stale_in_a_row
            attention = f"the screen changed before execution {n} times in a row ({where})"
            t_decide = time.monotonic()
            decision = self.decide(replace(request, action=action, attention=attention))
            if decision.by not in UNATTENDED:
                self.waiting_s += time.monotonic() - t_decide
            step.record.freshness = replace(fresh, decision=DecisionRecord.of(decision))
            if decision.kind == "stop" or self.stop.is_set():
                why = decision.note or "stopped by the user"
                step.execution(ExecutionRecord(False, attention, executed=False))
                step.finish_result(f"Stopped before execution: {why}.")
                return True, self.finish("stopped", f"{attention}; {why}", step.index + 1)
            if decision.kind == "approve":
                self.stale_in_a_row = 0  # a person looked at the live screen and let it run
                return False, None
        self._forget_last()
        result = (
            f"Not executed: the screen changed before execution ({where}). "
            "Look at the new screenshot and decide again."
        )
        step.execution(ExecutionRecord(False, "screen changed before execution", executed=False))
        step.finish_result(result)
        self.history.append(HistoryEntry(image, reply, result, describe(action)))
        return True, None

    def _complete(
        self,
        step: _Step,
        messages: list[Any],
        tools: list[dict[str, Any]],
        on_delta: Callable[[Delta], None],
    ) -> tuple[Completion | None, BackendError | None]:
        """Ask the model; retry retryable errors, then ask `recover`; never raises BackendError."""
        attempt = 0
        while True:
            try:
                completion: Completion = self.backend.complete(
                    messages, tools, on_delta=on_delta, cancel=self.stop
                )
                return completion, None
            except Cancelled as exc:
                return None, exc
            except BackendError as exc:
                retryable = bool(getattr(exc, "retryable", False))
                step.record.backend_errors.append(
                    BackendErrorRecord(str(exc), retryable, now_iso())
                )
                delays = self.settings.retry_delays_s
                if retryable and attempt < len(delays):
                    delay = delays[attempt]
                    attempt += 1
                    self.emit(BackendFailed(step.index, str(exc), delay, attempt))
                    if self.stop.wait(delay):
                        return None, _StoppedAfterError("stopped by the user before a retry")
                    continue
                self.emit(BackendFailed(step.index, str(exc)))
                if self.recover is None:
                    return None, exc
                t = time.monotonic()
                again = self.recover(exc)
                self.waiting_s += time.monotonic() - t
                if self.stop.is_set():
                    why = f"stopped by the user after a backend error ({exc})"
                    return None, _StoppedAfterError(why)
                if not again:
                    return None, exc
                attempt = 0

    def _repeats(self, action: Action, frame: Frame) -> int:
        """How many times in a row this action would now run on a screen that has not changed."""
        if self.last_action is None or self.last_rgb is None:
            return 1
        if action_arguments(action) != action_arguments(self.last_action):
            return 1
        if frame_difference(self.last_rgb, frame.rgb, bytes_per_pixel=3) > UNCHANGED_TOLERANCE_PX:
            return 1
        return self.repeats + 1

    def _forget_last(self) -> None:
        """Nothing ran this step: the next action is not "right after" the previous one."""
        self.last_action = None
        self.last_rgb = None
        self.repeats = 0

    def _refuse(
        self, step: _Step, image: ImagePart, reply: str, action: Action, risk: Risk
    ) -> RunResult | None:
        """A blocked action: recorded with its reason, reported to the model, never executed."""
        self._forget_last()
        decision = Decision("reject", by="rules", note=risk.reason)
        step.decide(decision)
        step.record.risk = risk
        self.emit(DecisionMade(step.index, decision, risk))
        result = (
            f"Blocked by the user's rules, nothing was executed: {risk.reason}. "
            "Do not try it again; find another way or end the task."
        )
        step.finish_result(result)
        self.history.append(HistoryEntry(image, reply, result, describe(action)))
        return None

    def _refuse_changed(
        self, step: _Step, image: ImagePart, reply: str, action: Action, risk: Risk
    ) -> RunResult | None:
        """Approved by policy, but risky where keys go now: not executed, the model is told."""
        self._forget_last()
        decision = Decision("reject", by="rules", note=risk.reason)
        step.decide(decision)
        step.record.risk = risk
        self.emit(DecisionMade(step.index, decision, risk))
        result = f"Refused, nothing was executed: judged again before running, {risk.reason}."
        step.finish_result(result)
        self.history.append(HistoryEntry(image, reply, result, describe(action)))
        return None

    def _invalid(
        self, step: _Step, image: ImagePart, completion: Completion, proposal: Proposal
    ) -> RunResult | None:
        """Bad output: execute nothing, tell the model why, give up after too many in a row."""
        self.invalid_in_a_row += 1
        result = f"Invalid output, nothing was executed: {proposal.error}"
        step.finish_result(result)
        self.history.append(HistoryEntry(image, _reply_text(completion), result, "invalid output"))
        self.emit(OutputInvalid(step.index, str(proposal.error)))
        if self.invalid_in_a_row >= self.settings.max_invalid:
            return self.finish(
                "invalid_output",
                f"{self.invalid_in_a_row} invalid model outputs in a row; last: {proposal.error}",
                step.index + 1,
            )
        return None


class _StoppedAfterError(Cancelled):
    """A stop while waiting to retry, or while the user chose how to recover from an error."""


class _Step:
    """Accumulates one step's record and writes it once the step is complete."""

    def __init__(self, index: int, recorder: Recorder) -> None:
        self.index = index
        self.recorder = recorder
        self.t0 = time.monotonic()
        self.record = StepRecord(index)
        self.written = False
        self.executing = False  # the "executing" line is on disk: the action may run or have run
        self.saving: Future[tuple[str, float]] | None = None

    def save_later(self, pool: ThreadPoolExecutor, png: bytes) -> None:
        """Start writing the screenshot on the recorder thread."""

        def save() -> tuple[str, float]:
            t = time.monotonic()
            return self.recorder.save_screenshot(self.index, png), time.monotonic() - t

        self.saving = pool.submit(save)

    def saved(self, image: ImagePart) -> ImagePart:
        """Wait for the screenshot file (atomic, so complete) and name it in the image."""
        if self.saving is None:
            return image
        t = time.monotonic()
        shot, took = self.saving.result()
        self.record.screenshot = shot
        self.record.timings["save_s"] = round(took, 4)  # on the recorder thread
        self.record.timings["save_wait_s"] = round(time.monotonic() - t, 4)
        return replace(image, path=str(self.recorder.dir / shot))

    def timed(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call fn and record its duration under timings[name]."""
        t = time.monotonic()
        try:
            return fn(*args, **kwargs)
        finally:
            self.record.timings[name] = round(time.monotonic() - t, 4)

    def observe(self, obs: Observation, space: CoordinateSpace) -> None:
        """Record what the model is shown (the screenshot's file once it is written)."""
        self.record.screen = ScreenRecord.of(obs, space)
        self.record.tokens["visual"] = obs.tokens

    def propose(self, completion: Completion, proposal: Proposal) -> None:
        """Record the model's raw answer and what the parser made of it."""
        record = self.record
        record.raw_output = completion.content
        record.thinking = proposal.thinking
        record.tool_calls = list(completion.tool_calls)
        record.finish_reason = completion.finish_reason
        # The server refused `tools` (llama.cpp without --jinja): they went into the prompt.
        record.tools_in_prompt = completion.tools_in_prompt
        record.conversation = completion.conversation
        record.tokens.update(
            {"prompt": completion.prompt_tokens, "completion": completion.completion_tokens}
        )
        record.timings["first_token_s"] = completion.first_token_s
        if proposal.action is not None:
            record.action = action_arguments(proposal.action)
        record.parse_error = proposal.error

    def decide(self, decision: Decision) -> None:
        """Record the decision."""
        self.record.decision = DecisionRecord.of(decision)

    def execution(self, execution: ExecutionRecord) -> None:
        """Record what execution did."""
        self.record.execution = execution

    def finish_result(self, result: str) -> None:
        """Record the result fed back to the model and write the step."""
        self.record.result = result
        self.write()

    def write_executing(self) -> None:
        """Append the step as decided, before its action runs (RecordingError: do not run it)."""
        if self.saving is not None and self.record.screenshot is None:
            self.saved(ImagePart(b"", 0, 0))
        self.recorder.write_step(replace(self.record, phase="executing"))
        self.executing = True

    def write(self) -> None:
        """Append the complete step to steps.jsonl (once); readers keep its last line."""
        if self.written:
            return
        # Crash safety: the line names a screenshot only once that file exists.
        if self.saving is not None and self.record.screenshot is None:
            self.saved(ImagePart(b"", 0, 0))
        self.record.phase = "done"
        self.record.ended_at = now_iso()
        self.record.timings["total_s"] = round(time.monotonic() - self.t0, 4)
        self.recorder.write_step(self.record)
        self.written = True
