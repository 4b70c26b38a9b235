"""deskpilot's command line: builds the objects, wires them, and maps outcomes to exit codes."""

from __future__ import annotations

import os
import signal
import sys

# First of all: from here on SIGINT, SIGTERM, SIGHUP and SIGQUIT end the process with one line,
# never a traceback. Only as the program itself: a test importing this module keeps its own.
_ENTRY = __name__ == "__main__" or os.path.basename(sys.argv[0]).startswith("deskpilot")


def _while_importing(signum: int, frame: object) -> None:
    """A signal before agent.interrupts takes over (a millisecond): nothing to undo yet."""
    name = signal.Signals(signum).name
    os.write(2, f"deskpilot: interrupted by {name} while starting\n".encode())
    os._exit(1)


if _ENTRY:
    for _name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"):
        signal.signal(getattr(signal, _name), _while_importing)

from agent import interrupts  # noqa: E402

if _ENTRY:
    interrupts.install()

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, NoReturn  # noqa: E402

# Everything a model (or a server, or a recording) wrote is shown through these: no terminal
# control, escape sequence or bidi override in it reaches the terminal (agent/textsafe.py).
from agent.textsafe import one_line, visible  # noqa: E402

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# The desktop options, which `calibrate` shares with the run options.
DESKTOP_OPTIONS = ("desktop", "open", "desktop_size")


def fail(message: str) -> NoReturn:
    """Print a one-line error and exit with the usage/configuration status."""
    print(f"deskpilot: error: {visible(message)}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    """The CLI: run (headless), monitors; no sub-command starts the desktop app."""
    parser = argparse.ArgumentParser(
        prog="deskpilot", description="A desktop computer-use agent driven by Qwen 3.5."
    )
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="run one task headless, asking on the terminal")
    run.add_argument("task", help="what the agent should do, in plain words")
    add_run_options(run)
    sub.add_parser("monitors", help="list the monitors deskpilot can see (RandR on X11)")
    add_calibrate_parser(sub)
    add_mcp_parser(sub)
    from agent.replay_cli import add_replay_parsers

    add_replay_parsers(sub, add_run_options)
    from agent.demo_cli import add_demo_parsers

    add_demo_parsers(sub)
    return parser


def add_run_options(p: argparse.ArgumentParser) -> None:
    """Every run option (agent/config.py RunConfig), plus the terminal's --quiet."""
    from agent.config import add_cli_options

    add_cli_options(p)
    p.add_argument("-q", "--quiet", action="store_true", help="do not stream the model's thinking")


def run_config(args: argparse.Namespace) -> Any:
    """The RunConfig the flags give; a bad value exits with status 2 naming the flag."""
    from agent.config import ConfigError, from_args

    try:
        return from_args(args)
    except ConfigError as exc:
        fail(str(exc))


def add_calibrate_parser(sub: Any) -> None:
    """`calibrate`: click targets on each monitor through the agent's mapping and measure."""
    p = sub.add_parser(
        "calibrate",
        help="self-test: click targets on each monitor as the agent would, measure the error",
    )
    p.add_argument("--monitor", type=int, help="only this monitor (default: every monitor)")
    p.add_argument(
        "--geometry",
        metavar="WxH+X+Y",
        help="capture and map with this geometry instead of RandR's (shows what a wrong "
        "monitor geometry does)",
    )
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="pretend the desktop scales input by this factor (shows what an unknown HiDPI "
        "setting does; default 1)",
    )
    from agent.config import add_cli_options

    add_cli_options(p, only=DESKTOP_OPTIONS)


def run_on_desktop(args: argparse.Namespace, body: Any) -> int:
    """Call body(display) on the desktop --desktop asks for; a private one ends with it."""
    from actions.private_desktop import DesktopError, desktop_display, parse_size

    config = run_config(args)
    try:
        with desktop_display(
            config.desktop, parse_size(config.desktop_size), config.open
        ) as display:
            result: int = body(display)
            return result
    except DesktopError as exc:
        fail(str(exc))


def backend_from_args(args: argparse.Namespace) -> Any:
    """The model backend the flags ask for, a local one loaded; raises BackendError."""
    from agent.session import open_backend

    config = run_config(args)
    progress = LoadProgress(config.model_id or "") if config.backend == "local" else None
    try:
        return open_backend(config, on_progress=progress)
    finally:
        if progress is not None:
            LoadProgress.end_line()


