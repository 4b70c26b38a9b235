"""One session: a RunConfig turned into desktop, backend, rules, recorder and approval policy.

Every way of running (the command line, the app, `replay --execute`, ask-again, the MCP server)
goes through a Session, so every gate applies to every one of them. Parts are built when first
needed (the MCP server's screenshot needs no model; ask-again needs no desktop) and `close()`
releases whatever was built, once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.approval import Breakpoints, Decide, policy, with_breakpoints
from agent.config import RunConfig
from agent.risk import RiskConfigError, RiskRules, load_rules
from agent.secrets import Redactor, secrets_from_env

if TYPE_CHECKING:
    from actions.desktop import Desktop
    from actions.private_desktop import PrivateDesktop
    from agent.backends.base import Backend
    from agent.backends.local import OnProgress
    from agent.loop import LoopSettings, OnEvent, Recover, RunResult
    from agent.recording import Recorder


class SessionError(Exception):
    """A part of the session could not be made; the message is one line saying what to do."""


@dataclass(frozen=True, slots=True)
class Wrappers:
    """What a front end puts around the desktop's parts (the app masks its own windows)."""

    screen: Callable[[Any], Any] = lambda screen: screen
    executor: Callable[[Any], Any] = lambda executor: executor
    focus: Callable[[Desktop], Callable[[], Any]] | None = None
    window_area: Callable[[Desktop], Callable[[], Any]] | None = None


def open_backend(
    config: RunConfig,
    *,
    on_progress: OnProgress | None = None,
    cancel: threading.Event | None = None,
) -> Backend:
    """The model backend a configuration asks for, a local worker loaded; raises BackendError."""
    from agent.backends.factory import build_backend

    backend: Backend = build_backend(
        config.backend,
        endpoint=config.endpoint.strip() or None,
        model=config.model_id,
        device=config.device or None,
        thinking=config.thinking_flag,
        max_tokens=config.max_tokens or None,
        timeout_s=config.timeout,
        api_key_env=config.api_key_env,
        on_progress=on_progress if config.backend == "local" else None,
    )
    if config.backend == "local":
        try:
            backend.start(cancel=cancel)  # type: ignore[attr-defined]  # load now, not at step 1
        except BaseException:
            backend.close()
            raise
    return backend


def load_risk_rules(config: RunConfig) -> RiskRules:
    """The configuration's risk rules; SessionError names the file and the problem."""
    try:
        return load_rules(config.risk_rules_path())
    except RiskConfigError as exc:
        raise SessionError(str(exc)) from None


def session_redactor(config: RunConfig, extra: Iterable[str] = ()) -> Redactor:
    """The secrets of a run: given, from the environment, and any the front end adds."""
    missing = [name for name in config.secret_env if name not in os.environ]
    if missing:
        raise SessionError(f"--secret-env {missing[0]}: that environment variable is not set")
    return Redactor([*config.secret, *secrets_from_env(config.secret_env), *extra])


def load_example(config: RunConfig) -> tuple[Any, ...]:
    """The example recording's prompt parts (agent/demo_example.py); none when not asked for."""
    if not config.example.strip():
        return ()
    from pathlib import Path

    from agent.demo_example import ExampleError, example_from_run

    try:
        return example_from_run(Path(config.example).expanduser())
    except ExampleError as exc:
        raise SessionError(str(exc)) from None


@dataclass(frozen=True, slots=True)
class _NoModel:
    """run.json's backend for a recording whose actions came from no model, but from `source`."""

    source: str
    model = None

    def describe(self) -> dict[str, object]:
        return {"kind": "none", "note": f"actions came from {self.source}"}


