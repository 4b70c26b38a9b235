"""Stop latency: how fast a stop ends a real run in each state, and that it leaves nothing behind.

On a private 1920x1080 Xvfb with xterm (typing target) and the Qt probe app (drag target), each
trial is one real `run_task` (scripted OpenAI-compatible server in its own process, the real
Screen, Executor and Recorder), stopped from another thread the way the app does it:
`stop.set()` then `executor.release_all()`. States: idle (blocked in decide, waiting for the
user), prefill (waiting for the first token), generating (mid-stream), typing (2000 characters),
drag (a 1 s left_click_drag), wait (a 30 s wait), settle (waiting for the screen after an action).
Latency: stop.set() to run_task returning, and to release_all returning. Every trial is also
checked: no key or button event reaches the X server after release_all returned (RECORD), no key
or button is held, the outcome is "stopped", and steps.jsonl has every step that started.
Usage: python -m bench.bench_stop [--per-state 50] [--states idle,typing]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench._child import run_child
from bench._report import bench_parser, report_head, write_report
from bench._server import serve_until_stdin_closes, serving
from bench._x11 import private_desktop

STATES = ("idle", "prefill", "generating", "typing", "drag", "wait", "settle")
TYPED = ("Hello, World! stop me 123\n" * 80)[:2000]
DRAG_DURATION_S = 1.0
# Where the apps sit on the 1920x1080 screen (model coordinates are 0-1000 of the screen).
PROBE_GEOMETRY = (100, 100, 800, 600)
XTERM_POSITION = (1000, 100)
_TASK = re.compile(r"stop-trial state=(\w+) from=(\d+),(\d+) to=(\d+),(\d+)")


def reply_for(body: dict[str, Any]) -> Any:
    """The scripted model: the reply that puts a run into the state its task names."""
    from tests.support.scripted_server import Reply, xml_call

    found = _TASK.search(json.dumps(body.get("messages", [])))
    if found is None:
        return Reply(xml_call(action="terminate", status="failure"))
    state = found.group(1)
    start = [int(found.group(2)), int(found.group(3))]
    end = [int(found.group(4)), int(found.group(5))]
    move = xml_call(action="mouse_move", coordinate=start)
    if state == "prefill":
        return Reply(move, delay_s=30.0)
    if state == "generating":
        # Long enough (thousands of chunks) that the stop lands mid-stream, short of the
        # backend's own cap on one answer.
        return Reply(move, reasoning="thinking about it " * 2000, chunk_chars=3)
    if state == "typing":
        return Reply(xml_call(action="type", text=TYPED))
    if state == "drag":
        return Reply(xml_call(action="left_click_drag", start_coordinate=start, coordinate=end))
    if state == "wait":
        return Reply(xml_call(action="wait", time=30))
    return Reply(move)


def serve() -> None:
    """`--serve`: print the /v1 URL, answer stop trials until stdin closes."""
    from tests.support.scripted_server import CountOnly, ScriptedServer

    serve_until_stdin_closes(ScriptedServer([reply_for] * 100_000, requests=CountOnly()))


@dataclass
class StopSample:
    """One stopped run: latencies, what reached the X server around the stop, the recording."""

    state: str
    reached: bool  # the stop landed in the state (not before, not after the run)
    stop_to_return_s: float
    stop_to_released_s: float
    outcome: str
    steps_started: int
    steps_recorded: int
    recorded_outcome: str | None
    step_error: str | None
    decision: str | None
    executed: bool
    in_flight: list[str] = field(default_factory=list)  # between stop.set() and released
    after_stop: list[str] = field(default_factory=list)  # after release_all returned
    held_keys: list[int] = field(default_factory=list)
    held_buttons: list[int] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    released_again: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """Nothing after the stop, nothing held, stopped, every started step recorded."""
        return (
            not self.after_stop
            and not self.held_keys
            and not self.held_buttons
            and not self.released_again
            and self.outcome == "stopped"
            and self.recorded_outcome == "stopped"
            and self.steps_recorded == self.steps_started
        )


class StopRig:
    """Runs stop trials on one display: one backend, screen and executor for all of them."""

    def __init__(
        self,
        display: str,
        url: str,
        runs_dir: Path,
        *,
        type_window: int | None = None,
        drag_from: tuple[int, int] = (400, 500),
        drag_to: tuple[int, int] = (700, 500),
        seed: int = 7,
    ) -> None:
        from actions.executor import Executor
        from actions.screen import CoordinateSpace, Screen, screen_to_model
        from agent.backends.openai_compat import OpenAIBackend
        from tests.support.x11 import InputRecorder

        self.display = display
        self.runs_dir = runs_dir
        self.type_window = type_window
        self.screen = Screen()
        self.executor = Executor(drag_duration_s=DRAG_DURATION_S)
        self.backend = OpenAIBackend(url, model="Qwen/Qwen3.5-9B", timeout_s=60.0)
        space, monitor = CoordinateSpace.relative(), self.screen.monitor
        a = screen_to_model(drag_from, space, monitor)
        b = screen_to_model(drag_to, space, monitor)
        self._where = f"from={round(a[0])},{round(a[1])} to={round(b[0])},{round(b[1])}"
        self.input = InputRecorder(display).__enter__()
        self._rng = random.Random(seed)
        self._n = 0

    def close(self) -> None:
        """Release the executor's keymap, the backend and the recorder connection."""
        self.executor.close()
        self.backend.close()
        self.input.close()

    def _focus(self, window: int) -> None:
        """Give a window the keyboard (no window manager here), outside any measurement."""
        from Xlib import X
        from Xlib import display as xdisplay

        dpy: Any = xdisplay.Display(self.display)
        try:
            dpy.set_input_focus(
                dpy.create_resource_object("window", window), X.RevertToPointerRoot, X.CurrentTime
            )
            dpy.sync()
        finally:
            dpy.close()

    def _trigger(self, state: str) -> tuple[type | None, float]:
        """The loop event class that says the state is reached, and how long to wait after it."""
        from agent.events import ActionExecuted, DecisionMade, ScreenObserved, TextStreamed

        u = self._rng.uniform
        return {
            "idle": (None, u(0.0, 0.05)),  # the blocking decide itself says so
            "prefill": (ScreenObserved, u(0.05, 0.3)),
            "generating": (TextStreamed, u(0.0, 0.1)),
            # After the decision the freshness check runs first (5-15 ms, more under load).
            "typing": (DecisionMade, u(0.1, 0.5)),
            "drag": (DecisionMade, u(0.1, 0.8)),
            "wait": (DecisionMade, u(0.05, 0.5)),
            "settle": (ActionExecuted, u(0.0, 0.04)),
        }[state]

    def trial(self, state: str, *, release: bool = True) -> StopSample:
        """One run stopped in `state`; never raises for a bad stop (the sample says so).

        release: call release_all right after the stop, from the stopping thread (the app);
        otherwise only set the event, and release after the run returned (the CLI).
        """
        from agent.approval import ApprovalRequest, Decision, auto_approve
        from agent.events import Event, StepStarted
        from agent.loop import LoopSettings, run_task
        from agent.recording import Recorder, read_run
        from tests.support.x11 import held_input

        self._n += 1
        n = self._n
        kind, delay = self._trigger(state)
        stop, trigger = threading.Event(), threading.Event()
        started: list[int] = []

        def on_event(event: Event) -> None:
            if isinstance(event, StepStarted):
                started.append(event.step)
            if kind is not None and isinstance(event, kind):
                trigger.set()

        def blocked(request: ApprovalRequest) -> Decision:
            # As the app's approver: the loop thread waits for the user, or for a stop.
            trigger.set()
            stop.wait(60.0)
            return Decision("stop", note="stopped while waiting for a decision")

        decide: Callable[[ApprovalRequest], Decision] = blocked if state == "idle" else auto_approve
        if state == "typing" and self.type_window is not None:
            self._focus(self.type_window)
        # Start on a quiet screen (xterm may still be drawing the last trial's text): otherwise
        # the freshness check holds the action back, or confirms it late, and the stop meant
        # for mid-action lands before it.
        self.screen.wait_until_stable(max_s=2.0)
        task = f"stop-trial state={state} {self._where}"
        recorder = Recorder(self.runs_dir, {"task": task})
        times: dict[str, float] = {}
        released: list[str] = []

        def stopper() -> None:
            if not trigger.wait(60.0):
                return
            time.sleep(delay)
            self.input.mark(f"stop{n}")
            times["set"] = time.perf_counter()
            stop.set()
            if release:
                released.extend(self.executor.release_all())
            times["released"] = time.perf_counter()
            self.input.mark(f"released{n}")

        thread = threading.Thread(target=stopper, name="stopper", daemon=True)
        thread.start()
        result = run_task(
            task,
            backend=self.backend,
            screen=self.screen,
            executor=self.executor,
            decide=decide,
            recorder=recorder,
            # Settle has no minimum now (17 ms on a still screen): the settle state keeps the
            # old 100 ms so that a stop 0-40 ms after the action still lands inside it.
            settings=LoopSettings(max_steps=3, settle_min_s=0.1 if state == "settle" else 0.0),
            on_event=on_event,
            stop=stop,
        )
        returned = time.perf_counter()
        reached = "set" in times
        trigger.set()  # the run may have ended without reaching the state: free the stopper
        thread.join(60.0)
        if "released" not in times:  # no stop happened: empty windows, so the sample still reads
            self.input.mark(f"stop{n}")
            self.input.mark(f"released{n}")
        keys, buttons = held_input(self.display)
        again = self.executor.release_all()  # as the CLI does after a stopped run
        self.input.mark(f"end{n}")
        self.input.wait_mark(f"end{n}")
        recording = read_run(recorder.dir)
        last = recording.steps[-1] if recording.steps else {}
        execution = last.get("execution") or {}
        outcome = recording.info.get("outcome") or {}
        return StopSample(
            state=state,
            reached=reached,
            stop_to_return_s=returned - times["set"] if reached else math.nan,
            stop_to_released_s=times["released"] - times["set"]
            if reached and release
            else math.nan,
            outcome=result.outcome,
            steps_started=len(started),
            steps_recorded=len(recording.steps),
            recorded_outcome=outcome.get("status"),
            step_error=execution.get("error") or last.get("error"),
            decision=(last.get("decision") or {}).get("kind"),
            executed=bool(execution),
            in_flight=[_event_text(e) for e in self.input.between(f"stop{n}", f"released{n}")],
            after_stop=[_event_text(e) for e in self.input.between(f"released{n}", f"end{n}")],
            held_keys=keys,
            held_buttons=buttons,
            released=released,
            released_again=again,
        )


