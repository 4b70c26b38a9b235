"""Runs agent.loop.run_task on a worker thread and re-emits what it does as Qt signals.

The loop never touches Qt widgets: its events arrive as queued signals on the GUI thread, and
its `decide` and `recover` calls block the loop thread (never the GUI thread) until the user
decides. The loop gets a CurrentBackend, so Restart worker after a failure applies to the run.
"""

from __future__ import annotations

import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from agent.approval import (
    ApprovalMode,
    ApprovalRequest,
    BreakpointDecider,
    Breakpoints,
    Decision,
    asks_person,
    with_breakpoints,
)
from agent.events import Event, ScreenObserved, ScreenStale
from agent.interrupts import StopEvent
from ui.guard import GuardedExecutor, MaskedScreen, Rect
from ui.recovery import Choice, CurrentBackend, RecoveryPrompt
from ui.settings import AppSettings

if TYPE_CHECKING:
    from actions.window import PastOwnWindows
    from agent.risk import RiskRules


# The app's approval modes as the runner names them ("step" is the runner's "ask").
RUNNER_MODES: dict[str, ApprovalMode] = {"step": "ask", "guarded": "guarded", "auto": "auto"}


class GuiApprover:
    """The loop's Decide: asks the GUI when the mode says so, else approves by policy.

    step asks for everything, guarded for risky actions and runaway pauses, auto only for
    runaway pauses (agent.approval.policy's rule). Blocked actions never get here: the loop
    refuses them. Breakpoints ask the GUI from a breakpoint on, for every action, until Continue.
    """

    def __init__(
        self,
        mode: str,
        stop: threading.Event,
        ask: Callable[[ApprovalRequest], None],
        aside: Callable[[ApprovalRequest], None] | None = None,
        breakpoints: Breakpoints | None = None,
    ) -> None:
        self.mode = mode
        self.paused = False
        self._stop = stop
        self._ask = ask
        self._aside = aside
        self._answers: queue.Queue[Decision] = queue.Queue()
        # The same policy as the terminal: shared, so both front ends step alike.
        self._decide = with_breakpoints(
            lambda r: self._wait(r, self.needs_user(r)),
            lambda r: self._wait(r, True),
            breakpoints or Breakpoints(),
        )

    @property
    def stepping(self) -> bool:
        """Whether a breakpoint was hit and the user has not pressed Continue yet."""
        return isinstance(self._decide, BreakpointDecider) and self._decide.stepping

    def needs_user(self, request: ApprovalRequest) -> bool:
        """Whether this action waits for a person: Pause, or the runner's rule for the mode."""
        return self.paused or asks_person(RUNNER_MODES[self.mode], request)

    def __call__(self, request: ApprovalRequest) -> Decision:
        """Called on the loop thread; blocks it until a decision or a stop."""
        return self._decide(request)

    def _wait(self, request: ApprovalRequest, ask_user: bool) -> Decision:
        """Ask the GUI (or, when automatic, wait for it to step aside) and wait for the answer."""
        automatic = not ask_user
        if automatic and self._aside is None:
            return Decision("approve", by=RUNNER_MODES[self.mode])
        while not self._answers.empty():  # an answer to an earlier request is stale
            self._answers.get_nowait()
        # Even an automatic approval waits for the GUI to step its window aside (resume()).
        (self._aside if automatic and self._aside is not None else self._ask)(request)
        while True:
            try:
                return self._answers.get(timeout=0.05)
            except queue.Empty:
                if self._stop.is_set():
                    return Decision("stop", note="stopped while waiting for a decision")

    def answer(self, decision: Decision) -> None:
        """The GUI's decision (any thread)."""
        self._answers.put(decision)

    def resume(self) -> None:
        """The GUI stepped aside: let an automatic approval through."""
        self._answers.put(Decision("approve", by=RUNNER_MODES[self.mode]))


def frame_image(frame: Any) -> QImage:
    """A loop Frame as a QImage (copied: the frame's bytes are not kept alive by Qt)."""
    img = QImage(frame.rgb, frame.width, frame.height, 3 * frame.width, QImage.Format.Format_RGB888)
    return img.copy()


def parse_secrets(text: str) -> list[str]:
    """The secrets typed into the Secrets field: one a line or comma-separated.

    Each whole line counts too, so a secret that itself contains a comma is still redacted.
    """
    found: list[str] = []
    for line in re.split(r"[\r\n]+", text):
        line = line.strip()
        if not line:
            continue
        found.append(line)
        found += [part.strip() for part in line.split(",") if part.strip()]
    return list(dict.fromkeys(found))


def load_risk_rules(settings: AppSettings) -> RiskRules:
    """The rules for a run: the settings' file, else risk.toml in the config folder, else defaults.

    Raises agent.risk.RiskConfigError with a one-line message naming the file and the problem.
    """
    from agent.risk import load_rules

    path = settings.risk_rules.strip()
    return load_rules(Path(os.path.expanduser(path)) if path else None)


