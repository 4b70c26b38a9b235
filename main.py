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
from typing import Any, Literal, NoReturn  # noqa: E402

# Everything a model (or a server, or a recording) wrote is shown through these: no terminal
# control, escape sequence or bidi override in it reaches the terminal (agent/textsafe.py).
from agent.textsafe import one_line, visible  # noqa: E402

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_LOCAL_MODEL = "Qwen/Qwen3.5-2B"


def default_runs_dir() -> Path:
    """Where recordings go unless --runs-dir says otherwise."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("deskpilot")) / "runs"


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
    add_desktop_options(run)
    sub.add_parser("monitors", help="list the monitors deskpilot can see (RandR on X11)")
    add_calibrate_parser(sub)
    add_mcp_parser(sub)
    from ui.replay_cli import add_replay_parsers

    add_replay_parsers(sub, add_run_options)
    return parser


def add_run_options(p: argparse.ArgumentParser) -> None:
    """Options shared by every way of starting a run."""
    p.add_argument(
        "--endpoint", help="base URL of an OpenAI-compatible API, e.g. http://127.0.0.1:8000/v1"
    )
    p.add_argument(
        "--model", help="model name (endpoint: default the first it lists; local: id or folder)"
    )
    p.add_argument(
        "--backend",
        choices=["local", "openai"],
        help="local worker (default without --endpoint) or an OpenAI-compatible endpoint",
    )
    p.add_argument("--device", choices=["cuda", "mps", "cpu"], help="local worker device")
    p.add_argument(
        "--approve",
        choices=["ask", "guarded", "auto"],
        default="ask",
        help="ask for every action (default), only for risky ones (guarded; without a terminal "
        "they are refused), or run unattended (auto); blocked actions never run",
    )
    p.add_argument(
        "--risk-rules",
        type=Path,
        metavar="TOML",
        help="risk rules file (default: risk.toml in the config folder if present; "
        "see docs/reliability.md)",
    )
    p.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="TEXT",
        help="text to keep out of recordings and exports (repeatable; prefer --secret-env)",
    )
    p.add_argument(
        "--secret-env",
        action="append",
        default=[],
        metavar="VAR",
        help="environment variable whose value is secret (repeatable)",
    )
    p.add_argument(
        "--max-minutes",
        type=float,
        default=30.0,
        help="end the run after this many minutes of its own time, waiting for you excluded "
        "(default 30; 0: no limit)",
    )
    p.add_argument(
        "--repeat-limit",
        type=int,
        default=3,
        help="pause (ask) at the Nth identical action in a row on an unchanged screen (default 3)",
    )
    p.add_argument(
        "--break-at",
        default="",
        metavar="N[,M...]",
        help="pause before these steps (1-based) and ask for each action until `c` (continue)",
    )
    p.add_argument(
        "--break-on",
        default="",
        metavar="KIND[,KIND...]",
        help="pause before actions of these kinds (left_click, type, key, ...), then step",
    )
    p.add_argument(
        "--max-steps", type=int, default=30, help="stop after this many steps (default 30)"
    )
    p.add_argument(
        "--runs-dir", type=Path, help=f"where recordings go (default {default_runs_dir()})"
    )
    p.add_argument(
        "--monitor",
        type=int,
        help="monitor number as `deskpilot monitors` lists it (default: primary)",
    )
    p.add_argument(
        "--display-backend",
        choices=["auto", "x11", "wlroots", "portal"],
        default="auto",
        help="how to see and drive the desktop (default auto: from the session; see "
        "docs/wayland.md)",
    )
    p.add_argument(
        "--history-images", type=int, default=3, help="screenshots kept in the prompt (default 3)"
    )
    p.add_argument(
        "--coords",
        choices=["relative", "absolute"],
        default="relative",
        help="model coordinates: 0-1000 (Qwen3.5) or resized-image pixels (Qwen2.5-VL)",
    )
    p.add_argument(
        "--thinking",
        choices=["on", "off"],
        help="ask the model to think first (default: the model's own)",
    )
    p.add_argument(
        "--max-tokens",
        type=int,
        help="bound on generated tokens per step (default 4096; local non-thinking 1024)",
    )
    p.add_argument("--max-pixels", type=int, help="downscale screenshots above this many pixels")
    p.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for the model (default 120)"
    )
    p.add_argument(
        "--retries",
        type=int,
        default=2,
        help="send a request again this many times when the model backend fails in a way that "
        "may pass (down, HTTP 5xx, timeout, the worker died), after 1 s, 4 s, ... (default 2)",
    )
    p.add_argument(
        "--api-key-env",
        default="DESKPILOT_API_KEY",
        help="environment variable holding the API key",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="do not stream the model's thinking")


def add_desktop_options(p: argparse.ArgumentParser) -> None:
    """Where the agent works: the user's session or a private desktop (docs/desktops.md)."""
    from actions.private_desktop import DEFAULT_SIZE, DESKTOP_CHOICES

    p.add_argument(
        "--desktop",
        choices=DESKTOP_CHOICES,
        default="user",
        help="user: your own session (default); private: a desktop of the agent's own, an "
        "Xephyr window you can watch when there is a display, else headless; headless: Xvfb; "
        "window: Xephyr",
    )
    p.add_argument(
        "--open",
        action="append",
        default=[],
        metavar="CMD",
        help="start this application on the private desktop first (repeatable)",
    )
    p.add_argument(
        "--desktop-size",
        default=f"{DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]}",
        metavar="WxH",
        help="size of the private desktop (default %(default)s)",
    )


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
    add_desktop_options(p)


