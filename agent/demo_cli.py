"""The `demo` and `routine` sub-commands; main.py only registers and dispatches them."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from agent.textsafe import one_line, visible

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
READY_LINE = "deskpilot: recording demonstration to {dir}"

# The run options a demonstration uses, declared once in agent/config.py.
DEMO_OPTIONS = ("runs_dir", "monitor", "secret", "secret_env")


def add_demo_parsers(sub: Any) -> None:
    """Register `demo` and `routine` on main.py's sub-parsers (imports nothing heavy)."""
    from agent.config import DEFAULT_HOTKEY, add_cli_options

    demo = sub.add_parser(
        "demo", help="record a demonstration: you do the task, deskpilot records it (X11)"
    )
    demo.add_argument("--task", default="", help="what the demonstration shows, in plain words")
    add_cli_options(demo, only=DEMO_OPTIONS)
    demo.add_argument(
        "--hotkey",
        default=DEFAULT_HOTKEY,
        help=f"global hotkey that ends the demonstration (default {DEFAULT_HOTKEY}; '' for none)",
    )
    routine = sub.add_parser(
        "routine", help="turn a recording into a routine: typed text becomes {NAME} parameters"
    )
    routine.add_argument("run_dir", type=Path, help="the recording's folder (left unchanged)")
    routine.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=TEXT",
        help="replace TEXT in typed text with {NAME} (repeatable)",
    )
    routine.add_argument("--out", type=Path, required=True, help="the new recording's folder")


def fail(message: str) -> int:
    """Print a one-line error; returns the usage status."""
    print(f"deskpilot: error: {visible(message)}", file=sys.stderr)
    return EXIT_USAGE


def run_demo_command(args: argparse.Namespace) -> int:
    """Dispatch `demo` and `routine`; returns the exit status."""
    if args.command == "routine":
        return command_routine(args)
    return command_demo(args)


def command_routine(args: argparse.Namespace) -> int:
    """Copy a recording as a routine with parameters."""
    from agent.routine import RoutineError, make_routine, parse_params

    try:
        params = parse_params(args.param)
        info = make_routine(args.run_dir, args.out, params)
    except RoutineError as exc:
        return fail(str(exc))
    names = ", ".join(f"{{{n}}}" for n in info["params"])
    print(f"deskpilot: wrote routine {args.out} (parameters: {names})", file=sys.stderr)
    return EXIT_OK


def command_demo(args: argparse.Namespace) -> int:
    """Record a person's demonstration until Ctrl-C, a signal or the stop hotkey."""
    from actions.hotkey import HotkeyError, XHotkey
    from actions.screen import DisplayError, Screen
    from actions.xrecord import RecordError
    from agent import interrupts
    from agent.config import ConfigError, from_args
    from agent.demo import Demonstration
    from agent.recording import RecordingError
    from agent.session import SessionError, session_redactor

    if os.environ.get("WAYLAND_DISPLAY") or not os.environ.get("DISPLAY"):
        # Under Wayland, X RECORD (on Xwayland) would see only X clients' input.
        return fail(
            "demonstrations are recorded on X11 only (X RECORD): "
            + (
                "a Wayland session cannot be watched"
                if os.environ.get("WAYLAND_DISPLAY")
                else "no DISPLAY is set"
            )
        )
    try:
        config = from_args(args)
        redactor = session_redactor(config)
        screen = Screen(config.monitor_index)
    except (ConfigError, SessionError, DisplayError) as exc:
        return fail(str(exc))
    stop = interrupts.StopEvent()
    hotkey = None
    keys: frozenset[str] = frozenset()
    if args.hotkey:
        try:
            keys = hotkey_keys(args.hotkey)
            hotkey = XHotkey(args.hotkey, lambda: stop.stop("the stop hotkey"))
            hotkey.start()
        except HotkeyError as exc:
            print(f"deskpilot: warning: no stop hotkey: {one_line(str(exc))}", file=sys.stderr)
            hotkey = None

    def ready(run_dir: Path) -> None:
        print(READY_LINE.format(dir=run_dir), file=sys.stderr, flush=True)

    demo = Demonstration(
        runs_dir=config.runs_path(),
        task=args.task,
        capture=screen.capture,
        monitor=screen.monitor,
        redactor=redactor,
        hotkey_keys=keys,
        hotkey=args.hotkey or None,
        log=lambda line: print(f"deskpilot: {one_line(line)}", file=sys.stderr, flush=True),
    )
    interrupts.watch(stop)
    try:
        # A signal only sets `stop`: the loop ends between two events and writes the end.
        with interrupts.deferred():
            outcome = demo.run(stop, ready)
    except (RecordError, DisplayError) as exc:
        return fail(str(exc))
    except RecordingError as exc:
        print(f"deskpilot: error: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        interrupts.watch(None)
        if hotkey is not None:
            hotkey.stop()
    where = demo.recorder.dir if demo.recorder is not None else "?"
    print(
        f"deskpilot: {one_line(str(outcome['message']))}: {outcome['steps']} steps in {where}",
        file=sys.stderr,
    )
    return EXIT_OK


def hotkey_keys(combo: str) -> frozenset[str]:
    """A hotkey ("<ctrl>+<alt>+<shift>+x") as the chord a demonstration would record."""
    from actions.keys import KeyNameError, normalize_key

    names = {"cmd": "win", "super": "win", "meta": "win", "control": "ctrl"}
    keys = set()
    for raw in combo.split("+"):
        part = raw.strip().lower().strip("<>")
        part = names.get(part.rstrip("_lr") if part.endswith(("_l", "_r")) else part, part)
        try:
            keys.add(normalize_key(part))
        except KeyNameError:
            keys.add(part)
    return frozenset(keys)
