"""Runs agent.loop.run_task on a worker thread and re-emits what it does as Qt signals.

The loop never touches Qt widgets: its events arrive as queued signals on the GUI thread, and
its `decide` calls block the loop thread (never the GUI thread) until the user decides.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from actions.types import Key, Type
from agent.approval import (
    ApprovalRequest,
    BreakpointDecider,
    Breakpoints,
    Decision,
    with_breakpoints,
)
from ui.guard import GuardedExecutor, MaskedScreen, Rect
from ui.settings import AppSettings


class GuiApprover:
    """The loop's Decide: policy for auto/guarded, otherwise ask the GUI and wait for it.

    Breakpoints ask the GUI from a breakpoint on, for every action, until Continue.
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
        """Whether this action waits for a person (guarded: typing and keys, until risk rules)."""
        if self.paused or self.mode == "step":
            return True
        if self.mode == "guarded":
            return isinstance(request.action, Type | Key)
        return False

    def __call__(self, request: ApprovalRequest) -> Decision:
        """Called on the loop thread; blocks it until a decision or a stop."""
        return self._decide(request)

    def _wait(self, request: ApprovalRequest, ask_user: bool) -> Decision:
        """Ask the GUI (or, when automatic, wait for it to step aside) and wait for the answer."""
        automatic = not ask_user
        if automatic and self._aside is None:
            return Decision("approve", by=self.mode)
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
        self._answers.put(Decision("approve", by=self.mode))


def frame_image(frame: Any) -> QImage:
    """A loop Frame as a QImage (copied: the frame's bytes are not kept alive by Qt)."""
    img = QImage(frame.rgb, frame.width, frame.height, 3 * frame.width, QImage.Format.Format_RGB888)
    return img.copy()


def _backend_key(s: AppSettings) -> tuple[str, ...]:
    if s.backend == "openai":
        return ("openai", s.endpoint, s.endpoint_model)
    return ("local", s.local_model, s.device)


class RunController(QObject):
    """Owns the backend and the run thread; everything it reports arrives as a signal."""

    loop_event = Signal(object)  # agent.loop.Event
    observed = Signal(int, QImage, object)  # step, screenshot, Monitor
    approval_requested = Signal(object)  # ApprovalRequest
    aside_requested = Signal(object)  # ApprovalRequest approved by policy; call resume()
    progress = Signal(str, object)  # stage, fraction or None
    worker_state = Signal(str)  # one line: loading, ready (device, memory), error + what to do
    finished = Signal(object)  # RunResult, or None when the run never started
    failed = Signal(str)  # a one-line reason the run could not start or broke

    def __init__(self, excluded: Callable[[], list[Rect]] = lambda: []) -> None:
        super().__init__()
        self.excluded = excluded
        self.backend: Any = None
        self._backend_key: tuple[str, ...] | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.stop_event = threading.Event()
        self.approver: GuiApprover | None = None
        self.executor: Any = None

    @property
    def running(self) -> bool:
        """Whether a run (or a backend load) is in progress."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, task: str, settings: AppSettings) -> None:
        """Start a run on its own thread; returns at once."""
        if self.running:
            raise RuntimeError("a run is already in progress")
        self.stop_event = threading.Event()
        self.approver = GuiApprover(
            settings.approval,
            self.stop_event,
            self.approval_requested.emit,
            self.aside_requested.emit,
            # ValueError for a bad field: the window checks them before it calls start().
            Breakpoints.parse(settings.break_at, settings.break_on),
        )
        self._thread = threading.Thread(
            target=self._run, args=(task, settings), name="deskpilot-run", daemon=True
        )
        self._thread.start()

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

    def stop(self) -> None:
        """Kill switch: cancel generation, end the loop, release held keys and buttons."""
        self.stop_event.set()
        executor = self.executor
        if executor is not None:
            # X round trips: off the GUI thread so a stop never stalls the window.
            threading.Thread(target=_release, args=(executor,), daemon=True).start()

    def restart_backend(self, settings: AppSettings) -> None:
        """Close the backend and build (and load) it again, on a thread."""
        if self.running:
            self.failed.emit("stop the run before restarting the worker")
            return
        self.stop_event = threading.Event()
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
        self.worker_state.emit(describe_backend(backend))
        return backend

    def _on_event(self, event: Any) -> None:
        frame = event.data.get("frame") if event.kind == "observation" else None
        if frame is not None:
            # Converted here, on the loop thread, so the GUI thread only draws.
            self.observed.emit(event.step, frame_image(frame), frame.monitor)
        self.loop_event.emit(event)

    def _run(self, task: str, settings: AppSettings) -> None:
        from actions.executor import Executor
        from actions.screen import DisplayError, Screen
        from agent.backends.base import BackendError
        from agent.loop import LoopSettings, run_task
        from agent.recording import Recorder, run_info

        assert self.approver is not None
        try:
            screen = Screen(settings.monitor or None)
            backend = self._ensure_backend(settings)
        except (DisplayError, BackendError, ValueError, OSError) as exc:
            hint = "" if not isinstance(exc, BackendError) else "; check the backend settings"
            self.worker_state.emit(f"error: {exc}{hint}")
            self.failed.emit(str(exc))
            self.finished.emit(None)
            return
        loop_settings = LoopSettings(max_steps=max(1, settings.max_steps))
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
                ),
            )
        except OSError as exc:
            self.failed.emit(f"cannot write recordings to {runs_dir}: {exc}")
            self.finished.emit(None)
            return
        executor = Executor()
        self.executor = executor
        result = None
        try:
            result = run_task(
                task,
                backend=backend,
                screen=MaskedScreen(screen, self.excluded),
                # Executor's ExecResult is a dataclass; the loop's protocol names a property.
                executor=cast(Any, GuardedExecutor(executor, self.excluded)),
                decide=self.approver,
                recorder=recorder,
                settings=loop_settings,
                on_event=self._on_event,
                stop=self.stop_event,
            )
        except Exception as exc:  # a bug or broken infrastructure: show it, keep the app alive
            self.failed.emit(f"internal error: {type(exc).__name__}: {exc}")
        finally:
            if result is None or result.outcome in ("stopped", "error"):
                _release(executor)
            executor.close()
            self.executor = None
            if getattr(backend, "pid", 0) is None and settings.backend == "local":
                self.worker_state.emit("error: the worker process is gone; press Restart worker")
        self.finished.emit(result)


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
