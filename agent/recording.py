"""Run recordings: run.json, steps.jsonl and screenshots, written step by step, crash-safe."""

from __future__ import annotations

import errno
import json
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from actions.screen import Monitor
from agent.backends.base import ChatMessage, ImagePart, Part
from agent.backends.openai_compat import API_KEY_ENV
from agent.records import (
    FORMAT_VERSION,
    READABLE_VERSIONS,
    PromptRecord,
    StepRecord,
    monitor_json,
    now_iso,
    tool_call_from_json,
    tool_call_json,
)
from agent.secrets import MARKER, Redactor, find_secrets, secrets_from_env

# The step record and the format's version are defined in agent/records.py; this module
# writes and reads run folders.
# The `result` readers show for a step whose last line is "executing": the process ended
# while the action ran (kill -9, power loss), so it may have run, in part or whole.
INTERRUPTED = "interrupted during execution (may have run)"
# Room kept free in the run folder (a hidden file, removed at the end) so that the outcome
# can still be written into run.json once the disk is full.
RESERVE_BYTES = 64 * 1024
_RESERVE = ".reserve"


class RecordingError(RuntimeError):
    """The recording cannot be written (disk full, folder gone, permission); one line."""


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
    """Writes one run directory; a step is on disk before its action runs, and again when done.

    Every line goes to the OS whole (one write(2)) or not at all; a failed write raises
    RecordingError, and the loop then executes nothing more.

    Everything written passes through `redactor`: the user's secrets, the API key's value,
    secrets found in the task, and typed text that looks like a password or a key (found as
    each step is appended) never reach run.json or steps.jsonl, whole or cut off. Later
    prompts and results echo typed text, and the same redactor covers them; when a secret is
    learnt, lines already written are re-scrubbed. Screenshots are pixels and are not
    redacted: a password field usually shows dots, but anything else on screen is kept.
    """

    def __init__(
        self, runs_dir: Path, info: dict[str, Any], *, redactor: Redactor | None = None
    ) -> None:
        self.redactor = redactor if redactor is not None else Redactor()
        backend = info.get("backend")
        key_env = backend.get("api_key_env") if isinstance(backend, dict) else None
        for value in secrets_from_env({API_KEY_ENV, *([key_env] if key_env else [])}):
            self.redactor.add(value)
        task = info.get("task")
        reasons = []
        if isinstance(task, str):
            for secret, reason in find_secrets(task, task):
                self.redactor.add(secret)
                reasons.append(f"task: {reason}")
        self.run_id = new_run_id()
        self.dir = Path(runs_dir) / self.run_id
        (self.dir / "screenshots").mkdir(parents=True, exist_ok=False)
        _write_atomic(self.dir / _RESERVE, bytes(RESERVE_BYTES))
        # Kept as given, redacted each time it is written, so later secrets reach it too.
        self.info: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "run_id": self.run_id,
            **info,
            "started_at": now_iso(),
            "ended_at": None,
            "outcome": None,
            "steps": 0,
        }
        if reasons:
            self.info["redacted"] = reasons
        self._write_info()
        # Unredacted: equal messages stay equal, and what is written is redacted anyway.
        self._last_prompt: list[dict[str, Any]] = []
        self._steps_path = self.dir / "steps.jsonl"
        os.close(os.open(self._steps_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        self._scrubbed_version = self.redactor.version
        self._finished = False

    def _write_info(self) -> None:
        info = self.redactor.redact(self.info)
        text = json.dumps(info, ensure_ascii=False, indent=2) + "\n"
        _write_atomic(self.dir / "run.json", text.encode("utf-8"))

    def save_screenshot(self, index: int, png: bytes) -> str:
        """Store a step's screenshot atomically; returns its path relative to the run dir."""
        rel = f"screenshots/step-{index:04d}.png"
        try:
            _write_atomic(self.dir / rel, png)
        except OSError as exc:
            raise self._failed(exc) from exc
        return rel

    def save_image(self, name: str, png: bytes) -> str:
        """Store another picture of a step (screenshots/NAME) atomically; returns its path."""
        rel = f"screenshots/{name}"
        try:
            _write_atomic(self.dir / rel, png)
        except OSError as exc:
            raise self._failed(exc) from exc
        return rel

    def _failed(self, exc: OSError) -> RecordingError:
        """A failed write as one line; frees the reserve so the outcome can still be written."""
        try:
            (self.dir / _RESERVE).unlink(missing_ok=True)
        except OSError:
            pass  # the folder itself is gone
        why = exc.strerror or str(exc) or type(exc).__name__
        return RecordingError(f"cannot write the recording to {self.dir}: {why}")

    def prompt_record(self, messages: list[ChatMessage]) -> PromptRecord:
        """A step's `prompt` field: the messages after those it shares with the previous step."""
        encoded = [encode_message(m, self.dir) for m in messages]
        same = 0
        for old, new in zip(self._last_prompt, encoded, strict=False):
            if old != new:
                break
            same += 1
        self._last_prompt = encoded
        return PromptRecord(same, len(encoded), encoded[same:])

    def write_step(self, step: StepRecord) -> None:
        """Append one step record (see append_step; RecordingError when it cannot)."""
        self.append_step(step.to_json())

    def append_step(self, record: dict[str, Any]) -> None:
        """Append one step's JSON, redacted, as one whole line, in the OS before this returns.

        Raises RecordingError when it cannot (disk full, folder gone, permission); the file
        then ends as it did before: a line is written whole or not at all.
        """
        reasons = self._learn_typed_secrets(record)
        self._feed_typed(record)
        line = self._redact_line(record)
        if reasons:
            line["redacted"] = list(dict.fromkeys([*line.get("redacted", []), *reasons]))
        data = (json.dumps(line, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
        try:
            self._rescrub_if_needed()
            self._append(data)
        except OSError as exc:
            raise self._failed(exc) from exc
        self.info["steps"] = int(record.get("index", 0)) + 1

    def _append(self, data: bytes) -> None:
        """Append bytes with write(2); on failure, cut the file back to where it was."""
        # Opened by path each time, without O_CREAT: a removed folder fails here rather than
        # writing into a deleted file nobody will read.
        fd = os.open(self._steps_path, os.O_WRONLY | os.O_APPEND)
        try:
            start = os.fstat(fd).st_size
            view = memoryview(data)
            try:
                while view:
                    written = os.write(fd, view)
                    if written <= 0:
                        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                    view = view[written:]
            except BaseException:  # ENOSPC mid-line, or Ctrl-C between two writes
                try:
                    os.ftruncate(fd, start)  # a torn line would hide the lines after it
                except OSError:
                    pass  # readers skip a torn last line anyway
                raise
        finally:
            os.close(fd)

    def finish(self, outcome: dict[str, Any]) -> None:
        """Write the end time and outcome into run.json (RecordingError when it cannot)."""
        try:
            if not self._finished:
                self._finished = True
                self._rescrub_if_needed()
                fd = os.open(self._steps_path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError:
            pass  # the outcome matters more; a failed step write was reported already
        self.info["ended_at"] = now_iso()
        self.info["outcome"] = outcome
        try:
            (self.dir / _RESERVE).unlink(missing_ok=True)
            self._write_info()
        except OSError as exc:
            raise self._failed(exc) from exc

    def _learn_typed_secrets(self, record: dict[str, Any]) -> list[str]:
        """Add typed text that looks secret (proposed or as the user edited it); the reasons."""
        decision = record.get("decision")
        candidates = [
            record.get("action"),
            decision.get("edited_action") if isinstance(decision, dict) else None,
        ]
        thinking = record.get("thinking")
        context = thinking if isinstance(thinking, str) else ""
        reasons: list[str] = []
        for args in candidates:
            if not isinstance(args, dict) or args.get("action") != "type":
                continue
            text = args.get("text")
            if not isinstance(text, str):
                continue
            found = find_secrets(text, context)
            for secret, _ in found:
                self.redactor.add(secret)
            reasons += [f"typed text: {reason}" for _, reason in found]
            if not found and self.redactor.redact_text(text) != text:
                reasons.append("typed text: marked secret")
        return list(dict.fromkeys(reasons))

    def _feed_typed(self, record: dict[str, Any]) -> None:
        """Add the step's typing to the redactor's typed stream: executed, else edited, else
        proposed (one piece a step: a proposal the user replaced was not typed before it)."""
        index = record.get("index")
        if not isinstance(index, int):
            return
        decision, execution = record.get("decision"), record.get("execution")
        for args in (
            execution.get("action") if isinstance(execution, dict) else None,
            record.get("to_run"),
            decision.get("edited_action") if isinstance(decision, dict) else None,
            record.get("action"),
        ):
            if not isinstance(args, dict):
                continue
            typed = typing_of(args)
            if typed is not None:
                keys = args.get("keys")
                names = [k for k in keys if isinstance(k, str)] if isinstance(keys, list) else []
                self.redactor.typed(typed[0], step=index, echoes=typed[1], names=names)
            return

    def _redact_line(self, record: dict[str, Any]) -> dict[str, Any]:
        """A step record redacted; in a step that typed part of a secret, that part is hidden."""
        line: dict[str, Any] = self.redactor.redact(record)
        index = record.get("index")
        pieces = self.redactor.pieces_of_step(index) if isinstance(index, int) else frozenset()
        if not pieces:
            return line

        # Short pieces ("hun", or one key) would shred any text they were replaced in: every
        # model-written field holding one, in any encoding, is hidden whole, and so is what
        # the step's actions typed (a chord's keys spell its character only together).
        def hide(value: Any) -> Any:
            if isinstance(value, str):
                return MARKER if self.redactor.hides(value, pieces) else value
            if isinstance(value, dict):
                if value.get("action") in ("type", "key"):
                    return {
                        k: v if k == "action" else ([MARKER] if k == "keys" else MARKER)
                        for k, v in value.items()
                    }
                return {k: hide(v) for k, v in value.items()}
            if isinstance(value, list):
                return [hide(v) for v in value]
            return value

        model_written = ("thinking", "raw_output", "tool_calls", "action", "to_run", "result")
        for key in (*model_written, "parse_error"):
            if key in line:
                line[key] = hide(line[key])
        for key, fields in _NESTED_TEXT.items():
            part = line.get(key)
            if isinstance(part, dict):
                line[key] = {k: hide(v) if k in fields else v for k, v in part.items()}
        if isinstance(line.get("error"), str):
            line["error"] = hide(line["error"])
        reason = "typed text: part of a secret typed in pieces"
        line["redacted"] = list(dict.fromkeys([*line.get("redacted", []), reason]))
        return line

    def _rescrub_if_needed(self) -> None:
        """After a new secret, redact what is already on disk again (atomically)."""
        version = self.redactor.version
        if version == self._scrubbed_version:
            return
        self._scrubbed_version = version
        self._write_info()
        path = self._steps_path
        old = path.read_bytes().split(b"\n")
        new: list[bytes] = []
        for raw in old:
            try:
                line = json.dumps(
                    self._redact_line(json.loads(raw)), ensure_ascii=False, allow_nan=False
                ).encode("utf-8")
            except (json.JSONDecodeError, UnicodeDecodeError):
                line = raw  # only a blank end; this recorder writes whole lines
            new.append(line)
        if new == old:
            return
        _write_atomic(path, b"\n".join(new))


# The parts of a step record nested one level down that hold typed or model-written text.
_NESTED_TEXT: dict[str, tuple[str, ...]] = {
    "decision": ("edited_action", "note"),
    "execution": ("action", "detail", "error"),
    "risk": ("reason",),
}
# What a chord types when it types a character (shift only, or no modifier).
_CHORD_CHARS = {"space": " ", "enter": "\n", "tab": "\t", "backspace": "\b"}
_CHORD_CHARS.update({f"num{i}": str(i) for i in range(10)})


def typing_of(args: object) -> tuple[str, tuple[str, ...]] | None:
    """What recorded action arguments type ("\\b" for backspace), and how they are echoed.

    The echoes are the action's description and tool call, as results and later prompts
    render them. A chord with ctrl, alt or win types nothing; None for anything else.
    """
    from actions.keys import KeyNameError, is_modifier, normalize_chord
    from actions.types import Action, Key, Type, describe
    from agent.protocol import format_tool_call

    if not isinstance(args, dict):
        return None
    action: Action
    kind = args.get("action")
    if kind == "type" and isinstance(args.get("text"), str):
        text: str = args["text"]
        action = Type(text)
    elif kind == "key" and isinstance(args.get("keys"), list):
        keys = args["keys"]
        if not all(isinstance(k, str) for k in keys):
            return None
        try:
            names = normalize_chord(keys)
        except KeyNameError:
            return None
        mods = [k for k in names if is_modifier(k)]
        rest = [k for k in names if not is_modifier(k)]
        if len(rest) != 1 or any(not m.startswith("shift") for m in mods):
            return None
        key = rest[0]
        char = key if len(key) == 1 else _CHORD_CHARS.get(key)
        if char is None:
            return None
        text = char.upper() if mods and len(key) == 1 else char
        action = Key(tuple(keys))
    else:
        return None
    return text, (describe(action), format_tool_call(action))


@dataclass(slots=True)
class Recording:
    """A run read back: its info, its complete steps, and any problems found reading it.

    `steps` are the lines as read (JSON objects); `records` the same steps typed.
    """

    dir: Path
    info: dict[str, Any]
    steps: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    records: list[StepRecord] = field(init=False)

    def __post_init__(self) -> None:
        self.records = [StepRecord.from_json(s) for s in self.steps]


def read_steps(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """steps.jsonl as one record per step: the last line of each index, in index order.

    A step of format 3 has an "executing" line before its action and a "done" line after;
    when the process ended in between, the "executing" line is the step, marked
    interrupted (its `result` says it may have run). A torn last line (the process died
    while writing it) is skipped; both come back as warnings.
    """
    path = Path(path)
    lines = path.read_bytes().split(b"\n") if path.exists() else []
    by_index: dict[int, dict[str, Any]] = {}
    unindexed: list[dict[str, Any]] = []
    warnings: list[str] = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            step = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            last = n == len(lines) or all(not rest.strip() for rest in lines[n:])
            kind = "torn last line" if last else "unreadable line"
            warnings.append(f"steps.jsonl line {n}: {kind} skipped")
            continue
        index = step.get("index") if isinstance(step, dict) else None
        if isinstance(index, int) and not isinstance(index, bool):
            by_index.pop(index, None)  # a later line replaces it, and keeps its place at the end
            by_index[index] = step
        elif isinstance(step, dict):
            unindexed.append(step)
    steps = sorted(by_index.values(), key=lambda s: int(s["index"])) + unindexed
    for step in steps:
        if step.get("phase") == "executing":
            step["interrupted"] = True
            if step.get("result") is None:
                step["result"] = INTERRUPTED
            warnings.append(f"step {int(step.get('index', 0)) + 1}: {INTERRUPTED}")
    return steps, warnings


def read_run(run_dir: Path) -> Recording:
    """Read a run directory: its info and one record per step (see read_steps), with warnings."""
    run_dir = Path(run_dir)
    info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    steps, warnings = read_steps(run_dir / "steps.jsonl")
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
    encoded: dict[str, Any] = {"role": message.role, "content": content}
    if message.tool_calls:
        encoded["tool_calls"] = [tool_call_json(c) for c in message.tool_calls]
    if message.tool_call_id is not None:
        encoded["tool_call_id"] = message.tool_call_id
    return encoded


def prompt_messages(recording: Recording, index: int) -> list[dict[str, Any]] | None:
    """The full message list sent at step `index` (images as paths); None when not recorded."""
    full: list[dict[str, Any]] | None = None
    for step in recording.records:
        prompt = step.prompt
        if prompt is not None:
            full = (full or [])[: prompt.same_as_previous] + list(prompt.messages)
        if step.index == index:
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
        calls = tuple(tool_call_from_json(c) for c in msg.get("tool_calls") or ())
        out.append(ChatMessage(msg["role"], tuple(parts), calls, msg.get("tool_call_id")))
    return out
