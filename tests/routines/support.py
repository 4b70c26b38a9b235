"""Shared by the routine tests: a `main.py demo` subprocess and real X input through xdotool."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from actions.screen import CoordinateSpace, Monitor, screen_to_model

ROOT = Path(__file__).resolve().parents[2]
MONITOR = Monitor(1, 0, 0, 1920, 1080, primary=True)
READY = "deskpilot: recording demonstration to "


def rel(point: tuple[int, int]) -> list[float]:
    """A screen pixel in 0-1000 coordinates, rounded as a demonstration records it."""
    x, y = screen_to_model(point, CoordinateSpace.relative(), MONITOR)
    return [float(round(x)), float(round(y))]


def xdo(*args: str) -> None:
    """Real X input (XTEST) through xdotool, as a person's devices would send it."""
    from tests.support.x11 import require_tool

    subprocess.run([require_tool("xdotool"), *args], env=dict(os.environ), check=True, timeout=30)


class DemoProcess:
    """`main.py demo` running; ready() waits for its one line and returns the run folder."""

    def __init__(self, runs: Path, *extra: str) -> None:
        cmd = [sys.executable, "main.py", "demo", "--runs-dir", str(runs), *extra]
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=dict(os.environ), stderr=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self.stderr = b""

    def ready(self, timeout_s: float = 60.0) -> Path:
        """Wait for the ready line; the recording's folder."""
        assert self.proc.stderr is not None
        deadline = time.monotonic() + timeout_s
        fd = self.proc.stderr.fileno()
        while time.monotonic() < deadline:
            text = self.stderr.decode(errors="replace")
            for line in text.splitlines():
                if line.startswith(READY):
                    return Path(line[len(READY) :].strip())
            if self.proc.poll() is not None and not select.select([fd], [], [], 0)[0]:
                break
            if select.select([fd], [], [], 0.2)[0]:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                self.stderr += chunk
        raise AssertionError(f"demo never got ready: {self.stderr.decode(errors='replace')}")

    def interrupt(self, timeout_s: float = 30.0) -> tuple[int, str]:
        """SIGINT (Ctrl-C), then the exit status and everything it wrote on stderr."""
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=timeout_s)
        return self.proc.returncode, (self.stderr + err).decode(errors="replace")

    def kill(self) -> None:
        """End it if a test failed midway."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=10)