class Session:
    """The parts of one run (or one MCP server, or one replay), built on first use."""

    def __init__(
        self,
        config: RunConfig,
        *,
        display: str | None = None,
        backend: Backend | None = None,
        on_progress: OnProgress | None = None,
        secrets: Iterable[str] = (),
        wrappers: Wrappers | None = None,
        on_desktop: Callable[[PrivateDesktop | None], None] | None = None,
        desktop: Desktop | None = None,
        loop_overrides: dict[str, Any] | None = None,
    ) -> None:
        """Raises SessionError for bad risk rules or a secret variable that is not set.

        display: an X server to act on (None: the session's, or a private desktop when the
        configuration asks for one); backend: a warm backend to use and leave open.
        on_desktop: told of a private desktop once it runs, and None when it ended.
        desktop: one already open (tests, other front ends); closed with the session.
        loop_overrides: LoopSettings fields that are not run options (tests' short settles).
        """
        self.config = config.validated()
        self.rules = load_risk_rules(config)
        self.redactor = session_redactor(config, secrets)
        self.breakpoints = Breakpoints.parse(config.break_at, config.break_on)
        self.example = load_example(config)
        self.wrappers = wrappers or Wrappers()
        self._display = display
        self._on_progress = on_progress
        self._on_desktop = on_desktop
        self._backend = backend
        self._own_backend = backend is None
        self._desktop: Desktop | None = desktop
        self._loop_overrides = dict(loop_overrides or {})
        self._private: PrivateDesktop | None = None
        self._closed = False
        self.cancel = threading.Event()  # set by close(): a backend still loading gives up

    # ------------------------------------------------------------------ parts

    @property
    def desktop(self) -> Desktop:
        """The desktop (a private one started first if asked for); DisplayError/DesktopError."""
        if self._desktop is None:
            from actions.desktop import open_desktop

            display = self._display
            if display is None and self.config.desktop != "user":
                display = self._start_private()
            elif self.config.open and display is None:
                from actions.private_desktop import DesktopError

                raise DesktopError("--open needs a private desktop (--desktop private)")
            self._desktop = open_desktop(
                self.config.display_backend, self.config.monitor_index, display=display
            )
        return self._desktop

    def _start_private(self) -> str:
        from actions.private_desktop import PrivateDesktop, choose_mode, parse_size

        mode = choose_mode(self.config.desktop)
        assert mode is not None
        # Started on the thread that runs the session: the parent-death signal of the
        # desktop's processes follows that thread.
        self._private = PrivateDesktop.start(
            mode, parse_size(self.config.desktop_size), apps=list(self.config.open)
        )
        if self._on_desktop is not None:
            self._on_desktop(self._private)
        return self._private.display

    @property
    def screen(self) -> Any:
        """The monitor's capture, as the front end wraps it."""
        return self.wrappers.screen(self.desktop.screen)

    @property
    def executor(self) -> Any:
        """The input executor, as the front end wraps it."""
        return self.wrappers.executor(self.desktop.executor)

    def focus(self) -> Callable[[], Any]:
        """Where keys will go (the risk rules' window)."""
        if self.wrappers.focus is not None:
            return self.wrappers.focus(self.desktop)
        return self.desktop.focused_window

    @property
    def backend(self) -> Backend:
        """The model backend, built (and loaded) on first use; raises BackendError."""
        if self._backend is None:
            self._backend = open_backend(
                self.config, on_progress=self._on_progress, cancel=self.cancel
            )
        return self._backend

    def adopt_backend(self, backend: Backend) -> None:
        """Use a backend the front end keeps warm between runs (this session never closes it)."""
        if self._backend is not None and self._own_backend:
            self._backend.close()
        self._backend, self._own_backend = backend, False

    def endpoint_warning(self) -> str | None:
        """A line when screenshots would cross the network in the clear (None: fine)."""
        from agent.backends.factory import endpoint_warning

        return endpoint_warning(self.config.endpoint) if self.config.backend == "openai" else None

    def loop_settings(self, **overrides: Any) -> LoopSettings:
        """The loop's settings from the configuration (overrides: tests' short delays)."""
        from agent.loop import LoopSettings

        values: dict[str, Any] = {
            "max_steps": self.config.max_steps,
            "history_images": self.config.history_images,
            "coords": self.config.coords,
            "repeat_limit": self.config.repeat_limit,
            "retry_delays_s": self.config.retry_delays_s,
            "max_minutes": self.config.max_minutes or None,
        }
        if self.config.max_pixels:
            values["max_pixels"] = self.config.max_pixels
        if self.example:
            values["example"] = self.example
        return LoopSettings(**{**values, **self._loop_overrides, **overrides})

    def decider(self, person: Decide | None, stepper: Decide | None = None) -> Decide:
        """The approval policy of the configured mode; breakpoints ask `stepper` (or person)."""
        decide = policy(self.config.approve, person)
        ask = stepper or person
        if ask is None:
            return decide
        return with_breakpoints(decide, ask, self.breakpoints)

    def run_info(
        self, task: str, *, actions_from: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        """run.json's opening: the same words whichever front end starts the run.

        actions_from: where the actions came from when no model proposed them ("a recording",
        "an MCP client"); the backend is then not started.
        """
        from agent.recording import run_info

        desktop: dict[str, Any] = {}
        if self._private is not None:
            from actions.private_desktop import recorded

            desktop = recorded(self.config.desktop, self.config.desktop_size, self.config.open)
        return run_info(
            task,
            backend=self.backend if actions_from is None else _NoModel(actions_from),
            approval=self.config.approve,
            monitor=self.desktop.screen.monitor,
            settings=self.loop_settings().to_json(),
            risk_rules=self.rules.summary,
            config=self.config.recorded(),
            **desktop,
            **extra,
        )

    def recorder(self, task: str, *, actions_from: str | None = None, **extra: Any) -> Recorder:
        """A new recording in the runs folder; SessionError when it cannot be written."""
        from agent.recording import Recorder

        folder = self.config.runs_path()
        info = self.run_info(task, actions_from=actions_from, **extra)
        try:
            return Recorder(folder, info, redactor=self.redactor)
        except OSError as exc:
            raise SessionError(f"cannot write recordings to {folder}: {exc}") from None

    # ------------------------------------------------------------------ running

    def run(
        self,
        task: str,
        *,
        decide: Decide,
        recorder: Recorder,
        on_event: OnEvent | None = None,
        stop: threading.Event | None = None,
        recover: Recover | None = None,
        backend: Backend | None = None,
        loop_overrides: dict[str, Any] | None = None,
    ) -> RunResult:
        """Run the task to its end on this session's parts; held input let go after a stop.

        backend: what the loop calls (the app's forwarder to a restartable backend).
        """
        from agent.loop import run_task

        desktop = self.desktop
        result: RunResult | None = None
        try:
            result = run_task(
                task,
                backend=backend or self.backend,
                screen=self.screen,
                executor=self.executor,
                decide=decide,
                recorder=recorder,
                settings=self.loop_settings(**(loop_overrides or {})),
                on_event=on_event,
                stop=stop,
                rules=self.rules,
                focus=self.focus(),
                window_area=(
                    self.wrappers.window_area(desktop)
                    if self.wrappers.window_area is not None
                    else desktop.focused_area
                ),
                recover=recover,
            )
            return result
        finally:
            if result is None or result.outcome in ("stopped", "error"):
                self.release()

    def release(self) -> None:
        """Let go of every held key and button; never raises (it runs during stops)."""
        desktop = self._desktop
        if desktop is None:
            return
        try:
            desktop.executor.release_all()
        except Exception:  # a broken display must not hide the run's own outcome
            pass

    def close(self) -> None:
        """Release the desktop (keymaps restored), a private desktop, and an own backend."""
        if self._closed:
            return
        self._closed = True
        self.cancel.set()
        try:
            if self._desktop is not None:
                self._desktop.close()
        finally:
            try:
                if self._backend is not None and self._own_backend:
                    self._backend.close()
            finally:
                if self._private is not None:
                    self._private.close()
                    if self._on_desktop is not None:
                        self._on_desktop(None)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
