"""The `replay` and `export` sub-commands' parsers, and replay --execute / --ask-again.

main.py registers them; viewing and exporting (Qt) are main.py's calls into ui/.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

# Recordings hold model text: whatever is printed from them goes through textsafe first.
from agent.textsafe import one_line, visible

if TYPE_CHECKING:
    from agent.records import StepRecord
    from agent.replay import Verdict

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_replay_parsers(
    sub: Any, add_run_options: Callable[[argparse.ArgumentParser], None]
) -> None:
    """Register `replay` and `export` on main.py's sub-parsers (imports nothing heavy)."""
    rp = sub.add_parser(
        "replay",
        help="view a recorded run (default), re-execute it (--execute) or re-ask a step",
    )
    rp.add_argument("run_dir", type=Path, help="the recording's folder")
    mode = rp.add_mutually_exclusive_group()
    mode.add_argument(
        "--execute", action="store_true", help="re-execute the recorded actions on this desktop"
    )
    mode.add_argument(
        "--ask-again",
        type=int,
        metavar="N",
        help="send step N (1-based) to the model again and compare; executes nothing",
    )
    rp.add_argument("--task", help="with --ask-again: an edited task instead of the recorded one")
    rp.add_argument(
        "--threshold",
        type=float,
        help="share of the screen (0-1) that may differ from the recording before replay "
        "pauses or stops (default 0.02, agent.replay.DEFAULT_THRESHOLD)",
    )
    rp.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="with --execute: a routine's parameter value, typed where {NAME} is (repeatable)",
    )
    rp.add_argument(
        "--heal",
        action="store_true",
        help="with --execute: check each pointer action's target instead of the whole screen, "
        "and ask the model to re-ground the steps whose target moved (docs/routines.md)",
    )
    rp.add_argument(
        "--force",
        action="store_true",
        help="with --approve auto: go on even when the screen differs from the recording",
    )
    add_run_options(rp)
    ex = sub.add_parser("export", help="export a recorded run as MP4, GIF or HTML")
    ex.add_argument("run_dir", type=Path, help="the recording's folder")
    ex.add_argument("--format", choices=("mp4", "gif", "html"), required=True, dest="fmt")
    ex.add_argument("--out", type=Path, required=True, help="file to write")
    ex.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def fail(message: str) -> int:
    """Print a one-line error; returns the usage status."""
    print(f"deskpilot: error: {visible(message)}", file=sys.stderr)
    return EXIT_USAGE


def load(run_dir: Path) -> Any:
    """Read a recording, printing its warnings (torn last line, unfinished run)."""
    from agent.recording import read_run

    if not (run_dir / "run.json").is_file():
        return None
    recording = read_run(run_dir)
    for warning in recording.warnings:
        print(f"deskpilot: warning: {one_line(warning)}", file=sys.stderr)
    return recording


def run_replay_command(
    args: argparse.Namespace,
    open_backend: Callable[[argparse.Namespace], Any],
    *,
    view: Callable[[Any], int],
    export: Callable[[Any, argparse.Namespace], int],
) -> int:
    """Dispatch `replay` and `export`; returns the exit status.

    open_backend: the model backend the flags ask for (raises BackendError); view and export
    are the front end's (a Qt window, a video encoder).
    """
    recording = load(args.run_dir)
    if recording is None:
        return fail(f"{args.run_dir} is not a recording (no run.json)")
    if args.command == "export":
        return export(recording, args)
    if (args.param or args.heal) and not args.execute:
        return fail("--param and --heal go with --execute")
    if args.execute:
        return command_execute(recording, args, open_backend)
    if args.ask_again is not None:
        return command_ask_again(recording, args, open_backend)
    return view(recording)


