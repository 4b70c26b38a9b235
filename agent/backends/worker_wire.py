"""What the app and the local model worker say to each other: frames, message types, version.

Both sides import this module, so it stays stdlib-only (the app never imports torch). The
worker process itself lives in agent/backends/worker/.

Frame: 8-byte header (JSON length, blob length, big-endian u32) + UTF-8 JSON + raw bytes.

Worker -> parent, first, before anything else
  {"type": "hello", "protocol": N}                the parent refuses another N

Parent -> worker ("load" and "generate" carry "protocol": N; the worker refuses another N)
  {"type": "load", "protocol": N, "model": ID_OR_FOLDER, "device": str|null, "dtype": str|null}
  {"type": "generate", "protocol": N, "id": N, "messages": [...], "tools": [...],
   "thinking": bool, "sampling": {...}, "max_new_tokens": int}
                                                  blob = PNG bytes the messages point into
  {"type": "cancel", "id": N}                     handled by the reader thread at once
  {"type": "ping"} / {"type": "shutdown"}
  A message part is {"type": "text", "text": ...}, {"type": "image", "path": FILE}
  or {"type": "image", "blob": [offset, length]}.

Worker -> parent
  {"type": "progress", "stage": str, "fraction": float|null}
  {"type": "ready", "info": {...}, "protocol": N}
  {"type": "delta", "id": N, "kind": "reasoning"|"content", "text": str}
  {"type": "result", "id": N, "content", "reasoning", "finish_reason", "prompt_tokens",
   "completion_tokens", "first_token_s", "total_s", "prefill_s", "decode_s",
   "cached_tokens" (prompt tokens resumed from the kept state of the previous prompt)}
  {"type": "error", "id": N|null, "message": one line, "fatal": bool}
  {"type": "pong"}
"""

from __future__ import annotations

import json
import struct
import threading
from collections.abc import Mapping
from typing import IO, Any, Literal

# Raise it whenever a message changes shape or meaning: both ends refuse another number.
# 2: the worker says hello first; load and generate carry the parent's version.
PROTOCOL_VERSION = 2
WORKER_MODULE = "agent.backends.worker"

_HEADER = struct.Struct(">II")
# A frame carries at most a handful of screenshots; anything larger is a corrupted stream.
_MAX_PART = 1 << 30

# Model-card sampling for Qwen 3.5 vision-language use (notes/qwen35.md): what the worker
# applies unless a request's "sampling" overrides it.
SAMPLING_THINKING: dict[str, float | int] = {
    "temperature": 0.6,
    "top_p": 0.95,
    "top_k": 20,
    "presence_penalty": 0.0,
    "repetition_penalty": 1.0,
}
SAMPLING_INSTRUCT: dict[str, float | int] = {
    "temperature": 0.7,
    "top_p": 0.8,
    "top_k": 20,
    "presence_penalty": 1.5,
    "repetition_penalty": 1.0,
}
SAMPLING_KEYS = frozenset(
    {
        "temperature",
        "top_p",
        "top_k",
        "presence_penalty",
        "repetition_penalty",
        "do_sample",
        "seed",
        "ignore_eos",
    }
)

Header = dict[str, Any]
Frame = tuple[Header, bytes]
Kind = Literal["reasoning", "content"]


def encode_frame(header: Mapping[str, Any], blob: bytes = b"") -> bytes:
    """One frame as bytes."""
    data = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return _HEADER.pack(len(data), len(blob)) + data + blob


def _read_exact(stream: IO[bytes], n: int) -> bytes | None:
    chunks: list[bytes] = []
    left = n
    while left:
        chunk = stream.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(stream: IO[bytes]) -> Frame | None:
    """The next frame, or None at end of stream (or on a stream that is not ours)."""
    head = _read_exact(stream, _HEADER.size)
    if head is None:
        return None
    json_len, blob_len = _HEADER.unpack(head)
    if json_len > _MAX_PART or blob_len > _MAX_PART:
        return None
    data = _read_exact(stream, json_len)
    blob = _read_exact(stream, blob_len) if blob_len else b""
    if data is None or blob is None:
        return None
    header = json.loads(data.decode("utf-8"))
    if not isinstance(header, dict):
        return None
    return header, blob


class FrameWriter:
    """Writes whole frames to a binary stream; safe to share between threads."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, header: Mapping[str, Any], blob: bytes = b"") -> None:
        """Write one frame and flush it."""
        data = encode_frame(header, blob)
        with self._lock:
            self._stream.write(data)
            self._stream.flush()


def _version(value: object) -> str:
    return f"protocol {value}" if isinstance(value, int) else "no protocol version"


def version_mismatch(*, app: object, worker: object) -> str | None:
    """None when both ends speak PROTOCOL_VERSION, else one line naming both and what to do."""
    if app == worker == PROTOCOL_VERSION:
        return None
    return (
        f"The local model worker speaks {_version(worker)} but the app speaks {_version(app)}: "
        "they come from different versions of deskpilot; restart deskpilot, or reinstall it "
        "if that does not help."
    )


def one_line(text: str, limit: int = 300) -> str:
    """Collapse a message to one line a user can read."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