class LoadProgress:
    """Shows the local worker's download and load stages on the terminal."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.stage = ""

    def __call__(self, stage: str, fraction: float | None) -> None:
        """A new stage gets a line; on a terminal a fraction updates the line in place."""
        pct = f" {fraction * 100:5.1f}%" if fraction is not None else ""
        line = f"deskpilot: {one_line(self.model)}: {one_line(stage)}{pct}"
        if sys.stderr.isatty():
            sys.stderr.write(("\r" if stage == self.stage else "\n") + line + "\x1b[K")
        elif stage != self.stage:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()
        self.stage = stage

    @staticmethod
    def end_line() -> None:
        """Finish the in-place line on a terminal."""
        if sys.stderr.isatty():
            sys.stderr.write("\n")


class TerminalView:
    """Prints a run's events on the terminal: thinking as it streams, then each proposal."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.streaming = False
        self.streamed = False
        self.last_char = ""  # the last character of streamed thinking shown (textsafe context)

    def __call__(self, event: Any) -> None:
        """Show one loop event (an agent.events.Event)."""
        from actions.types import describe
        from agent.events import (
            ActionExecuted,
            ActionProposed,
            BackendFailed,
            DecisionMade,
            OutputInvalid,
            RunFinished,
            ScreenStale,
            StepStarted,
            TextStreamed,
        )

        if isinstance(event, TextStreamed):
            if event.kind == "reasoning" and not self.quiet:
                if not self.streaming:
                    sys.stderr.write("  thinking: ")
                    self.streaming = self.streamed = True
                    self.last_char = ""
                text = event.text
                # Each line of thinking starts with a gutter, so no line of it can pass for
                # one of ours ("  proposes ...", "  risky: ...").
                shown = visible(text, before=self.last_char).replace("\n", "\n  | ")
                self.last_char = text[-1:] or self.last_char
                sys.stderr.write(shown)
                sys.stderr.flush()
            return
        if self.streaming:
            sys.stderr.write("\n")
            self.streaming = False
        match event:
            case StepStarted(step=step):
                self.streamed = False
                print(f"step {step + 1}: looking at the screen", file=sys.stderr)
            case ActionProposed(proposal=prop, risk=risk):
                if prop.thinking.strip() and not self.streamed and not self.quiet:
                    print(f"  thinking: {one_line(prop.thinking, 400)}", file=sys.stderr)
                if prop.action is not None:
                    print(f"  proposes {one_line(describe(prop.action))}", file=sys.stderr)
                    if risk is not None and risk.level != "safe":
                        print(f"  {risk.level}: {one_line(risk.reason)}", file=sys.stderr)
            case DecisionMade(decision=decision) if decision.kind == "reject":
                if decision.by != "user":  # the user knows what they rejected
                    print(
                        f"  refused, nothing executed: {one_line(str(decision.note))}",
                        file=sys.stderr,
                    )
            case BackendFailed(error=error, retry_in_s=again):
                later = f"; retrying in {again:g} s" if again is not None else ""
                print(f"  model backend: {one_line(error)}{later}", file=sys.stderr)
            case OutputInvalid(error=error):
                print(f"  invalid output, nothing executed: {one_line(error)}", file=sys.stderr)
            case ActionExecuted(ok=False, error=error):
                print(f"  execution failed: {one_line(str(error))}", file=sys.stderr)
            case ScreenStale(reason=reason):
                why = one_line(reason)
                print(f"  screen changed before execution, not executed: {why}", file=sys.stderr)
            case RunFinished(outcome=outcome, message=message):
                print(f"finished: {outcome}: {one_line(message)}", file=sys.stderr)


