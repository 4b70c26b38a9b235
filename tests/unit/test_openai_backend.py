"""The OpenAI-compatible client against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import threading
import time

import pytest

from agent.backends.base import BackendError, Cancelled, ChatMessage, Delta, ImagePart
from agent.backends.openai_compat import OpenAIBackend, redact_url
from tests.support.scripted_server import Reply, ScriptedServer, structured_call, xml_call

MSGS = [
    ChatMessage("system", ("sys",)),
    ChatMessage("user", ("look:", ImagePart(b"\x89PNGdata", 10, 10))),
]
TOOLS = [{"type": "function", "function": {"name": "computer_use", "parameters": {}}}]


@pytest.fixture
def server() -> ScriptedServer:
    srv = ScriptedServer([])
    yield srv
    srv.close()


def test_streams_reasoning_then_content_and_counts_tokens(server: ScriptedServer) -> None:
    call = xml_call(action="left_click", coordinate=[1, 2])
    server.script.append(Reply(call, reasoning="because"))
    deltas: list[Delta] = []
    backend = OpenAIBackend(server.url)
    done = backend.complete(MSGS, TOOLS, on_delta=deltas.append)
    assert done.content == call and done.reasoning == "because"
    assert "".join(d.text for d in deltas if d.kind == "reasoning") == "because"
    assert "".join(d.text for d in deltas if d.kind == "content") == call
    assert len([d for d in deltas if d.kind == "content"]) > 1  # really streamed
    assert done.prompt_tokens and done.completion_tokens and done.first_token_s is not None
    body = server.requests[0]
    assert body["model"] == server.model and body["tools"] == TOOLS
    image = body["messages"][1]["content"][1]["image_url"]["url"]
    assert image == "data:image/png;base64,iVBOR2RhdGE="
    backend.close()


def test_structured_tool_calls_are_reassembled(server: ScriptedServer) -> None:
    server.script.append(Reply("", tool_calls=structured_call(action="key", keys=["ctrl", "c"])))
    done = OpenAIBackend(server.url).complete(MSGS, TOOLS)
    assert len(done.tool_calls) == 1
    assert done.tool_calls[0].name == "computer_use"
    assert done.tool_calls[0].arguments == '{"action": "key", "keys": ["ctrl", "c"]}'
    assert done.finish_reason == "tool_calls"


def test_thinking_switch_goes_to_the_chat_template(server: ScriptedServer) -> None:
    server.script.append(Reply("x"))
    OpenAIBackend(server.url, thinking=False).complete(MSGS, TOOLS)
    assert server.requests[0]["chat_template_kwargs"] == {"enable_thinking": False}


def test_stop_cancels_a_slow_answer_quickly(server: ScriptedServer) -> None:
    server.script.append(Reply("late", delay_s=5))
    backend = OpenAIBackend(server.url)
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    t = time.monotonic()
    with pytest.raises(Cancelled):
        backend.complete(MSGS, TOOLS, cancel=cancel)
    assert time.monotonic() - t < 1.0


def test_timeout_is_a_clear_error(server: ScriptedServer) -> None:
    server.script += [Reply("late", delay_s=3), Reply("late", delay_s=3)]
    backend = OpenAIBackend(server.url, timeout_s=0.5)
    with pytest.raises(BackendError, match="no reply from .* within 0.5 s"):
        backend.complete(MSGS, TOOLS)


def test_secrets_stay_out_of_describe(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DESKPILOT_API_KEY", "sk-very-secret")
    backend = OpenAIBackend(server.url.replace("http://", "http://user:pw@"))
    text = repr(backend.describe())
    assert "sk-very-secret" not in text and "pw" not in text and "user" not in text
    assert backend.describe()["api_key_set"] is True


def test_redact_url() -> None:
    assert redact_url("https://u:p@host:8443/v1?key=1#x") == "https://host:8443/v1"
    assert redact_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"


def test_llama_cpp_without_jinja_falls_back_to_tools_in_the_system_prompt() -> None:
    from agent.protocol import tools_system_text

    call = xml_call(action="left_click", coordinate=[1, 2])
    server = ScriptedServer([Reply(call), Reply(call)], no_jinja=True)
    try:
        backend = OpenAIBackend(server.url, "m")
        assert backend.describe()["tools_in_prompt"] is False
        first = backend.complete(MSGS, TOOLS)
        second = backend.complete(MSGS, TOOLS)
        assert first.content == second.content == call
        assert first.tools_in_prompt and second.tools_in_prompt
        assert len(server.refused) == 1  # asked once with `tools`, never again
        for body in server.requests:
            assert "tools" not in body
            system = body["messages"][0]["content"]
            assert system == tools_system_text(TOOLS) + "\n\nsys"
        assert backend.describe()["tools_in_prompt"] is True
    finally:
        server.close()


def test_an_unrelated_http_500_is_not_taken_for_a_tools_refusal() -> None:
    server = ScriptedServer([Reply(status=500)])
    try:
        backend = OpenAIBackend(server.url, "m")
        with pytest.raises(BackendError, match="answered HTTP 500"):
            backend.complete(MSGS, TOOLS)
        assert backend.tools_in_prompt is False and len(server.requests) == 1
    finally:
        server.close()


def test_on_delta_runs_on_the_thread_that_called_complete(server: ScriptedServer) -> None:
    call = xml_call(action="left_click", coordinate=[1, 2])
    server.script.append(Reply(call, reasoning="because"))
    backend = OpenAIBackend(server.url)
    callers: list[int] = []
    seen: list[int] = []
    answers: list[str] = []

    def run() -> None:
        callers.append(threading.get_ident())
        done = backend.complete(MSGS, TOOLS, on_delta=lambda _d: seen.append(threading.get_ident()))
        answers.append(done.content)

    caller = threading.Thread(target=run, name="not-the-main-thread")
    caller.start()
    caller.join(30)
    backend.close()
    assert answers == [call]
    assert len(seen) > 2  # reasoning and several content pieces
    assert set(seen) == set(callers) and callers[0] != threading.get_ident()


def test_cancel_set_inside_on_delta_ends_the_stream_with_no_further_delta(
    server: ScriptedServer,
) -> None:
    server.script.append(Reply("y" * 50, fault="endless", fault_interval_s=0.01))
    backend = OpenAIBackend(server.url, "m", timeout_s=30)
    cancel = threading.Event()
    deltas: list[Delta] = []

    def on_delta(delta: Delta) -> None:
        deltas.append(delta)
        cancel.set()

    started = time.monotonic()
    with pytest.raises(Cancelled):
        backend.complete(MSGS, TOOLS, on_delta=on_delta, cancel=cancel)
    assert time.monotonic() - started < 5
    assert len(deltas) == 1
    backend.close()


def test_a_slow_on_delta_is_not_taken_for_a_silent_server(server: ScriptedServer) -> None:
    server.script.append(Reply("a" * 21, chunk_chars=7))  # three pieces, sent at once
    backend = OpenAIBackend(server.url, "m", timeout_s=0.3)
    deltas: list[Delta] = []

    def slow(delta: Delta) -> None:
        deltas.append(delta)
        time.sleep(0.2)  # the three together outlast the 0.3 s "no text" deadline

    assert backend.complete(MSGS, TOOLS, on_delta=slow).content == "a" * 21
    assert len(deltas) == 3
    backend.close()
