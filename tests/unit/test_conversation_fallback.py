"""Qwen 3.5's native conversation shape on the wire, and the fallback when a server refuses it."""

from __future__ import annotations

from pathlib import Path

from agent.approval import auto_approve
from agent.backends.openai_compat import OpenAIBackend, refuses_tool_images
from agent.loop import LoopSettings, run_task
from agent.recording import Recorder, load_messages, prompt_messages, read_run
from tests.support.fakes import FakeScreen, RecordingExecutor
from tests.support.scripted_server import Reply, ScriptedServer, structured_call, xml_call

SCRIPT = [
    Reply(xml_call(action="left_click", coordinate=[100, 200])),
    Reply("", tool_calls=structured_call(action="type", text="hi")),
    Reply(xml_call(action="key", keys=["ctrl", "s"])),
    Reply(xml_call(action="terminate", status="success")),
]


def run(server: ScriptedServer, tmp_path: Path) -> tuple[OpenAIBackend, Path]:
    backend = OpenAIBackend(server.url)
    recorder = Recorder(tmp_path, {"task": "t", "backend": backend.describe()})
    try:
        result = run_task(
            "t",
            backend=backend,
            screen=FakeScreen(),
            executor=RecordingExecutor(),
            decide=auto_approve,
            recorder=recorder,
            settings=LoopSettings(settle_min_s=0, settle_max_s=0, retry_delays_s=()),
        )
    finally:
        backend.close()
    assert result.outcome == "success", result.message
    return backend, recorder.dir


def test_history_goes_as_tool_calls_and_tool_messages(tmp_path: Path) -> None:
    server = ScriptedServer(list(SCRIPT))
    try:
        backend, run_dir = run(server, tmp_path)
    finally:
        server.close()
    last = server.requests[-1]["messages"]
    assert [m["role"] for m in last] == ["system", "user", *["assistant", "tool"] * 3]
    calls = [m["tool_calls"][0] for m in last if m["role"] == "assistant"]
    assert [c["id"] for c in calls] == ["call_1", "call_2", "call_3"]
    assert calls[1]["function"] == {
        "name": "computer_use",
        "arguments": '{"action": "type", "text": "hi"}',
    }
    assert all(m["content"] == "" for m in last if m["role"] == "assistant")
    tool = last[-1]
    assert tool["tool_call_id"] == "call_3"
    assert tool["content"][0]["text"].startswith("Executed key")
    assert tool["content"][-1]["type"] == "image_url"  # the screenshot in the tool response
    info = read_run(run_dir)
    assert info.info["conversation"] == "native" and backend.describe()["conversation"] == "native"
    assert [s["conversation"] for s in info.steps] == ["native"] * 4
    # The recorded prompt keeps the calls, so replay sends the same conversation.
    recorded = prompt_messages(info, 3) or []
    assert [m["role"] for m in recorded] == [m["role"] for m in last]
    assert recorded[-2]["tool_calls"][0]["id"] == "call_3" and recorded[-1]["tool_call_id"]
    again = load_messages(info, recorded)
    assert again[-2].tool_calls[0].arguments == calls[2]["function"]["arguments"]


def test_a_server_refusing_images_in_tool_messages_gets_the_earlier_shape(tmp_path: Path) -> None:
    server = ScriptedServer(list(SCRIPT), reject_tool_images=True)
    try:
        backend, run_dir = run(server, tmp_path)
    finally:
        server.close()
    # Step 2 was the first with history: refused once, sent again in the earlier shape; from
    # then on this backend sends that shape without trying native first.
    assert len(server.refused) == 1 and len(server.requests) == 4
    assert any(m["role"] == "tool" for m in server.refused[0]["messages"])
    for body in server.requests:
        roles = [m["role"] for m in body["messages"]]
        assert "tool" not in roles and all("tool_calls" not in m for m in body["messages"])
    last = server.requests[-1]["messages"]
    assert last[2]["content"].startswith("<tool_call>\n<function=computer_use>")
    assert last[-1]["role"] == "user"
    assert last[-1]["content"][0]["text"].startswith("<tool_response>\nExecuted key")
    assert backend.describe()["conversation"] == "legacy"
    rec = read_run(run_dir)
    assert rec.info["conversation"] == "legacy"
    assert [s["conversation"] for s in rec.steps] == ["native", "legacy", "legacy", "legacy"]


def test_which_refusals_count_as_refusing_tool_images() -> None:
    assert refuses_tool_images("Invalid 'messages[3]': image content not allowed for role tool")
    assert refuses_tool_images("tool message content must be a string")
    assert refuses_tool_images("Unexpected content type for role 'tool'")
    # A server refusing the tools parameter itself keeps the tools-in-prompt fallback.
    assert not refuses_tool_images(
        '"auto" tool choice requires --enable-auto-tool-choice --tool-call-parser to be set'
    )
    assert not refuses_tool_images("model not found")
