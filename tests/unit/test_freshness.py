"""Freshness: the screen where an action lands is compared with the decision's screenshot."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from actions.freshness import (
    CARET_PX,
    POINT_RADIUS_PX,
    action_areas,
    compare,
    stale_changes,
)
from actions.screen import CoordinateSpace, Frame, Monitor
from actions.types import (
    Key,
    LeftClick,
    LeftClickDrag,
    MouseMove,
    Scroll,
    Terminate,
    Type,
    Wait,
)
from agent.approval import auto_approve, policy
from agent.backends.base import ChatMessage, Completion
from agent.events import Event, ScreenStale
from agent.loop import LoopSettings, run_task
from agent.recording import Recorder, read_run
from tests.support.fakes import FakeScreen, Person, RecordingExecutor, ScriptedBackend
from tests.support.scripted_server import xml_call

W, H = 1920, 1080
MONITOR = Monitor(1, 0, 0, W, H, primary=True)
REL = CoordinateSpace.relative()


def desktop() -> np.ndarray:
    """A grey desktop with a blue button at (960, 540) and a text field left of it."""
    img = np.full((H, W, 3), 230, np.uint8)
    img[520:560, 920:1000] = (60, 90, 200)  # the button
    img[525:555, 700:900] = 255  # a text field
    return img


def frame(img: np.ndarray, monitor: Monitor = MONITOR) -> Frame:
    return Frame(img.tobytes(), img.shape[1], img.shape[0], monitor, time.time())


def stale(action: Any, before: np.ndarray, after: np.ndarray, window: Any = None) -> bool:
    areas = action_areas(action, REL, MONITOR, window)
    return bool(stale_changes(compare(frame(before), frame(after), areas)))


CLICK = LeftClick((500.0, 500.0))  # (960, 540): the button


def test_an_unchanged_screen_is_fresh() -> None:
    img = desktop()
    assert not stale(CLICK, img, img.copy())


def test_a_window_covering_the_target_is_stale() -> None:
    before, after = desktop(), desktop()
    after[400:700, 800:1200] = (250, 250, 200)  # a dialog over the button
    assert stale(CLICK, before, after)
    assert stale(LeftClickDrag((500.0, 500.0), (100.0, 100.0)), before, after)


def test_changes_elsewhere_do_not_count() -> None:
    before, after = desktop(), desktop()
    after[1050:1075, 1800:1910] = 0  # the clock in the panel
    after[100:120, 100:500] = (0, 200, 0)  # a progress bar in another window
    assert not stale(CLICK, before, after)
    # Not even for typing when the focused window is unknown (the whole screen stands in).
    assert not stale(Type("hello"), before, after)


def test_a_blinking_caret_next_to_the_target_does_not_count() -> None:
    before, after = desktop(), desktop()
    after[528:552, 930:932] = 0  # a 2x24 caret inside the click area
    assert not stale(CLICK, before, after)
    assert not stale(Key(("enter",)), before, after)


def test_a_spinner_beside_the_target_does_not_count_a_reflow_does() -> None:
    before, after = desktop(), desktop()
    after[500:516, 1000:1016] = 0  # a 16x16 spinner frame
    assert not stale(CLICK, before, after)
    reflowed = desktop()
    reflowed[520:560] = reflowed[540:580].copy()  # the row moved up by 20 px
    reflowed[545:585, 920:1000] = (60, 90, 200)
    assert stale(CLICK, before, reflowed)


def test_small_colour_noise_does_not_count() -> None:
    before = desktop()
    after = (before.astype(np.int16) + 6).clip(0, 255).astype(np.uint8)  # lossy remote desktop
    assert not stale(CLICK, before, after)


def test_typing_watches_the_focused_window() -> None:
    before, after = desktop(), desktop()
    after[300:500, 300:700] = 0  # a dialog inside the focused window
    window = (200, 200, 800, 600)
    assert stale(Type("x"), before, after, window)
    elsewhere = desktop()
    elsewhere[300:500, 1300:1700] = 0  # the same dialog over another window
    assert not stale(Type("x"), before, elsewhere, window)


def test_areas_per_action() -> None:
    (area,) = action_areas(CLICK, REL, MONITOR)
    r = POINT_RADIUS_PX
    assert area.rect == (960 - r, 540 - r, 2 * r, 2 * r)
    assert len(action_areas(LeftClickDrag((500.0, 500.0), (100.0, 100.0)), REL, MONITOR)) == 2
    assert len(action_areas(MouseMove((0.0, 0.0)), REL, MONITOR)) == 1
    (corner,) = action_areas(LeftClick((0.0, 0.0)), REL, MONITOR)
    assert corner.rect == (0, 0, r, r)  # clipped to the monitor
    (pointer_scroll,) = action_areas(Scroll(-3), REL, MONITOR, (10, 20, 300, 200))
    assert pointer_scroll.rect == (10, 20, 300, 200)
    (unknown,) = action_areas(Key(("ctrl", "s")), REL, MONITOR)
    assert unknown.rect == (0, 0, W, H) and "unknown" in unknown.what
    assert action_areas(Wait(1.0), REL, MONITOR) == []
    assert action_areas(Terminate("success"), REL, MONITOR) == []


def test_areas_on_a_second_hidpi_monitor() -> None:
    monitor = Monitor(2, 1920, 0, 1280, 800, scale=2.0)
    (area,) = action_areas(LeftClick((500.0, 500.0)), REL, monitor)
    r = POINT_RADIUS_PX
    assert area.rect == (2 * (640 - r), 2 * (400 - r), 4 * r, 4 * r)
    assert area.tolerance_px >= 4 * CARET_PX
    (window,) = action_areas(Type("x"), REL, monitor, (1920 + 100, 50, 400, 300))
    assert window.rect == (200, 100, 800, 600)
    (other,) = action_areas(Type("x"), REL, monitor, (0, 0, 500, 500))  # on the first monitor
    assert other.rect == (0, 0, 2560, 1600)


# --------------------------------------------------------------------------- in the loop


class Backend(ScriptedBackend):
    """Clicks the button every step; the screen changes while it thinks, `changes` times."""

    model = kind = "scripted"

    def __init__(self, screen: CoveringScreen, steps: int = 99) -> None:
        super().__init__()
        self.screen = screen
        self.steps = steps

    def answer(self, n: int, messages: Sequence[ChatMessage]) -> Completion:
        if n < self.screen.changes:
            self.screen.version += 1  # a dialog appears over the button while the model thinks
        if n >= self.steps:
            return Completion(xml_call(action="terminate", status="success"))
        return Completion(xml_call(action="left_click", coordinate=[500, 500]))


class CoveringScreen(FakeScreen):
    """The desktop; each change puts a dialog of another colour over the button."""

    monitor = MONITOR

    def __init__(self, changes: int, *, clock: bool = False) -> None:
        super().__init__()
        self.changes = changes  # how many of the model's answers come with a change
        self.version = 0
        self.clock = clock
        self.captures = 0

    def capture(self) -> Frame:
        self.captures += 1
        img = desktop()
        if self.clock:  # ticks at every capture, far from the button
            img[1050:1075, 1800:1910] = (self.captures * 37) % 256
        if self.version:
            img[400:700, 800:1200] = (250, 250, (200 + 50 * self.version) % 256)
        return frame(img)


def run(
    tmp_path: Path, screen: CoveringScreen, decide: Any, steps: int = 2, limit: int = 3
) -> tuple[Any, RecordingExecutor, list[Event], Path, Backend]:
    events: list[Event] = []
    executor = RecordingExecutor()
    backend = Backend(screen, steps)
    recorder = Recorder(tmp_path / "runs", {"task": "t"})
    result = run_task(
        "click the button",
        backend=backend,
        screen=screen,
        executor=executor,
        decide=decide,
        recorder=recorder,
        settings=LoopSettings(max_steps=10, stale_limit=limit),
        on_event=events.append,
    )
    return result, executor, events, recorder.dir, backend


def test_a_stale_action_is_recorded_not_executed_and_asked_again(tmp_path: Path) -> None:
    result, executor, events, run_dir, backend = run(tmp_path, CoveringScreen(1), auto_approve)
    assert result.outcome == "success"
    steps = read_run(run_dir).steps
    first = steps[0]
    assert first["action"]["action"] == "left_click"
    assert first["execution"] == {
        "ok": False,
        "executed": False,
        "error": "screen changed before execution",
    }
    assert first["result"].startswith("Not executed: the screen changed before execution")
    assert first["freshness"]["stale"] is True
    assert (run_dir / first["freshness"]["screenshot"]).is_file()  # the live picture
    assert (run_dir / first["screenshot"]).is_file()  # the decision's picture
    # The viewer got the live screen before anything ran, then the model was asked again.
    stale_events = [e for e in events if isinstance(e, ScreenStale)]
    assert len(stale_events) == 1 and stale_events[0].frame is not None
    assert "screen changed before execution" in "\n".join(m.text() for m in backend.sent[1])
    assert steps[1]["freshness"]["stale"] is False
    assert executor.done == [LeftClick((500.0, 500.0))]  # only the second, fresh click ran


def test_a_ticking_clock_never_holds_an_action_back(tmp_path: Path) -> None:
    result, executor, events, run_dir, _ = run(
        tmp_path, CoveringScreen(0, clock=True), auto_approve, steps=5
    )
    assert result.outcome == "success"
    assert len(executor.done) == 5
    assert not [e for e in events if isinstance(e, ScreenStale)]


def test_after_the_limit_in_a_row_nobody_to_ask_stops_with_the_reason(tmp_path: Path) -> None:
    nobody = policy("auto", None)
    result, executor, _, run_dir, _ = run(tmp_path, CoveringScreen(99), nobody, steps=5)
    assert result.outcome == "stopped"
    assert "screen changed before execution 3 times in a row" in result.message
    assert executor.done == []
    assert len(read_run(run_dir).steps) == 3


def test_after_the_limit_in_a_row_a_person_decides(tmp_path: Path) -> None:
    person = Person("approve")
    result, executor, _, run_dir, _ = run(
        tmp_path, CoveringScreen(99), policy("auto", person), steps=4
    )
    # Asked once, at the third stale action in a row; approving runs it on the live screen.
    assert [r.attention is not None for r in person.requests] == [True]
    assert "3 times in a row" in str(person.requests[0].attention)
    assert len(executor.done) == 1
    steps = read_run(run_dir).steps
    assert steps[2]["freshness"]["decision"]["kind"] == "approve"
    assert steps[2]["execution"]["ok"] is True
    assert steps[3]["execution"]["executed"] is False  # the count started again from one
    assert result.outcome == "success"


class PassingScreen(CoveringScreen):
    """A change while the model thinks that is gone once the screen settles (a repaint)."""

    def wait_until_stable(
        self, *, min_s: float, max_s: float, cancel: threading.Event | None = None
    ) -> float:
        self.version = 0
        return 0.0


def test_a_change_gone_once_the_screen_settles_does_not_hold_back(tmp_path: Path) -> None:
    result, executor, events, run_dir, _ = run(tmp_path, PassingScreen(1), auto_approve)
    assert result.outcome == "success"
    assert len(executor.done) == 2
    assert not [e for e in events if isinstance(e, ScreenStale)]
    assert read_run(run_dir).steps[0]["freshness"]["stale"] is False
