"""Worker faults: killed mid-generation (retryable, prompt, restarted) and no network port."""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.backends.base import BackendError, ChatMessage, Delta
from agent.backends.local import LocalBackend

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None,
    reason="torch/transformers are not installed (pip install torch==2.13.0 transformers)",
)

MESSAGES = [
    ChatMessage("system", ("Answer with one tool call.",)),
    ChatMessage("user", ("Task: save the file.",)),
]


@pytest.fixture(scope="module")
def backend(tiny_qwen35: dict[str, Path]) -> Iterator[LocalBackend]:
    """A warm worker on the tiny dense checkpoint."""
    b = LocalBackend(str(tiny_qwen35["dense"]), max_new_tokens=16, thinking=False)
    b.start()
    yield b
    b.close()


def test_killed_mid_generation_is_retryable_prompt_and_the_next_call_restarts(
    backend: LocalBackend,
) -> None:
    pid = backend.pid
    assert pid is not None
    starts = backend.starts
    killed_at: list[float] = []

    def on_delta(_delta: Delta) -> None:
        if not killed_at:
            killed_at.append(time.monotonic())
            os.kill(pid, signal.SIGKILL)

    backend.max_new_tokens, backend.sampling = 4000, {"ignore_eos": True}
    try:
        with pytest.raises(BackendError) as caught:
            backend.complete(MESSAGES, [], on_delta=on_delta)
        noticed_s = time.monotonic() - killed_at[0]
    finally:
        backend.max_new_tokens, backend.sampling = 16, {}
    print(f"\nworker SIGKILL -> BackendError in {noticed_s * 1000:.0f} ms: {caught.value}")
    assert caught.value.retryable is True
    assert "SIGKILL" in str(caught.value) and "restarts on the next request" in str(caught.value)
    assert noticed_s < 10  # not the 300 s step timeout
    assert backend.pid is None
    assert backend.complete(MESSAGES, []).completion_tokens  # the retry restarts the worker
    assert backend.starts == starts + 1 and backend.pid not in (None, pid)


def test_killed_while_idle_is_restarted_by_the_next_call_without_an_error(
    backend: LocalBackend,
) -> None:
    pid = backend.pid
    assert pid is not None
    starts = backend.starts
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while backend.pid is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert backend.complete(MESSAGES, []).completion_tokens
    assert backend.starts == starts + 1


def test_restart_replaces_a_live_worker(backend: LocalBackend) -> None:
    pid = backend.pid
    assert pid is not None
    backend.restart()
    assert backend.pid not in (None, pid)
    assert backend.complete(MESSAGES, []).completion_tokens


def _socket_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _inet_sockets(pid: int) -> list[tuple[str, str, str]]:
    """(table, local address, state) of every TCP/UDP socket in the process's namespace."""
    rows: list[tuple[str, str, str]] = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            # sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
            rows.append((table, fields[1], fields[3] + ":" + fields[9]))
    return rows


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_worker_opens_no_network_socket(backend: LocalBackend) -> None:
    assert backend.complete(MESSAGES, []).completion_tokens  # everything loaded and used once
    pid = backend.pid
    assert pid is not None
    mine = _socket_inodes(pid)
    inet = _inet_sockets(pid)
    owned = [row for row in inet if row[2].split(":")[1] in mine]
    listening = [row for row in owned if row[0].startswith("tcp") and row[2][:2] == "0A"]
    print(f"\nworker {pid}: {len(mine)} sockets, {len(owned)} TCP/UDP, {len(listening)} listening")
    assert listening == []
    # Stricter: no TCP or UDP socket at all; requests and answers go over the stdio pipes.
    assert owned == []
    assert all(os.readlink(f"/proc/{pid}/fd/{fd}").startswith("pipe:") for fd in (0, 2))
