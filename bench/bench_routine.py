"""A 10-step task as a routine against the agent: how much a replay that asks no model saves.

On a private 1920x1080 Xvfb with the real probe app (tests/apps/probe_app.py), the agent does
a 10-step task (clicks, typing, Return, a double click, a scroll, a chord) through `main.py run`
against a scripted model server, once answering instantly and once taking 2 s per step. The
instant run's recording becomes a routine (`main.py routine`, the typed name a parameter) and
is replayed with `main.py replay --execute --heal --param ...`: every target is checked, none
moved, so no model request is made. Each pipeline is timed as the whole command (start-up
included), on a fresh app; the app's text is checked after each.
Usage: python -m bench.bench_routine [--rounds 1] [--delay 2.0]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._report import machine, write_report
from bench._x11 import ROOT

GEOMETRY = (100, 100, 800, 600)
NAME, OTHER = "Jane Doe", "Ann Lee"


def script(app: Any, delay_s: float) -> list[Any]:
    """The model's 10 actions (and its terminate) on the probe app, each after delay_s."""
    from tests.routines.support import rel
    from tests.support.scripted_server import Reply, xml_call

    field, canvas = app.center("text_field"), app.center("canvas")
    cx, cy = canvas
    calls = [
        xml_call(action="left_click", coordinate=rel(field)),
        xml_call(action="type", text=f"Order for {NAME}"),
        xml_call(action="key", keys=["enter"]),
        xml_call(action="type", text="Quantity 3"),
        xml_call(action="key", keys=["enter"]),
        xml_call(action="left_click", coordinate=rel((cx - 200, cy))),
        xml_call(action="double_click", coordinate=rel((cx, cy))),
        xml_call(action="scroll", coordinate=rel((cx, cy)), pixels=3),
        xml_call(action="left_click", coordinate=rel(field)),
        xml_call(action="key", keys=["ctrl", "end"]),
        xml_call(action="terminate", status="success"),
    ]
    return [Reply(c, delay_s=delay_s, chunk_chars=1 << 16) for c in calls]


def expected(name: str) -> str:
    """What the field holds after the task."""
    return f"Order for {name}\nQuantity 3\n"


def timed(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run a command; its wall time and result."""
    t = time.monotonic()
    proc = subprocess.run(
        cmd, cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=600
    )
    return time.monotonic() - t, proc


def one_round(display: str, tmp: Path, delay_s: float, n: int) -> list[dict[str, Any]]:
    """Agent (instant), agent (delay_s per step), routine replay; one row each."""
    from tests.e2e.test_run_cli import only_run
    from tests.support.scripted_server import ScriptedServer
    from tests.support.x11 import start_probe_app

    rows: list[dict[str, Any]] = []
    routine = tmp / f"routine-{n}"
    for label, delay in (("agent, instant model", 0.0), (f"agent, {delay_s:g} s/step", delay_s)):
        app = start_probe_app(display, tmp / f"probe-{n}-{delay}.jsonl", GEOMETRY, "bench")
        runs = tmp / f"runs-{n}-{delay}"
        server = ScriptedServer(script(app, delay))
        try:
            seconds, proc = timed(
                [sys.executable, "main.py", "run", "fill in the order", "--endpoint", server.url,
                 "--approve", "auto", "--runs-dir", str(runs), "-q"]
            )  # fmt: skip
            requests = len(server.requests)
        finally:
            server.close()
        ok = proc.returncode == 0 and _text_is(app, expected(NAME))
        app.close()
        if not ok:
            raise RuntimeError(f"{label} failed: {proc.stderr[-2000:]}")
        rows.append({"pipeline": label, "seconds": round(seconds, 2), "model_requests": requests})
        if delay == 0.0:
            run_dir = only_run(runs)[2]
            made = subprocess.run(
                [sys.executable, "main.py", "routine", str(run_dir), "--param", f"who={NAME}",
                 "--out", str(routine)],
                cwd=ROOT, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            if made.returncode != 0:
                raise RuntimeError(f"routine failed: {made.stderr}")
    app = start_probe_app(display, tmp / f"probe-{n}-routine.jsonl", GEOMETRY, "bench")
    time.sleep(0.5)
    idle = ScriptedServer([])
    try:
        seconds, proc = timed(
            [sys.executable, "main.py", "replay", str(routine), "--execute", "--heal",
             "--approve", "auto", "--endpoint", idle.url, "--param", f"who={OTHER}"]
        )  # fmt: skip
        requests = len(idle.requests)
    finally:
        idle.close()
    ok = proc.returncode == 0 and _text_is(app, expected(OTHER))
    app.close()
    if not ok:
        raise RuntimeError(f"routine replay failed: {proc.stderr[-2000:]}")
    rows.append(
        {"pipeline": "routine, --heal", "seconds": round(seconds, 2), "model_requests": requests}
    )
    return rows


def _text_is(app: Any, text: str) -> bool:
    try:
        app.wait_text(text, timeout_s=10)
    except AssertionError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    """Run the rounds on a private display; print the table and the speed-ups."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_routine", description=__doc__)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--delay", type=float, default=2.0, help="seconds per step, slow model")
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench" / "bench_routine.json"))
    args = parser.parse_args(argv)
    from tests.support.x11 import start_xvfb

    saved = {name: os.environ.get(name) for name in ("DISPLAY", "XAUTHORITY")}
    server = start_xvfb(1920, 1080)  # admits its cookie through XAUTHORITY until close()
    rows: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="deskpilot-bench-routine-") as tmp:
            os.environ["DISPLAY"] = server.display
            os.environ.pop("WAYLAND_DISPLAY", None)
            for n in range(args.rounds):
                rows += one_round(server.display, Path(tmp), args.delay, n)
    finally:
        server.close()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    labels = list(dict.fromkeys(r["pipeline"] for r in rows))
    median: dict[str, float] = {}
    for label in labels:
        values = sorted(r["seconds"] for r in rows if r["pipeline"] == label)
        median[label] = values[len(values) // 2]
    routine = median["routine, --heal"]
    print(f"{'10-step task':<24} {'seconds':>8} {'requests':>9} {'routine speed-up':>17}")
    for label in labels:
        requests = max(r["model_requests"] for r in rows if r["pipeline"] == label)
        print(f"{label:<24} {median[label]:>8.2f} {requests:>9} {median[label] / routine:>16.1f}x")
    print("(whole commands, start-up included; median of", args.rounds, "round(s))")
    write_report(
        args.out,
        {
            "bench": "routine",
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": machine(),
            "rounds": args.rounds,
            "delay_s": args.delay,
            "rows": rows,
            "median_s": median,
            "speedup": {k: round(v / routine, 2) for k, v in median.items()},
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
