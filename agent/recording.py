"""Run recordings: run.json, steps.jsonl and screenshots, written step by step, crash-safe."""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1


def now_iso(ts: float | None = None) -> str:
    """A UTC timestamp in ISO 8601 with milliseconds."""
    dt = datetime.fromtimestamp(time.time() if ts is None else ts, tz=UTC)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_run_id() -> str:
    """A sortable, unique run id: UTC time plus a short random suffix."""
    return datetime.now(tz=UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write a file so readers never see half of it (temp file, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Recorder:
    """Writes one run directory; every completed step is on disk before the next begins."""

    def __init__(self, runs_dir: Path, info: dict[str, Any]) -> None:
        self.run_id = new_run_id()
        self.dir = Path(runs_dir) / self.run_id
        (self.dir / "screenshots").mkdir(parents=True, exist_ok=False)
        self.info: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "run_id": self.run_id,
            **info,
            "started_at": now_iso(),
            "ended_at": None,
            "outcome": None,
            "steps": 0,
        }
        self._write_info()
        self._steps = open(self.dir / "steps.jsonl", "a", encoding="utf-8")  # noqa: SIM115

    def _write_info(self) -> None:
        text = json.dumps(self.info, ensure_ascii=False, indent=2) + "\n"
        _write_atomic(self.dir / "run.json", text.encode("utf-8"))

    def save_screenshot(self, index: int, png: bytes) -> str:
        """Store a step's screenshot atomically; returns its path relative to the run dir."""
        rel = f"screenshots/step-{index:04d}.png"
        _write_atomic(self.dir / rel, png)
        return rel

    def append_step(self, record: dict[str, Any]) -> None:
        """Append one step as a JSON line and flush it to the OS."""
        self._steps.write(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n")
        self._steps.flush()
        self.info["steps"] = int(record.get("index", 0)) + 1

    def finish(self, outcome: dict[str, Any]) -> None:
        """Close the steps file and write the end time and outcome into run.json."""
        if not self._steps.closed:
            os.fsync(self._steps.fileno())
            self._steps.close()
        self.info["ended_at"] = now_iso()
        self.info["outcome"] = outcome
        self._write_info()


@dataclass(slots=True)
class Recording:
    """A run read back: its info, its complete steps, and any problems found reading it."""

    dir: Path
    info: dict[str, Any]
    steps: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)


def read_run(run_dir: Path) -> Recording:
    """Read a run directory; a torn last line (crash mid-write) is skipped with a warning."""
    run_dir = Path(run_dir)
    info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    steps: list[dict[str, Any]] = []
    warnings: list[str] = []
    path = run_dir / "steps.jsonl"
    lines = path.read_bytes().split(b"\n") if path.exists() else []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            steps.append(json.loads(line))
        except json.JSONDecodeError:
            last = n == len(lines) or all(not rest.strip() for rest in lines[n:])
            kind = "torn last line" if last else "unreadable line"
            warnings.append(f"steps.jsonl line {n}: {kind} skipped")
    if info.get("ended_at") is None:
        warnings.append("run did not finish (no end time): the process stopped mid-run")
    return Recording(run_dir, info, steps, warnings)
