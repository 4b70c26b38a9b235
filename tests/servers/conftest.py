"""Real OpenAI-compatible servers on 127.0.0.1, serving tiny Qwen 3.5 checkpoints built offline.

`transformers serve` needs torchvision for Qwen 3.5's processor, and torchvision only installs
beside a matching (CUDA, 5.7 GB) torch build, so it lives in a venv of its own
(docs/backends.md). Point DESKPILOT_SERVE_PYTHON at that venv's python to run these tests.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SERVE_PYTHON = os.environ.get("DESKPILOT_SERVE_PYTHON")
needs_serve = pytest.mark.skipif(
    not SERVE_PYTHON,
    reason="set DESKPILOT_SERVE_PYTHON to a python with transformers[serving] and torchvision",
)
ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Served:
    """A running server: its /v1 URL, the checkpoints it can load, and what it rendered."""

    url: str
    models: dict[str, Path]
    log: Path

    def rendered(self) -> list[dict[str, Any]]:
        """Each chat completion so far: the request's messages and the prompt the server made."""
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text(encoding="utf-8").splitlines()]

    def forget(self) -> None:
        """Start the log of rendered prompts afresh."""
        self.log.write_text("", encoding="utf-8")


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny random checkpoint and the wired one, both with the real chat template."""
    root = tmp_path_factory.mktemp("serve-checkpoints")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    folders = {}
    for kind in ("random", "caller"):
        subprocess.run(
            [sys.executable, str(HERE / "tiny_checkpoints.py"), str(root / kind), kind],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            timeout=300,
        )
        folders[kind] = root / kind
    return folders


@pytest.fixture(scope="session")
def transformers_serve(
    checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """`transformers serve` on 127.0.0.1 (CPU), loading the checkpoint each request names."""
    assert SERVE_PYTHON is not None
    folder = tmp_path_factory.mktemp("transformers-serve")
    log, out_path = folder / "rendered.jsonl", folder / "serve.log"
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(
            [SERVE_PYTHON, str(HERE / "observed_serve.py"), str(log), "serve"]
            + ["--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, out_path.read_text()[-3000:]
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"transformers serve did not start: {out_path.read_text()[-2000:]}")
                time.sleep(0.5)
        yield Served(f"http://127.0.0.1:{port}/v1", checkpoints, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