def command_run(args: argparse.Namespace) -> int:
    """Run one task headless; returns the exit status."""
    from actions.private_desktop import DesktopError
    from actions.screen import DisplayError
    from agent.approval import TerminalApprover
    from agent.backends.base import BackendError
    from agent.loop import RunResult
    from agent.recording import RecordingError
    from agent.session import Session, SessionError

    config = run_config(args)
    task = args.task
    if not task.strip():
        fail("the task is empty")
    interactive = sys.stdin.isatty()
    if config.approve == "guarded" and not interactive:
        print(
            "deskpilot: note: stdin is not a terminal; risky actions will be refused and "
            "reported to the model",
            file=sys.stderr,
        )
    try:
        session = Session(
            config,
            on_progress=LoadProgress(config.model_id or ""),
            on_desktop=_say_private_desktop,
        )
    except SessionError as exc:
        fail(str(exc))
    # A crash report knows what this run learnt is secret.
    args.run_redactor = session.redactor
    if (config.approve == "ask" or session.breakpoints) and not interactive:
        # Reading decisions from a pipe is allowed, but say what happens at its end.
        print(
            "deskpilot: note: stdin is not a terminal; decisions are read from it, "
            "and its end stops the run",
            file=sys.stderr,
        )
    # A signal from here on sets this, and the run records which signal ended it.
    stop = interrupts.StopEvent()
    interrupts.watch(stop)
    result: RunResult | None = None
    recorder = None
    try:
        try:
            session.desktop  # noqa: B018  # open it now: a missing display is a usage error
            warning = session.endpoint_warning()
            if warning:
                print(f"deskpilot: warning: {visible(warning)}", file=sys.stderr)
            try:
                session.backend  # noqa: B018  # load now: a missing model is not a step
            finally:
                if config.backend == "local":
                    LoadProgress.end_line()
            recorder = session.recorder(task)
        except (DisplayError, DesktopError, BackendError, SessionError) as exc:
            fail(str(exc))
        print(f"deskpilot: recording to {recorder.dir}", file=sys.stderr)
        ask = TerminalApprover(sys.stdin, sys.stderr)
        # Guarded without a terminal: nobody can approve, so risky actions are refused. Ask
        # mode and breakpoints read decisions from stdin even when it is a pipe.
        person = ask if interactive or config.approve == "ask" else None
        # With auto, the terminal is asked only from a breakpoint on, until `c` (continue).
        decide = session.decider(person, ask)
        try:
            result = session.run(
                task, decide=decide, recorder=recorder, on_event=TerminalView(args.quiet), stop=stop
            )
        except DisplayError as exc:
            # The desktop went away mid-run (portal permission revoked, display gone): the
            # loop recorded the error; one line here.
            print(f"deskpilot: error: {one_line(str(exc))}", file=sys.stderr)
            return EXIT_FAILED
    finally:
        try:
            interrupts.stopping()  # from here on a signal cannot cut the cleanup short
        finally:
            session.close()
            if result is None and recorder is not None and recorder.info.get("outcome") is None:
                # Interrupted before the loop began: the recording still gets its outcome.
                reason = interrupts.stop_reason(stop, "interrupted while starting")
                try:
                    recorder.finish({"status": "stopped", "message": reason, "steps": 0})
                except RecordingError:
                    pass  # reported by the line main() prints
    if result.answer is not None:
        print(visible(result.answer))
    return result.exit_code


def _say_private_desktop(desktop: Any) -> None:
    """The private desktop's display and processes, once it runs (tests find it by its pids)."""
    if desktop is not None:
        print(f"deskpilot: {desktop.describe()}; pids {desktop.pids()}", file=sys.stderr)


def add_mcp_parser(sub: Any) -> None:
    """`deskpilot mcp`: the same run options; guarded unless --approve says otherwise."""
    mcp = sub.add_parser(
        "mcp",
        help="serve screenshot, act and run_task to MCP clients over stdio (docs/mcp.md)",
        description="An MCP server on stdin/stdout (no network port unless --listen asks for "
        "one on loopback). Nobody can be asked over MCP: in guarded mode (the default here) "
        "risky actions are refused, in ask mode every action is; blocked actions never run.",
    )
    add_run_options(mcp)
    mcp.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="serve streamable HTTP on this loopback address (127.0.0.1:PORT or [::1]:PORT) "
        "instead of stdio; other addresses are refused",
    )
    mcp.set_defaults(approve="guarded")


def command_mcp(args: argparse.Namespace) -> int:
    """Serve deskpilot's tools over MCP stdio until the client disconnects."""
    from agent.mcp_server import Desk, loopback_address, serve
    from agent.session import Session, SessionError

    try:
        listen = loopback_address(args.listen) if args.listen else None
    except ValueError as exc:
        fail(str(exc))
    config = run_config(args)
    try:
        session = Session(config, on_progress=LoadProgress(config.model_id or ""))
    except SessionError as exc:
        fail(str(exc))
    warning = session.endpoint_warning()
    if warning:
        print(f"deskpilot: warning: {visible(warning)}", file=sys.stderr)
    where = f"http://{args.listen}/mcp" if listen else "stdio"
    print(
        f"deskpilot: MCP server on {where} (approval {config.approve}; recordings in "
        f"{config.runs_path()}); the model starts on the first run_task",
        file=sys.stderr,
    )
    serve(Desk(session), listen)
    return EXIT_OK


