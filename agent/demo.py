"""Demonstrations: a person does the task, deskpilot records it as a normal run, step by step.

Input comes from X RECORD (actions/xrecord.py), grouped into steps (agent/demo_gestures.py).
The screen is captured continuously into a short ring of frames; each step keeps the last
frame captured before its first input, so its screenshot shows the screen the person acted
on. Steps are written with agent/recording.py's Recorder, in the same format as an agent's
run: one computer_use action per step, 0-1000 coordinates relative to the monitor, decided
`by` "person".
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actions.screen import CoordinateSpace, Frame, Monitor, screen_to_model
from actions.types import (
    Action,
    DoubleClick,
    HScroll,
    Key,
    LeftClick,
    LeftClickDrag,
    MiddleClick,
    RightClick,
    Scroll,
    TripleClick,
    Type,
    action_arguments,
    describe,
)
from actions.xrecord import InputEvent, XInputRecorder
from agent.demo_gestures import Gesture, GestureBuilder
from agent.recording import Recorder, monitor_json, now_iso
from agent.records import StepRecord
from agent.secrets import Redactor

CAPTURE_INTERVAL_S = 0.1
RING_FRAMES = 8  # ~0.8 s of frames: enough to find the one before an input being handled
PERSON = "person"
RESULT = "Performed by the person."


class FrameRing:
    """Captures the monitor every `interval_s` (and on demand) on its own thread; keeps a few.

    Each frame is stamped with time.monotonic() after its grab finished, so a frame stamped
    before an input's time was on screen before that input.
    """

    def __init__(self, capture: Callable[[], Frame], interval_s: float = CAPTURE_INTERVAL_S):
        self._capture = capture
        self._interval = interval_s
        self._frames: deque[tuple[float, Frame]] = deque(maxlen=RING_FRAMES)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None

    def start(self) -> None:
        """Take a first frame (errors surface here), then keep capturing in the background."""
        self._grab()
        self._thread = threading.Thread(target=self._run, name="deskpilot-frames", daemon=True)
        self._thread.start()

    def _grab(self) -> None:
        frame = self._capture()
        with self._lock:
            self._frames.append((time.monotonic(), frame))

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self._grab()
            except Exception as exc:  # the display went away: steps keep the last frame
                self.error = f"screen capture failed: {exc}"
                return

    def poke(self) -> None:
        """Capture now (after an input: the next step's frame should be as recent as can be)."""
        self._wake.set()

    def before(self, t: float) -> Frame:
        """The latest frame whose capture ended before `t` (the oldest kept, if none did)."""
        with self._lock:
            frames = list(self._frames)
        earlier = [f for stamp, f in frames if stamp < t]
        return earlier[-1] if earlier else frames[0][1]

    def stop(self) -> None:
        """End the capture thread."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=3.0)


def gesture_action(g: Gesture, monitor: Monitor) -> Action | None:
    """A gesture as a computer_use action, its points relative (0-1000) to the monitor.

    None for pointer input outside the monitor (it cannot be said in its coordinates).
    """
    space = CoordinateSpace.relative()

    def rel(p: tuple[int, int]) -> tuple[float, float] | None:
        x, y = p
        if not (
            monitor.left <= x < monitor.left + monitor.width
            and monitor.top <= y < monitor.top + monitor.height
        ):
            return None
        mx, my = screen_to_model((x, y), space, monitor)
        return (float(round(mx)), float(round(my)))

    points = [rel(p) for p in g.points]
    if any(p is None for p in points):
        return None
    pts = [p for p in points if p is not None]
    match g.kind:
        case "type":
            return Type(g.text)
        case "key":
            return Key(g.keys)
        case "left_click":
            return LeftClick(pts[0])
        case "double_click":
            return DoubleClick(pts[0])
        case "triple_click":
            return TripleClick(pts[0])
        case "right_click":
            return RightClick(pts[0])
        case "middle_click":
            return MiddleClick(pts[0])
        case "left_click_drag":
            return LeftClickDrag(pts[1], start_coordinate=pts[0])
        case "scroll":
            return Scroll(g.clicks, pts[0])
        case "hscroll":
            return HScroll(g.clicks, pts[0])
    raise ValueError(f"unknown gesture {g.kind!r}")


def demo_info(task: str, monitor: Monitor, hotkey: str | None) -> dict[str, Any]:
    """What run.json says about a demonstration before it starts."""
    return {
        "task": task,
        "model": None,
        "backend": {"kind": PERSON},
        "approval": PERSON,
        "monitor": monitor_json(monitor),
        "settings": {"coords": "relative", "stop_hotkey": hotkey},
        "demonstration": {"input": "x11-record", "capture_interval_s": CAPTURE_INTERVAL_S},
    }


def step_record(
    index: int, action: Action, frame: Frame, screenshot: str, started: float
) -> dict[str, Any]:
    """The step record of one person's action, in the recording format (agent/recording.py)."""
    args = action_arguments(action)
    record = StepRecord(index).to_json()
    lag = max(0.0, time.monotonic() - started)
    record["started_at"] = now_iso(time.time() - lag)
    record["ended_at"] = now_iso()
    record["screenshot"] = screenshot
    m = frame.monitor
    record["screen"] = {
        "monitor": monitor_json(m),
        "captured_size": [frame.width, frame.height],
        "image_size": [frame.width, frame.height],
        "model_size": [frame.width, frame.height],
        "coords": {"kind": "relative", "width": 1000.0, "height": 1000.0},
    }
    record["action"] = args
    record["decision"] = {"kind": "approve", "by": PERSON, "note": None, "edited_action": None}
    record["to_run"] = args
    record["execution"] = {
        "ok": True,
        "detail": "performed by the person",
        "error": None,
        "points": [],
        "action": args,
    }
    record["result"] = RESULT
    return record


@dataclass
class Demonstration:
    """One recording session: input, frames and the recorder, wired; run() until stopped."""

    runs_dir: Path
    task: str
    capture: Callable[[], Frame]
    monitor: Monitor
    redactor: Redactor = field(default_factory=Redactor)
    display: str | None = None
    hotkey_keys: frozenset[str] = frozenset()
    hotkey: str | None = None
    log: Callable[[str], None] = lambda line: None
    steps: int = 0
    recorder: Recorder | None = None
    _events: queue.Queue[InputEvent] = field(default_factory=queue.Queue)
    _frames_at: dict[float, Frame] = field(default_factory=dict)

    def run(self, stop: threading.Event, ready: Callable[[Path], None]) -> dict[str, Any]:
        """Record until `stop` is set (or KeyboardInterrupt); returns the outcome written."""
        ring = FrameRing(self.capture)
        ring.start()
        listener = XInputRecorder(self._events.put, self.display)
        recorder = Recorder(
            self.runs_dir, demo_info(self.task, self.monitor, self.hotkey), redactor=self.redactor
        )
        self.recorder = recorder

        def begin(t: float) -> None:
            self._frames_at[t] = ring.before(t)

        builder = GestureBuilder(lambda g: self._write(g, recorder), begin, self.hotkey_keys)
        message = "demonstration recorded"
        try:
            listener.start()
            ready(recorder.dir)
            while not stop.is_set():
                try:
                    event = self._events.get(timeout=0.05)
                except queue.Empty:
                    builder.tick(time.monotonic())
                    continue
                builder.feed(event)
                ring.poke()
                if listener.error or ring.error:
                    message = f"demonstration ended early: {listener.error or ring.error}"
                    break
        except KeyboardInterrupt as exc:
            message = f"demonstration recorded ({exc or 'interrupted'})"
        finally:
            listener.stop()
            ring.stop()
        if stop.is_set() and getattr(stop, "reason", None):
            message = f"demonstration recorded ({getattr(stop, 'reason', '')})"
        while True:
            try:
                builder.feed(self._events.get_nowait())
            except queue.Empty:
                break
        builder.flush()
        outcome = {"status": "success", "message": message, "answer": None, "steps": self.steps}
        recorder.finish(outcome)
        return outcome

    def _write(self, gesture: Gesture, recorder: Recorder) -> None:
        """Write one finished gesture as a step, with the frame from before its first input."""
        frame = self._frames_at.pop(gesture.started, None)
        for t in [t for t in self._frames_at if t < gesture.started]:
            del self._frames_at[t]  # gestures that never became steps (typed, then erased)
        if frame is None:
            return
        action = gesture_action(gesture, frame.monitor)
        if action is None:
            self.log(f"ignored {gesture.kind} outside monitor {frame.monitor.index}")
            return
        from agent.vision import encode_png

        index = self.steps
        shot = recorder.save_screenshot(index, encode_png(frame.rgb, frame.width, frame.height))
        recorder.append_step(step_record(index, action, frame, shot, gesture.started))
        self.steps += 1
        # Typed text may be a secret: the terminal gets what the recording got.
        self.log(recorder.redactor.redact_text(f"step {index + 1}: {describe(action)}"))
