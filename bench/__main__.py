"""Run every benchmark: each bench/bench_*.py module with a main(argv) -> int."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Callable
from pathlib import Path


def discover() -> list[str]:
    """Names of the bench modules, in a stable order."""
    here = str(Path(__file__).resolve().parent)
    return sorted(m.name for m in pkgutil.iter_modules([here]) if m.name.startswith("bench_"))


def main(argv: list[str] | None = None) -> int:
    """`python -m bench [NAME ...]`: run all benches, or only those named (worker, ...)."""
    wanted = set(sys.argv[1:] if argv is None else argv)
    status = 0
    for name in discover():
        if wanted and name not in wanted and name.removeprefix("bench_") not in wanted:
            continue
        module = importlib.import_module(f"bench.{name}")
        run: Callable[[list[str]], int] | None = getattr(module, "main", None)
        if run is None:
            continue
        print(f"== {name}", flush=True)
        status = max(status, int(run([]) or 0))
    return status


if __name__ == "__main__":
    raise SystemExit(main())
