"""End to end: an MCP client (the official SDK) spawns `main.py mcp` on Xvfb and uses its tools."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.scripted_server import Reply, ScriptedServer, xml_call

mcp = pytest.importorskip("mcp")

from mcp import Client, StdioServerParameters  # noqa: E402
from mcp.shared.exceptions import MCPError  # noqa: E402
from mcp.types import Implementation  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CLIENT = Implementation(name="deskpilot-tests", version="1.0")


def session(
    runs: Path, *options: str, body: Callable[[Client], Awaitable[None]], timeout: float = 120
) -> None:
    """Spawn the server over stdio, run body with a connected client, then close it."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["main.py", "mcp", "--runs-dir", str(runs), *options],
        env=dict(os.environ),
        cwd=ROOT,
    )

    async def main() -> None:
        async with Client(params, client_info=CLIENT, read_timeout_seconds=60) as client:
            await body(client)

    asyncio.run(asyncio.wait_for(main(), timeout))


def text_of(result: Any) -> str:
    """The text items of a tool result, joined."""
    return "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")


def rel(point: tuple[int, int]) -> list[float]:
    """A 1920x1080 screen pixel as 0-1000 coordinates."""
    return [round(point[0] * 1000 / 1920, 1), round(point[1] * 1000 / 1080, 1)]


