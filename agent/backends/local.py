"""The embedded default backend: Qwen 3.5 in a warm child process (agent/backends/worker/).

This side never imports torch: the GUI stays light and a crash in the model cannot take it down.
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

from agent.backends.base import (
    BackendError,
    Cancelled,
    ChatMessage,
    Completion,
    Delta,
    ImagePart,
    OnDelta,
)
from agent.backends.worker_wire import (
    PROTOCOL_VERSION,
    SAMPLING_INSTRUCT,
    SAMPLING_KEYS,
    SAMPLING_THINKING,
    WORKER_MODULE,
    Frame,
    Kind,
    encode_frame,
    one_line,
    read_frame,
    version_mismatch,
)
from agent.config import DEFAULT_LOCAL_MODEL

log = logging.getLogger(__name__)

OnProgress = Callable[[str, float | None], None]

DEFAULT_MODEL = DEFAULT_LOCAL_MODEL  # declared once, in agent/config.py
# After a cancel, how long to wait for the worker's own "cancelled" answer before giving up on
# it (it then finishes in the background; its late events are told apart by request id).
CANCEL_GRACE_S = 2.0
_POLL_S = 0.02
# Once the worker process is seen dead, how long its last frames may still be in the pipe.
DEATH_GRACE_S = 0.5
_PROJECT_ROOT = Path(__file__).resolve().parents[2]

# PR_SET_PDEATHSIG fires when the *thread* that started the child exits, not the process, so
# every worker is started from this one long-lived thread rather than from a task's thread.
_spawner: ThreadPoolExecutor | None = None
_spawner_lock = threading.Lock()


def _spawn(argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deskpilot-spawn")
        spawner = _spawner
    return spawner.submit(
        subprocess.Popen,
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=str(_PROJECT_ROOT),
        close_fds=True,
    ).result()


_SIZE = re.compile(r"qwen3\.5-(\d+(?:\.\d+)?)b", re.IGNORECASE)


def _config_of(model: str) -> dict[str, Any] | None:
    folder = Path(os.path.expanduser(model))
    path: str | None = None
    if folder.is_dir():
        path = str(folder / "config.json")
    else:
        try:
            from huggingface_hub import try_to_load_from_cache

            found = try_to_load_from_cache(model, "config.json")
        except Exception:  # an odd id or cache layout only means "unknown"
            found = None
        path = found if isinstance(found, str) else None
    if not path:
        return None
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def default_thinking(model: str) -> bool:
    """Model card: 0.8B and 2B answer directly, 4B and larger think; unknown folders don't."""
    match = _SIZE.search(Path(model.rstrip("/\\")).name) or _SIZE.search(model)
    if match:
        return float(match.group(1)) >= 4.0
    config = _config_of(model)
    if config is None:
        return False
    if str(config.get("model_type", "")).endswith("_moe"):
        return True
    text = config.get("text_config")
    hidden = text.get("hidden_size") if isinstance(text, dict) else config.get("hidden_size")
    # 2B has hidden 2048, 4B 2560: the first size that thinks by default.
    return isinstance(hidden, int) and hidden > 2048


def encode_messages(messages: Sequence[ChatMessage]) -> tuple[list[dict[str, Any]], bytes]:
    """Messages as the worker reads them: images by file path, else PNG bytes in the blob."""
    blobs: list[bytes] = []
    offset = 0
    encoded: list[dict[str, Any]] = []
    for message in messages:
        parts: list[dict[str, Any]] = []
        for part in message.content:
            if isinstance(part, ImagePart):
                if part.path and os.path.isfile(part.path):
                    # The recorder already wrote it: the worker reads the file itself.
                    parts.append({"type": "image", "path": os.path.abspath(part.path)})
                else:
                    parts.append({"type": "image", "blob": [offset, len(part.png)]})
                    blobs.append(part.png)
                    offset += len(part.png)
            else:
                parts.append({"type": "text", "text": part})
        entry: dict[str, Any] = {"role": message.role, "content": parts}
        if message.tool_calls:
            # The chat template reads `arguments` as a mapping (it renders each as <parameter=>).
            entry["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": json.loads(c.arguments)},
                }
                for c in message.tool_calls
            ]
        if message.tool_call_id is not None:
            entry["tool_call_id"] = message.tool_call_id
        encoded.append(entry)
    return encoded, b"".join(blobs)


