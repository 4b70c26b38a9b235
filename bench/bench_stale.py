"""The stale-screen corpus: actions executed on a changed target, deskpilot vs the peers.

On a private 1920x1080 Xvfb, each scenario of tests/support/stale_corpus.py (a target covered
0.3 s or 1.5 s after a click while a model thinks, a slow approval, a clock and a caret that
must not block) runs through deskpilot's loop (freshness check before every action) and
through the peers' pipeline (act, sleep 1 s, screenshot, ask the model, act; no check).
Target: deskpilot executes 0 actions on a changed target and holds back 0 wrongly.
Usage: python -m bench.bench_stale [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from bench._child import run_child
from bench._report import bench_parser, report_head, write_report
from bench._x11 import private_desktop


def child(rounds: int) -> list[dict[str, Any]]:
    """Every scenario, both pipelines, on one private display."""
    from tests.support.stale_corpus import SCENARIOS, run_deskpilot, run_peers

    rows = []
    with private_desktop(1920, 1080) as display:
        import pyautogui  # noqa: F401 - binds the private display before the executor does

        for _ in range(rounds):
            for scenario in SCENARIOS:
                for name, run in (("deskpilot", run_deskpilot), ("peers 1 s sleep", run_peers)):
                    with tempfile.TemporaryDirectory(prefix="deskpilot-stale-") as tmp:
                        rows.append({"pipeline": name, **run(display, scenario, Path(tmp))})
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run in a child process (pyautogui binds the display at import); table and JSON."""
    parser = bench_parser("bench_stale", __doc__)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.rounds)))
        return 0
    rows = run_child("bench_stale", "--rounds", str(args.rounds), timeout_s=1200)
    if rows is None:
        return 1
    head = f"{'scenario':<48} {'pipeline':<16} {'on changed':>10} {'held':>5} {'wrongly':>8}"
    print(head)
    head += "  clicks"
    print("-" * (len(head) + 20))
    for r in rows:
        print(
            f"{r['scenario']:<48} {r['pipeline']:<16} {r['executed_on_changed_target']:>10} "
            f"{r['held_back']:>5} {r['wrongly_held_back']:>8}  {','.join(r['clicks'])}"
        )
    totals = {}
    for name in ("deskpilot", "peers 1 s sleep"):
        mine = [r for r in rows if r["pipeline"] == name]
        totals[name] = {
            "executed_on_changed_target": sum(r["executed_on_changed_target"] for r in mine),
            "wrongly_held_back": sum(r["wrongly_held_back"] for r in mine),
        }
        t = totals[name]
        print(
            f"{name}: {t['executed_on_changed_target']} actions executed on a changed target, "
            f"{t['wrongly_held_back']} held back wrongly"
        )
    ours = totals["deskpilot"]
    ok = ours["executed_on_changed_target"] == 0 and ours["wrongly_held_back"] == 0
    print(f"(target: deskpilot 0 and 0: {'ok' if ok else 'MISSED'})")
    report = {
        **report_head("stale"),
        "rounds": args.rounds,
        "rows": rows,
        "totals": totals,
        "within_target": ok,
    }
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
