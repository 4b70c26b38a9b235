"""A stop in every state of a real run leaves no input after it and no key or button held.

Each trial is a real run_task (scripted OpenAI-compatible server, real Screen, Executor and
Recorder) on the private Xvfb, stopped from another thread; the X server's own record of key
and button events (RECORD) says what came after the stop. Figures: bench/bench_stop.py.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from actions.executor import Executor
from actions.screen import CoordinateSpace, Monitor, screen_to_model
from actions.types import TripleClick
from actions.xtyping import TypingCancelled, XTyper
from bench.bench_stop import STATES, TYPED, StopRig, StopSample, reply_for
from tests.support.scripted_server import ScriptedServer
from tests.support.x11 import InputRecorder, ProbeApp, XTerm, held_input, move_pointer

pytestmark = [pytest.mark.x11, pytest.mark.timeout(240)]

PER_STATE = 5
# Generous: a stop takes milliseconds (bench_stop); this only catches one that waits for
# the action, the answer or the settle to finish on its own.
BOUND_S = 2.0
PROBE_GEOMETRY = (100, 100, 800, 600)
XTERM_POSITION = (1000, 100)
MID_ACTION = {"typing", "drag", "wait"}


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    """The scripted model answering every stop trial by the state its task names."""
    srv = ScriptedServer([reply_for] * 1000)
    yield srv
    srv.close()


def make_rig(
    xdisplay: str,
    server: ScriptedServer,
    tmp_path: Path,
    state: str,
    probe_app: Callable[..., ProbeApp],
    xterm: Callable[..., XTerm],
) -> tuple[StopRig, ProbeApp | None]:
    """A rig with the target app the state needs: xterm to type into, the probe to drag on."""
    window = None
    if state == "typing":
        window = xterm("cat > /dev/null", position=XTERM_POSITION).window
    if state != "drag":
        return StopRig(xdisplay, server.url, tmp_path / "runs", type_window=window), None
    probe = probe_app(PROBE_GEOMETRY)
    x, y, w, h = probe.rect("canvas")
    rig = StopRig(
        xdisplay,
        server.url,
        tmp_path / "runs",
        drag_from=(x + w // 5, y + h // 2),
        drag_to=(x + 4 * w // 5, y + h // 2),
    )
    return rig, probe


def assert_stopped_cleanly(sample: StopSample) -> None:
    """Stopped, recorded, nothing held, nothing sent after release_all returned."""
    assert sample.reached, sample
    assert sample.outcome == "stopped" and sample.recorded_outcome == "stopped", sample
    assert sample.steps_started >= 1 and sample.steps_recorded == sample.steps_started, sample
    assert sample.held_keys == [] and sample.held_buttons == [], sample
    assert sample.released_again == [], sample  # the CLI's release after the run finds nothing
    assert sample.stop_to_return_s < BOUND_S, sample


@pytest.mark.parametrize("state", STATES)
def test_a_stop_leaves_nothing_behind(
    state: str,
    xdisplay: str,
    server: ScriptedServer,
    tmp_path: Path,
    probe_app: Callable[..., ProbeApp],
    xterm: Callable[..., XTerm],
) -> None:
    rig, probe = make_rig(xdisplay, server, tmp_path, state, probe_app, xterm)
    try:
        samples = [rig.trial(state) for _ in range(PER_STATE)]
    finally:
        rig.close()
    for sample in samples:
        assert_stopped_cleanly(sample)
        assert sample.after_stop == [], sample  # release_all returned: not one more event
        assert sample.stop_to_released_s < BOUND_S, sample
        if state in MID_ACTION:
            # The stop cut the action short: the run did not wait for it to finish.
            assert sample.step_error is not None and "cancelled" in sample.step_error, sample
        elif state == "settle":
            assert sample.executed and sample.step_error is None, sample  # done, then stopped
        else:
            assert not sample.executed, sample
        if state == "idle":
            assert sample.decision == "stop", sample
        if state in ("prefill", "generating"):
            assert sample.step_error is not None and "stop" in sample.step_error, sample
        if state == "typing":
            typed = re.search(r"after (\d+) characters", sample.step_error or "")
            assert typed is not None and 0 < int(typed.group(1)) < len(TYPED), sample
    if probe is not None:
        # Each drag was let go short of its end, and the probe saw every press released.
        presses, releases = probe.new_events("press"), probe.new_events("release")
        assert len(presses) == len(releases) == PER_STATE, (presses, releases)
        end_x = probe.rect("canvas")[0] + 4 * probe.rect("canvas")[2] // 5
        assert all(r["x"] < end_x - 2 for r in releases), releases


@pytest.mark.parametrize("state", ["typing", "drag", "wait"])
def test_without_release_all_the_action_lets_go_by_itself(
    state: str,
    xdisplay: str,
    server: ScriptedServer,
    tmp_path: Path,
    probe_app: Callable[..., ProbeApp],
    xterm: Callable[..., XTerm],
) -> None:
    """The CLI only sets the event (release_all comes after the run): nothing may stay held."""
    rig, _ = make_rig(xdisplay, server, tmp_path, state, probe_app, xterm)
    try:
        samples = [rig.trial(state, release=False) for _ in range(PER_STATE)]
    finally:
        rig.close()
    for sample in samples:
        assert_stopped_cleanly(sample)
        # What follows the stop is at most the tap or drag step in flight and letting go.
        presses = [e for e in sample.after_stop if e.startswith(("key_press", "button_press"))]
        assert len(presses) <= 2, sample  # one tap (with its Shift)
        assert len([e for e in sample.after_stop if e.startswith("motion")]) <= 1, sample
        assert "cancelled" in (sample.step_error or ""), sample


def test_a_binding_wait_ends_at_the_stop(
    xdisplay: str, xterm: Callable[..., XTerm], tmp_path: Path
) -> None:
    """Typing that waits to rebind spare keycodes (xterm: a timed settle) stops at once."""
    term = xterm(f"cat > {tmp_path / 'typed.txt'}", position=XTERM_POSITION)
    x, y = term.center()
    move_pointer(xdisplay, x, y)
    # Two spare keycodes and a 5 s settle: every third distinct character waits 5 s.
    typer = XTyper(max_spare=2, settle_s=5.0)
    cancel = threading.Event()
    text = "".join(chr(0x4E00 + 7 * i) for i in range(12))
    timer = threading.Timer(0.8, cancel.set)
    try:
        with InputRecorder(xdisplay) as rec:
            timer.start()
            t0 = time.monotonic()
            with pytest.raises(TypingCancelled) as info:
                typer.type_text(text, cancel=cancel)
            took = time.monotonic() - t0
            rec.mark("returned")
            rec.wait_mark("returned")
            after = rec.between("returned")
    finally:
        timer.cancel()
        typer.close()
    assert 0 < info.value.typed < len(text)
    assert took < 3.0, took  # not the 5 s settle
    assert after == []
    assert held_input(xdisplay) == ([], [])


def test_a_stop_between_clicks_of_a_triple_click_sends_no_further_click(
    xdisplay: str, probe_app: Callable[..., ProbeApp]
) -> None:
    app = probe_app(PROBE_GEOMETRY)
    monitor = Monitor(1, 0, 0, 1920, 1080, primary=True)
    space = CoordinateSpace.relative()
    x, y, w, h = app.rect("canvas")
    point = screen_to_model((x + w // 2, y + h // 2), space, monitor)
    executor = Executor(click_interval_s=0.5)
    cancel = threading.Event()

    def stop() -> None:
        cancel.set()
        executor.release_all()

    try:
        # The first click goes out at ~20 ms; the stop lands in the 0.5 s gap after it.
        timer = threading.Timer(0.25, stop)
        timer.start()
        result = executor.execute(TripleClick(point), space=space, monitor=monitor, cancel=cancel)
        timer.join()
    finally:
        executor.close()
    assert not result.ok and "cancelled" in (result.error or "")
    time.sleep(0.6)
    assert len(app.new_events("press")) == len(app.new_events("release")) == 1
    assert held_input(xdisplay) == ([], [])