def run_on_desktop(args: argparse.Namespace, body: Any) -> int:
    """Call body(display) on the desktop --desktop asks for; a private one ends with it."""
    from actions.private_desktop import DesktopError, desktop_display, parse_size

    try:
        size = parse_size(args.desktop_size)
    except ValueError as exc:
        fail(str(exc))
    try:
        with desktop_display(args.desktop, size, args.open) as display:
            result: int = body(display)
            return result
    except DesktopError as exc:
        fail(str(exc))


def private_desktop_info(args: argparse.Namespace, display: str | None) -> dict[str, Any]:
    """run.json's `desktop` for a run on a private desktop; nothing for the user's own."""
    from actions.private_desktop import recorded

    if display is None:
        return {}
    return recorded(args.desktop, args.desktop_size, args.open)


def make_backend(args: argparse.Namespace) -> Any:
    """The model backend the flags ask for; configuration problems exit with status 2."""
    from agent.backends.base import BackendError

    try:
        return backend_from_args(args)
    except BackendError as exc:
        fail(str(exc))


def backend_from_args(args: argparse.Namespace) -> Any:
    """The model backend the flags ask for, a local one loaded; raises BackendError."""
    from agent.backends.base import BackendError
    from agent.backends.factory import build_backend

    thinking = None if args.thinking is None else args.thinking == "on"
    kind: Literal["local", "openai"] = args.backend or ("openai" if args.endpoint else "local")
    if kind == "openai" and not args.endpoint:
        raise BackendError("--backend openai needs --endpoint URL (the server's /v1 base)")
    model: str | None = args.model or (None if kind == "openai" else DEFAULT_LOCAL_MODEL)
    backend = build_backend(
        kind,
        endpoint=args.endpoint,
        model=model,
        device=args.device,
        thinking=thinking,
        max_tokens=args.max_tokens,
        timeout_s=args.timeout,
        api_key_env=args.api_key_env,
        on_progress=LoadProgress(model or DEFAULT_LOCAL_MODEL) if kind == "local" else None,
        default_local_model=DEFAULT_LOCAL_MODEL,
    )
    if kind == "local":
        try:
            backend.start()  # load now: a missing model is a configuration error, not a step
        except BaseException:
            backend.close()
            raise
        finally:
            LoadProgress.end_line()
    return backend


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


def warn_if_remote(endpoint: str | None) -> None:
    """Screenshots of the user's desktop leave the machine: say so unless loopback or HTTPS."""
    if not endpoint:
        return
    from agent.backends.factory import endpoint_warning

    warning = endpoint_warning(endpoint)
    if warning:
        print(f"deskpilot: warning: {visible(warning)}", file=sys.stderr)


