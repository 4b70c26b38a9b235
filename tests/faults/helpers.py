"""Shared bits of the fault tests: a URL where nothing listens, the fault table, thread checks."""

from __future__ import annotations

import json
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tests.support.scripted_server import Reply


def closed_port_url() -> str:
    """A /v1 URL on 127.0.0.1 whose port was just free: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@dataclass(frozen=True)
class Fault:
    """One endpoint fault: how the scripted server shows it and what the user must be told."""

    name: str
    reply: Reply | None  # None: nothing listens at the URL
    phrase: str  # a piece of the one-line message
    retryable: bool = True
    backend: dict[str, Any] = field(default_factory=dict)  # OpenAIBackend keyword arguments


TIMEOUT_S = 2.0  # the read timeout every fault test uses

FAULTS = [
    Fault("down", None, "(connection refused): is the server running?"),
    Fault("hang", Reply(fault="hang"), "within 2 s: the server may be overloaded or stuck"),
    Fault("http_500", Reply(status=500), "answered HTTP 500 (scripted failure): retry"),
    Fault("http_502", Reply(status=502), "answered HTTP 502"),
    Fault("http_503", Reply(status=503), "answered HTTP 503"),
    Fault("http_429", Reply(status=429), "is rate-limiting requests (HTTP 429"),
    Fault("http_400", Reply(status=400), "rejected the request (HTTP 400", retryable=False),
    Fault("http_404", Reply(status=404), "answered HTTP 404", retryable=False),
    Fault("not_json", Reply(fault="not_json"), "answered with text/html instead of an event"),
    Fault("invalid_json", Reply("partial", fault="invalid_json"), "is not valid JSON"),
    Fault("error_event", Reply("x" * 40, fault="error_event"), "reported an error mid-answer"),
    Fault("drop", Reply("x" * 200, fault="drop"), "broke before the answer was complete"),
    Fault(
        "endless",
        Reply("y" * 500, fault="endless"),
        "characters without finishing; stopped reading",
        backend={"max_stream_chars": 40_000},
    ),
    Fault(
        "keepalive",
        Reply(fault="keepalive", fault_interval_s=0.2),
        "sent no text for 2 s (the stream stayed open)",
    ),
    Fault(
        "trickle",
        Reply("z", fault="endless", fault_interval_s=0.05),
        "streamed for more than 3 s without finishing",
        backend={"max_stream_s": 3.0},
    ),
]


def new_stream_threads(before: set[threading.Thread], wait_s: float) -> list[str]:
    """Names of reader threads started since `before` still alive after up to wait_s."""
    deadline = time.monotonic() + wait_s
    while True:
        alive = [
            t.name
            for t in threading.enumerate()
            if t not in before and t.name == "openai-stream" and t.is_alive()
        ]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.02)


# --------------------------------------------------------------------------- hostile endpoints

MIB = 1024 * 1024
Behaviour = Callable[["HostileRequest"], None]


@dataclass
class HostileRequest:
    """One request a HostileServer received, and the socket its behaviour answers on."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    conn: socket.socket
    closing: threading.Event
    sent: int = 0

    def send(self, data: bytes) -> None:
        """Send bytes; OSError when the client hung up (ends the behaviour)."""
        self.conn.sendall(data)
        self.sent += len(data)

    def forever(self, data: bytes, interval_s: float = 0.0) -> None:
        """Send the same bytes until the client hangs up or the server closes."""
        while not self.closing.wait(interval_s):
            self.send(data)


