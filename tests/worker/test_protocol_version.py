"""Both ends of the worker pipe refuse another protocol version, with one line saying what to do.

Real worker processes; no model is needed (the version is checked before anything loads), so
these run without torch too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.backends.base import BackendError
from agent.backends.local import LocalBackend
from agent.backends.worker_wire import (
    PROTOCOL_VERSION,
    WORKER_MODULE,
    Header,
    encode_frame,
    read_frame,
)

ROOT = Path(__file__).resolve().parents[2]
OTHER_VERSION = PROTOCOL_VERSION + 97


def other_version_python(tmp_path: Path) -> Path:
    """A `python` that runs the worker from a copy of deskpilot speaking OTHER_VERSION."""
    copy = tmp_path / "other-deskpilot"
    shutil.copytree(ROOT / "agent", copy / "agent", ignore=shutil.ignore_patterns("__pycache__"))
    wire = copy / "agent" / "backends" / "worker_wire.py"
    text = wire.read_text()
    line = f"PROTOCOL_VERSION = {PROTOCOL_VERSION}\n"
    assert text.count(line) == 1
    wire.write_text(text.replace(line, f"PROTOCOL_VERSION = {OTHER_VERSION}\n"))
    # As after an upgrade under a running app: the same command finds the other files first.
    script = tmp_path / "python"
    script.write_text(
        f'#!/bin/sh\ncd "{copy}" && PYTHONPATH="{copy}" exec "{sys.executable}" "$@"\n'
    )
    script.chmod(0o755)
    return script


@pytest.mark.skipif(sys.platform == "win32", reason="a /bin/sh wrapper stands in for python")
def test_the_app_refuses_a_worker_from_another_version(tmp_path: Path) -> None:
    backend = LocalBackend(str(tmp_path / "model"), python=str(other_version_python(tmp_path)))
    try:
        with pytest.raises(BackendError) as caught:
            backend.start()
        assert backend.pid is None  # the other worker was stopped, not left running
    finally:
        backend.close()
    message = str(caught.value)
    print(f"\n{message}")
    assert f"worker speaks protocol {OTHER_VERSION}" in message
    assert f"app speaks protocol {PROTOCOL_VERSION}" in message
    assert "reinstall" in message and "restart deskpilot" in message
    assert "\n" not in message and caught.value.retryable is False


class RawWorker:
    """A real worker process driven frame by frame, as a parent from another version would."""

    def __init__(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )

    def send(self, header: Header) -> None:
        """One frame to the worker."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(encode_frame(header))
        self.proc.stdin.flush()

    def read(self) -> Header:
        """The worker's next frame."""
        assert self.proc.stdout is not None
        frame = read_frame(self.proc.stdout)
        assert frame is not None, "the worker closed its output"
        return frame[0]

    def close(self) -> int:
        """Shut it down; its exit code."""
        if self.proc.poll() is None:
            self.send({"type": "shutdown"})
        return self.proc.wait(timeout=30)


@pytest.fixture
def raw_worker() -> Iterator[RawWorker]:
    worker = RawWorker()
    yield worker
    if worker.proc.poll() is None:
        worker.proc.kill()
        worker.proc.wait(timeout=10)


def test_the_worker_says_its_version_first(raw_worker: RawWorker) -> None:
    assert raw_worker.read() == {"type": "hello", "protocol": PROTOCOL_VERSION}
    assert raw_worker.close() == 0


@pytest.mark.parametrize(
    ("request_header", "app_says"),
    [
        ({"type": "load", "protocol": OTHER_VERSION, "model": "m"}, f"protocol {OTHER_VERSION}"),
        ({"type": "load", "model": "m"}, "no protocol version"),  # a parent from before version 2
        (
            {"type": "generate", "protocol": OTHER_VERSION, "id": 7, "messages": []},
            f"protocol {OTHER_VERSION}",
        ),
    ],
    ids=["load", "load-unversioned", "generate"],
)
def test_the_worker_refuses_a_request_from_another_version(
    raw_worker: RawWorker, request_header: Header, app_says: str
) -> None:
    assert raw_worker.read()["type"] == "hello"
    raw_worker.send(request_header)
    answer = raw_worker.read()
    print(f"\n{answer}")
    assert answer["type"] == "error" and answer["fatal"] is True
    assert answer["id"] == request_header.get("id")
    message = answer["message"]
    assert f"worker speaks protocol {PROTOCOL_VERSION}" in message
    assert f"app speaks {app_says}" in message
    assert "reinstall" in message and "\n" not in message
    # Refused without loading anything; the worker still answers and shuts down cleanly.
    raw_worker.send({"type": "ping"})
    assert raw_worker.read() == {"type": "pong"}
    assert raw_worker.close() == 0
