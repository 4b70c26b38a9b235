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

from actions.screen import Monitor
from agent.backends.base import ChatMessage, ImagePart, Part

# 2 added each step's `prompt` (the messages sent); readers accept every version listed here.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)


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


def monitor_json(m: Monitor) -> dict[str, Any]:
    """A monitor as recordings store it: origin and size in input pixels, and the scale."""
    return {
        "index": m.index,
        "left": m.left,
        "top": m.top,
        "width": m.width,
        "height": m.height,
        "scale": m.scale,
    }


def run_info(
    task: str,
    *,
    backend: Any,
    approval: str,
    monitor: Monitor,
    settings: dict[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """What run.json says about a run before it starts (the CLI and the app both use it)."""
    return {
        "task": task,
        "model": backend.model,
        "backend": backend.describe(),
        "approval": approval,
        "monitor": monitor_json(monitor),
        "settings": settings,
        **extra,
    }


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
        self._last_prompt: list[dict[str, Any]] = []
        self._steps = open(self.dir / "steps.jsonl", "a", encoding="utf-8")  # noqa: SIM115

    def _write_info(self) -> None:
        text = json.dumps(self.info, ensure_ascii=False, indent=2) + "\n"
        _write_atomic(self.dir / "run.json", text.encode("utf-8"))

    def save_screenshot(self, index: int, png: bytes) -> str:
        """Store a step's screenshot atomically; returns its path relative to the run dir."""
        rel = f"screenshots/step-{index:04d}.png"
        _write_atomic(self.dir / rel, png)
        return rel

    def prompt_record(self, messages: list[ChatMessage]) -> dict[str, Any]:
        """A step's `prompt` field: the messages after those it shares with the previous step."""
        encoded = [encode_message(m, self.dir) for m in messages]
        same = 0
        for old, new in zip(self._last_prompt, encoded, strict=False):
            if old != new:
                break
            same += 1
        self._last_prompt = encoded
        return {"same_as_previous": same, "count": len(encoded), "messages": encoded[same:]}

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
    version = info.get("format_version")
    if version not in READABLE_VERSIONS:
        warnings.append(
            f"format_version {version!r} is not one this reader knows ({READABLE_VERSIONS}); "
            "fields may be missing or mean something else"
        )
    if info.get("ended_at") is None:
        warnings.append("run did not finish (no end time): the process stopped mid-run")
    return Recording(run_dir, info, steps, warnings)


def encode_message(message: ChatMessage, run_dir: Path) -> dict[str, Any]:
    """A chat message as recorded: text verbatim, images as screenshot paths (never inlined)."""
    content: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, str):
            content.append({"type": "text", "text": part})
            continue
        path = part.path
        if path is not None:
            try:
                path = Path(path).resolve().relative_to(Path(run_dir).resolve()).as_posix()
            except ValueError:
                pass  # an image from outside the run (never written by the loop): keep it
        content.append({"type": "image", "path": path, "width": part.width, "height": part.height})
    return {"role": message.role, "content": content}


def prompt_messages(recording: Recording, index: int) -> list[dict[str, Any]] | None:
    """The full message list sent at step `index` (images as paths); None when not recorded."""
    full: list[dict[str, Any]] | None = None
    for step in recording.steps:
        prompt = step.get("prompt")
        if prompt is not None:
            base = full or []
            full = base[: int(prompt["same_as_previous"])] + list(prompt["messages"])
        if step.get("index") == index:
            return full if prompt is not None else None
    return None


def load_messages(recording: Recording, messages: list[dict[str, Any]]) -> list[ChatMessage]:
    """Recorded messages back into ChatMessages, with the screenshots read from the run."""
    out: list[ChatMessage] = []
    for msg in messages:
        parts: list[Part] = []
        for part in msg["content"]:
            if part["type"] == "text":
                parts.append(part["text"])
            else:
                path = recording.dir / part["path"]
                parts.append(
                    ImagePart(path.read_bytes(), int(part["width"]), int(part["height"]), str(path))
                )
        out.append(ChatMessage(msg["role"], tuple(parts)))
    return out
