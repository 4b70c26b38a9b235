"""Every signal that ends `main.py run` (SIGTERM, SIGHUP, SIGQUIT, SIGINT) stops it like Ctrl-C.

Each trial is the real runner as a subprocess on the private Xvfb, driven by the scripted model,
and signalled at the moment the X server itself (RECORD) sees the action under way: the drag's
button press, the chord's first key, the 30th typed key. Afterwards: exit status 1, one line and
no traceback, no key or button held (XQueryKeymap, XQueryPointer), the keyboard mapping exactly
as before (spare keycodes bound for typing restored), the step in flight in steps.jsonl and the
outcome "stopped" naming the signal in run.json. At start-up, a signal never shows deskpilot's
code in a traceback.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from actions.screen import CoordinateSpace, Monitor, screen_to_model
from agent.recording import read_run
from tests.support.scripted_server import Reply, ScriptedServer, xml_call
from tests.support.x11 import InputRecorder, ProbeApp, XTerm, held_input, move_pointer, wait_until

pytestmark = [pytest.mark.x11, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
MONITOR = Monitor(1, 0, 0, 1920, 1080, primary=True)
PROBE_GEOMETRY = (100, 100, 800, 600)
XTERM_POSITION = (1000, 100)
# Non-ASCII characters are bound to spare keycodes before typing: the mapping must come back.
TYPED = ("héllo wörld 你好 ß " * 200)[:2000]
CHORD = "ctrl+shift+alt+k"  # does nothing anywhere; four keys, so a signal can land inside
NAMES = {
    "SIGTERM": signal.SIGTERM,
    "SIGHUP": signal.SIGHUP,
    "SIGQUIT": signal.SIGQUIT,
    "SIGINT": signal.SIGINT,
}


def mp(point: tuple[int, int]) -> list[float]:
    """A screen pixel in the model's 0-1000 coordinates."""
    x, y = screen_to_model(point, CoordinateSpace.relative(), MONITOR)
    return [round(x, 1), round(y, 1)]


def keymap(display: str) -> list[list[int]]:
    """The whole core keyboard mapping."""
    from Xlib import display as xdisplay

    dpy: Any = xdisplay.Display(display)
    try:
        first = dpy.display.info.min_keycode
        count = dpy.display.info.max_keycode - first + 1
        return [list(row) for row in dpy.get_keyboard_mapping(first, count)]
    finally:
        dpy.close()


@dataclass
class Runner:
    """`main.py run` as a subprocess; stderr is read as it comes."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)  # stderr as read, in chunks

    @classmethod
    def start(cls, url: str, runs: Path, *extra: str, stdin: int | None = None) -> Runner:
        cmd = [sys.executable, "main.py", "run", "do the thing", "--endpoint", url,
               "--model", "m", "--runs-dir", str(runs), "-q", *extra]  # fmt: skip
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=dict(os.environ),
            stdin=subprocess.DEVNULL if stdin is None else stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        runner = cls(proc)
        threading.Thread(target=runner._read, daemon=True).start()
        return runner

    def _read(self) -> None:
        # Raw reads: the approval prompt ends without a newline.
        assert self.proc.stderr is not None
        fd = self.proc.stderr.fileno()
        while chunk := os.read(fd, 65536):
            self.lines.append(chunk.decode("utf-8", "replace"))

    def wait_line(self, text: str, timeout_s: float = 60.0) -> None:
        wait_until(
            lambda: text in "".join(self.lines) or self.proc.poll() is not None,
            timeout_s,
            f"{text!r} on stderr",
            0.01,
        )
        assert self.proc.poll() is None, "".join(self.lines)

    def end(self, timeout_s: float = 60.0) -> tuple[int, str]:
        try:
            self.proc.wait(timeout=timeout_s)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
        time.sleep(0.1)  # the reader thread drains the pipe
        return self.proc.returncode, "".join(self.lines)


def wait_for_input(rec: InputRecorder, kind: str, count: int, since: int, proc: Any) -> None:
    """Poll the server's own record until `count` events of a kind came after index `since`."""

    def seen() -> bool:
        assert proc.poll() is None, "the runner ended before the action began"
        return len([e for e in rec.events()[since:] if e.kind == kind]) >= count

    wait_until(seen, 60.0, f"{count} {kind} event(s)", 0.001)