def _backend_key(s: AppSettings) -> tuple[str, ...]:
    if s.backend == "openai":
        return ("openai", s.endpoint, s.endpoint_model)
    return ("local", s.local_model, s.device)


class RunController(QObject):
    """Owns the backend and the run thread; everything it reports arrives as a signal."""

    loop_event = Signal(object)  # agent.events.Event
    observed = Signal(int, QImage, object)  # step, screenshot, Monitor
    approval_requested = Signal(object)  # ApprovalRequest
    aside_requested = Signal(object)  # ApprovalRequest approved by policy; call resume()
    progress = Signal(str, object)  # stage, fraction or None
    worker_state = Signal(str)  # one line: loading, ready (device, memory), error + what to do
    finished = Signal(object)  # RunResult, or None when the run never started
    failed = Signal(str)  # a one-line reason the run could not start or broke
    # Retries did not help: the GUI offers Retry / Restart worker / Stop; call recover_choice().
    recover_requested = Signal(str)  # one line: what failed
    desktop_ready = Signal(str)  # a private desktop's X display once it runs; "" once it ended

    def __init__(self, excluded: Callable[[], list[Rect]] = lambda: []) -> None:
        super().__init__()
        self.excluded = excluded
        self.backend: Any = None
        self._backend_key: tuple[str, ...] | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.stop_event = StopEvent()
        self._ended = threading.Event()
        self.approver: GuiApprover | None = None
        self.recovery: RecoveryPrompt | None = None
        self.executor: Any = None
        self._keys_go: PastOwnWindows | None = None
        # LoopSettings fields to override (tests and benchmarks: short retry delays).
        self.loop_overrides: dict[str, Any] = {}

    @property
    def running(self) -> bool:
        """Whether a run (or a backend load) is in progress (a run that reported its end is not)."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return False
        if self._ended.is_set():
            # `finished` is queued before the thread returns: a Start clicked in between must
            # not be told "a run is already in progress".
            thread.join(timeout=2.0)
            return thread.is_alive()
        return True

    def _finish(self, result: Any) -> None:
        """Report the end of a run (the run thread's last act)."""
        self._ended.set()
        self.finished.emit(result)

    def start(
        self,
        task: str,
        settings: AppSettings,
        *,
        rules: RiskRules | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        """Start a run on its own thread; returns at once.

        rules: None loads them from the settings (a bad file is reported through `failed`);
        secrets: text kept out of the recording (never saved anywhere).
        """
        if self.running:
            raise RuntimeError("a run is already in progress")
        self.stop_event = StopEvent()
        self.recovery = RecoveryPrompt(
            self.stop_event,
            self.recover_requested.emit,
            lambda: self._restart_for_run(settings),
        )
        self.approver = GuiApprover(
            settings.approval,
            self.stop_event,
            self.approval_requested.emit,
            self.aside_requested.emit,
            # ValueError for a bad field: the window checks them before it calls start().
            Breakpoints.parse(settings.break_at, settings.break_on),
        )
        self._ended = threading.Event()
        self._thread = threading.Thread(
            target=self._run,
            args=(task, settings, rules, list(secrets)),
            name="deskpilot-run",
            daemon=True,
        )
        self._thread.start()

    def recover_choice(self, choice: Choice) -> None:
        """Hand the user's answer to a backend failure (retry, restart, stop) to the loop."""
        if self.recovery is not None:
            self.recovery.answer(choice)

    def decide(self, decision: Decision) -> None:
        """Hand the user's decision to the waiting loop thread."""
        if self.approver is not None:
            self.approver.answer(decision)

    def resume(self) -> None:
        """Let a policy-approved action run (the window has stepped aside)."""
        if self.approver is not None:
            self.approver.resume()

    def set_paused(self, paused: bool) -> None:
        """Paused: every next action waits for the user, whatever the mode."""
        if self.approver is not None:
            self.approver.paused = paused

    def stop(self, reason: str | None = None) -> None:
        """Kill switch: cancel generation, end the loop, release held keys and buttons.

        reason: why, when not the user (a signal: "interrupted by SIGTERM ..."); the run's
        outcome says it.
        """
        self.stop_event.stop(reason)
        if self.approver is not None:  # wake a waiting decision now, not at its next poll
            self.approver.answer(Decision("stop", note="stopped while waiting for a decision"))
        executor = self.executor
        if executor is not None:
            # X round trips: off the GUI thread so a stop never stalls the window.
            threading.Thread(target=_release, args=(executor,), daemon=True).start()

    def restart_backend(self, settings: AppSettings) -> None:
        """Close the backend and build (and load) it again, on a thread."""
        if self.running:
            self.failed.emit("stop the run before restarting the worker")
            return
        self.stop_event = StopEvent()
        self._ended = threading.Event()
        self._thread = threading.Thread(
            target=self._restart, args=(settings,), name="deskpilot-restart", daemon=True
        )
        self._thread.start()

    def shutdown(self) -> None:
        """Stop any run and close the backend (app exit)."""
        self.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._close_backend()

    # -- loop thread ----------------------------------------------------------------------

    def _close_backend(self) -> None:
        with self._lock:
            backend, self.backend, self._backend_key = self.backend, None, None
        if backend is not None:
            backend.close()

    def _restart_for_run(self, settings: AppSettings) -> None:
        """Restart worker from the recovery bar: on the loop thread, mid-run; raises on failure."""
        self._close_backend()
        self.worker_state.emit("restarting the model backend")
        try:
            self._ensure_backend(settings)
        except Exception as exc:
            self.worker_state.emit(f"error: {exc}")
            raise

    def _restart(self, settings: AppSettings) -> None:
        self._close_backend()
        try:
            self._ensure_backend(settings)
        except Exception as exc:
            self.worker_state.emit(f"error: {exc}")
            self.failed.emit(str(exc))

    def _ensure_backend(self, settings: AppSettings) -> Any:
        """The warm backend for these settings, built (and loaded) if needed."""
        from agent.backends.factory import build_backend

        key = _backend_key(settings)
        with self._lock:
            if self.backend is not None and self._backend_key == key:
                return self.backend
        self._close_backend()
        self.worker_state.emit("starting the model backend")
        backend = build_backend(
            settings.backend,
            endpoint=settings.endpoint,
            model=(
                settings.endpoint_model if settings.backend == "openai" else settings.local_model
            )
            or None,
            device=settings.device or None,
            on_progress=self.progress.emit,
        )
        if settings.backend == "local":
            try:
                backend.start(cancel=self.stop_event)
            except BaseException:
                backend.close()
                raise
        with self._lock:
            self.backend, self._backend_key = backend, key
        state = describe_backend(backend)
        if settings.backend == "openai":
            from agent.backends.factory import endpoint_warning

            warning = endpoint_warning(settings.endpoint)
            if warning:  # screenshots would cross the network in the clear: say so every time
                state = f"{state}; warning: {warning}"
        self.worker_state.emit(state)
        return backend

    def _on_event(self, event: Event) -> None:
        if isinstance(event, ScreenObserved) and self._keys_go is not None:
            # Before the window comes back: where keys go while the app is out of the way.
            self._keys_go.remember()
        # A stale action's live screen is shown too: the person sees it before anything runs.
        if isinstance(event, ScreenObserved | ScreenStale):
            # Converted here, on the loop thread, so the GUI thread only draws.
            self.observed.emit(event.step, frame_image(event.frame), event.frame.monitor)
        self.loop_event.emit(event)

    def _run(
        self, task: str, settings: AppSettings, rules: RiskRules | None, secrets: list[str]
    ) -> None:
        from actions.private_desktop import DesktopError
        from agent.risk import RiskConfigError

        assert self.approver is not None and self.recovery is not None
        try:
            if rules is None:
                rules = load_risk_rules(settings)
        except RiskConfigError as exc:
            self.failed.emit(f"risk rules: {exc}")
            self._finish(None)
            return
        try:
            desktop = start_desktop(settings)
        except (DesktopError, ValueError, OSError) as exc:
            self.failed.emit(f"private desktop: {exc}")
            self._finish(None)
            return
        if desktop is not None:
            self.desktop_ready.emit(desktop.display)
        try:
            self._run_on(task, settings, rules, secrets, desktop)
        finally:
            if desktop is not None:
                self.desktop_ready.emit("")
                desktop.close()

    def _run_on(
        self,
        task: str,
        settings: AppSettings,
        rules: RiskRules,
        secrets: list[str],
        desktop: Any,
    ) -> None:
        """The run on the user's display (desktop None) or on a private desktop."""
        from actions.executor import Executor
        from actions.screen import DisplayError, Screen
        from actions.window import FocusProbe, PastOwnWindows
        from agent.backends.base import BackendError
        from agent.loop import LoopSettings, run_task
        from agent.recording import Recorder, run_info
        from agent.secrets import Redactor

        assert self.approver is not None and self.recovery is not None
        display = desktop.display if desktop is not None else None
        # The control bar lives on the user's display: nothing to mask on a private one.
        excluded = self.excluded if desktop is None else (lambda: [])
        try:
            screen = Screen(settings.monitor or None, display=display)
            backend = self._ensure_backend(settings)
        except (DisplayError, BackendError, ValueError, OSError) as exc:
            hint = "" if not isinstance(exc, BackendError) else "; check the backend settings"
            self.worker_state.emit(f"error: {exc}{hint}")
            self.failed.emit(str(exc))
            self._finish(None)
            return
        loop_settings = LoopSettings(
            max_steps=max(1, settings.max_steps),
            repeat_limit=max(2, settings.repeat_limit),
            max_minutes=settings.max_minutes if settings.max_minutes > 0 else None,
            **self.loop_overrides,
        )
        runs_dir = Path(settings.runs_dir) if settings.runs_dir else _default_runs_dir()
        try:
            recorder = Recorder(
                runs_dir,
                run_info(
                    task,
                    backend=backend,
                    approval=settings.approval,
                    monitor=screen.monitor,
                    settings=loop_settings.to_json(),
                    app=True,
                    risk_rules=rules.summary,
                    **desktop_info(settings, desktop),
                ),
                # The user's secrets; the recorder adds the API key's value and what it detects.
                redactor=Redactor(secrets),
            )
        except OSError as exc:
            self.failed.emit(f"cannot write recordings to {runs_dir}: {exc}")
            self._finish(None)
            return
        executor = Executor(display=display)
        self.executor = executor
        focus = FocusProbe(display)
        keys_go = self._keys_go = PastOwnWindows(focus)
        result = None
        try:
            result = run_task(
                task,
                # Forwards to self.backend: Restart worker during the run swaps what it uses.
                # (cast: its `model` is a read-only property, the protocol names an attribute)
                backend=cast(Any, CurrentBackend(lambda: self.backend)),
                screen=MaskedScreen(screen, excluded),
                # Executor's ExecResult is a dataclass; the loop's protocol names a property.
                executor=cast(Any, GuardedExecutor(executor, excluded)),
                decide=self.approver,
                recorder=recorder,
                settings=loop_settings,
                on_event=self._on_event,
                stop=self.stop_event,
                rules=rules,
                focus=keys_go,
                window_area=lambda: focus.rect(keys_go()),
                recover=self.recovery,
            )
        except Exception as exc:  # a bug or broken infrastructure: show it, keep the app alive
            # Redacted like the recording: what the run learnt is secret stays off the screen.
            line = recorder.redactor.redact_text(f"{type(exc).__name__}: {exc}")
            self.failed.emit(f"internal error: {line}")
        finally:
            if result is None or result.outcome in ("stopped", "error"):
                _release(executor)
            executor.close()
            focus.close()
            self.executor = None
            current = self.backend
            if settings.backend == "local" and (
                current is None or getattr(current, "pid", 0) is None
            ):
                self.worker_state.emit("error: the worker process is gone; press Restart worker")
        self._finish(result)


def start_desktop(settings: AppSettings) -> Any:
    """The private desktop the settings ask for (started now), or None for the user's own."""
    from actions.private_desktop import PrivateDesktop, choose_mode, parse_size

    mode = choose_mode(settings.desktop)
    if mode is None:
        return None
    apps = [settings.desktop_open] if settings.desktop_open.strip() else []
    # Started on the run's thread, which outlives the desktop (the parent-death signal
    # follows the thread that started it).
    return PrivateDesktop.start(mode, parse_size(settings.desktop_size), apps=apps)


def desktop_info(settings: AppSettings, desktop: Any) -> dict[str, Any]:
    """run.json's `desktop`, as the CLI writes it; nothing for the user's own desktop."""
    from actions.private_desktop import recorded

    if desktop is None:
        return {}
    opened = [settings.desktop_open] if settings.desktop_open.strip() else []
    return recorded(settings.desktop, settings.desktop_size, opened)


def _release(executor: Any) -> None:
    """Release held input; must never raise during a stop."""
    try:
        executor.release_all()
    except Exception:  # best effort: nothing more can be done about a broken display here
        pass


def _default_runs_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("deskpilot")) / "runs"


def describe_backend(backend: Any) -> str:
    """One line about a ready backend: kind, model, device and memory when the worker says."""
    facts = backend.describe()
    if facts.get("kind") != "local":
        return f"ready: {facts.get('model') or backend.model} at {facts.get('endpoint', '?')}"
    worker = facts.get("worker") or {}
    parts = [f"ready: {backend.model}", f"device {worker.get('device', facts.get('device'))}"]
    params, dtype = worker.get("parameters"), str(worker.get("dtype", ""))
    if isinstance(params, int):
        size = {"float32": 4, "float16": 2, "bfloat16": 2}.get(dtype, 2)
        parts.append(f"weights ~{params * size / 1e9:.1f} GB ({dtype or '?'})")
    ready = facts.get("ready_s")
    if isinstance(ready, int | float):
        parts.append(f"loaded in {ready:.1f} s")
    return ", ".join(parts)


def now() -> float:
    """Monotonic seconds (one name for the GUI's timers)."""
    return time.monotonic()
