"""The runs folder as a list: one summary per recording (no Qt; the runs library shows it)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.textsafe import one_line


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What the library lists about one recording, read from its run.json alone."""

    dir: Path
    run_id: str
    task: str
    model: str
    started: datetime | None
    ended: datetime | None
    outcome: str  # the recorded status, "running or ended abruptly" when none was written
    message: str
    steps: int

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to end, None while unknown."""
        if self.started is None or self.ended is None:
            return None
        return max(0.0, (self.ended - self.started).total_seconds())

    def matches(self, text: str) -> bool:
        """Whether every word of text appears in the task, outcome, model, message or id."""
        haystack = " ".join(
            (self.task, self.outcome, self.model, self.message, self.run_id)
        ).lower()
        return all(word in haystack for word in text.lower().split())


NO_OUTCOME = "unfinished"  # run.json has no outcome: still running, or the process died


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 time as recorded (UTC, "Z"), or None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def summarise(run_dir: Path, info: dict[str, Any]) -> RunSummary:
    """One recording's summary from its run.json."""
    outcome = info.get("outcome")
    status, message = NO_OUTCOME, ""
    if isinstance(outcome, dict):
        status = str(outcome.get("status") or NO_OUTCOME)
        message = str(outcome.get("message") or "")
    steps = info.get("steps")
    return RunSummary(
        dir=run_dir,
        run_id=str(info.get("run_id") or run_dir.name),
        # Model-written text may sit in the message; the task is the user's but stays one line.
        task=one_line(str(info.get("task") or ""), 500),
        model=one_line(str(info.get("model") or ""), 200),
        started=parse_time(info.get("started_at")),
        ended=parse_time(info.get("ended_at")),
        outcome=one_line(status, 60),
        message=one_line(message, 500),
        steps=steps if isinstance(steps, int) and not isinstance(steps, bool) else 0,
    )


def scan_runs(runs_dir: Path) -> list[RunSummary]:
    """Every readable recording in runs_dir, newest first (unreadable folders are skipped)."""
    found: list[RunSummary] = []
    if not runs_dir.is_dir():
        return found
    for run_dir in runs_dir.iterdir():
        path = run_dir / "run.json"
        if not path.is_file():
            continue
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # half-written by another tool, or not ours
        if isinstance(info, dict):
            found.append(summarise(run_dir, info))
    oldest = datetime.min.replace(tzinfo=UTC)
    found.sort(key=lambda s: (s.started or oldest, s.run_id), reverse=True)
    return found


def when_text(moment: datetime | None, now: datetime | None = None) -> str:
    """A start time in the local zone: the time alone today, else the date and time."""
    if moment is None:
        return "unknown"
    local = moment.astimezone()
    today = (now or datetime.now(tz=UTC)).astimezone().date()
    return local.strftime("%H:%M:%S" if local.date() == today else "%Y-%m-%d %H:%M")


def duration_text(seconds: float | None) -> str:
    """12.3 s, 4 min 05 s or 1 h 02 min; a dash when unknown."""
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class NotARecording(ValueError):
    """A folder that is not a recording inside the runs folder (refused, nothing deleted)."""


def delete_run(runs_dir: Path, run_dir: Path) -> None:
    """Remove one recording's folder; refuses anything but a recording directly in runs_dir."""
    runs, target = runs_dir.resolve(), run_dir.resolve()
    if target.parent != runs or not (target / "run.json").is_file() or run_dir.is_symlink():
        raise NotARecording(f"{run_dir} is not a recording in {runs_dir}")
    shutil.rmtree(target)
