"""The real loop against a real HTTP model stand-in: typed passwords never reach the recording."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from actions.types import Key, LeftClick, Type
from agent.approval import auto_approve
from agent.backends.openai_compat import API_KEY_ENV, OpenAIBackend
from agent.loop import LoopSettings, RunResult, run_task
from agent.recording import Recorder, prompt_messages, read_run, run_info
from agent.secrets import MARKER, Redactor
from tests.support.fakes import MONITOR
from tests.support.fakes import FakeScreen as Screen
from tests.support.fakes import RecordingExecutor as Executor
from tests.support.scripted_server import (
    Reply,
    ScriptedServer,
    json_call,
    structured_call,
    xml_call,
)
from tests.unit.test_recording import leaks

API_KEY = "sk-loop-test-9f8e7d6c5b4a3210"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedServer]:
    monkeypatch.setenv(API_KEY_ENV, API_KEY)
    srv = ScriptedServer([], api_key=API_KEY)
    yield srv
    srv.close()


def run(
    server: ScriptedServer, tmp_path: Path, task: str, redactor: Redactor | None = None
) -> tuple[RunResult, Executor, Path]:
    backend = OpenAIBackend(server.url)
    settings = LoopSettings(max_steps=8, settle_min_s=0.0)
    info = run_info(
        task, backend=backend, approval="auto", monitor=MONITOR, settings=settings.to_json()
    )
    recorder = Recorder(tmp_path, info, redactor=redactor)
    executor = Executor()
    result = run_task(
        task,
        backend=backend,
        screen=Screen(),
        executor=executor,
        decide=auto_approve,
        recorder=recorder,
        settings=settings,
    )
    backend.close()
    return result, executor, recorder.dir


def test_a_typed_password_is_executed_but_never_recorded(
    server: ScriptedServer, tmp_path: Path
) -> None:
    password = "hunter2-Xk9#pQ"
    server.script += [
        Reply(xml_call(action="left_click", coordinate=[500, 300]), reasoning="Click the field."),
        Reply(xml_call(action="type", text=password), reasoning="I type the password"),
        Reply(xml_call(action="key", keys=["enter"]), reasoning="Press Enter to log in."),
        Reply(xml_call(action="terminate", status="success"), reasoning="Logged in."),
    ]
    result, executor, run_dir = run(server, tmp_path, "log in to the site")
    assert result.outcome == "success" and result.steps == 4
    assert executor.done == [LeftClick((500, 300)), Type(password), Key(("enter",))]
    # The model is told what was typed (the redaction is of the recording only)...
    assert password in str(server.requests[2]["messages"])
    # ...but no file of the run holds it, nor the API key.
    assert leaks(run_dir, password) == [] and leaks(run_dir, API_KEY) == []
    recording = read_run(run_dir)
    assert recording.warnings == [] and recording.info["steps"] == 4
    assert [s["action"]["action"] for s in recording.steps] == [
        "left_click",
        "type",
        "key",
        "terminate",
    ]
    typed = recording.steps[1]
    assert typed["action"] == {"action": "type", "text": MARKER}
    assert typed["execution"]["ok"] and typed["execution"]["action"]["text"] == MARKER
    assert typed["redacted"] == ["typed text: password field"]
    later = prompt_messages(recording, 2)
    assert later is not None and MARKER in str(later)
    assert recording.info["outcome"]["status"] == "success"


@pytest.mark.parametrize("shape", ["xml", "json", "structured"])
def test_a_user_marked_secret_in_the_task_is_never_recorded(
    server: ScriptedServer, tmp_path: Path, shape: str
) -> None:
    secret = 'S3cr3t!pass-ä"q'  # JSON output escapes the quote and maybe the umlaut
    call = {"xml": xml_call, "json": json_call, "structured": structured_call}[shape]
    args = {"action": "type", "text": secret}
    if shape == "structured":
        server.script.append(Reply("", tool_calls=structured_call(**args), reasoning="Type it."))
    else:
        server.script.append(Reply(call(**args), reasoning="Type it."))
    server.script.append(Reply(xml_call(action="terminate", status="success")))
    task = f"log in with password {secret}"
    result, executor, run_dir = run(server, tmp_path, task, Redactor([secret]))
    assert result.outcome == "success" and result.steps == 2
    assert executor.done == [Type(secret)]
    assert secret in server.requests[0]["messages"][1]["content"][0]["text"]
    assert leaks(run_dir, secret) == [] and leaks(run_dir, API_KEY) == []
    recording = read_run(run_dir)
    assert recording.info["task"] == f"log in with password {MARKER}"
    assert recording.steps[0]["action"] == {"action": "type", "text": MARKER}
    assert recording.steps[0]["redacted"]  # a reason, never the text
    assert [s["index"] for s in recording.steps] == [0, 1]
    assert isinstance(recording.steps[1]["action"], dict)
    assert recording.steps[1]["action"] == {"action": "terminate", "status": "success"}


def test_without_secrets_nothing_is_redacted(server: ScriptedServer, tmp_path: Path) -> None:
    server.script += [
        Reply(xml_call(action="type", text="hello world"), reasoning="Type a greeting."),
        Reply(xml_call(action="terminate", status="success")),
    ]
    result, executor, run_dir = run(server, tmp_path, "greet")
    assert result.outcome == "success" and executor.done == [Type("hello world")]
    data = b"".join(p.read_bytes() for p in run_dir.rglob("*.json*"))
    assert MARKER.encode() not in data and b"hello world" in data
    assert "redacted" not in read_run(run_dir).steps[0]
