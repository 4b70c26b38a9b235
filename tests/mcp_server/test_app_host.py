"""The app serves MCP: a real client's `act` in ask mode waits on the app's approval card.

The window runs offscreen (pytest-qt); the desktop it acts on is a real Xvfb with the probe app,
the server is the real streamable HTTP one on 127.0.0.1, and the client is the mcp SDK's.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from mcp import Client
from mcp.types import Implementation
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from actions.screen import CoordinateSpace, Monitor, screen_to_model
from actions.types import Key, LeftClick
from agent.approval import ApprovalMode, ApprovalRequest, Decision
from agent.config import RunConfig
from agent.mcp_server import Desk, Refused
from agent.recording import read_steps
from agent.session import Session
from tests.support.fakes import FakeScreen, RecordingExecutor
from tests.support.x11 import pointer_position
from ui.app import MainWindow
from ui.settings import AppSettings

# The window is offscreen: pytest-qt makes its QApplication at the first qtbot, after this.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
CLIENT = Implementation(name="app-host-tests", version="3.1")
MONITOR = Monitor(1, 0, 0, 1920, 1080, primary=True)
# The offscreen window claims the top-left of the screen (masked, and refused to clients):
# the probe sits to its right.
PROBE = (1300, 120, 560, 640)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def accepts(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:port."""
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def click_at(point: tuple[int, int]) -> dict[str, Any]:
    x, y = screen_to_model(point, CoordinateSpace.relative(), MONITOR)
    return {"action": "left_click", "coordinate": [round(x, 1), round(y, 1)]}


