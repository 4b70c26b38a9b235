"""The app hosts deskpilot's MCP server: clients' actions that need a person go to its card.

The server (agent/mcp_server.py) runs on a thread of its own, streamable HTTP on 127.0.0.1
only, with a session built from the app's run settings. When the approval mode puts an action
to a person, the request arrives as a signal (with the screen the client acted on) and the
server's desktop thread waits until the card's decision comes back through decide(). Before
any of a client's input runs, the window steps aside, as in a run; it comes back afterwards
without taking the keyboard focus. While the app runs a task of its own, clients' actions are
refused: two drivers must never share one mouse.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from actions.dispatch import ExecResult
from actions.screen import CoordinateSpace, Frame, Monitor
from actions.types import Action
from agent.approval import ApprovalRequest, Decision
from agent.config import ConfigError, RunConfig
from agent.interrupts import StopEvent
from agent.question import Question
from ui.guard import GuardedExecutor, MaskedScreen, Rect
from ui.run_controller import frame_image

if TYPE_CHECKING:
    from agent.session import Wrappers

HOST = "127.0.0.1"  # loopback only: whoever connects gets screenshots and input
DEFAULT_PORT = 8765
STOPPING_S = 6.0  # how long a restart waits for the previous server to let go of its port
BUSY = "the app is running a task of its own; try again when it has ended"


class McpHostError(Exception):
    """The server could not start; the message is one line for the status bar."""


class LastFrame:
    """A Screen that hands each frame it captures to `keep` (what a client's action aims at)."""

    def __init__(self, screen: Any, keep: Callable[[Frame], None]) -> None:
        self._screen = screen
        self._keep = keep

    @property
    def monitor(self) -> Monitor:
        """The monitor being captured."""
        monitor: Monitor = self._screen.monitor
        return monitor

    def capture(self) -> Frame:
        """Grab the monitor (as the screen below masks it) and keep the frame."""
        frame: Frame = self._screen.capture()
        self._keep(frame)
        return frame

    def wait_until_stable(
        self, *, min_s: float, max_s: float, cancel: threading.Event | None = None
    ) -> float:
        """Delegate to the real screen."""
        return float(self._screen.wait_until_stable(min_s=min_s, max_s=max_s, cancel=cancel))


class AsideExecutor:
    """An Executor that has the window step aside before a client's input, and says when done."""

    def __init__(self, executor: Any, host: McpHost) -> None:
        self._executor = executor
        self._host = host

    def execute(
        self,
        action: Action,
        *,
        space: CoordinateSpace,
        monitor: Monitor,
        cancel: threading.Event | None = None,
    ) -> ExecResult:
        """Refused during the app's own run; else aside, execute, come back."""
        if self._host.busy():
            return ExecResult(ok=False, detail=f"{action.name} refused", error=BUSY)
        if not self._host.step_aside():
            return ExecResult(ok=False, detail=f"{action.name} not run", error="server stopped")
        try:
            result: ExecResult = self._executor.execute(
                action, space=space, monitor=monitor, cancel=cancel
            )
        finally:
            self._host.make_way.emit(False)
        return result

    def release_all(self) -> None:
        """Let go of held keys and buttons."""
        self._executor.release_all()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._executor, name)