class _Worker:
    """One running worker process and the threads that read its pipes."""

    def __init__(self, python: str) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(_PROJECT_ROOT), env.get("PYTHONPATH", "")) if p
        )
        env["DESKPILOT_WORKER_PARENT"] = str(os.getpid())
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        self.started = time.monotonic()
        self.proc = _spawn([python, "-m", WORKER_MODULE], env)
        self.events: queue.Queue[Frame | None] = queue.Queue()
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=200)
        self.ready = False
        # Set once its hello named our PROTOCOL_VERSION; nothing else is read before that.
        self.speaks_our_protocol = False
        self.info: dict[str, Any] = {}
        self.ready_s: float | None = None
        self._send_lock = threading.Lock()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        threading.Thread(
            target=self._read_events, args=(self.proc.stdout,), name="worker-events", daemon=True
        ).start()
        threading.Thread(
            target=self._read_stderr, args=(self.proc.stderr,), name="worker-stderr", daemon=True
        ).start()

    def _read_events(self, stream: IO[bytes]) -> None:
        try:
            while (frame := read_frame(stream)) is not None:
                self.events.put(frame)
        except (OSError, ValueError):
            pass
        self.events.put(None)

    def _read_stderr(self, stream: IO[bytes]) -> None:
        # Drained always: a full stderr pipe would block the worker.
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self.stderr_tail.append(line)
                log.debug("worker: %s", line)

    def send(self, header: Mapping[str, Any], blob: bytes = b"") -> None:
        """Write one frame to the worker's stdin."""
        assert self.proc.stdin is not None
        with self._send_lock:
            self.proc.stdin.write(encode_frame(header, blob))
            self.proc.stdin.flush()

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.proc.poll() is None

    def kill(self) -> None:
        """Stop the process now."""
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass

    def close(self, timeout: float = 2.0) -> None:
        """Ask politely (shutdown, then EOF), then kill."""
        if self.proc.poll() is None:
            try:
                self.send({"type": "shutdown"})
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            except (OSError, ValueError):
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def exit_detail(self) -> str:
        """Why the process ended, for a one-line message."""
        try:
            code = self.proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            return ""
        if code < 0:
            try:
                import signal

                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f" (killed by {name})"
        last = next((line for line in reversed(self.stderr_tail) if line.strip()), "")
        return f" (exit code {code}{': ' + one_line(last, 160) if last else ''})"