class TerminalCheck:
    """Decides each replayed step as a live run's approval mode would, on the terminal.

    ask: every step is asked. guarded: risky steps and screens that moved are asked; with no
    terminal to ask on, they stop the replay. auto: runs unattended, stopping when the screen
    moved (unless --force). Blocked steps never get here: the replayer refuses them.
    """

    def __init__(
        self, approve: str, force: bool, inp: TextIO, out: TextIO, interactive: bool = True
    ) -> None:
        self.approve, self.force, self.inp, self.out = approve, force, inp, out
        self.interactive = interactive
        self.stopped_for_difference: str | None = None
        self.refused: str | None = None

    def __call__(self, check: Any) -> Verdict:
        """go, skip or stop for one step."""
        from actions.types import describe

        pct = (
            check.note or f"{check.difference * 100:.1f}% of the screen differs from the recording"
        )
        limit = "" if check.note else f"threshold {check.threshold * 100:.1f}%"
        self.out.write(f"step {check.index + 1}: {one_line(describe(check.action))} ({pct})\n")
        risky = check.risk.level != "safe"
        if risky:
            self.out.write(f"  {check.risk.level}: {one_line(check.risk.reason)}\n")
        if self.approve == "auto":
            if not check.differs or self.force:
                if check.differs:
                    self.out.write(f"  warning: {pct} > {limit}; going on (--force)\n")
                return "go"
            self.stopped_for_difference = (
                f"step {check.index + 1}: {pct}{f' (> {limit})' if limit else ''}; the desktop "
                "is not where the recording was. Stopping; use --force to replay anyway"
            )
            return "stop"
        if self.approve == "guarded" and not risky and not check.differs:
            return "go"
        if check.differs:
            why = pct if check.note else f"the screen differs from the recording: {pct} > {limit}"
            self.out.write(f"  {why}\n")
        if self.approve == "guarded" and not self.interactive:
            why = "risky" if risky else "the screen differs from the recording"
            self.refused = (
                f"step {check.index + 1}: {why} and nobody is at a terminal to approve it; "
                "nothing was executed"
            )
            return "stop"
        while True:
            self.out.write("  [Enter] execute  [s] skip  [q] stop > ")
            self.out.flush()
            line = self.inp.readline()
            if line == "":
                return "stop"  # end of input: nobody is there to approve
            choice = line.strip().lower()
            if choice in ("", "y", "yes"):
                return "go"
            if choice in ("s", "q"):
                return "skip" if choice == "s" else "stop"
            self.out.write("  please answer Enter, s or q\n")


def command_execute(
    recording: Any, args: argparse.Namespace, open_backend: Callable[[argparse.Namespace], Any]
) -> int:
    """Re-execute the recorded actions (a routine's with its parameters), through a session."""
    from actions.executor import FailSafeTriggered
    from actions.private_desktop import DesktopError
    from actions.screen import DisplayError
    from agent.config import ConfigError, from_args
    from agent.recording import RecordingError
    from agent.replay import DEFAULT_THRESHOLD, LiveGate, replay
    from agent.routine import RoutineError, bind_params, parse_params
    from agent.session import Session, SessionError

    try:
        params = bind_params(recording.info, parse_params(args.param))
    except RoutineError as exc:
        return fail(str(exc))
    if args.threshold is None:
        args.threshold = DEFAULT_THRESHOLD
    if not 0.0 <= args.threshold <= 1.0:
        return fail("--threshold is a share of the screen between 0 and 1")
    monitors = {int(s["screen"]["monitor"]["index"]) for s in recording.steps if s.get("screen")}
    if args.monitor is None and monitors:
        args.monitor = min(monitors)  # the monitor the run was recorded on
    try:
        session = Session(from_args(args))
    except (ConfigError, SessionError) as exc:
        return fail(str(exc))
    healer = None
    try:
        try:
            screen, executor = session.screen, session.executor
        except (DisplayError, DesktopError) as exc:
            return fail(str(exc))
        check = TerminalCheck(
            session.config.approve,
            args.force,
            sys.stdin,
            sys.stderr,
            interactive=sys.stdin.isatty(),
        )
        # The same rules and the same view of where keys go as a live run on this desktop.
        gate = LiveGate(session.rules, session.focus())
        if args.heal:
            from agent.heal import Healer

            healer = Healer(
                recording.dir,
                lambda: open_backend(args),  # only when a step needs the model
                task=str(recording.info.get("task") or ""),
                max_pixels=session.config.max_pixels,
            )
        try:
            # The replay is recorded like a run (its own folder in the runs folder).
            recorder = session.recorder(
                str(recording.info.get("task") or ""),
                actions_from="a recording",
                replay={"source_run": str(recording.dir), "heal": bool(args.heal)},
            )
        except SessionError as exc:
            return fail(str(exc))
        print(f"deskpilot: recording the replay to {recorder.dir}", file=sys.stderr)
        result = None
        try:
            result = replay(
                recording,
                screen=screen,
                executor=executor,
                confirm=check,
                threshold=args.threshold,
                log=lambda line: print(one_line(line), file=sys.stderr),
                gate=gate,
                params=params,
                healer=healer,
                recorder=recorder,
                decided_by="auto" if session.config.approve == "auto" else "user",
            )
        except FailSafeTriggered:
            session.release()
            print("deskpilot: stopped: pyautogui fail-safe (pointer in a corner)", file=sys.stderr)
            return EXIT_FAILED
        except RecordingError as exc:  # a step not on disk does not run: the replay ends
            print(
                f"deskpilot: error: {one_line(str(exc))}; nothing more was executed",
                file=sys.stderr,
            )
            return EXIT_FAILED
        except KeyboardInterrupt:  # Ctrl-C or another ending signal (agent.interrupts)
            session.release()  # mid-action: no key or button may stay held
            raise
        finally:
            _finish_replay_recording(recorder, result, check)
    finally:
        if healer is not None:
            healer.close()
        session.close()
    if healer is not None:
        print(f"deskpilot: healing: {healer.summary()}", file=sys.stderr)
    message = check.refused or check.stopped_for_difference or result.message
    done = "done" if result.ok else "stopped"
    print(f"deskpilot: replay {done}: {one_line(message)}", file=sys.stderr)
    return int(result.exit_code)