class McpHost(QObject):
    """Starts and stops the app's MCP server; carries its questions to the GUI and back."""

    observed = Signal(QImage, object)  # the screen the client's action was aimed at, Monitor
    approval_requested = Signal(object)  # ApprovalRequest (request.client names the client)
    # True: step aside, then call resume(); False: the input ran, come back (without the focus).
    make_way = Signal(bool)
    stopped = Signal(str)  # "" when it ended cleanly, else one line saying what broke

    def __init__(
        self,
        excluded: Callable[[], list[Rect]] = lambda: [],
        busy: Callable[[], bool] = lambda: False,
        hide: Callable[[], AbstractContextManager[None]] | None = None,
    ) -> None:
        super().__init__()
        self.excluded = excluded
        self.busy = busy
        self.hide = hide or nullcontext
        self.port = DEFAULT_PORT
        self.url = ""
        self._http: Any = None
        self._thread: threading.Thread | None = None
        self._stop = StopEvent()
        self._decision: Question[Decision] = Question(self._stop, self._stopped_decision)
        self._aside: Question[bool] = Question(self._stop, lambda: False)
        self._frame: Frame | None = None  # the last screen a client's call captured
        self._own_desktop = True

    @property
    def serving(self) -> bool:
        """Whether the server thread runs."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def asking(self) -> bool:
        """Whether a client's action waits for the card's decision."""
        return self._decision.asking

    def start(self, config: RunConfig) -> str:
        """Serve on http://127.0.0.1:PORT/mcp (self.port); returns it, McpHostError if not."""
        from agent.mcp_server import Desk, HttpServer
        from agent.session import Session, SessionError

        if self.serving and not self._stop.is_set():
            return self.url
        if self._thread is not None:
            self._thread.join(STOPPING_S)  # a stop just asked for: the port comes free
            if self._thread.is_alive():
                raise McpHostError("the MCP server is still stopping; try again in a moment")
        self._stop = StopEvent()
        self._decision = Question(self._stop, self._stopped_decision)
        self._aside = Question(self._stop, lambda: False)
        self._own_desktop = config.desktop == "user"
        try:
            session = Session(config, wrappers=self._wrappers())
        except (ConfigError, SessionError) as exc:
            text = exc.for_app if isinstance(exc, ConfigError) else str(exc)
            raise McpHostError(text) from None
        desk = Desk(session, person=self._ask)
        try:
            # Only problems reach the app's terminal, not a line per request.
            self._http = HttpServer(desk, HOST, self.port, log_level="warning")
        except OSError as exc:
            desk.close()
            where = f"{HOST}:{self.port}"
            raise McpHostError(f"cannot listen on {where}: {exc.strerror or exc}") from None
        self.url = self._http.url
        self._thread = threading.Thread(target=self._serve, name="deskpilot-mcp-http", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """End serving (returns at once): a waiting decision ends, `stopped` follows."""
        self._stop.set()
        if self._http is not None:
            self._http.stop()

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Stop and wait for the server thread (app exit)."""
        self.stop()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def decide(self, decision: Decision) -> bool:
        """Hand the card's decision to the waiting client action; False when none waits."""
        if not self._decision.asking:
            return False
        self._decision.answer(decision)
        return True

    def resume(self) -> None:
        """The window stepped aside: the client's input may run."""
        self._aside.answer(True)

    # -- the server's threads -------------------------------------------------------------

    def _wrappers(self) -> Wrappers:
        """Mask the app's windows and keep input off them, as a run does (its own desktop)."""
        from agent.session import Wrappers

        def nothing() -> list[Rect]:
            return []

        excluded = self.excluded if self._own_desktop else nothing
        hide = self.hide if self._own_desktop else nullcontext

        def keep(frame: Frame) -> None:
            self._frame = frame

        def screen(inner: Any) -> LastFrame:
            return LastFrame(MaskedScreen(inner, excluded, hide), keep)

        def executor(inner: Any) -> AsideExecutor:
            return AsideExecutor(GuardedExecutor(inner, excluded), self)

        return Wrappers(screen=screen, executor=executor)

    def _serve(self) -> None:
        error = ""
        try:
            self._http.serve()
        except BaseException as exc:  # the app stays; the status bar says why
            error = f"MCP server stopped: {type(exc).__name__}: {exc}"
        finally:
            if threading.current_thread() is self._thread:  # not one replaced by a restart
                self._http = None
                self.stopped.emit(error)

    def _ask(self, request: ApprovalRequest) -> Decision:
        """The Desk's person (its desktop thread): the card decides, or a stop ends the wait."""
        if self.busy():
            return Decision("reject", by="person", note=BUSY)
        frame = self._frame
        if frame is not None:  # converted here, so the GUI thread only draws
            self.observed.emit(frame_image(frame), frame.monitor)
        return self._decision.ask(lambda: self.approval_requested.emit(request))

    def step_aside(self) -> bool:
        """Wait until the window is out of the way (desktop thread); False: server stopping."""
        if not self._own_desktop:
            return not self._stop.is_set()
        return self._aside.ask(lambda: self.make_way.emit(True))

    @staticmethod
    def _stopped_decision() -> Decision:
        return Decision("stop", note="the MCP server stopped while waiting for a decision")
