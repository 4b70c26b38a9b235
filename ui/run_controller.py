"""Runs agent.loop.run_task on a worker thread and re-emits what it does as Qt signals.

The loop never touches Qt widgets: its events arrive as queued signals on the GUI thread, and
its `decide` and `recover` calls block the loop thread (never the GUI thread) until the user
decides. The loop gets a CurrentBackend, so Restart worker after a failure applies to the run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
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
from agent.config import RunConfig
from agent.events import Event, ScreenObserved, ScreenStale
from agent.interrupts import StopEvent
from agent.question import Question
from ui.guard import GuardedExecutor, MaskedScreen, Rect
from ui.recovery import Choice, CurrentBackend, RecoveryPrompt

if TYPE_CHECKING:
    from actions.desktop import Desktop
    from actions.window import PastOwnWindows


class GuiApprover:
    """The loop's Decide: asks the GUI when the mode says so, else approves by policy.

    step asks for everything, guarded for risky actions and runaway pauses, auto only for
    runaway pauses (agent.approval.policy's rule). Blocked actions never get here: the loop
    refuses them. Breakpoints ask the GUI from a breakpoint on, for every action, until Continue.
    """

    def __init__(
        self,
        mode: ApprovalMode,
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
        self._question: Question[Decision] = Question(
            stop, lambda: Decision("stop", note="stopped while waiting for a decision")
        )
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
        return self.paused or asks_person(self.mode, request)

    def __call__(self, request: ApprovalRequest) -> Decision:
        """Called on the loop thread; blocks it until a decision or a stop."""
        return self._decide(request)

    def _wait(self, request: ApprovalRequest, ask_user: bool) -> Decision:
        """Ask the GUI (or, when automatic, wait for it to step aside) and wait for the answer."""
        automatic = not ask_user
        if automatic and self._aside is None:
            return Decision("approve", by=self.mode)
        # Even an automatic approval waits for the GUI to step its window aside (resume()).
        post = self._aside if automatic and self._aside is not None else self._ask
        return self._question.ask(lambda: post(request))

    def answer(self, decision: Decision) -> None:
        """The GUI's decision (any thread)."""
        self._question.answer(decision)

    def resume(self) -> None:
        """The GUI stepped aside: let an automatic approval through."""
        self._question.answer(Decision("approve", by=self.mode))


def frame_image(frame: Any) -> QImage:
    """A loop Frame as a QImage (copied: the frame's bytes are not kept alive by Qt)."""
    img = QImage(frame.rgb, frame.width, frame.height, 3 * frame.width, QImage.Format.Format_RGB888)
    return img.copy()


def _backend_key(c: RunConfig) -> tuple[object, ...]:
    """What makes a warm backend reusable: everything that goes into building it."""
    from agent.config import BACKEND_OPTIONS

    return tuple(getattr(c, name) for name in BACKEND_OPTIONS)


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

    def __init__(
        self,
        excluded: Callable[[], list[Rect]] = lambda: [],
        hide: Callable[[], AbstractContextManager[None]] | None = None,
    ) -> None:
        super().__init__()
        self.excluded = excluded
        # Wayland: the app's windows leave the screen for each capture (ui/wayland.py).
        self.hide = hide or nullcontext
        self.backend: Any = None
        self._backend_key: tuple[object, ...] | None = None
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
        # `finished` is the thread's last act: once it is sent the run is over, even if the
        # thread has not returned yet (no join here: this is asked on the GUI thread).
        return not self._ended.is_set()

    def _finish(self, result: Any) -> None:
        """Report the end of a run (the run thread's last act)."""
        self._ended.set()
        self.finished.emit(result)

    def start(self, task: str, config: RunConfig, *, secrets: Iterable[str] = ()) -> None:
        """Start a run on its own thread; returns at once.

        A configuration the session refuses (bad risk rules, ...) is reported through `failed`;
        secrets: text kept out of the recording besides the configuration's (never saved).
        """
        if self.running:
            raise RuntimeError("a run is already in progress")
        self.stop_event = StopEvent()
        self.recovery = RecoveryPrompt(
            self.stop_event,
            self.recover_requested.emit,
            lambda: self._restart_for_run(config),
        )
        self.approver = GuiApprover(
            config.approve,
            self.stop_event,
            self.approval_requested.emit,
            self.aside_requested.emit,
            # ValueError for a bad field: the window checks them before it calls start().
            Breakpoints.parse(config.break_at, config.break_on),
        )
        self._ended = threading.Event()
        self._thread = threading.Thread(
            target=self._run,
            args=(task, config, list(secrets)),
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

    def restart_backend(self, config: RunConfig) -> None:
        """Close the backend and build (and load) it again, on a thread."""
        if self.running:
            self.failed.emit("stop the run before restarting the worker")
            return
        self.stop_event = StopEvent()
        self._ended = threading.Event()
        self._thread = threading.Thread(
            target=self._restart, args=(config,), name="deskpilot-restart", daemon=True
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

    def _restart_for_run(self, config: RunConfig) -> None:
        """Restart worker from the recovery bar: on the loop thread, mid-run; raises on failure."""
        self._close_backend()
        self.worker_state.emit("restarting the model backend")
        try:
            self._ensure_backend(config)
        except Exception as exc:
            self.worker_state.emit(f"error: {exc}")
            raise

    def _restart(self, config: RunConfig) -> None:
        self._close_backend()
        try:
            self._ensure_backend(config)
        except Exception as exc:
            self.worker_state.emit(f"error: {exc}")
            self.failed.emit(str(exc))

    def _ensure_backend(self, config: RunConfig) -> Any:
        """The warm backend for this configuration, built (and loaded) if needed."""
        from agent.session import open_backend

        key = _backend_key(config)
        with self._lock:
            if self.backend is not None and self._backend_key == key:
                return self.backend
        self._close_backend()
        self.worker_state.emit("starting the model backend")
        backend = open_backend(config, on_progress=self.progress.emit, cancel=self.stop_event)
        with self._lock:
            self.backend, self._backend_key = backend, key
        state = describe_backend(backend)
        if config.backend == "openai":
            from agent.backends.factory import endpoint_warning

            warning = endpoint_warning(config.endpoint)
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

    def _run(self, task: str, config: RunConfig, secrets: list[str]) -> None:
        """The run, assembled by agent.session like every other way of running."""
        from actions.private_desktop import DesktopError
        from actions.screen import DisplayError
        from agent.backends.base import BackendError
        from agent.session import Session, SessionError, Wrappers

        assert self.approver is not None and self.recovery is not None
        # The control bar lives on the user's display: nothing to mask on a private one.
        own = config.desktop == "user"
        excluded = self.excluded
        wrappers = Wrappers(
            screen=(
                (lambda screen: MaskedScreen(screen, excluded, self.hide)) if own else (lambda s: s)
            ),
            executor=(lambda ex: GuardedExecutor(ex, excluded)) if own else (lambda e: e),
            focus=self._keys_past_own,
            window_area=self._area_past_own,
        )
        try:
            session = Session(
                config,
                secrets=secrets,
                wrappers=wrappers,
                on_desktop=lambda d: self.desktop_ready.emit(d.display if d is not None else ""),
            )
        except SessionError as exc:
            self.failed.emit(str(exc))
            self._finish(None)
            return
        result = None
        try:
            try:
                desktop = session.desktop
                backend = self._ensure_backend(config)
                session.adopt_backend(backend)
                recorder = session.recorder(task, app=True)
            except (DesktopError, DisplayError, BackendError, SessionError, ValueError) as exc:
                if isinstance(exc, DesktopError):
                    self.failed.emit(f"private desktop: {exc}")
                else:
                    hint = "; check the backend settings" if isinstance(exc, BackendError) else ""
                    if not isinstance(exc, SessionError):
                        self.worker_state.emit(f"error: {exc}{hint}")
                    self.failed.emit(str(exc))
                return
            self.executor = desktop.executor
            try:
                result = session.run(
                    task,
                    decide=self.approver,
                    recorder=recorder,
                    on_event=self._on_event,
                    stop=self.stop_event,
                    recover=self.recovery,
                    # Forwards to self.backend: Restart worker during the run swaps what it uses.
                    backend=cast(Any, CurrentBackend(lambda: self.backend)),
                    loop_overrides=self.loop_overrides,
                )
            except Exception as exc:  # a bug or broken infrastructure: show it, keep the app
                # Redacted like the recording: what the run learnt is secret stays off screen.
                line = recorder.redactor.redact_text(f"{type(exc).__name__}: {exc}")
                self.failed.emit(f"internal error: {line}")
        finally:
            self.executor = None
            self._keys_go = None
            session.close()
            current = self.backend
            if config.backend == "local" and (
                current is None or getattr(current, "pid", 0) is None
            ):
                self.worker_state.emit("error: the worker process is gone; press Restart worker")
            self._finish(result)

    def _keys_past_own(self, desktop: Desktop) -> Any:
        """Where keys go, seen past the app's own windows (X11; elsewhere the desktop's word)."""
        from actions.window import PastOwnWindows

        probe = getattr(desktop, "probe", None)
        if probe is None:
            return desktop.focused_window
        self._keys_go = PastOwnWindows(probe)
        return self._keys_go

    def _area_past_own(self, desktop: Desktop) -> Any:
        """Where the window keys go to is (past the app's own windows)."""
        probe = getattr(desktop, "probe", None)
        if probe is None:
            return desktop.focused_area
        return lambda: probe.rect(self._keys_go() if self._keys_go is not None else None)


def _release(executor: Any) -> None:
    """Release held input; must never raise during a stop."""
    try:
        executor.release_all()
    except Exception:  # best effort: nothing more can be done about a broken display here
        pass


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
