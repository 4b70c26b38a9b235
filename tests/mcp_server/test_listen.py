"""`main.py mcp --listen`: streamable HTTP on a loopback address only, never a wider one."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mcp import Client
from mcp.types import Implementation

from agent.mcp_server import loopback_address
from tests.support.x11 import pointer_position

ROOT = Path(__file__).resolve().parents[2]
CLIENT = Implementation(name="listen-tests", version="2.0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> list[str]:
    """The local addresses (hex, as /proc/net shows them) listening on this TCP port."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                found.append(address)
    return found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8765", ("127.0.0.1", 8765)),
        ("127.8.9.10:1", ("127.8.9.10", 1)),
        ("[::1]:65535", ("::1", 65535)),
        ("localhost:8765", ("127.0.0.1", 8765)),
    ],
)
def test_loopback_addresses_are_taken(text: str, expected: tuple[str, int]) -> None:
    assert loopback_address(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "0.0.0.0:8765",
        "[::]:8765",
        "192.168.1.20:8765",
        "10.0.0.1:8765",
        "example.com:8765",
        "127.0.0.1.example.com:8765",
        "[::ffff:10.0.0.1]:8765",
        "127.0.0.1",
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "127.0.0.1:http",
        ":8765",
    ],
)
def test_other_addresses_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="--listen"):
        loopback_address(text)


def test_the_cli_refuses_a_wider_address_before_listening(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.run(
        [sys.executable, "main.py", "mcp", "--listen", f"0.0.0.0:{port}"]
        + ["--runs-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "only on a loopback address" in lines[0], proc.stderr
    assert listening(port) == [] and list(tmp_path.iterdir()) == []


def request(port: int, headers: dict[str, str]) -> int:
    """The HTTP status of an MCP initialize POST with these extra headers."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"},
        },
    }
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(
            "POST",
            "/mcp",
            json.dumps(body),
            {
                "Content-Type": "application/json",
                "Accept": "application/json, text/event-stream",
                **headers,
            },
        )
        return conn.getresponse().status
    finally:
        conn.close()


def test_listen_serves_the_tools_over_http_on_loopback_only(xdisplay: str, tmp_path: Path) -> None:
    port = free_port()
    runs = tmp_path / "runs"
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "main.py", "mcp", "--listen", f"127.0.0.1:{port}"]
            + ["--runs-dir", str(runs), "--approve", "auto"],
            cwd=ROOT,
            env=dict(os.environ),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while not listening(port):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert listening(port) == ["0100007F"]  # 127.0.0.1 only

        async def body() -> None:
            url = f"http://127.0.0.1:{port}/mcp"
            async with Client(url, client_info=CLIENT, read_timeout_seconds=60) as client:
                names = {t.name for t in (await client.list_tools()).tools}
                assert names == {"screenshot", "act", "run_task"}
                shot = await client.call_tool("screenshot", {})
                kinds = [c.type for c in shot.content]
                assert kinds == ["image", "text"] and shot.content[1].text == "1920x1080"
                moved = await client.call_tool(
                    "act", {"action": "mouse_move", "coordinate": [250, 500]}
                )
                assert not moved.is_error, moved

        asyncio.run(asyncio.wait_for(body(), 120))
        assert pointer_position(xdisplay) == (480, 540)
        # A web page in the user's browser can reach loopback ports: requests naming another
        # host (DNS rebinding) or coming from another origin are refused before any tool runs.
        assert request(port, {"Host": f"evil.example:{port}"}) == 421  # Misdirected Request
        assert request(port, {"Origin": "http://evil.example"}) == 403
        assert request(port, {"Origin": f"http://127.0.0.1:{port}"}) == 200
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    # Ctrl-C ends it like any deskpilot command (exit status 1, one line, no traceback), and
    # the calls' recording, which names the client, is finished.
    assert proc.returncode == 1 and "Traceback" not in log.read_text()
    (run_dir,) = [d for d in runs.iterdir() if d.is_dir()]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["mcp"] == {"client": "listen-tests 2.0", "kind": "calls"}
    assert info["outcome"]["status"] == "ended"