def wait_for(check: Callable[[], bool], timeout_s: float = 15.0) -> bool:
    """Poll until check() is true."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def test_tools_screenshot_act_and_recordings(xdisplay: str, xterm: Any, tmp_path: Path) -> None:
    from PIL import Image

    made = tmp_path / "made-by-act.txt"
    term = xterm("sh", position=(200, 200), columns=70, rows=8)
    runs = tmp_path / "runs"

    async def body(client: Client) -> None:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) >= {"screenshot", "act", "run_task"}
        # act takes exactly the computer_use parameters.
        schema = tools["act"].input_schema
        assert set(schema["properties"]) == {
            "action", "keys", "text", "coordinate", "start_coordinate", "pixels", "time", "status",
        }  # fmt: skip
        assert "left_click" in schema["properties"]["action"]["enum"]

        shot = await client.call_tool("screenshot", {})
        assert not shot.is_error, text_of(shot)
        images = [c for c in shot.content if c.type == "image"]
        assert len(images) == 1 and images[0].mime_type == "image/png"
        with Image.open(io.BytesIO(base64.b64decode(images[0].data))) as img:
            w, h = img.size
        assert (w, h) != (1920, 1080)  # downscaled for the model (--max-pixels)
        assert w * h <= 500_000 and abs(w / h - 1920 / 1080) < 0.01  # aspect kept
        assert text_of(shot) == "1920x1080"

        # Click into the xterm, then type a command that creates a file.
        click = await client.call_tool(
            "act", {"action": "left_click", "coordinate": rel(term.center())}
        )
        assert not click.is_error, text_of(click)
        assert "Executed left_click" in text_of(click)
        typed = await client.call_tool("act", {"action": "type", "text": f"echo made > {made}\n"})
        assert not typed.is_error, text_of(typed)
        assert wait_for(lambda: made.exists() and made.read_text() == "made\n")

        # Invalid input: an error result saying why; nothing executed.
        bad = await client.call_tool("act", {"action": "left_click", "coordinate": [500, 1200]})
        assert bad.is_error and "invalid action" in text_of(bad) and "1000" in text_of(bad)
        unknown = await client.call_tool("act", {"action": "teleport"})
        assert unknown.is_error and "unknown action 'teleport'" in text_of(unknown)
        final = await client.call_tool("act", {"action": "terminate", "status": "success"})
        assert final.is_error and "run_task" in text_of(final)

        # The recordings as resources: the list, then this session's calls, step by step.
        listed = await client.read_resource("deskpilot://runs")
        runs_list = json.loads(listed.contents[0].text)
        assert len(runs_list) == 1 and runs_list[0]["mcp"]["kind"] == "calls"
        one = await client.read_resource(runs_list[0]["uri"])
        rec = json.loads(one.contents[0].text)
        steps = rec["steps"]
        assert [s["mcp"]["tool"] for s in steps] == [
            "screenshot",
            "act",
            "act",
            "act",
            "act",
            "act",
        ]
        assert all(s["mcp"]["client"] == "deskpilot-tests 1.0" for s in steps)
        assert steps[1]["decision"]["by"] == "auto" and steps[1]["decision"]["client"]
        assert steps[1]["execution"]["ok"] and steps[2]["action"]["action"] == "type"
        assert steps[3]["parse_error"] and steps[3]["execution"] is None
        assert steps[4]["parse_error"] and steps[5]["execution"] is None
        png = await client.read_resource(f"{runs_list[0]['uri']}/steps/1/screenshot")
        assert base64.b64decode(png.contents[0].blob)[:8] == b"\x89PNG\r\n\x1a\n"
        with pytest.raises(MCPError, match="Unknown resource|not a run id"):
            await client.read_resource("deskpilot://runs/..%2F..%2Fetc")
        with pytest.raises(MCPError, match="no recording 'nope'"):
            await client.read_resource("deskpilot://runs/nope")

    session(runs, "--approve", "auto", "--max-pixels", "500000", body=body)
    # The calls' recording is finished when the client disconnects.
    (run_dir,) = [d for d in runs.iterdir() if d.is_dir()]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["ended_at"] and info["outcome"]["status"] == "ended"
    assert info["mcp"]["client"] == "deskpilot-tests 1.0" and info["approval"] == "auto"


def test_guarded_with_nobody_to_ask_refuses_risky_actions(
    xdisplay: str, xterm: Any, tmp_path: Path
) -> None:
    out = tmp_path / "typed.txt"
    term = xterm(f"cat > {out}", position=(200, 200), columns=70, rows=8)
    runs = tmp_path / "runs"

    async def body(client: Client) -> None:
        click = await client.call_tool(
            "act", {"action": "left_click", "coordinate": rel(term.center())}
        )
        assert not click.is_error, text_of(click)  # safe: runs in guarded mode
        risky = await client.call_tool("act", {"action": "type", "text": "rm -rf ~/work"})
        assert risky.is_error
        assert "nothing was executed" in text_of(risky) and "delete" in text_of(risky)
        assert "nobody" in text_of(risky)
        # Safe typing still runs, and proves the risky text never reached the terminal.
        # (A line break typed into a terminal is risky too: it runs the command.)
        enter = await client.call_tool("act", {"action": "type", "text": "hello\n"})
        assert enter.is_error and "line break" in text_of(enter)
        safe = await client.call_tool("act", {"action": "type", "text": "hello"})
        assert not safe.is_error, text_of(safe)
        for _ in range(2):  # the first ends cat's line, the second its input
            chord = await client.call_tool("act", {"action": "key", "keys": ["ctrl", "d"]})
            assert not chord.is_error, text_of(chord)

    session(runs, "--approve", "guarded", body=body)
    assert term.wait_exit(timeout_s=20) == 0
    assert out.read_text() == "hello"
    (run_dir,) = [d for d in runs.iterdir() if d.is_dir()]
    steps = [json.loads(line) for line in (run_dir / "steps.jsonl").read_text().splitlines()]
    refused = steps[1]
    assert refused["risk"]["level"] == "risky" and refused["execution"] is None
    assert refused["decision"]["kind"] == "reject" and refused["decision"]["by"] == "guarded"


def test_ask_mode_refuses_every_action(xdisplay: str, tmp_path: Path) -> None:
    async def body(client: Client) -> None:
        result = await client.call_tool("act", {"action": "mouse_move", "coordinate": [10, 10]})
        assert result.is_error and "approval mode ask" in text_of(result)
        task = await client.call_tool("run_task", {"task": "anything"})
        assert task.is_error and "approval mode ask" in text_of(task)

    session(tmp_path / "runs", "--approve", "ask", body=body)


def test_run_task_against_the_scripted_server(xdisplay: str, xterm: Any, tmp_path: Path) -> None:
    out = tmp_path / "typed.txt"
    term = xterm(f"cat > {out}", position=(200, 200), columns=70, rows=8)
    script = [
        Reply(xml_call(action="left_click", coordinate=rel(term.center()))),
        Reply(xml_call(action="type", text="from the agent\n")),
        Reply(xml_call(action="key", keys=["ctrl", "d"])),
        Reply(xml_call(action="answer", text="typed it")),
    ]
    server = ScriptedServer(script)
    runs = tmp_path / "runs"
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    async def body(client: Client) -> None:
        result = await client.call_tool(
            "run_task", {"task": "type into the terminal"}, progress_callback=on_progress
        )
        assert not result.is_error, text_of(result)
        data = result.structured_content or json.loads(text_of(result))
        data = data.get("result", data)
        assert data["outcome"] == "answered" and data["answer"] == "typed it"
        assert data["steps"] == 4 and Path(data["recording"]).parent == runs
        run = await client.read_resource(f"deskpilot://runs/{Path(data['recording']).name}")
        rec = json.loads(run.contents[0].text)
        assert rec["info"]["mcp"] == {"client": "deskpilot-tests 1.0", "kind": "run_task"}
        assert [s["action"]["action"] for s in rec["steps"]] == [
            "left_click",
            "type",
            "key",
            "answer",
        ]

    try:
        session(runs, "--approve", "auto", "--endpoint", server.url, body=body)
    finally:
        server.close()
    assert term.wait_exit(timeout_s=20) == 0
    assert out.read_text() == "from the agent\n"
    assert len(server.requests) == 4
    messages = [m for _, _, m in progress]
    assert any(m and m.startswith("step 1: left_click") for m in messages), progress
    assert any(m == "finished: answered" for m in messages), progress


def test_the_model_starts_only_when_run_task_needs_it(xdisplay: str, tmp_path: Path) -> None:
    async def body(client: Client) -> None:
        # Nothing listens at the endpoint: screenshot and act do not need it.
        shot = await client.call_tool("screenshot", {})
        assert not shot.is_error, text_of(shot)
        moved = await client.call_tool("act", {"action": "mouse_move", "coordinate": [10, 10]})
        assert not moved.is_error, text_of(moved)
        task = await client.call_tool("run_task", {"task": "anything"})
        assert task.is_error
        assert "model backend did not start" in text_of(task) and "cannot reach" in text_of(task)

    session(
        tmp_path / "runs", "--approve", "auto", "--endpoint", "http://127.0.0.1:9/v1", body=body
    )


def test_cancelling_run_task_stops_the_run(xdisplay: str, tmp_path: Path) -> None:
    # The model takes 60 s to answer; the client gives up after 2 s.
    server = ScriptedServer([Reply(xml_call(action="wait", time=1), delay_s=60)])
    runs = tmp_path / "runs"

    async def body(client: Client) -> None:
        call = asyncio.ensure_future(client.call_tool("run_task", {"task": "wait a minute"}))
        await asyncio.sleep(2)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        # The desktop thread is free again well before the model would have answered.
        t = time.monotonic()
        shot = await client.call_tool("screenshot", {})
        assert not shot.is_error and time.monotonic() - t < 15

    try:
        session(runs, "--approve", "auto", "--endpoint", server.url, body=body)
    finally:
        server.close()
    (run_dir,) = [
        d
        for d in runs.iterdir()
        if json.loads((d / "run.json").read_text())["mcp"]["kind"] == "run_task"
    ]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["outcome"]["status"] == "stopped"