class LocalBackend:
    """Qwen 3.5 through transformers in a warm worker process; implements Backend."""

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        device: str | None = None,
        dtype: str | None = None,
        thinking: bool | None = None,
        max_new_tokens: int = 1024,
        on_progress: OnProgress | None = None,
        ready_timeout_s: float = 600,
        step_timeout_s: float = 300,
        sampling: Mapping[str, float | int | bool] | None = None,
        python: str | None = None,
    ) -> None:
        unknown = set(sampling or {}) - SAMPLING_KEYS
        if unknown:
            raise ValueError(f"unknown sampling settings: {sorted(unknown)}")
        self.model = model
        self.device = device
        self.dtype = dtype
        self.thinking = default_thinking(model) if thinking is None else thinking
        self.max_new_tokens = max_new_tokens
        self.on_progress = on_progress
        self.ready_timeout_s = ready_timeout_s
        self.step_timeout_s = step_timeout_s
        self.sampling = dict(sampling or {})
        self.python = python or sys.executable
        self._worker: _Worker | None = None
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._closed = False
        self.starts = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self, cancel: threading.Event | None = None) -> None:
        """Start the worker and load the model now (otherwise the first request does it)."""
        with self._lock:
            self._ensure_ready(cancel)

    @property
    def ready_s(self) -> float | None:
        """Seconds from starting the worker process to the model being ready."""
        return self._worker.ready_s if self._worker else None

    @property
    def pid(self) -> int | None:
        """The worker's process id while one runs."""
        worker = self._worker
        return worker.proc.pid if worker is not None and worker.alive() else None

    def restart(self, cancel: threading.Event | None = None) -> None:
        """Kill the worker (hung or not) and start a fresh one, loading the model now."""
        with self._lock:
            self._drop_worker()
            self._ensure_ready(cancel)

    def close(self) -> None:
        """Stop the worker; safe to call twice and from another thread."""
        self._closed = True
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.close()

    def __enter__(self) -> LocalBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> dict[str, object]:
        """What to record about this backend."""
        sampling = dict(SAMPLING_THINKING if self.thinking else SAMPLING_INSTRUCT)
        sampling.update(self.sampling)
        facts: dict[str, object] = {
            "kind": "local",
            "model": self.model,
            "device": self.device or "auto",
            "dtype": self.dtype or "auto",
            "thinking": self.thinking,
            "max_new_tokens": self.max_new_tokens,
            "sampling": sampling,
            "conversation": "native",
        }
        worker = self._worker
        if worker is not None and worker.ready:
            facts["worker"] = dict(worker.info)
            facts["ready_s"] = worker.ready_s
        return facts

    def _notify(self, stage: str, fraction: float | None) -> None:
        if self.on_progress is not None:
            self.on_progress(stage, fraction)

    def _drop_worker(self) -> _Worker | None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.kill()
        return worker

    def _ensure_ready(self, cancel: threading.Event | None) -> _Worker:
        if self._closed:
            raise BackendError("The local model backend was closed.")
        worker = self._worker
        if worker is not None and not worker.alive():
            self._drop_worker()
            worker = None
        if worker is None:
            self._notify("starting worker", None)
            try:
                worker = _Worker(self.python)
            except OSError as exc:
                raise BackendError(
                    f"Could not start the local model worker with {self.python}: {exc}"
                ) from exc
            self.starts += 1
            self._worker = worker
            try:
                worker.send(
                    {
                        "type": "load",
                        "protocol": PROTOCOL_VERSION,
                        "model": self.model,
                        "device": self.device,
                        "dtype": self.dtype,
                    }
                )
            except (OSError, ValueError):
                pass  # the event reader reports the death
        if worker.ready:
            return worker
        last = time.monotonic()
        while True:
            if cancel is not None and cancel.is_set():
                # The worker keeps loading; the next request picks up where this one stopped.
                raise Cancelled("Stopped while the local model was loading.")
            if time.monotonic() - last > self.ready_timeout_s:
                self._drop_worker()
                raise BackendError(
                    f"The local model worker showed no progress loading {self.model} for "
                    f"{self.ready_timeout_s:.0f} s and was stopped; try again, or use "
                    "--device cpu / a smaller --model."
                )
            try:
                item = worker.events.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is None:
                self._drop_worker()
                raise BackendError(
                    f"The local model worker exited while loading {self.model}"
                    f"{worker.exit_detail()}; it restarts on the next request.",
                    retryable=True,
                )
            header, _ = item
            kind = header.get("type")
            last = time.monotonic()
            if not worker.speaks_our_protocol:
                self._check_hello(header)
                worker.speaks_our_protocol = True
                continue
            if kind == "progress":
                fraction = header.get("fraction")
                self._notify(
                    str(header.get("stage")), fraction if fraction is None else float(fraction)
                )
            elif kind == "ready":
                worker.ready = True
                worker.info = dict(header.get("info") or {})
                worker.ready_s = round(time.monotonic() - worker.started, 3)
                self._notify("ready", 1.0)
                return worker
            elif kind == "error":
                self._drop_worker()
                raise BackendError(one_line(str(header.get("message")), 600))

    def _check_hello(self, header: Mapping[str, Any]) -> None:
        """Refuse a worker whose first frame is not a hello naming our protocol version."""
        said = header.get("protocol") if header.get("type") == "hello" else None
        refused = version_mismatch(app=PROTOCOL_VERSION, worker=said)
        if refused is not None:
            self._drop_worker()
            raise BackendError(refused)

    # ------------------------------------------------------------------ requests

    def request(
        self, messages: Sequence[ChatMessage], tools: Sequence[Mapping[str, object]], rid: int = 0
    ) -> tuple[dict[str, Any], bytes]:
        """The generate frame (header, blob) this backend sends for a request."""
        encoded, blob = encode_messages(messages)
        header = {
            "type": "generate",
            "protocol": PROTOCOL_VERSION,
            "id": rid,
            "messages": encoded,
            "tools": [dict(t) for t in tools],
            "thinking": self.thinking,
            "sampling": self.sampling,
            "max_new_tokens": self.max_new_tokens,
        }
        return header, blob

    def complete(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[dict[str, object]],
        *,
        on_delta: OnDelta | None = None,
        cancel: threading.Event | None = None,
    ) -> Completion:
        """Generate one answer in the worker, streaming deltas on the calling thread."""
        if cancel is not None and cancel.is_set():
            raise Cancelled("Stopped before the request was sent.")
        with self._lock:
            worker = self._ensure_ready(cancel)
            rid = next(self._ids)
            header, blob = self.request(messages, tools, rid)
            try:
                worker.send(header, blob)
            except (OSError, ValueError):
                pass  # a dead worker shows up as end of events below
            return self._await(worker, rid, on_delta, cancel)

    def _await(
        self,
        worker: _Worker,
        rid: int,
        on_delta: OnDelta | None,
        cancel: threading.Event | None,
    ) -> Completion:
        last = time.monotonic()
        cancel_sent: float | None = None
        dead_since: float | None = None
        while True:
            now = time.monotonic()
            if cancel is not None and cancel.is_set() and cancel_sent is None:
                cancel_sent = now
                self._send_cancel(worker, rid)
            if cancel_sent is not None and now - cancel_sent > CANCEL_GRACE_S:
                raise Cancelled(
                    "Stopped; the local model finishes its current step in the background."
                )
            if now - last > self.step_timeout_s:
                self._drop_worker()
                raise BackendError(
                    f"The local model worker gave no answer for {self.step_timeout_s:.0f} s and "
                    "was stopped; it restarts on the next request.",
                    retryable=True,
                )
            try:
                item = worker.events.get(timeout=_POLL_S)
            except queue.Empty:
                # A grandchild holding the pipe open would hide the end of events: poll too,
                # leaving the reader a moment to deliver what the worker wrote before dying.
                if dead_since is None and not worker.alive():
                    dead_since = now
                if dead_since is None or now - dead_since < DEATH_GRACE_S:
                    continue
                item = None
            if item is None:
                self._drop_worker()
                if self._closed:
                    raise BackendError("The local model backend was closed.")
                raise BackendError(
                    f"The local model worker stopped during generation{worker.exit_detail()}; "
                    "it restarts on the next request.",
                    retryable=True,
                )
            header, _ = item
            if header.get("id") != rid:
                continue  # progress, pong, or what a cancelled earlier request still sent
            last = time.monotonic()
            kind = header.get("type")
            if kind == "delta":
                if on_delta is not None and cancel_sent is None:
                    text_kind: Kind = (
                        "reasoning" if header.get("kind") == "reasoning" else "content"
                    )
                    try:
                        on_delta(Delta(text_kind, str(header.get("text", ""))))
                    except BaseException:
                        self._send_cancel(worker, rid)
                        raise
            elif kind == "result":
                if header.get("finish_reason") == "cancelled":
                    raise Cancelled("Stopped on request.")
                return Completion(
                    content=str(header.get("content", "")),
                    reasoning=str(header.get("reasoning", "")),
                    finish_reason=header.get("finish_reason"),
                    prompt_tokens=header.get("prompt_tokens"),
                    completion_tokens=header.get("completion_tokens"),
                    first_token_s=header.get("first_token_s"),
                    total_s=float(header.get("total_s") or 0.0),
                    conversation="native",  # the checkpoint's own template renders it
                )
            elif kind == "error":
                if header.get("fatal"):
                    self._drop_worker()
                raise BackendError(one_line(str(header.get("message")), 600))

    def _send_cancel(self, worker: _Worker, rid: int) -> None:
        try:
            worker.send({"type": "cancel", "id": rid})
        except (OSError, ValueError):
            pass
