"""Each endpoint fault against the real OpenAIBackend and a real HTTP server on 127.0.0.1.

Every fault must end in one BackendError (never another exception, never a hang) whose one-line
message says what happened, with the right `retryable`, in bounded time, leaving no reader
thread behind; the same backend then answers the next request.
"""

from __future__ import annotations

import threading
import time

import pytest

from agent.backends.base import BackendError, Cancelled, ChatMessage, ImagePart
from agent.backends.factory import endpoint_warning
from agent.backends.openai_compat import OpenAIBackend
from tests.faults.helpers import FAULTS, TIMEOUT_S, Fault, closed_port_url, new_stream_threads
from tests.support.scripted_server import Reply, ScriptedServer, xml_call

MSGS = [
    ChatMessage("system", ("sys",)),
    ChatMessage("user", ("look:", ImagePart(b"\x89PNGdata", 10, 10))),
]
TOOLS = [{"type": "function", "function": {"name": "computer_use", "parameters": {}}}]
GOOD = xml_call(action="left_click", coordinate=[500, 500])
# Generous: every fault is bounded by the read timeout or a deadline of at most 3 s.
BOUND_S = TIMEOUT_S + 5


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_is_one_clear_backend_error_then_the_next_request_works(fault: Fault) -> None:
    server = ScriptedServer([fault.reply, Reply(GOOD)] if fault.reply else [Reply(GOOD)])
    url = server.url if fault.reply else closed_port_url()
    before = set(threading.enumerate())
    backend = OpenAIBackend(url, "m", timeout_s=TIMEOUT_S, **fault.backend)
    try:
        start = time.monotonic()
        with pytest.raises(BackendError) as caught:
            backend.complete(MSGS, TOOLS)
        took = time.monotonic() - start
        error = caught.value
        message = str(error)
        print(f"\n{fault.name}: {took:.3f} s: {message}")
        assert type(error) is BackendError and error.retryable is fault.retryable
        assert fault.phrase in message, message
        assert "\n" not in message and len(message) < 300
        assert "Traceback" not in message and "Error code" not in message
        assert took < BOUND_S
        assert new_stream_threads(before, wait_s=2.0) == []
        if fault.reply is not None:
            # No silent resend by the SDK: the loop decides about retries, visibly.
            assert len(server.requests) == 1
            assert backend.complete(MSGS, TOOLS).content == GOOD  # the same backend goes on
    finally:
        backend.close()
        server.close()


def test_an_unknown_api_key_is_not_retryable() -> None:
    server = ScriptedServer([Reply(GOOD)], api_key="right")
    try:
        backend = OpenAIBackend(server.url, "m", timeout_s=TIMEOUT_S)
        with pytest.raises(BackendError) as caught:
            backend.complete(MSGS, TOOLS)
        assert caught.value.retryable is False
        assert "refused the API key: set DESKPILOT_API_KEY (HTTP 401)" in str(caught.value)
    finally:
        server.close()


def test_down_endpoint_is_retryable_already_when_listing_models() -> None:
    with pytest.raises(BackendError) as caught:
        OpenAIBackend(closed_port_url(), timeout_s=TIMEOUT_S)
    assert caught.value.retryable is True
    assert "(connection refused): is the server running?" in str(caught.value)


@pytest.mark.parametrize(
    "reply",
    [Reply(fault="hang"), Reply("y" * 50, fault="endless", fault_interval_s=0.01)],
    ids=["before_headers", "mid_stream"],
)
def test_stop_ends_a_faulty_request_at_once_and_is_not_retryable(reply: Reply) -> None:
    server = ScriptedServer([reply])
    backend = OpenAIBackend(server.url, "m", timeout_s=30)
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    start = time.monotonic()
    try:
        with pytest.raises(Cancelled) as caught:
            backend.complete(MSGS, TOOLS, cancel=cancel)
        assert caught.value.retryable is False
        assert time.monotonic() - start < 5  # not the 30 s read timeout
    finally:
        server.close()


def test_a_failing_on_delta_propagates_unchanged() -> None:
    server = ScriptedServer([Reply(GOOD)])

    def explode(_delta: object) -> None:
        raise KeyError("the caller's own bug")

    try:
        with pytest.raises(KeyError):
            OpenAIBackend(server.url, "m").complete(MSGS, TOOLS, on_delta=explode)
    finally:
        server.close()


def test_backend_error_retryable_flag() -> None:
    assert BackendError("x").retryable is False
    assert BackendError("x", retryable=True).retryable is True
    stop = Cancelled()
    assert isinstance(stop, BackendError) and stop.retryable is False and str(stop)


@pytest.mark.parametrize(
    ("url", "warns"),
    [
        ("http://127.0.0.1:8000/v1", False),
        ("http://localhost:8000/v1", False),
        ("http://[::1]:8000/v1", False),
        ("https://api.example.com/v1", False),
        ("http://192.168.1.20:8000/v1", True),
        ("http://gpu-box:8000/v1", True),
        ("http://0.0.0.0:8000/v1", True),
    ],
)
def test_endpoint_warning_unless_loopback_or_https(url: str, warns: bool) -> None:
    warning = endpoint_warning(url)
    assert (warning is not None) is warns
    if warning is not None:
        assert "neither loopback nor HTTPS" in warning and "\n" not in warning