def _view_recording(recording: Any) -> int:
    """Open the replay viewer window (Qt lives in ui/)."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY")
        or os.environ.get("WAYLAND_DISPLAY")
        or os.environ.get("QT_QPA_PLATFORM")
    ):
        fail("no display for the viewer: set DISPLAY, or use `deskpilot export`")
    from ui.debugger import run_viewer

    return int(run_viewer(recording))


def _export_recording(recording: Any, args: argparse.Namespace) -> int:
    """Write the recording as mp4, gif or html (the encoder draws with Qt, in ui/)."""
    from ui.export import ExportError, export_run

    try:
        out = export_run(recording, args.fmt, args.out, show_progress=not args.quiet)
    except ExportError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write {args.out}: {exc}")
    print(f"deskpilot: wrote {out}", file=sys.stderr)
    return EXIT_OK


def command_monitors() -> int:
    """List monitors with their geometry."""
    from actions.desktop import list_monitors
    from actions.screen import DisplayError

    try:
        monitors = list_monitors()
    except DisplayError as exc:
        fail(str(exc))
    for m in monitors:
        mark = " (primary)" if m.primary else ""
        name = f" {m.name}" if m.name else ""
        scale = f" scale {m.scale:g}" if m.scale != 1.0 else ""
        print(f"{m.index}:{name} {m.geometry()}{scale}{mark}")
    return EXIT_OK


def command_calibrate(args: argparse.Namespace, display: str | None) -> int:
    """The calibration self-test (actions/calibrate.py): 0 when every target is hit."""
    import re
    from dataclasses import replace

    from actions.calibrate import TOLERANCE_PX, calibrate, format_report
    from actions.screen import DisplayError, Monitor, Screen

    try:
        monitors = Screen(display=display).list_monitors()
    except DisplayError as exc:
        fail(str(exc))
    if args.monitor is not None:
        monitors = [m for m in monitors if m.index == args.monitor]
        if not monitors:
            fail(f"no monitor {args.monitor}; see `deskpilot monitors`")
    if not args.scale > 0:
        fail("--scale must be positive")
    geometry = None
    if args.geometry:
        match = re.fullmatch(r"(\d+)x(\d+)\+(\d+)\+(\d+)", args.geometry)
        if not match:
            fail(f"--geometry {args.geometry!r} is not WIDTHxHEIGHT+X+Y")
        w, h, x, y = (int(v) for v in match.groups())

        def geometry(m: Monitor) -> Monitor:
            return replace(m, left=x, top=y, width=w, height=h)

    reports = calibrate(monitors, display=display, geometry=geometry, click_scale=args.scale)
    print(format_report(reports))
    if all(r.passed for r in reports):
        print(f"calibration passed: every target hit within {TOLERANCE_PX:g} px")
        return EXIT_OK
    print(f"calibration FAILED: some targets missed by more than {TOLERANCE_PX:g} px")
    return EXIT_FAILED


def command_default() -> int:
    """No sub-command: start the desktop app (ui/app.py)."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        fail("no display for the app: set DISPLAY, or use `deskpilot run TASK` on a terminal")
    from ui.app import run_app

    return run_app()


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python main.py` and the `deskpilot` console script."""
    args = build_parser().parse_args(argv)
    interrupts.running()
    try:
        if args.command == "run":
            return command_run(args)
        if args.command == "monitors":
            return command_monitors()
        if args.command == "calibrate":
            return run_on_desktop(args, lambda display: command_calibrate(args, display))
        if args.command == "mcp":
            return command_mcp(args)
        if args.command in ("demo", "routine"):
            from agent.demo_cli import run_demo_command

            return run_demo_command(args)
        if args.command in ("replay", "export"):
            from agent.replay_cli import run_replay_command

            return run_replay_command(
                args, backend_from_args, view=_view_recording, export=_export_recording
            )
        return command_default()
    except KeyboardInterrupt as exc:
        _say(f"deskpilot: {exc or 'interrupted'}")
        return EXIT_FAILED
    except Exception as exc:  # a bug: keep the details in a file, show one line
        from agent.secrets import Redactor

        # The API key, any secret given, and what the run learnt (secrets typed in pieces)
        # never reach the log or the terminal.
        redactor = getattr(args, "run_redactor", None) or Redactor()
        for value in _secret_values(args):
            redactor.add(value)
        log = report_crash(exc, redactor.redact_text)
        line = one_line(redactor.redact_text(f"{type(exc).__name__}: {exc}"))
        print(f"deskpilot: internal error: {line} (details in {log})", file=sys.stderr)
        return EXIT_FAILED


def _say(line: str) -> None:
    """One line on stderr that never raises (the terminal may have gone with a SIGHUP)."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def _secret_values(args: argparse.Namespace) -> list[str]:
    """The values that must never be written anywhere: the API key and the user's secrets."""
    from agent.config import DEFAULT_API_KEY_ENV

    key_env = getattr(args, "api_key_env", None) or DEFAULT_API_KEY_ENV
    names = [key_env, *(getattr(args, "secret_env", None) or [])]
    values = [os.environ.get(name, "") for name in names]
    return [v for v in [*values, *(getattr(args, "secret", None) or [])] if v]


def report_crash(exc: BaseException, redact: Any = None) -> Path:
    """Write the traceback of an unexpected error to the user's log folder (secrets redacted)."""
    import tempfile
    import traceback

    from platformdirs import user_log_dir

    text = "".join(traceback.format_exception(exc))
    if redact is not None:
        text = redact(text)
    for folder in (Path(user_log_dir("deskpilot")), Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / "crash.log"
            path.write_text(text, encoding="utf-8")
            return path
        except OSError:
            continue
    return Path("(unwritable)")


if __name__ == "__main__":
    sys.exit(main())
