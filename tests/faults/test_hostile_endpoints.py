"""Hostile endpoints against the real OpenAIBackend: raw HTTP servers on 127.0.0.1.

Each attack (an endless line, an endless event, a reply past the size cap, compression bombs,
an unreadable encoding, a header or body trickle, redirects, huge error bodies and model lists)
must end in one BackendError whose one-line message says what happened, in bounded time,
leaving no reader thread; the same backend then answers the next request. A redirect sends
nothing to its target.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest

from agent.backends.base import BackendError, ChatMessage, ImagePart
from agent.backends.openai_compat import OpenAIBackend
from tests.faults.helpers import (
    TIMEOUT_S,
    Behaviour,
    HostileServer,
    announced_error,
    answer,
    bad_utf8,
    body_trickle,
    bomb,
    brotli_reply,
    endless_line,
    header_flood,
    header_trickle,
    huge_error,
    huge_models,
    long_event,
    many_lines,
    nested_json,
    new_stream_threads,
    redirect,
)
from tests.support.scripted_server import xml_call

MSGS = [
    ChatMessage("system", ("sys",)),
    ChatMessage("user", ("look:", ImagePart(b"\x89PNGdata", 10, 10))),
]
TOOLS = [{"type": "function", "function": {"name": "computer_use", "parameters": {}}}]
GOOD = xml_call(action="left_click", coordinate=[500, 500])
# Attacks on size get a long timeout, so that on a loaded machine the byte cap, not the "no
# text" deadline, is what stops them; attacks on time get the 2 s one.
SIZE_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Attack:
    """One hostile reply: to a chat request, or to GET /models; what the user is told."""

    name: str
    behaviour: Behaviour
    phrase: str
    retryable: bool = True
    on_models: bool = False
    timeout_s: float = SIZE_TIMEOUT_S


EVENT = b": " + b"k" * 1020 + b"\n\n"  # a 1 KiB comment event, compressed well in a bomb
LINE_CAP = "sent an event-stream line or event longer than 1 MiB; stopped reading"
ATTACKS = [
    Attack("endless_line", endless_line, LINE_CAP),
    Attack("endless_event", long_event, LINE_CAP),
    Attack("many_small_events", many_lines, "sent more than 16 MiB in an answer; stopped reading"),
    Attack("gzip_bomb_events", bomb("gzip", EVENT), "sent more than 16 MiB in an answer"),
    Attack("gzip_bomb_zeros", bomb("gzip"), LINE_CAP),
    Attack("gzip_bomb_newlines", bomb("gzip", b"\n"), "sent more than 262,144 lines"),
    Attack("deflate_bomb", bomb("deflate", EVENT), "sent more than 16 MiB in an answer"),
    Attack(
        "deflate_bomb_error_body",
        bomb("deflate", status="500 Internal Server Error", kind="application/json"),
        "sent more than 1 MiB in one reply (HTTP 500); stopped reading",
    ),
    Attack(
        "brotli",
        brotli_reply,
        "sent a reply compressed as br, which deskpilot does not read",
        retryable=False,
    ),  # fmt: skip
    Attack("nested_json", nested_json, "(RecursionError: maximum recursion depth exceeded"),
    Attack("not_utf8", bad_utf8, "(UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff"),
    Attack(
        "header_trickle",
        header_trickle,
        f"no reply from URL within {TIMEOUT_S:g} s",
        timeout_s=TIMEOUT_S,
    ),
    Attack("header_flood", header_flood, "broke before the answer was complete"),
    Attack(
        "body_trickle_stream",
        body_trickle("text/event-stream"),
        f"URL sent no text for {TIMEOUT_S:g} s (the stream stayed open)",
        timeout_s=TIMEOUT_S,
    ),
    Attack("huge_error_body", huge_error, "sent more than 1 MiB in one reply (HTTP 500)"),
    Attack(
        "announced_huge_error",
        announced_error,
        "announced a reply of 100 MiB (HTTP 500), over the 1 MiB cap; not read",
    ),
    Attack(
        "huge_models",
        huge_models,
        "sent more than 1 MiB in one reply (HTTP 200); stopped reading (pass --model",
        on_models=True,
    ),
    Attack(
        "gzip_bomb_models",
        bomb("gzip", kind="application/json"),
        "sent more than 1 MiB in one reply (HTTP 200)",
        on_models=True,
    ),
    Attack(
        "body_trickle_models",
        body_trickle("application/json"),
        f"URL did not finish its reply (HTTP 200) within {TIMEOUT_S:g} s",
        on_models=True,
        timeout_s=TIMEOUT_S,
    ),
    Attack(
        "header_trickle_models",
        header_trickle,
        f"no reply from URL within {TIMEOUT_S:g} s",
        on_models=True,
        timeout_s=TIMEOUT_S,
    ),
]


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_attack_is_one_bounded_backend_error_then_the_next_request_works(attack: Attack) -> None:
    if attack.on_models:
        server = HostileServer([answer(GOOD)], models=attack.behaviour)
    else:
        server = HostileServer([attack.behaviour, answer(GOOD)])
    before = set(threading.enumerate())
    backend = OpenAIBackend(server.url, "m", timeout_s=attack.timeout_s)
    try:
        start = time.monotonic()
        with pytest.raises(BackendError) as caught:
            if attack.on_models:
                backend.list_models()
            else:
                backend.complete(MSGS, TOOLS)
        took = time.monotonic() - start
        error = caught.value
        message = str(error).replace(server.url, "URL")
        sent = server.requests[-1].sent
        print(f"\n{attack.name}: {took:.3f} s, server sent {sent:,} bytes: {message}")
        assert type(error) is BackendError and error.retryable is attack.retryable
        assert attack.phrase in message, message
        assert "\n" not in message and len(message) < 300
        assert took < attack.timeout_s + 5
        assert new_stream_threads(before, wait_s=2.0) == []
        assert backend.complete(MSGS, TOOLS).content == GOOD  # the same backend goes on
    finally:
        backend.close()
        server.close()


@pytest.mark.parametrize("status", [301, 302, 307, 308])
@pytest.mark.parametrize("on_models", [False, True], ids=["chat", "models"])
def test_a_redirect_is_refused_naming_the_endpoint_and_the_target_gets_nothing(
    status: int, on_models: bool
) -> None:
    target = HostileServer([answer(GOOD)])
    moved = redirect(status, target.url)
    server = HostileServer([moved], models=moved)
    try:
        with pytest.raises(BackendError) as caught:
            if on_models:
                OpenAIBackend(server.url, timeout_s=TIMEOUT_S)  # lists the models first
            else:
                OpenAIBackend(server.url, "m", timeout_s=TIMEOUT_S).complete(MSGS, TOOLS)
        message = str(caught.value)
        print(f"\nredirect {status}: {message}")
        path = "/models" if on_models else "/chat/completions"
        assert f"redirected the request to {target.url}{path} (HTTP {status})" in message
        assert f"pass --endpoint {target.url}" in message
        assert "nothing was sent there" in message and "\n" not in message
        assert caught.value.retryable is False
        time.sleep(0.2)
        assert target.requests == []  # no screenshot (no request at all) went there
    finally:
        server.close()
        target.close()


def test_a_redirect_location_cannot_smuggle_escapes_or_secrets() -> None:
    def sneaky(req: object) -> None:
        from tests.faults.helpers import HostileRequest, head

        assert isinstance(req, HostileRequest)
        where = "http://u:pw@evil.example/v1\x9b2J/chat/completions?key=sk-1"
        req.send(head("302 Found", "text/plain", f"Location: {where}", "Content-Length: 0"))

    server = HostileServer([sneaky])
    try:
        with pytest.raises(BackendError) as caught:
            OpenAIBackend(server.url, "m", timeout_s=TIMEOUT_S).complete(MSGS, TOOLS)
        message = str(caught.value)
        assert "redirected the request to http://evil.example/v1%C2%9B2J" in message
        assert "pw" not in message and "sk-1" not in message and "\x9b" not in message
        assert message.isprintable()
    finally:
        server.close()


def test_a_proxy_from_the_environment_is_used_and_bounded_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy = HostileServer([answer(GOOD), header_trickle])
    monkeypatch.setenv("http_proxy", proxy.url.removesuffix("/v1"))
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    backend = OpenAIBackend("http://deskpilot-test.invalid:9/v1", "m", timeout_s=TIMEOUT_S)
    try:
        assert backend.complete(MSGS, TOOLS).content == GOOD
        assert proxy.requests[0].path == "http://deskpilot-test.invalid:9/v1/chat/completions"
        start = time.monotonic()
        with pytest.raises(BackendError, match=f"within {TIMEOUT_S:g} s"):
            backend.complete(MSGS, TOOLS)
        assert time.monotonic() - start < TIMEOUT_S + 5
    finally:
        backend.close()
        proxy.close()


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compressed_good_answer_is_still_read(encoding: str) -> None:
    import zlib

    from tests.faults.helpers import HostileRequest, head, sse_answer

    def compressed(req: HostileRequest) -> None:
        wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
        z = zlib.compressobj(6, zlib.DEFLATED, wbits)
        data = z.compress(sse_answer(GOOD)) + z.flush()
        req.send(head("200 OK", "text/event-stream", f"Content-Encoding: {encoding}"))
        for i in range(0, len(data), 5):  # in small pieces, as a slow proxy would
            req.send(data[i : i + 5])

    server = HostileServer([compressed])
    try:
        backend = OpenAIBackend(server.url, "m", timeout_s=SIZE_TIMEOUT_S)
        assert backend.complete(MSGS, TOOLS).content == GOOD
        assert server.requests[0].headers["accept-encoding"] == "identity"
    finally:
        server.close()


def test_an_error_message_with_terminal_escapes_is_printed_inert() -> None:
    from tests.faults.helpers import HostileRequest, head

    def nasty(req: HostileRequest) -> None:
        body = b'{"error": {"message": "\\u001b]52;c;cm0gLXJmIH4=\\u0007\\u001b[2Jboom\\u202e"}}'
        req.send(head("400 Bad Request", "application/json", f"Content-Length: {len(body)}"))
        req.send(body)

    server = HostileServer([nasty])
    try:
        with pytest.raises(BackendError) as caught:
            OpenAIBackend(server.url, "m", timeout_s=TIMEOUT_S).complete(MSGS, TOOLS)
        message = str(caught.value)
        assert "boom" in message and message.isprintable(), repr(message)
        assert "\x1b" not in message and "\u202e" not in message
    finally:
        server.close()


@pytest.mark.parametrize(
    "behaviour", [header_trickle, body_trickle("text/event-stream")], ids=["headers", "body"]
)
def test_stop_mid_attack_ends_the_reader_thread_at_once(behaviour: Behaviour) -> None:
    from agent.backends.base import Cancelled

    server = HostileServer([behaviour])
    before = set(threading.enumerate())
    backend = OpenAIBackend(server.url, "m", timeout_s=30)
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    try:
        with pytest.raises(Cancelled):
            backend.complete(MSGS, TOOLS, cancel=cancel)
        # Not lingering until the 30 s deadline: the connection was cut.
        assert new_stream_threads(before, wait_s=2.0) == []
    finally:
        backend.close()
        server.close()


def test_a_proxy_that_cannot_be_used_is_one_line_without_its_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("http_proxy", "ftp://user:hunter2@127.0.0.1:1")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    with pytest.raises(BackendError) as caught:
        OpenAIBackend("http://deskpilot-test.invalid:9/v1", "m")
    message = str(caught.value)
    assert "the proxy the environment names for" in message and "cannot be used" in message
    assert "hunter2" not in message and "\n" not in message
