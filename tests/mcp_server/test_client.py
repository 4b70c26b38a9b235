"""Which MCP client asked: carried on the approval request, shown safely, recorded once."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from actions.screen import CoordinateSpace
from actions.types import LeftClick, Type
from agent.approval import ApprovalRequest, TerminalApprover
from agent.config import RunConfig
from agent.mcp_server import CLIENT_NAME_LIMIT, Desk, client_name
from agent.recording import read_run
from agent.risk import Risk
from agent.session import Session
from tests.support.fakes import FakeScreen, RecordingExecutor

REL = CoordinateSpace.relative()
HOSTILE = "ide\x1b[2J\x1b]0;owned\x07 1.0\u202e"


class Executor(RecordingExecutor):
    """RecordingExecutor with what the server calls when it closes."""

    def release_all(self) -> None:
        pass

    def close(self) -> None:
        pass


def ctx(name: str, version: str | None) -> SimpleNamespace:
    info = SimpleNamespace(name=name, version=version)
    return SimpleNamespace(session=SimpleNamespace(client_params=SimpleNamespace(client_info=info)))


def test_the_terminal_approver_shows_the_client_with_its_controls_visible() -> None:
    out = io.StringIO()
    request = ApprovalRequest(
        0, LeftClick((10, 10)), "", REL, risk=Risk("risky", "a test"), client=HOSTILE
    )
    decision = TerminalApprover(io.StringIO("\n"), out)(request)
    assert decision.kind == "approve"
    shown = out.getvalue()
    assert "asked by MCP client: ide" in shown
    assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown
    assert "\\x1b[2J" in shown  # escaped, not interpreted by the terminal


def test_the_model_s_own_requests_name_no_client() -> None:
    out = io.StringIO()
    TerminalApprover(io.StringIO("\n"), out)(ApprovalRequest(0, LeftClick((1, 1)), "", REL))
    assert "MCP client" not in out.getvalue()


def test_client_names_are_kept_as_written_but_bounded() -> None:
    assert client_name(ctx("claude-code", "2.1.0")) == "claude-code 2.1.0"
    assert client_name(ctx("cursor", None)) == "cursor"
    assert client_name(ctx(" ", "")) == "unknown client"
    assert client_name(SimpleNamespace()) == "unknown client"
    long = client_name(ctx("x" * 100_000, "1"))
    assert long == "x" * CLIENT_NAME_LIMIT


class Desktop(SimpleNamespace):
    """A desktop of fakes, as a Session takes it."""

    def focused_window(self) -> None:
        return None

    def focused_area(self) -> None:
        return None

    def close(self) -> None:
        pass


def test_an_act_call_records_which_client_asked(tmp_path: Path) -> None:
    executor = Executor()
    session = Session(
        RunConfig(approve="auto", runs_dir=str(tmp_path)),
        desktop=cast(Any, Desktop(screen=FakeScreen(), executor=executor)),
        loop_overrides={"settle_min_s": 0, "settle_max_s": 0},
    )
    desk = Desk(session)  # act needs no model: none is configured that could start
    desk.act("claude-code 2.1.0", {"action": "type", "text": "hello"})
    desk.close()
    assert executor.done == [Type("hello")]
    (run_dir,) = list(tmp_path.iterdir())
    run = read_run(run_dir)
    (step,) = run.steps
    assert step["decision"]["client"] == "claude-code 2.1.0"
    assert step["mcp"] == {"client": "claude-code 2.1.0", "tool": "act"}
    assert run.info["mcp"]["client"] == "claude-code 2.1.0"
