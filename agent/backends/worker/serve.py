"""The worker process: answers frames from stdin on stdout until the app closes stdin."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import sys
import threading
import traceback
from typing import IO

from agent.backends.worker.engine import Engine, explain_generate_error, explain_load_error
from agent.backends.worker_wire import (
    PROTOCOL_VERSION,
    Frame,
    FrameWriter,
    Header,
    Kind,
    read_frame,
    version_mismatch,
)


def _die_with_parent() -> None:
    """Linux: get SIGKILL when the parent goes away (stdin EOF covers the other platforms)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        import ctypes

        pr_set_pdeathsig = 1
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    parent = os.environ.get("DESKPILOT_WORKER_PARENT")
    # The parent may have died before prctl took effect.
    if parent and parent.isdigit() and os.getppid() != int(parent):
        os._exit(0)


class _Server:
    """One worker's state: the engine, the frame writer and the ids of cancelled requests."""

    def __init__(self, out: IO[bytes]) -> None:
        self.writer = FrameWriter(out)
        self.jobs: queue.Queue[Frame] = queue.Queue()
        self.cancelled: set[int] = set()
        self.lock = threading.Lock()
        self.engine = Engine(self.progress)

    def progress(self, stage: str, fraction: float | None) -> None:
        """Tell the parent how loading goes."""
        self.writer.send({"type": "progress", "stage": stage, "fraction": fraction})

    def error(self, rid: object, message: str, *, fatal: bool) -> None:
        """Answer a request with a one-line error."""
        self.writer.send({"type": "error", "id": rid, "fatal": fatal, "message": message})

    def read_loop(self, inp: IO[bytes]) -> None:
        """Queue requests; cancel, ping and shutdown take effect at once, even mid-generation."""
        while True:
            try:
                frame = read_frame(inp)
            except (OSError, ValueError):
                frame = None
            if frame is None or frame[0].get("type") == "shutdown":
                # Parent gone or done: exit now, even mid-generation.
                os._exit(0)
            header, _ = frame
            if header.get("type") == "cancel":
                with self.lock:
                    self.cancelled.add(int(header.get("id", -1)))
            elif header.get("type") == "ping":
                self.writer.send({"type": "pong"})
            else:
                self.jobs.put(frame)

    def handle(self, header: Header, blob: bytes) -> None:
        """Answer one queued request."""
        kind = header.get("type")
        if kind not in ("load", "generate"):
            self.error(
                header.get("id"), f"The worker does not know the request {kind!r}.", fatal=False
            )
            return
        refused = version_mismatch(app=header.get("protocol"), worker=PROTOCOL_VERSION)
        if refused is not None:
            # Fatal: a parent from another version cannot use this worker for anything.
            self.error(header.get("id"), refused, fatal=True)
        elif kind == "load":
            self.load(header)
        else:
            self.generate(header, blob)

    def load(self, header: Header) -> None:
        """Resolve, load and warm up the model; answer ready or a fatal error."""
        model = str(header.get("model"))
        try:
            info = self.engine.load(
                model, header.get("device"), header.get("dtype"), header.get("warmup", True)
            )
        except BaseException as exc:  # noqa: B036 - every failure becomes a message
            traceback.print_exc()
            self.error(None, explain_load_error(exc, model), fatal=True)
            return
        self.writer.send({"type": "ready", "info": info, "protocol": PROTOCOL_VERSION})

    def generate(self, header: Header, blob: bytes) -> None:
        """Stream one answer as deltas, then its result (or an error)."""
        rid = int(header.get("id", -1))
        if self.engine.model is None:
            self.error(rid, "The local model is not loaded.", fatal=False)
            return

        def should_stop() -> bool:
            return rid in self.cancelled

        def on_delta(kind: Kind, text: str) -> None:
            self.writer.send({"type": "delta", "id": rid, "kind": kind, "text": text})

        try:
            result = self.engine.run(header, blob, on_delta, should_stop)
        except Exception as exc:
            traceback.print_exc()
            self.error(rid, explain_generate_error(exc), fatal=False)
        else:
            self.writer.send({"type": "result", "id": rid, **result})
        with self.lock:
            self.cancelled.discard(rid)


def serve(inp: IO[bytes], out: IO[bytes]) -> None:
    """Answer frames until stdin closes; generation runs on this thread, reading on another."""
    server = _Server(out)
    # First, before any request is read: the parent checks it before waiting for anything else.
    server.writer.send({"type": "hello", "protocol": PROTOCOL_VERSION})
    threading.Thread(target=server.read_loop, args=(inp,), name="worker-stdin", daemon=True).start()
    while True:
        server.handle(*server.jobs.get())


def main() -> int:
    """Entry point of the worker process."""
    _die_with_parent()
    # Ctrl+C in the terminal is for the app; the app closes us through stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Keep the protocol on a private fd: anything a library prints goes to stderr instead.
    proto_out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    serve(sys.stdin.buffer, proto_out)
    return 0