@dataclass
class Rig:
    display: str
    server: ScriptedServer
    runs: Path
    probe: ProbeApp
    term: XTerm


@pytest.fixture
def rig(
    xdisplay: str,
    tmp_path: Path,
    probe_app: Callable[..., ProbeApp],
    xterm: Callable[..., XTerm],
) -> Iterator[Rig]:
    probe = probe_app(PROBE_GEOMETRY)
    term = xterm("cat > /dev/null", position=XTERM_POSITION)
    server = ScriptedServer([])
    yield Rig(xdisplay, server, tmp_path / "runs", probe, term)
    server.close()


def the_run(runs: Path) -> Path:
    (run_dir,) = [d for d in runs.iterdir() if d.is_dir()]
    return run_dir


def trial(rig: Rig, state: str, signame: str, *, twice: bool = False) -> dict[str, Any]:
    """One run signalled mid-`state`; returns what the checks need."""
    sig = NAMES[signame]
    x, y, w, h = rig.probe.rect("canvas")
    a, b = (x + w // 5, y + h // 2), (x + 4 * w // 5, y + h // 2)
    replies = {
        "drag": Reply(xml_call(action="left_click_drag", start_coordinate=mp(a), coordinate=mp(b))),
        "chord": Reply(xml_call(action="key", keys=CHORD.split("+"))),
        "typing": Reply(xml_call(action="type", text=TYPED)),
        "generation": Reply(xml_call(action="mouse_move", coordinate=[500, 500]), delay_s=30),
        "approval": Reply(xml_call(action="mouse_move", coordinate=mp(a))),
    }
    rig.server.script = [replies[state]]
    rig.server.requests.clear()
    if state == "typing":
        move_pointer(rig.display, *rig.term.center())  # no window manager: focus follows it
    else:
        move_pointer(rig.display, x + w // 2, y + 20)
    before = keymap(rig.display)
    extra = ["--approve", "ask"] if state == "approval" else ["--approve", "auto"]
    with InputRecorder(rig.display) as rec:
        since = len(rec.events())
        runner = Runner.start(
            rig.server.url, rig.runs, *extra, stdin=subprocess.PIPE if state == "approval" else None
        )
        try:
            if state == "drag":
                wait_for_input(rec, "button_press", 1, since, runner.proc)
            elif state == "chord":
                wait_for_input(rec, "key_press", 1, since, runner.proc)
            elif state == "typing":
                wait_for_input(rec, "key_press", 30, since, runner.proc)
            elif state == "generation":
                wait_until(lambda: rig.server.requests, 60.0, "the model request", 0.01)
                time.sleep(0.2)
            else:
                runner.wait_line("[Enter] approve")
            rec.mark("signal")
            runner.proc.send_signal(sig)
            if twice:  # a second signal, and a third, while the first one stops the run
                runner.proc.send_signal(sig)
                runner.proc.send_signal(signal.SIGTERM)
            code, err = runner.end()
        finally:
            if runner.proc.stdin is not None:
                runner.proc.stdin.close()
        rec.mark("end")
        rec.wait_mark("end")
        after = rec.between("signal", "end")
    run = read_run(the_run(rig.runs))
    return {
        "code": code,
        "err": err,
        "held": held_input(rig.display),
        "keymap_same": keymap(rig.display) == before,
        "run": run,
        "after": after,
    }


def check(found: dict[str, Any], signame: str) -> dict[str, Any]:
    """The checks every signalled run passes; returns the step in flight."""
    err = found["err"]
    assert found["code"] == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert found["held"] == ([], []), found["held"]
    assert found["keymap_same"]
    run = found["run"]
    outcome = run.info["outcome"]
    assert outcome["status"] == "stopped" and signame in outcome["message"], outcome
    assert f"finished: stopped: interrupted by {signame}" in err, err
    assert [s["index"] for s in run.steps] == [0], run.steps
    step: dict[str, Any] = run.steps[0]
    assert step["phase"] == "done" and not step.get("interrupted"), step
    return step


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
@pytest.mark.parametrize("state", ["drag", "chord", "typing"])
def test_a_signal_mid_action_releases_everything_and_records_the_step(
    rig: Rig, state: str, signame: str
) -> None:
    found = trial(rig, state, signame)
    step = check(found, signame)
    execution = step["execution"]
    assert execution is not None and step["to_run"] == execution["action"]
    if state == "chord":
        # A chord is sent whole: it ends, all four keys released, then the run stops.
        assert execution["ok"], execution
    else:
        # The signal cut the action short (the stop event, seen between two pieces of input).
        assert not execution["ok"] and "cancelled" in execution["error"], execution
        assert "stopped" in step["result"].lower() or "failed" in step["result"].lower()
    if state == "drag":
        presses = rig.probe.new_events("press")
        releases = rig.probe.new_events("release")
        assert len(presses) == len(releases) == 1, (presses, releases)


def test_a_second_and_third_signal_while_stopping_leave_nothing_held(rig: Rig) -> None:
    found = trial(rig, "typing", "SIGHUP", twice=True)
    check(found, "SIGHUP")


@pytest.mark.parametrize(("state", "signame"), [("generation", "SIGTERM"), ("approval", "SIGHUP")])
def test_a_signal_while_waiting_stops_before_anything_runs(
    rig: Rig, state: str, signame: str
) -> None:
    found = trial(rig, state, signame)
    step = check(found, signame)
    assert step["execution"] is None and signame in step["error"], step
    assert [e for e in found["after"] if e.kind != "motion"] == []


@pytest.mark.parametrize("signame", ["SIGQUIT", "SIGINT"])
def test_sigquit_and_ctrl_c_mid_drag(rig: Rig, signame: str) -> None:
    check(trial(rig, "drag", signame), signame)


def is_ours(path: str) -> bool:
    """Whether a traceback frame is deskpilot's code (not Python's, not the venv's)."""
    if path.startswith("<"):  # <frozen site>, <string>
        return False
    resolved = Path(path).resolve()
    return resolved.is_relative_to(ROOT) and ".venv" not in resolved.parts


def test_a_signal_at_start_up_never_shows_a_deskpilot_traceback(
    xdisplay: str, tmp_path: Path
) -> None:
    """Signals in the first 400 ms (imports, display, endpoint, recorder, first step)."""
    rng = random.Random(12)
    server = ScriptedServer([Reply(xml_call(action="wait", time=1), delay_s=5)] * 20)
    outcomes: dict[str, int] = {}
    try:
        for n in range(16):
            sig = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)[n % 4]
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "main.py",
                    "run",
                    "x",
                    "--endpoint",
                    server.url,
                    "--approve",
                    "auto",
                    "--runs-dir",
                    str(tmp_path / "runs"),
                ],  # fmt: skip
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            time.sleep(rng.uniform(0.0, 0.4) if n >= 4 else rng.uniform(0.0, 0.05))
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=60)
            lines = err.strip().splitlines()
            if "Traceback" in err or err.strip() == "KeyboardInterrupt":
                # Only Python's own start-up (site.py, before main.py's first line) prints it.
                assert sig == signal.SIGINT, err
                ours = [f for f in re.findall(r'File "([^"]+)"', err) if is_ours(f)]
                assert ours == [], err
                kind = "python start-up"
            elif proc.returncode == 1:
                assert "interrupted by " + signal.Signals(sig).name in lines[-1], err
                kind = "stopped run" if "finished: stopped" in lines[-1] else "one line"
            else:
                assert proc.returncode == -sig and err == "", (proc.returncode, err)
                kind = "before python"
            outcomes[kind] = outcomes.get(kind, 0) + 1
    finally:
        server.close()
    print(f"\nsignals at start-up: {outcomes}")
    assert outcomes.get("one line", 0) + outcomes.get("stopped run", 0) >= 4, outcomes
