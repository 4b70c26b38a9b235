"""deskpilot as an MCP server: screenshot, act and run_task tools; recordings as resources.

Clients talk over stdio (the SDK's transport; no network port), or, when asked for, streamable
HTTP on a loopback address only. From the command line nobody sits at a terminal (stdio is the
MCP channel), so an action that needs a person (every action in ask mode, a risky one in guarded
mode) is refused with an error result saying why. The app hosts the same server with a person
(ui/mcp_host.py): such an action is put on its approval card, naming the client. Blocked
actions never run. All desktop work runs on one thread, so calls never interleave: an act waits
for a running task.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.server.mcpserver.utilities.types import Image
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import ToolAnnotations

from actions.screen import CoordinateSpace
from actions.types import Answer, Key, Terminate, Type, action_arguments, describe
from actions.window import FocusedWindow
from agent.approval import ApprovalMode, ApprovalRequest, Decide, Decision, policy
from agent.backends.base import Backend, BackendError
from agent.events import ActionProposed, Event, OutputInvalid, RunFinished
from agent.interrupts import StopEvent
from agent.loop import RunResult
from agent.protocol import ProtocolError, parse_arguments, tool_schema
from agent.recording import Recorder, RecordingError, read_run
from agent.records import (
    DecisionRecord,
    ExecutionRecord,
    McpRecord,
    ScreenRecord,
    StepRecord,
    now_iso,
)
from agent.risk import RiskGuard
from agent.session import Session, SessionError
from agent.vision import prepare

SERVER_NAME = "deskpilot"
RUNS_URI = "deskpilot://runs"
CLIENT_NAME_LIMIT = 200
_RUN_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_-]{0,80}$")
T = TypeVar("T")


class Refused(Exception):
    """An MCP call that did nothing; the message says why (it becomes the error result)."""


def no_person(mode: ApprovalMode) -> Callable[[ApprovalRequest], Decision]:
    """The policy with nobody to ask: ask mode refuses everything, guarded refuses risky."""
    if mode != "ask":
        return policy(mode, None)

    def refuse(request: ApprovalRequest) -> Decision:
        return Decision(
            "reject",
            by="ask",
            note="approval mode ask: every action needs a person's approval and nobody can "
            "be asked over MCP (start the server with --approve guarded or auto)",
        )

    return refuse


def refusal(decision: Decision) -> str:
    """Why an act did not run, in the words its error result gives the client."""
    if decision.by != "user":
        return decision.note or f"not approved ({decision.by})"
    if decision.kind == "stop" and decision.note:
        return decision.note  # the server closed while the person was being asked
    verb = {"skip": "skipped", "stop": "stopped"}.get(decision.kind, "rejected")
    said = f"; they said: {decision.note}" if decision.note else ""
    return f"the person at the desktop {verb} this action{said}"


class Desk:
    """The desktop side: one screen, one executor, the lazily started model, the recordings.

    person: who decides what the approval mode puts to a person (the app's approval card);
    None (the command line): nobody, so those actions are refused.
    """

    def __init__(self, session: Session, person: Decide | None = None) -> None:
        self.session = session
        self.config = session.config
        self.person = person
        self._desktop_ready = False
        # One thread for every desktop call: mss and the X connections are per thread, and a
        # client's act must not interleave with a task the agent is running.
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="deskpilot-mcp")
        self.stop = StopEvent()  # wakes a person's pending decision at once (agent/question.py)
        self._calls: Recorder | None = None
        self._call_steps = 0
        # What was typed where across act calls: a command typed by one call and submitted by
        # a later one is judged on the whole line, as in a run.
        self._guard = RiskGuard(session.rules)
        self._run_stop: threading.Event | None = None  # the running task's stop

    # ------------------------------------------------------------------ plumbing

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Run fn on the desktop thread."""
        return self._pool.submit(fn, *args)

    def screen(self) -> Any:
        """The monitor's screen, opened on first use (so a missing display is a call's error)."""
        from actions.private_desktop import DesktopError
        from actions.screen import DisplayError

        try:
            screen = self.session.screen
        except (DisplayError, DesktopError) as exc:
            raise Refused(str(exc)) from exc
        self._desktop_ready = True
        return screen

    def executor(self) -> Any:
        """The one input executor."""
        self.screen()  # the desktop opened, or Refused with why
        return self.session.executor

    def focus(self) -> FocusedWindow | None:
        """The focused window (risk rules for keys and typing), None if unknown."""
        self.screen()
        focused: FocusedWindow | None = self.session.focus()()
        return focused

    def backend(self) -> Backend:
        """The model backend, started on the first task that needs it."""
        try:
            return self.session.backend
        except BackendError as exc:
            raise Refused(f"the model backend did not start: {exc}") from exc

    def close(self) -> None:
        """Finish the calls' recording and release the desktop and the model."""
        self.stop.set()
        if self._run_stop is not None:
            self._run_stop.set()
        try:
            self._pool.submit(self._close_on_thread).result(timeout=30)
        except TimeoutError:
            # A call still busy (a model loading): the process is ending anyway.
            print("deskpilot: mcp: a call was still running at exit", file=sys.stderr)
            return
        self._pool.shutdown(wait=True)

    def _close_on_thread(self) -> None:
        if self._calls is not None:
            steps = self._call_steps
            self._calls.finish(
                {"status": "ended", "message": "MCP session ended", "answer": None, "steps": steps}
            )
        if self._desktop_ready:
            self.session.release()
        self.session.close()

    # ------------------------------------------------------------------ recording of calls

    def _recorder(self, client: str) -> Recorder:
        """The recording of this session's screenshot and act calls (one run of its own)."""
        if self._calls is None:
            self.screen()  # the desktop opened, or Refused with why
            try:
                self._calls = self.session.recorder(
                    f"MCP calls from {client}",
                    actions_from="an MCP client",
                    mcp={"client": client, "kind": "calls"},
                )
            except SessionError as exc:
                raise Refused(str(exc)) from exc
        return self._calls

    def _step(self, client: str, tool: str) -> StepRecord:
        """A step record in the loop's format, for one call."""
        return StepRecord(self._call_steps, mcp=McpRecord(client, tool))

    def _write(self, recorder: Recorder, record: StepRecord, t0: float) -> None:
        record.phase = "done"
        record.ended_at = now_iso()
        record.timings["total_s"] = round(time.monotonic() - t0, 4)
        recorder.write_step(record)
        self._call_steps += 1

    def _observe(self, recorder: Recorder, record: StepRecord) -> Any:
        """Capture, downscale as for the model, save the screenshot; the Observation."""
        frame = self.screen().capture()
        obs = prepare(frame, max_pixels=self.session.loop_settings().max_pixels)
        record.screenshot = recorder.save_screenshot(record.index, obs.image.png)
        record.screen = ScreenRecord.of(obs, CoordinateSpace.relative())
        return obs

    def decider(self, client: str) -> Decide:
        """The approval policy of a call: the person's, as in a run, or nobody's."""
        person = self.person
        if person is None:
            return no_person(self.config.approve)

        def ask(request: ApprovalRequest) -> Decision:
            return person(replace(request, client=client))  # the card names who asked

        return self.session.decider(ask)

    # ------------------------------------------------------------------ the tools

    def screenshot(self, client: str) -> tuple[bytes, str]:
        """The screen as the model would see it (PNG) and its real size, e.g. "1920x1080"."""
        t0 = time.monotonic()
        recorder = self._recorder(client)
        record = self._step(client, "screenshot")
        obs = self._observe(recorder, record)
        size = f"{obs.frame.width}x{obs.frame.height}"
        record.result = f"Screenshot sent to the client ({size})."
        self._write(recorder, record, t0)
        return obs.image.png, size

    def act(self, client: str, arguments: Mapping[str, object]) -> str:
        """One computer_use action: parsed, judged, decided, executed; Refused says why not."""
        t0 = time.monotonic()
        recorder = self._recorder(client)
        record = self._step(client, "act")
        record.raw_output = json.dumps(arguments, ensure_ascii=False, default=str)
        self._observe(recorder, record)
        space = CoordinateSpace.relative()

        def refuse(why: str) -> Refused:
            record.result = f"Refused, nothing was executed: {why}"
            self._write(recorder, record, t0)
            return Refused(record.result)

        try:
            action = parse_arguments(arguments, space)
        except ProtocolError as exc:
            record.parse_error = str(exc)
            raise refuse(f"invalid action: {exc}") from None
        record.action = action_arguments(action)
        if isinstance(action, Terminate | Answer):
            raise refuse(
                f"{action.name} ends a task run; act performs single actions (use run_task)"
            )
        window = self.focus() if isinstance(action, Type | Key) else None
        risk = self._guard.assess(action, window=window)
        record.risk = risk
        if risk.level == "blocked":
            decision = Decision("reject", by="rules", note=risk.reason)
            record.decision = DecisionRecord.of(decision, client=client)
            raise refuse(f"blocked by the risk rules: {risk.reason}")
        request = ApprovalRequest(self._call_steps, action, "", space, risk=risk, client=client)
        decision = self.decider(client)(request)
        record.decision = DecisionRecord.of(decision, client=client)
        if decision.kind not in ("approve", "edit"):
            raise refuse(refusal(decision))
        if decision.kind == "edit" and decision.action is not None:
            action = decision.action
            # Judged again, as in a run: an edit never makes a blocked action run, and where
            # keys go may have moved while the person decided.
            window = self.focus() if isinstance(action, Type | Key) else None
            now = self._guard.assess(action, window=window)
            if now.level == "blocked":
                raise refuse(f"blocked by the risk rules: {now.reason}")
        # Record before acting, as a run does: no executed action is ever unrecorded.
        record.to_run = action_arguments(action)
        try:
            recorder.write_step(replace(record, phase="executing"))
        except RecordingError as exc:
            raise Refused(f"{exc}; nothing was executed") from None
        t_exec = time.monotonic()
        try:
            outcome = self.executor().execute(
                action, space=space, monitor=self.screen().monitor, cancel=self.stop
            )
        except BaseException:
            self._guard.executed(action, window=window, complete=False)
            raise
        self._guard.executed(action, window=window, complete=outcome.ok)
        record.timings["execute_s"] = round(time.monotonic() - t_exec, 4)
        record.execution = ExecutionRecord.of(outcome, action)
        settings = self.session.loop_settings()
        record.timings["settle_s"] = round(
            self.screen().wait_until_stable(
                min_s=settings.settle_min_s, max_s=settings.settle_max_s, cancel=self.stop
            ),
            4,
        )
        if not outcome.ok:
            record.result = f"Execution failed: {outcome.error}"
            self._write(recorder, record, t0)
            raise Refused(record.result)
        edited = decision.kind == "edit"
        record.result = (
            f"The person changed the action to {describe(action)}; it was executed."
            if edited
            else f"Executed {describe(action)}."
        )
        self._write(recorder, record, t0)
        return record.result

    def run(
        self,
        client: str,
        task: str,
        on_event: Callable[[Event], None],
        stop: threading.Event | None = None,
    ) -> RunResult:
        """Run the agent on a task with the configured backend, recorded like `main.py run`.

        `stop` ends it early (the client cancelled the call); so does closing the server.
        """
        cfg = self.config
        stop = stop or threading.Event()
        self._run_stop = stop
        if self.stop.is_set():
            stop.set()
        if not task.strip():
            raise Refused("the task is empty")
        if cfg.approve == "ask" and self.person is None:
            raise Refused(
                "approval mode ask: every action needs a person's approval and nobody can be "
                "asked over MCP (start the server with --approve guarded or auto, or serve it "
                "from the app, which asks on its approval card)"
            )
        self.screen()
        self.backend()
        try:
            recorder = self.session.recorder(task, mcp={"client": client, "kind": "run_task"})
        except SessionError as exc:
            raise Refused(str(exc)) from exc
        # The run types with a guard of its own: what act calls typed before is the run's to
        # judge, and after it every line is unknown to the calls' guard.
        self._guard.lose_track()
        return self.session.run(
            task, decide=self.decider(client), recorder=recorder, on_event=on_event, stop=stop
        )

    # ------------------------------------------------------------------ recordings

    def list_runs(self) -> list[dict[str, Any]]:
        """Every recording in the runs folder, newest first, as a short summary."""
        runs: list[dict[str, Any]] = []
        folder = self.config.runs_path()
        if not folder.is_dir():
            return runs
        for run_dir in sorted(folder.iterdir(), reverse=True):
            path = run_dir / "run.json"
            if not path.is_file():
                continue
            try:
                info = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            runs.append(
                {
                    "run_id": run_dir.name,
                    "uri": f"{RUNS_URI}/{run_dir.name}",
                    "task": info.get("task"),
                    "started_at": info.get("started_at"),
                    "ended_at": info.get("ended_at"),
                    "outcome": info.get("outcome"),
                    "steps": info.get("steps"),
                    "mcp": info.get("mcp"),
                }
            )
        return runs

    def run_dir(self, run_id: str) -> Path:
        """A recording's folder; only plain run ids inside the runs folder."""
        if not _RUN_ID.match(run_id):
            raise Refused(f"not a run id: {run_id!r}")
        path = self.config.runs_path() / run_id
        if not (path / "run.json").is_file():
            raise Refused(f"no recording {run_id!r} in {self.config.runs_path()}")
        return path

    def read(self, run_id: str) -> dict[str, Any]:
        """A recording: run.json, its steps (as recorded), and any warnings reading it."""
        rec = read_run(self.run_dir(run_id))
        return {"info": rec.info, "steps": rec.steps, "warnings": rec.warnings}

    def screenshot_file(self, run_id: str, index: int) -> bytes:
        """The PNG a step of a recording saw."""
        rec = read_run(self.run_dir(run_id))
        for step in rec.records:
            if step.index == index and step.screenshot:
                return (rec.dir / step.screenshot).read_bytes()
        raise Refused(f"run {run_id} has no screenshot for step {index}")


def act_schema() -> dict[str, Any]:
    """act's input schema: exactly the parameters of Qwen 3.5's computer_use tool (0-1000)."""
    function = tool_schema(CoordinateSpace.relative())["function"]
    assert isinstance(function, dict)
    parameters = function["parameters"]
    assert isinstance(parameters, dict)
    return dict(parameters)


def build_server(desk: Desk) -> Any:
    """The MCPServer with deskpilot's tools and resources."""
    server: Any = MCPServer(
        SERVER_NAME,
        instructions=(
            "deskpilot operates this computer's desktop. `screenshot` shows the screen; `act` "
            "performs one computer_use action (coordinates 0-1000 on each axis of the "
            "screenshot); `run_task` lets deskpilot's own Qwen 3.5 agent do a whole task. "
            f"Risk rules and the approval mode ({desk.config.approve}) apply to every action; "
            "a refused action is an error result saying why, and nothing was executed. "
            f"Recordings of every call are resources under {RUNS_URI}."
        ),
    )

    async def on_desk(fn: Callable[..., T], *args: Any) -> T:
        """Await fn on the desktop thread; Refused becomes a ToolError with its reason."""
        try:
            return await asyncio.wrap_future(desk.submit(fn, *args))
        except Refused as exc:
            raise ToolError(str(exc)) from None

    async def screenshot(ctx: Context) -> list[Any]:
        """The current screen as an image, and its size in pixels."""
        png, size = await on_desk(desk.screenshot, client_name(ctx))
        return [Image(data=png, format="png"), size]

    async def act(
        ctx: Context,
        action: Any = None,
        coordinate: Any = None,
        start_coordinate: Any = None,
        keys: Any = None,
        text: Any = None,
        pixels: Any = None,
        time: Any = None,
        status: Any = None,
    ) -> str:
        """One computer_use action on the desktop."""
        given = {
            "action": action,
            "coordinate": coordinate,
            "start_coordinate": start_coordinate,
            "keys": keys,
            "text": text,
            "pixels": pixels,
            "time": time,
            "status": status,
        }
        # Only what the client sent: deskpilot's one validator reads it (null is "not given").
        arguments = {k: v for k, v in given.items() if v is not None}
        return await on_desk(desk.act, client_name(ctx), arguments)

    async def run_task_tool(task: str, ctx: Context) -> dict[str, Any]:
        """Let deskpilot's agent do a whole task."""
        loop = asyncio.get_running_loop()
        total = float(desk.config.max_steps)

        def on_event(event: Event) -> None:
            match event:
                case ActionProposed(step=step, proposal=proposal):
                    what = (
                        describe(proposal.action)
                        if proposal.action is not None
                        else "invalid output"
                    )
                    done, message = step, f"step {step + 1}: {what}"
                case OutputInvalid(step=step, error=error):
                    done, message = step, f"step {step + 1}: invalid output ({error})"
                case RunFinished(steps=steps, outcome=outcome):
                    done, message = steps + 1, f"finished: {outcome}"
                case _:
                    return
            asyncio.run_coroutine_threadsafe(ctx.report_progress(float(done), total, message), loop)

        stop = threading.Event()
        try:
            result = await on_desk(desk.run, client_name(ctx), task, on_event, stop)
        except asyncio.CancelledError:
            stop.set()  # the client cancelled the call: end the run at its next check
            raise
        return {
            "outcome": result.outcome,
            "message": result.message,
            "answer": result.answer,
            "steps": result.steps,
            "recording": result.run_dir,
        }

    read_only = ToolAnnotations(read_only_hint=True, destructive_hint=False)
    server.add_tool(
        screenshot,
        name="screenshot",
        description=(
            "The current screen of deskpilot's monitor as a PNG (downscaled as for the model, "
            "aspect kept), and a text item with the screen's size in pixels, e.g. 1920x1080."
        ),
        annotations=read_only,
        structured_output=False,
    )
    server.add_tool(
        act,
        name="act",
        description=(
            "Perform one computer_use action on the desktop, with exactly the arguments of Qwen "
            "3.5's computer_use tool; coordinates are 0-1000 on each axis of the screenshot. "
            "Judged by deskpilot's risk rules and approval mode; a refused or invalid action is "
            "an error result saying why, and nothing was executed."
        ),
        annotations=ToolAnnotations(destructive_hint=True, open_world_hint=False),
        structured_output=False,
    )
    server.add_tool(
        run_task_tool,
        name="run_task",
        description=(
            "Let deskpilot's own Qwen 3.5 agent do a whole task on the desktop with its "
            "configured model; returns the outcome, the answer and the recording folder, "
            "with a progress notification at each step."
        ),
    )
    # The advertised schema is the model's own computer_use schema; the arguments still go
    # through deskpilot's one validator (agent/protocol.py), which says what is wrong.
    server._tool_manager.get_tool("act").parameters = act_schema()

    @server.resource(RUNS_URI, name="runs", mime_type="application/json")
    def runs() -> str:
        """Every recording: id, task, times, outcome, steps (newest first)."""
        return json.dumps(desk.list_runs(), ensure_ascii=False, indent=1)

    @server.resource(f"{RUNS_URI}/{{run_id}}", name="run", mime_type="application/json")
    def run(run_id: str) -> str:
        """One recording: run.json, its steps as recorded, and warnings."""
        try:
            return json.dumps(desk.read(run_id), ensure_ascii=False)
        except Refused as exc:
            raise ResourceError(str(exc)) from None

    @server.resource(
        f"{RUNS_URI}/{{run_id}}/steps/{{index}}/screenshot",
        name="screenshot",
        mime_type="image/png",
    )
    def step_screenshot(run_id: str, index: str) -> bytes:
        """The screenshot a step of a recording saw."""
        if not index.isdigit():
            raise ResourceError(f"not a step index: {index!r}")
        try:
            return desk.screenshot_file(run_id, int(index))
        except Refused as exc:
            raise ResourceError(str(exc)) from None

    return server


def client_name(ctx: Any) -> str:
    """The MCP client's name and version as it introduced itself ("unknown client" if not).

    Client-written text, kept as written (cut to CLIENT_NAME_LIMIT) for recordings; displays
    show it through agent/textsafe.py.
    """
    try:
        info = ctx.session.client_params.client_info
        name = f"{info.name} {info.version}".strip() if info.version else str(info.name)
    except AttributeError:
        return "unknown client"
    return name[:CLIENT_NAME_LIMIT] if name.strip() else "unknown client"


def loopback_address(text: str) -> tuple[str, int]:
    """HOST:PORT for --listen, only on a loopback address; ValueError says what is wrong.

    Screenshots and input go to whoever connects, so the port is never reachable from another
    machine: 127.0.0.0/8, [::1] or localhost (taken as 127.0.0.1), never a name or 0.0.0.0.
    """
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(
            f"--listen wants HOST:PORT on a loopback address, e.g. 127.0.0.1:8765; not {text!r}"
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host == "localhost":
        host = "127.0.0.1"  # not resolved: a hosts file could point the name elsewhere
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(
            f"--listen {text}: deskpilot listens only on a loopback address (127.0.0.1, [::1]), "
            "never on one other machines can reach: it hands out screenshots and input"
        )
    return host, int(port_text)


def http_security(host: str, port: int) -> TransportSecuritySettings:
    """Host and Origin checks: only requests addressed to this loopback port, no web pages.

    A web page the user visits can send requests to loopback ports (and DNS rebinding can give
    it a name that resolves there): a Host header other than this address, or an Origin header
    other than this server's own, is refused.
    """
    shown = f"[{host}]" if ":" in host else host
    hosts = [f"{shown}:{port}"] + ([f"localhost:{port}"] if host == "127.0.0.1" else [])
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts,
        allowed_origins=[f"http://{h}" for h in hosts],
    )


class HttpServer:
    """Streamable HTTP on a loopback address: serve() on one thread, stop() from any other.

    The port is bound and listening when this is made: a port in use is an OSError for the
    caller, not a log line from a server thread, and clients may connect right away.
    """

    # Seconds an open event stream may hold up a stop before its task is cancelled.
    GRACE_S = 3

    def __init__(self, desk: Desk, host: str, port: int, *, log_level: str | None = None) -> None:
        """log_level: uvicorn's (None: the SDK's, as `main.py mcp --listen` always logged)."""
        import uvicorn

        host, port = loopback_address(f"{host}:{port}")  # checked again: never wider
        self.desk = desk
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}/mcp"
        mcp_server = build_server(desk)
        app = mcp_server.streamable_http_app(
            transport_security=http_security(host, port), host=host
        )
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=(log_level or mcp_server.settings.log_level).lower(),
            timeout_graceful_shutdown=self.GRACE_S,
        )
        self._server = uvicorn.Server(config)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.bind((host, port))
            self._socket.listen(128)  # clients may connect at once; served once uvicorn runs
        except OSError:
            self._socket.close()
            raise

    def serve(self) -> None:
        """Serve until stop() (or, on the main thread, Ctrl-C); then close the desk."""
        try:
            anyio.run(lambda: self._server.serve(sockets=[self._socket]))
        finally:
            self._socket.close()
            self.desk.close()

    def stop(self) -> None:
        """Ask serve() to end (any thread): a pending decision ends, connections close."""
        self.desk.stop.set()
        self._server.should_exit = True


def serve(desk: Desk, listen: tuple[str, int] | None = None) -> None:
    """Serve over stdio (or streamable HTTP on a loopback `listen` address) until closed."""
    if listen is not None:
        try:
            http = HttpServer(desk, *listen)
        except OSError as exc:  # the port is taken: one line, as uvicorn said it before
            desk.close()
            print(
                f"deskpilot: error: cannot listen on {listen[0]}:{listen[1]}: {exc}",
                file=sys.stderr,
            )
            raise SystemExit(1) from None
        except BaseException:
            desk.close()
            raise
        http.serve()
        return
    server = build_server(desk)
    # stdout is the MCP wire. While serving, the SDK points fd 1 at stderr; text that libraries
    # print (python-xlib's xauth warnings) must reach fd 1 at once, not from a buffer flushed
    # after the wire is restored, and nothing may print to it after serving.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True, write_through=True)
    try:
        server.run("stdio")
    finally:
        sys.stdout = sys.stderr
        desk.close()
