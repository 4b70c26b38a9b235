"""`main.py run` on the embedded default backend: the worker and a tiny random Qwen 3.5."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.recording import read_steps

pytest.importorskip("torch", reason="the local worker needs torch (make test installs it)")

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("variant", ["dense", "moe"])
def test_random_weights_are_bad_input_not_a_crash(
    variant: str, tiny_qwen35: dict[str, Path], xdisplay: str, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    cmd = [sys.executable, "main.py", "run", "open the terminal", "--model",
           str(tiny_qwen35[variant]), "--device", "cpu", "--approve", "auto",
           "--max-steps", "3", "--max-tokens", "24", "--runs-dir", str(runs)]  # fmt: skip
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    (run_dir,) = runs.iterdir()
    info = json.loads((run_dir / "run.json").read_text())
    steps = read_steps(run_dir / "steps.jsonl")[0]
    assert info["backend"]["kind"] == "local" and info["outcome"]["status"] == "invalid_output"
    assert len(steps) == 3
    for step in steps:
        # Random weights emit gibberish: recorded, fed back, never executed.
        assert step["action"] is None and step["parse_error"] and step["execution"] is None
        assert step["tokens"]["prompt"] > step["tokens"]["visual"] > 0
        assert (run_dir / step["screenshot"]).exists()
    assert proc.stderr.count("invalid output, nothing executed") == 3


def test_missing_local_model_exits_2_before_recording(xdisplay: str, tmp_path: Path) -> None:
    cmd = [sys.executable, "main.py", "run", "x", "--model", "Qwen/Qwen3.5-0.8B",
           "--approve", "auto", "--runs-dir", str(tmp_path / "runs")]  # fmt: skip
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "Qwen/Qwen3.5-0.8B" in last and "hf download" in last and "--endpoint" in last
    assert not (tmp_path / "runs").exists()