class McpClient:
    """An MCP client on its own thread, calling `act` once per call(); results in order."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.calls: list[dict[str, Any]] = []
        self.results: list[Any] = []  # a CallToolResult, or the exception the call raised
        self._wake = threading.Event()
        self._done = False
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self.thread.start()

    def call(self, arguments: dict[str, Any]) -> None:
        self.calls.append(arguments)
        self._wake.set()

    def close(self) -> None:
        self._done = True
        self._wake.set()
        self.thread.join(30)

    async def _main(self) -> None:
        async with Client(self.url, client_info=CLIENT, read_timeout_seconds=60) as client:
            while True:
                await asyncio.to_thread(self._wake.wait)
                self._wake.clear()
                while len(self.results) < len(self.calls):
                    try:
                        result: Any = await client.call_tool("act", self.calls[len(self.results)])
                    except Exception as exc:  # the server went away mid-call
                        result = exc
                    self.results.append(result)
                if self._done:
                    return


def text_of(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


def test_a_client_asks_on_the_card_then_approved_runs_and_rejected_does_not(
    qtbot: QtBot, xdisplay: str, probe_app: Any, tmp_path: Path
) -> None:
    probe = probe_app(PROBE)
    canvas = probe.center("canvas")
    runs = tmp_path / "runs"
    settings = AppSettings(run=RunConfig(approve="ask", runs_dir=str(runs)))
    window = MainWindow(settings, settings_file=tmp_path / "settings.toml", global_hotkey=False)
    qtbot.addWidget(window)
    window.show()
    assert window.serve_mcp_button.accessibleName() == window.serve_mcp_button.text()
    port = window.mcp_host.port = free_port()
    asked: list[ApprovalRequest] = []
    window.mcp_host.approval_requested.connect(asked.append)
    panel = window.panel

    qtbot.mouseClick(window.serve_mcp_button, Qt.MouseButton.LeftButton)
    url = f"http://127.0.0.1:{port}/mcp"
    assert window.statusBar().currentMessage() == f"MCP server on {url}"
    assert window.mcp_host.serving and accepts(port)

    client = McpClient(url)
    try:
        # 1: a click in ask mode waits on the card, which names the client; nothing ran yet.
        client.call(click_at(canvas))
        qtbot.waitUntil(lambda: panel.pending, timeout=30000)
        assert panel.request is not None and panel.request.client == "app-host-tests 3.1"
        assert [r.client for r in asked] == ["app-host-tests 3.1"]
        assert "MCP client app-host-tests 3.1 asks: left_click(" in window.step_label.text()
        shown = window.view.image  # the screen the client aimed at
        assert shown is not None and (shown.width(), shown.height()) == (1920, 1080)
        qtbot.wait(300)
        assert client.results == [] and probe.new_events("press") == []
        qtbot.mouseClick(panel.approve_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: len(client.results) == 1, timeout=30000)
        approved = client.results[0]
        assert not approved.is_error, text_of(approved)
        assert text_of(approved).startswith("Executed left_click(coordinate=")
        (press,) = probe.wait_event("press")
        assert (press["x"], press["y"]) == canvas and press["button"] == "left"
        assert pointer_position(xdisplay) == canvas
        qtbot.waitUntil(window.isVisible, timeout=5000)  # back after making way for the input

        # 2: the person rejects another click, with a note: an error result, nothing ran.
        probe.mark()
        elsewhere = (canvas[0] - 100, canvas[1] + 100)
        client.call(click_at(elsewhere))
        qtbot.waitUntil(lambda: panel.pending, timeout=30000)
        qtbot.keyClicks(panel.note, "not now")
        qtbot.mouseClick(panel.reject_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: len(client.results) == 2, timeout=30000)
        rejected = client.results[1]
        assert rejected.is_error
        assert text_of(rejected) == (
            "Error executing tool act: Refused, nothing was executed: the person at the desktop "
            "rejected this action; they said: not now"
        )
        qtbot.wait(300)
        assert probe.new_events("press") == [] and pointer_position(xdisplay) == canvas

        # 3: serving stops while a third click waits: the call ends, nothing ran, port closed.
        client.call(click_at(elsewhere))
        qtbot.waitUntil(lambda: panel.pending, timeout=30000)
        with qtbot.waitSignal(window.mcp_host.stopped, timeout=20000):
            qtbot.mouseClick(window.serve_mcp_button, Qt.MouseButton.LeftButton)
        assert not window.serve_mcp_button.isChecked()
        assert window.statusBar().currentMessage() == "MCP server stopped"
        qtbot.waitUntil(lambda: len(client.results) == 3, timeout=20000)
        stopped = client.results[2]
        assert not isinstance(stopped, Exception) and stopped.is_error, stopped
        assert text_of(stopped) == (
            "Error executing tool act: Refused, nothing was executed: the MCP server stopped "
            "while waiting for a decision"
        )
        assert not panel.pending  # the card no longer offers the ended call
        qtbot.waitUntil(lambda: not window.mcp_host.serving, timeout=5000)
        assert not accepts(port)
        assert probe.new_events("press") == [] and pointer_position(xdisplay) == canvas
    finally:
        client.close()
        window.mcp_host.shutdown()

    # The calls' recording: each decision by the person, naming the client.
    (run_dir,) = [d for d in runs.iterdir() if d.is_dir()]
    info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    assert info["mcp"] == {"client": "app-host-tests 3.1", "kind": "calls"}
    assert info["approval"] == "ask" and info["outcome"]["status"] == "ended"
    steps = read_steps(run_dir / "steps.jsonl")[0]
    decisions = [
        (s["decision"]["kind"], s["decision"]["by"], s["decision"]["client"]) for s in steps
    ]
    assert decisions == [
        ("approve", "user", "app-host-tests 3.1"),
        ("reject", "user", "app-host-tests 3.1"),
        ("stop", "user", "app-host-tests 3.1"),
    ]
    assert steps[0]["execution"]["ok"] and steps[1]["execution"] is None
    assert steps[2]["execution"] is None
    window.close()


# -- the Desk with a person, on fakes: the same policy as a run --------------------------------

RULES = Path(__file__).resolve().parents[1] / "data" / "blocked_rules.toml"


class FakeExecutor(RecordingExecutor):
    """RecordingExecutor with what the server calls when it closes."""

    def release_all(self) -> None:
        pass

    def close(self) -> None:
        pass


class FakeDesktop(SimpleNamespace):
    """A desktop of fakes, as a Session takes it."""

    def focused_window(self) -> None:
        return None

    def focused_area(self) -> None:
        return None

    def close(self) -> None:
        pass


def desk(
    tmp_path: Path, approve: ApprovalMode, answers: list[Decision]
) -> tuple[Desk, Any, list[Any]]:
    """A Desk whose person answers in turn and notes each request; its executor; the requests."""
    executor = FakeExecutor()
    session = Session(
        RunConfig(approve=approve, runs_dir=str(tmp_path), risk_rules=str(RULES)),
        desktop=cast(Any, FakeDesktop(screen=FakeScreen(), executor=executor)),
        loop_overrides={"settle_min_s": 0, "settle_max_s": 0},
    )
    requests: list[ApprovalRequest] = []

    def person(request: ApprovalRequest) -> Decision:
        requests.append(request)
        return answers.pop(0)

    return Desk(session, person=person), executor, requests


def test_a_person_s_edit_runs_the_edited_action_and_an_edit_never_unblocks(
    tmp_path: Path,
) -> None:
    moved = LeftClick((700, 300))
    answers = [Decision("edit", action=moved), Decision("edit", action=Key(("alt", "F4")))]
    d, executor, requests = desk(tmp_path, "ask", answers)
    try:
        said = d.act("ide 1", {"action": "left_click", "coordinate": [100, 100]})
        edited = "left_click(coordinate=[700, 300])"
        assert said == f"The person changed the action to {edited}; it was executed."
        with pytest.raises(Refused, match="blocked by the risk rules"):
            d.act("ide 1", {"action": "left_click", "coordinate": [100, 100]})
    finally:
        d.close()
    assert executor.done == [moved]  # the edit into a blocked chord never ran
    assert [r.client for r in requests] == ["ide 1", "ide 1"]


def test_guarded_with_a_person_asks_only_for_the_risky_and_blocked_never_asks(
    tmp_path: Path,
) -> None:
    d, executor, requests = desk(tmp_path, "guarded", [Decision("reject", note="no")])
    try:
        d.act("ide 1", {"action": "left_click", "coordinate": [10, 10]})  # safe: runs, not asked
        with pytest.raises(Refused, match="rejected this action; they said: no"):
            d.act("ide 1", {"action": "type", "text": "npm publish"})  # risky: asked
        with pytest.raises(Refused, match="blocked by the risk rules"):
            d.act("ide 1", {"action": "type", "text": "sudo reboot"})  # blocked: nobody asked
    finally:
        d.close()
    assert executor.done == [LeftClick((10, 10))]
    assert [(r.risk.level, r.client) for r in requests] == [("risky", "ide 1")]


def test_a_taken_port_is_said_in_the_status_line_and_nothing_serves(
    qtbot: QtBot, tmp_path: Path
) -> None:
    settings = AppSettings(run=RunConfig(runs_dir=str(tmp_path / "runs")))
    window = MainWindow(settings, settings_file=tmp_path / "settings.toml", global_hotkey=False)
    qtbot.addWidget(window)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        window.mcp_host.port = taken.getsockname()[1]
        window.serve_mcp_button.click()
        message = window.statusBar().currentMessage()
    assert message == (
        f"MCP server: cannot listen on 127.0.0.1:{window.mcp_host.port}: Address already in use"
    )
    assert not window.serve_mcp_button.isChecked() and not window.mcp_host.serving
    window.close()
