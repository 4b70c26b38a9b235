"""Record before acting, through the real runner on real xterms.

kill -9 the moment a typed command has run: the step is in steps.jsonl with its action, every
time. The recording cannot be written (its folder removed, a full disk): the action is never
executed (the X server sees no key at all), the run ends with one line and exit status 1, and
steps.jsonl never holds a torn line.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from actions.screen import CoordinateSpace, Monitor, screen_to_model
from agent.recording import INTERRUPTED, read_run, read_steps
from tests.support.scripted_server import Reply, ScriptedServer, xml_call
from tests.support.x11 import InputRecorder, XTerm, move_pointer, wait_until

pytestmark = [pytest.mark.x11, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
MONITOR = Monitor(1, 0, 0, 1920, 1080, primary=True)
KILL_TRIALS = 4


def mp(point: tuple[int, int]) -> list[float]:
    """A screen pixel in the model's 0-1000 coordinates."""
    x, y = screen_to_model(point, CoordinateSpace.relative(), MONITOR)
    return [round(x, 1), round(y, 1)]


def start(url: str, runs: Path) -> subprocess.Popen[str]:
    cmd = [sys.executable, "main.py", "run", "do the thing", "--endpoint", url, "--model", "m",
           "--approve", "auto", "--runs-dir", str(runs), "-q"]  # fmt: skip
    return subprocess.Popen(
        cmd, cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def shell(xterm: Any) -> XTerm:
    """An xterm running an interactive shell, the pointer (and so the keyboard) on it."""
    term: XTerm = xterm("PS1='$ ' exec sh -i", position=(200, 150), columns=70, rows=8)
    return term


def test_kill_9_right_after_a_typed_command_ran_never_loses_the_step(
    xdisplay: str, xterm: Any, tmp_path: Path
) -> None:
    term = shell(xterm)
    folder = tmp_path / "x"
    folder.mkdir()
    kinds: list[str] = []
    for n in range(KILL_TRIALS):
        marker = folder / f"marker{n}"
        command = f"touch {marker}\n"
        server = ScriptedServer(
            [
                Reply(xml_call(action="left_click", coordinate=mp(term.center()))),
                Reply(xml_call(action="type", text=command)),
                Reply(fault="hang"),
            ]
        )
        runs = tmp_path / f"runs{n}"
        proc = start(server.url, runs)
        try:
            # As soon as the shell has run the command, the runner dies without a word.
            wait_until(lambda: marker.exists() or proc.poll() is not None, 90, "the marker", 0.001)  # noqa: B023
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            server.close()
        assert proc.returncode == -signal.SIGKILL, proc.communicate()
        (run_dir,) = runs.iterdir()
        run = read_run(run_dir)
        typed = [s for s in run.steps if (s.get("to_run") or {}).get("action") == "type"]
        assert len(typed) == 1, run.steps
        step = typed[0]
        assert step["to_run"]["text"] == command and step["decision"]["kind"] == "approve"
        if step.get("interrupted"):
            assert step["result"] == INTERRUPTED and step["execution"] is None
            kinds.append("executing")
        else:
            assert step["execution"]["ok"], step
            kinds.append("done")
    print(f"\nkill -9 after the command ran: step recorded {len(kinds)}/{KILL_TRIALS} ({kinds})")


def run_until_the_model_answers(
    xdisplay: str,
    term: XTerm,
    runs: Path,
    marker: Path,
    break_it: Any,
    comment: str = "",
) -> tuple[int, str, list[Any], Path]:
    """A run whose first answer (typing a command) comes after `break_it(run_dir)` ran."""
    text = f"touch {marker}{comment}\n"
    server = ScriptedServer([Reply(xml_call(action="type", text=text), delay_s=4)])
    x, y = term.center()
    move_pointer(xdisplay, x, y)
    try:
        with InputRecorder(xdisplay) as rec:
            rec.mark("start")
            proc = start(server.url, runs)
            try:
                wait_until(lambda: server.requests, 90, "the model request", 0.01)
                run_dir = next(d for d in runs.iterdir() if d.is_dir())
                shot = run_dir / "screenshots" / "step-0000.png"
                wait_until(shot.exists, 30, "the first screenshot", 0.01)
                break_it(run_dir)
                _, err = proc.communicate(timeout=90)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=10)
            rec.mark("end")
            rec.wait_mark("end")
            keys = [e for e in rec.between("start", "end") if e.kind.startswith("key")]
    finally:
        server.close()
    return proc.returncode, err, keys, run_dir


def test_a_removed_run_folder_executes_nothing(xdisplay: str, xterm: Any, tmp_path: Path) -> None:
    term = shell(xterm)
    marker = tmp_path / "marker"
    code, err, keys, run_dir = run_until_the_model_answers(
        xdisplay, term, tmp_path / "runs", marker, shutil.rmtree
    )
    assert code == 1 and "Traceback" not in err, err
    assert keys == []  # not one key reached the X server
    assert not marker.exists()
    last = err.strip().splitlines()[-1]
    assert last.startswith(
        f"finished: error: cannot write the recording to {run_dir}: No such file or directory; "
        "nothing was executed"
    ), err


@pytest.fixture
def small_disk(tmp_path: Path) -> Any:
    """A 4 MiB tmpfs (root only; skipped where mounting is not allowed)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("a small filesystem needs root (mount -t tmpfs)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path, leave_one_page: bool) -> None:
    """Fill the filesystem holding `folder`; optionally free one page again (a partial write)."""
    spacer = folder / "spacer"
    spacer.write_bytes(b"s" * 4096)
    with open(folder / "filler", "wb") as f:
        try:
            while True:
                f.write(b"f" * 65536)
                f.flush()
        except OSError:
            pass
        try:
            f.close()
        except OSError:
            pass
    if leave_one_page:
        spacer.unlink()


@pytest.mark.parametrize("leave_one_page", [False, True], ids=["full", "one-page-left"])
def test_a_full_disk_executes_nothing_and_still_records_the_outcome(
    xdisplay: str, xterm: Any, tmp_path: Path, small_disk: Path, leave_one_page: bool
) -> None:
    term = shell(xterm)
    marker = tmp_path / "marker"
    code, err, keys, run_dir = run_until_the_model_answers(
        xdisplay,
        term,
        small_disk / "runs",
        marker,
        lambda run_dir: fill(small_disk, leave_one_page),
        # Longer than the page left: the line is cut short by the disk, then taken back.
        comment=" # " + "x" * 4000 if leave_one_page else "",
    )
    assert code == 1 and "Traceback" not in err, err
    assert keys == [] and not marker.exists()
    message = (
        f"cannot write the recording to {run_dir}: No space left on device; nothing was executed"
    )
    assert err.strip().splitlines()[-1] == f"finished: error: {message}", err
    # The reserve kept room for the outcome; steps.jsonl holds whole lines only (none here).
    run = read_run(run_dir)
    assert run.info["outcome"]["status"] == "error"
    assert run.info["outcome"]["message"] == message
    data = (run_dir / "steps.jsonl").read_bytes()
    assert data == b"" or data.endswith(b"\n"), data[-200:]
    assert read_steps(run_dir / "steps.jsonl") == ([], [])