class TerminalView:
    """Prints a run's events on the terminal: thinking as it streams, then each proposal."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.streaming = False
        self.streamed = False
        self.last_char = ""  # the last character of streamed thinking shown (textsafe context)

    def __call__(self, event: Any) -> None:
        """Show one loop event."""
        from actions.types import describe

        if event.kind == "delta":
            if event.data["kind"] == "reasoning" and not self.quiet:
                if not self.streaming:
                    sys.stderr.write("  thinking: ")
                    self.streaming = self.streamed = True
                    self.last_char = ""
                text = event.data["text"]
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
        if event.kind == "step_started":
            self.streamed = False
            print(f"step {event.step + 1}: looking at the screen", file=sys.stderr)
        elif event.kind == "proposal":
            prop = event.data["proposal"]
            if prop.thinking.strip() and not self.streamed and not self.quiet:
                print(f"  thinking: {one_line(prop.thinking, 400)}", file=sys.stderr)
            if prop.action is not None:
                print(f"  proposes {one_line(describe(prop.action))}", file=sys.stderr)
                risk = event.data.get("risk")
                if risk is not None and risk.level != "safe":
                    print(f"  {risk.level}: {one_line(risk.reason)}", file=sys.stderr)
        elif event.kind == "decision" and event.data["decision"].kind == "reject":
            decision = event.data["decision"]
            if decision.by != "user":  # the user knows what they rejected
                print(
                    f"  refused, nothing executed: {one_line(str(decision.note))}", file=sys.stderr
                )
        elif event.kind == "backend_error":
            again = event.data.get("retry_in_s")
            later = f"; retrying in {again:g} s" if again is not None else ""
            print(f"  model backend: {one_line(str(event.data['error']))}{later}", file=sys.stderr)
        elif event.kind == "invalid":
            error = one_line(str(event.data["error"]))
            print(f"  invalid output, nothing executed: {error}", file=sys.stderr)
        elif event.kind == "executed" and not event.data["ok"]:
            print(f"  execution failed: {one_line(str(event.data['error']))}", file=sys.stderr)
        elif event.kind == "stale":
            why = one_line(str(event.data["reason"]))
            print(f"  screen changed before execution, not executed: {why}", file=sys.stderr)
        elif event.kind == "finished":
            message = one_line(str(event.data["message"]))
            print(f"finished: {event.data['outcome']}: {message}", file=sys.stderr)


def run_setup(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """(LoopSettings, RiskRules, Redactor) from the run options; bad values exit with status 2."""
    from agent.loop import LoopSettings
    from agent.risk import RiskConfigError, load_rules
    from agent.secrets import Redactor, secrets_from_env

    if args.max_steps < 1:
        fail("--max-steps must be at least 1")
    if args.history_images < 1:
        fail("--history-images must be at least 1")
    if args.repeat_limit < 2:
        fail("--repeat-limit must be at least 2")
    try:
        rules = load_rules(args.risk_rules)
    except RiskConfigError as exc:
        fail(str(exc))
    missing = [name for name in args.secret_env if name not in os.environ]
    if missing:
        fail(f"--secret-env {missing[0]}: that environment variable is not set")
    redactor = Redactor([*args.secret, *secrets_from_env(args.secret_env)])
    args.run_redactor = redactor  # a crash report knows what this run learnt is secret
    settings_kwargs: dict[str, Any] = {
        "max_steps": args.max_steps,
        "history_images": args.history_images,
        "coords": args.coords,
        "repeat_limit": args.repeat_limit,
        "retry_delays_s": tuple(1.0 * 4**n for n in range(max(0, args.retries))),
        "max_minutes": args.max_minutes if args.max_minutes > 0 else None,
    }
    if args.max_pixels:
        settings_kwargs["max_pixels"] = args.max_pixels
    return LoopSettings(**settings_kwargs), rules, redactor


def command_run(args: argparse.Namespace, task: str, display: str | None = None) -> int:
    """Run one task headless on a display (None: the user's session); returns the exit status."""
    from actions.desktop import open_desktop
    from actions.screen import DisplayError
    from agent.approval import Breakpoints, TerminalApprover, policy, with_breakpoints
    from agent.loop import RunResult, run_task
    from agent.recording import Recorder, RecordingError, run_info

    settings, rules, redactor = run_setup(args)
    if not task.strip():
        fail("the task is empty")
    try:
        breakpoints = Breakpoints.parse(args.break_at, args.break_on)
    except ValueError as exc:
        fail(str(exc))
    interactive = sys.stdin.isatty()
    if args.approve == "guarded" and not interactive:
        print(
            "deskpilot: note: stdin is not a terminal; risky actions will be refused and "
            "reported to the model",
            file=sys.stderr,
        )
    if (args.approve == "ask" or breakpoints) and not interactive:
        # Reading decisions from a pipe is allowed, but say what happens at its end.
        print(
            "deskpilot: note: stdin is not a terminal; decisions are read from it, "
            "and its end stops the run",
            file=sys.stderr,
        )
    try:
        desktop = open_desktop(args.display_backend, args.monitor, display=display)
    except DisplayError as exc:
        fail(str(exc))
    screen = desktop.screen
    warn_if_remote(args.endpoint)
    # A signal from here on sets this, and the run records which signal ended it.
    stop = interrupts.StopEvent()
    interrupts.watch(stop)
    try:
        backend = make_backend(args)
    except BaseException:
        desktop.close()
        raise

    runs_dir = args.runs_dir or default_runs_dir()
    try:
        recorder = Recorder(
            runs_dir,
            run_info(
                task,
                backend=backend,
                approval=args.approve,
                monitor=screen.monitor,
                settings=settings.to_json(),
                risk_rules=rules.summary,
                **private_desktop_info(args, display),
            ),
            redactor=redactor,
        )
    except OSError as exc:
        desktop.close()
        backend.close()
        fail(f"cannot write recordings to {runs_dir}: {exc}")
    print(f"deskpilot: recording to {recorder.dir}", file=sys.stderr)
    ask = TerminalApprover(sys.stdin, sys.stderr)
    # Guarded without a terminal: nobody can approve, so risky actions are refused. Ask mode
    # and breakpoints read decisions from stdin even when it is a pipe.
    person = ask if interactive or args.approve == "ask" else None
    # With auto, the terminal is asked only from a breakpoint on, until `c` (continue).
    decide = with_breakpoints(policy(args.approve, person), ask, breakpoints)
    result: RunResult | None = None
    try:
        result = run_task(
            task,
            backend=backend,
            screen=screen,
            executor=desktop.executor,
            decide=decide,
            recorder=recorder,
            settings=settings,
            on_event=TerminalView(args.quiet),
            stop=stop,
            rules=rules,
            focus=desktop.focused_window,
            window_area=desktop.focused_area,
        )
    except DisplayError as exc:
        # The desktop went away mid-run (portal permission revoked, display gone): the loop
        # recorded the error; one line here.
        print(f"deskpilot: error: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        try:
            interrupts.stopping()  # from here on a signal cannot cut the cleanup short
        finally:
            _let_go(desktop, released=result is None or result.outcome in ("stopped", "error"))
            backend.close()
            if result is None and recorder.info.get("outcome") is None:
                # Interrupted before the loop began: the recording still gets its outcome.
                reason = interrupts.stop_reason(stop, "interrupted while starting")
                try:
                    recorder.finish({"status": "stopped", "message": reason, "steps": 0})
                except RecordingError:
                    pass  # reported by the line main() prints
    if result.answer is not None:
        print(visible(result.answer))
    return result.exit_code


def _let_go(desktop: Any, *, released: bool) -> None:
    """Release held input after a stop, restore the keyboard mapping, close the desktop."""
    if released:
        try:
            desktop.executor.release_all()  # a stop mid-action must leave no key or button held
        except Exception:  # a broken display must not hide the run's own outcome
            pass
    desktop.close()  # spare keycodes bound for typing go back to what they were


def run_task_on(args: argparse.Namespace, display: str | None) -> int:
    """`run` on the user's display (command_run as it always was called) or a private one."""
    if display is None:
        return command_run(args, args.task)
    return command_run(args, args.task, display)


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
    from agent.mcp_server import Desk, ServerConfig, loopback_address, serve
    from agent.secrets import secrets_from_env

    try:
        listen = loopback_address(args.listen) if args.listen else None
    except ValueError as exc:
        fail(str(exc))
    settings, rules, _ = run_setup(args)
    warn_if_remote(args.endpoint)
    if (args.backend or ("openai" if args.endpoint else "local")) == "openai" and not args.endpoint:
        fail("--backend openai needs --endpoint URL (the server's /v1 base)")
    config = ServerConfig(
        approve=args.approve,
        rules=rules,
        settings=settings,
        runs_dir=args.runs_dir or default_runs_dir(),
        monitor=args.monitor,
        secrets=(*args.secret, *secrets_from_env(args.secret_env)),
    )
    where = f"http://{args.listen}/mcp" if listen else "stdio"
    print(
        f"deskpilot: MCP server on {where} (approval {args.approve}; recordings in "
        f"{config.runs_dir}); the model starts on the first run_task",
        file=sys.stderr,
    )
    serve(Desk(config, lambda: backend_from_args(args)), listen)
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
            return run_on_desktop(args, lambda display: run_task_on(args, display))
        if args.command == "monitors":
            return command_monitors()
        if args.command == "calibrate":
            return run_on_desktop(args, lambda display: command_calibrate(args, display))
        if args.command == "mcp":
            return command_mcp(args)
        if args.command in ("replay", "export"):
            from ui.replay_cli import run_replay_command

            return run_replay_command(args, make_backend)
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
    names = [getattr(args, "api_key_env", "DESKPILOT_API_KEY"), *getattr(args, "secret_env", [])]
    values = [os.environ.get(name, "") for name in names]
    return [v for v in [*values, *getattr(args, "secret", [])] if v]


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