def head(status: str = "200 OK", kind: str = "text/event-stream", *extra: str) -> bytes:
    """A status line and headers for a body delimited by closing the connection."""
    lines = [f"HTTP/1.1 {status}", f"Content-Type: {kind}", "Connection: close", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def sse_answer(content: str) -> bytes:
    """A whole, well-formed streamed answer carrying content (what a good server sends)."""
    chunks = [{"role": "assistant", "content": ""}, {"content": content}]
    out = b""
    for i, delta in enumerate(chunks + [{}]):
        finish = "stop" if i == len(chunks) else None
        obj = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
        out += f"data: {json.dumps(obj)}\n\n".encode()
    return out + b"data: [DONE]\n\n"


def answer(content: str) -> Behaviour:
    """A good server's reply."""

    def run(req: HostileRequest) -> None:
        req.send(head() + sse_answer(content))

    return run


def models_list(req: HostileRequest) -> None:
    """A good /v1/models reply."""
    data = json.dumps({"object": "list", "data": [{"id": "m", "object": "model"}]}).encode()
    req.send(head("200 OK", "application/json", f"Content-Length: {len(data)}") + data)


def endless_line(req: HostileRequest) -> None:
    """One event-stream line that never ends."""
    req.send(head() + b"data: ")
    req.forever(b"x" * 65536)


def long_event(req: HostileRequest) -> None:
    """Short data lines with no blank line: one event the SDK would keep growing."""
    req.send(head())
    req.forever((b"data: " + b"y" * 90 + b"\n") * 100)


def many_lines(req: HostileRequest) -> None:
    """Small complete events (comments) forever: only the size of the whole reply can stop it."""
    req.send(head())
    req.forever((b": " + b"k" * 1000 + b"\n\n") * 64)


def nested_json(req: HostileRequest) -> None:
    """One event of half a million nested arrays (a recursion bomb for a JSON parser)."""
    req.send(head() + b"data: " + b"[" * 500_000 + b"\n\n")
    req.forever(b": idle\n\n", 0.5)


def bad_utf8(req: HostileRequest) -> None:
    """An event that is not UTF-8."""
    req.send(head() + b"data: \xff\xfe\n\n")
    req.forever(b": idle\n\n", 0.5)


def _compressed(z: Any, fill: bytes, total: int) -> Iterator[bytes]:
    """`total` bytes of fill through the compressor z, produced lazily (never held whole)."""
    block = fill * (MIB // len(fill))  # fill's length divides 1 MiB
    for _ in range(total // MIB):
        out = z.compress(block)
        if out:
            yield out
    yield z.flush()


def bomb(
    encoding: str, fill: bytes = b"\0", *, status: str = "200 OK", kind: str = "text/event-stream"
) -> Behaviour:
    """10 GB of one byte compressed (gzip: ~10 MB on the wire), generated as it is sent."""

    def run(req: HostileRequest) -> None:
        wbits = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}[encoding]
        z = zlib.compressobj(9, zlib.DEFLATED, wbits)
        req.send(head(status, kind, f"Content-Encoding: {encoding}"))
        for piece in _compressed(z, fill, 10_000 * MIB):
            if req.closing.is_set():
                return
            req.send(piece)

    return run


def brotli_reply(req: HostileRequest) -> None:
    """A reply labelled brotli (its bytes never need to be valid: it must not be decoded)."""
    req.send(head("200 OK", "text/event-stream", "Content-Encoding: br"))
    req.forever(b"\x1b" * 65536)


def header_trickle(req: HostileRequest) -> None:
    """A status line, then one header byte every 0.2 s: never a complete header block."""
    req.send(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    req.forever(b"a", 0.2)


def header_flood(req: HostileRequest) -> None:
    """A status line, then one header that never ends, as fast as the client reads."""
    req.send(b"HTTP/1.1 200 OK\r\nX-Big: ")
    req.forever(b"a" * 65536)


def body_trickle(kind: str) -> Behaviour:
    """Complete headers, then one body byte every 0.2 s."""

    def run(req: HostileRequest) -> None:
        req.send(head("200 OK", kind))
        req.send(b"data: " if kind == "text/event-stream" else b'{"object": "list", "data": [')
        req.forever(b" ", 0.2)

    return run


def redirect(status: int, target: str) -> Behaviour:
    """A redirect to target (the same API path on another server)."""

    def run(req: HostileRequest) -> None:
        where = target.rstrip("/") + req.path.removeprefix("/v1")
        req.send(head(f"{status} Moved", "text/plain", f"Location: {where}", "Content-Length: 0"))

    return run


def huge_error(req: HostileRequest) -> None:
    """HTTP 500 with an error body that never ends."""
    req.send(head("500 Internal Server Error", "application/json") + b'{"error": {"message": "')
    req.forever(b"e" * 65536)


def announced_error(req: HostileRequest) -> None:
    """HTTP 500 announcing a 100 MiB body (Content-Length), then sending it slowly."""
    req.send(head("500 Internal Server Error", "application/json", f"Content-Length: {100 * MIB}"))
    req.forever(b"e" * 1024, 0.05)


def huge_models(req: HostileRequest) -> None:
    """A model list that never ends."""
    req.send(head("200 OK", "application/json") + b'{"object": "list", "data": [')
    req.forever(b'{"id": "m", "object": "model"}, ' * 2000)


class HostileServer:
    """A raw HTTP/1.1 server on 127.0.0.1: each request gets the next behaviour of the script.

    GET /v1/models gets `models` (a good list unless told otherwise); every request is kept in
    `requests` with how many bytes its answer sent before the client hung up.
    """

    def __init__(self, script: list[Behaviour], models: Behaviour = models_list) -> None:
        self.script = script
        self.models = models
        self.requests: list[HostileRequest] = []
        self.closing = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/v1"  # the /v1 base URL
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self.closing.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                data = b""
                while b"\r\n\r\n" not in data:
                    more = conn.recv(65536)
                    if not more:
                        return
                    data += more
                top, _, body = data.partition(b"\r\n\r\n")
                first, *lines = top.decode("latin-1").split("\r\n")
                method, path, _version = first.split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in
                           (line.partition(":") for line in lines)}  # fmt: skip
                want = int(headers.get("content-length", "0"))
                while len(body) < want:
                    more = conn.recv(65536)
                    if not more:
                        return
                    body += more
                req = HostileRequest(method, path, headers, body, conn, self.closing)
                if method == "GET" and path.rstrip("/").endswith("/models"):
                    behaviour = self.models
                else:
                    n = sum(1 for r in self.requests if r.method == "POST")
                    behaviour = self.script[min(n, len(self.script) - 1)]
                self.requests.append(req)
                behaviour(req)
            except OSError:
                pass  # the client hung up: what a bounded client does

    def close(self) -> None:
        """Stop serving; endless behaviours end too."""
        self.closing.set()
        self._sock.close()