def _finish_replay_recording(recorder: Any, result: Any, check: TerminalCheck) -> None:
    """The replay recording's outcome; a failed write is said in one line, never raised."""
    from agent.recording import RecordingError

    if result is None:
        outcome = {"status": "stopped", "message": "interrupted", "steps": 0}
    else:
        message = check.refused or check.stopped_for_difference or result.message
        status = "success" if result.ok else "stopped"
        outcome = {"status": status, "message": message, "steps": result.executed}
    try:
        recorder.finish(outcome)
    except RecordingError as exc:
        print(f"deskpilot: error: {one_line(str(exc))}", file=sys.stderr)


def command_ask_again(
    recording: Any, args: argparse.Namespace, open_backend: Callable[[argparse.Namespace], Any]
) -> int:
    """Send one recorded step to the current backend and print both proposals."""
    from agent.backends.base import BackendError
    from agent.replay import ask_again, recorded_action

    index = args.ask_again - 1
    if not any(int(s["index"]) == index for s in recording.steps):
        return fail(f"the recording has no step {args.ask_again} (steps 1-{len(recording.steps)})")
    backend_info = recording.info.get("backend") or {}
    if args.endpoint is None and args.backend is None and backend_info.get("kind") == "openai":
        args.endpoint = backend_info.get("endpoint")  # the recorded server, credentials stripped
    if args.model is None:
        args.model = recording.info.get("model")  # ask the model that made the recording
    try:
        backend = open_backend(args)
    except BackendError as exc:
        return fail(str(exc))
    try:
        again = ask_again(recording, index, backend, task=args.task)
    except ValueError as exc:
        return fail(str(exc))
    except BackendError as exc:
        return fail(f"model backend failed: {exc}")
    finally:
        backend.close()
    step = again.recorded
    print(side_by_side(step, again, recorded_action(step)))
    return EXIT_OK


def side_by_side(step: StepRecord, again: Any, recorded: Any) -> str:
    """The recorded proposal and the new one in two columns."""
    import textwrap

    from actions.types import describe

    def column(action: Any, error: str | None, thinking: str) -> list[str]:
        lines = [
            one_line(describe(action)) if action is not None else f"invalid: {one_line(str(error))}"
        ]
        if thinking.strip():
            lines.append("thinking: " + one_line(thinking, 300))
        wrapped: list[str] = []
        for line in lines:
            wrapped += textwrap.wrap(line, 48) or [""]
        return wrapped

    left = column(recorded, step.parse_error, step.thinking)
    prop = again.proposal
    right = column(prop.action, prop.error, prop.thinking)
    rows = [f"step {again.index + 1}", f"{'recorded':<50}| {'asked again now'}", "-" * 100]
    for i in range(max(len(left), len(right))):
        a = left[i] if i < len(left) else ""
        b = right[i] if i < len(right) else ""
        rows.append(f"{a:<50}| {b}")
    same = (recorded is not None) and recorded == prop.action
    rows.append("same action" if same else "different")
    return "\n".join(rows)
