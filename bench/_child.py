"""Each bench measures in a child process: pyautogui binds the display when it is imported."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from bench._x11 import ROOT


def run_child(
    module: str, *args: str, timeout_s: float, env: dict[str, str] | None = None
) -> Any | None:
    """`python -m bench.MODULE --child ARGS`: its last stdout line as JSON; None if it failed."""
    proc = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", "--child", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])