def _event_text(event: Any) -> str:
    if event.kind == "motion":
        return f"motion:{event.x},{event.y}"
    return f"{event.kind}:{event.detail}"


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0-100)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summarize(samples: list[StopSample]) -> dict[str, Any]:
    """Per state: n, p50/p99/max of both latencies (ms), and the correctness counts."""
    out: dict[str, Any] = {}
    for state in dict.fromkeys(s.state for s in samples):
        mine = [s for s in samples if s.state == state]
        hit = [s for s in mine if s.reached]
        row: dict[str, Any] = {
            "n": len(mine),
            "reached": len(hit),
            "clean": sum(s.clean for s in mine),
            "after_stop_events": sum(len(s.after_stop) for s in mine),
            "held_after": sum(len(s.held_keys) + len(s.held_buttons) for s in mine),
            "released_by_stop": sum(bool(s.released) for s in mine),
            "cut_mid_action": sum("cancelled" in (s.step_error or "") for s in mine),
            "in_flight_events": sum(len(s.in_flight) for s in mine),
        }
        for name in ("stop_to_return_s", "stop_to_released_s"):
            values = [getattr(s, name) * 1000 for s in hit if not math.isnan(getattr(s, name))]
            if values:
                key = name.removesuffix("_s")
                row[f"{key}_p50_ms"] = round(percentile(values, 50), 1)
                row[f"{key}_p99_ms"] = round(percentile(values, 99), 1)
                row[f"{key}_max_ms"] = round(max(values), 1)
                row[f"{key}_mean_ms"] = round(statistics.fmean(values), 1)
                row[f"{key}_all_ms"] = [round(v, 1) for v in values]
        out[state] = row
    return out


