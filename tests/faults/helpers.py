"""Shared bits of the fault tests: a URL where nothing listens, the fault table, thread checks."""

from __future__ import annotations

import socket
import threading
import time
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
