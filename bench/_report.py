"""What every bench writes: the machine it ran on, and its JSON report."""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from bench._x11 import ROOT


def bench_parser(module: str, doc: str | None) -> argparse.ArgumentParser:
    """A bench's command line: `python -m bench.MODULE`, --out defaulting to runs/bench/."""
    parser = argparse.ArgumentParser(prog=f"python -m bench.{module}", description=doc)
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench" / f"{module}.json"))
    return parser


def machine(**extra: Any) -> dict[str, Any]:
    """The machine and its load, so figures from different runs can be compared honestly."""
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_avg": os.getloadavg(),
        **extra,
    }


def report_head(bench: str, **machine_extra: Any) -> dict[str, Any]:
    """What every report starts with: which bench, when, and on what machine."""
    return {
        "bench": bench,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(**machine_extra),
    }


def write_report(path: str | Path, report: dict[str, Any]) -> None:
    """Write a bench's JSON report and say where."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