def child(per_state: int, states: list[str]) -> dict[str, Any]:
    """Every trial on one private display, round-robin over the states."""
    from tests.support.x11 import start_probe_app, start_xterm

    with (
        private_desktop(1920, 1080, picture=False) as display,
        tempfile.TemporaryDirectory(prefix="deskpilot-bench-stop-") as tmp,
        serving("bench.bench_stop", "--serve") as url,
    ):
        term = start_xterm(
            display, "cat > /dev/null", position=XTERM_POSITION, title="stop bench xterm"
        )
        probe = start_probe_app(
            display, Path(tmp) / "probe.jsonl", PROBE_GEOMETRY, "stop bench probe"
        )
        rig = None
        try:
            cx, cy, cw, ch = probe.rect("canvas")
            rig = StopRig(
                display,
                url,
                Path(tmp) / "runs",
                type_window=term.window,
                drag_from=(cx + cw // 5, cy + ch // 2),
                drag_to=(cx + 4 * cw // 5, cy + ch // 2),
            )
            samples = [rig.trial(state) for _ in range(per_state) for state in states]
        finally:
            if rig is not None:
                rig.close()
            probe.close()
            term.close()
    return {
        "summary": summarize(samples),
        "unclean": [asdict(s) for s in samples if not s.clean or not s.reached][:20],
    }


def main(argv: list[str] | None = None) -> int:
    """Run in a child process (pyautogui binds the display at import); table and JSON."""
    parser = bench_parser("bench_stop", __doc__)
    parser.add_argument("--per-state", type=int, default=50)
    parser.add_argument("--states", default=",".join(STATES))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    states = [s for s in args.states.split(",") if s]
    unknown = [s for s in states if s not in STATES]
    if unknown:
        parser.error(f"unknown state(s) {', '.join(unknown)}; choose from {', '.join(STATES)}")
    if args.serve:
        serve()
        return 0
    if args.child:
        print(json.dumps(child(args.per_state, states)))
        return 0
    t0 = time.monotonic()
    r = run_child(
        "bench_stop",
        "--per-state",
        str(args.per_state),
        "--states",
        ",".join(states),
        timeout_s=1800,
    )
    if r is None:
        return 1
    wall = time.monotonic() - t0
    head = f"{'state':<11} {'n':>3} {'ok':>3}  {'to return p50/p99/max ms':>26}"
    print(head + f"  {'to released p50/p99/max ms':>28}")
    print("-" * (len(head) + 30))
    for state, row in r["summary"].items():
        ret = "/".join(f"{row.get(f'stop_to_return_{k}_ms', math.nan):.1f}" for k in _STATS)
        rel = "/".join(f"{row.get(f'stop_to_released_{k}_ms', math.nan):.1f}" for k in _STATS)
        print(f"{state:<11} {row['n']:>3} {row['clean']:>3}  {ret:>26}  {rel:>28}")
    ok = all(row["clean"] == row["n"] == row["reached"] for row in r["summary"].values())
    print(
        "(ok: no input after the stop, nothing held, outcome stopped, every step recorded; "
        f"{'all trials' if ok else 'SOME TRIALS FAILED, see unclean in the JSON'})"
    )
    report = {
        **report_head("stop"),
        "per_state": args.per_state,
        "wall_s": round(wall, 1),
        "all_clean": ok,
        **r,
    }
    write_report(args.out, report)
    return 0 if ok else 1


_STATS = ("p50", "p99", "max")

if __name__ == "__main__":
    raise SystemExit(main())
