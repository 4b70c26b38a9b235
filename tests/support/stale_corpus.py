"""The stale-screen corpus: deskpilot's loop and the peers' 1 s-sleep pipeline against one app.

tests/apps/stale_app.py shows an arm button and a target; a click on arm covers the target a
while later. A model that looks (a scripted stand-in that reads the screenshot it is given)
clicks arm, then clicks the target if its screenshot shows it, and ends the task when it sees
the target covered or its click went through. Since it only aims at a target it saw, a click
that lands on the cover is an action executed on a changed target. A step the freshness check
held back although nothing had covered the target yet is an action wrongly held back.
Used by tests/e2e/test_stale_x11.py (deskpilot only) and bench/bench_stale.py (both).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from actions.screen import CoordinateSpace, Monitor, screen_to_model
from agent.approval import ApprovalRequest, Decision
from agent.backends.base import ChatMessage, Completion, ImagePart
from tests.support.fakes import ScriptedBackend
from tests.support.scripted_server import xml_call
from tests.support.x11 import REPO, stop_process, wait_for_window, wait_until, x_env

STALE_APP = REPO / "tests" / "apps" / "stale_app.py"
GEOMETRY = (0, 0, 1200, 800)  # where the app's window sits on the 1920x1080 display
PEER_SLEEP_S = 1.0
TASK = "Click the blue button, then the green one."


@dataclass(frozen=True, slots=True)
class Scenario:
    """One case of the corpus."""

    name: str
    cover_after_s: float  # after the click on arm; 0: the target is never covered
    think_s: float  # how long the model thinks per step
    approve_s: float  # how long a person takes to approve each action (0: auto)
    clock: bool  # a clock and a progress bar tick far from the target, a caret blinks near it


SCENARIOS = (
    Scenario("covered 0.3 s after the click, model thinks 1 s", 0.3, 1.0, 0.0, False),
    Scenario("covered 1.5 s after the click, model thinks 1 s", 1.5, 1.0, 0.0, False),
    Scenario("covered 1.5 s after, slow approval (2 s)", 1.5, 0.3, 2.0, False),
    Scenario("never covered; clock, progress bar, caret", 0.0, 1.0, 0.0, True),
)


@dataclass
class StaleApp:
    """A running stale app and its log."""

    proc: subprocess.Popen[bytes]
    log_path: Path

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Every logged event (of one kind)."""
        out = []
        for line in self.log_path.read_text(encoding="utf-8").splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if kind is None or event["event"] == kind:
                out.append(event)
        return out

    def close(self) -> None:
        """Stop the app."""
        stop_process(self.proc)


def start_stale_app(display: str, log_path: Path, scenario: Scenario) -> StaleApp:
    """Launch the app for one scenario and wait until it is ready and mapped."""
    x, y, w, h = GEOMETRY
    env = x_env(display, QT_QPA_PLATFORM="xcb")
    env.pop("WAYLAND_DISPLAY", None)
    env.update(QT_ACCESSIBILITY="0", NO_AT_BRIDGE="1", QT_IM_MODULE="")
    env["QT_LOGGING_RULES"] = "qt.qpa.*=false"
    title = f"deskpilot stale app {time.monotonic_ns()}"
    cmd = [sys.executable, str(STALE_APP), "--geometry", f"{x},{y},{w},{h}"]
    cmd += ["--log", str(log_path), "--cover-after", str(scenario.cover_after_s)]
    cmd += ["--title", title] + (["--clock", "--caret"] if scenario.clock else [])
    log_path.touch()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    app = StaleApp(proc, log_path)
    try:
        wait_until(lambda: app.events("ready"), 30.0, "the stale app's ready event")
        wait_for_window(display, name=title, proc=proc, timeout_s=30.0)
    except BaseException:
        app.close()
        raise
    return app


def _layout() -> dict[str, tuple[int, int, int, int]]:
    """The app's rectangles, read from its module without importing Qt."""
    import ast

    tree = ast.parse(STALE_APP.read_text(encoding="utf-8"))
    rects: dict[str, tuple[int, int, int, int]] = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and getattr(node.value.func, "id", "") == "QRect"
            and all(isinstance(a, ast.Constant) for a in node.value.args)
        ):
            name = node.targets[0].id  # type: ignore[attr-defined]
            rects[name] = tuple(int(a.value) for a in node.value.args)  # type: ignore[attr-defined,assignment]
    return rects


LAYOUT = _layout()


def centre(name: str) -> tuple[int, int]:
    """A rectangle's centre in screen pixels."""
    x, y, w, h = LAYOUT[name]
    return GEOMETRY[0] + x + w // 2, GEOMETRY[1] + y + h // 2


class LookingModel(ScriptedBackend):
    """Clicks arm, then the target if its screenshot shows it; ends when done or covered."""

    model = kind = "looking"

    def __init__(self, monitor: Monitor, think_s: float) -> None:
        super().__init__(think_s=think_s)
        self.monitor = monitor
        self.proposed: str | None = None
        self.space = CoordinateSpace.relative()

    def _point(self, name: str) -> list[float]:
        x, y = screen_to_model(centre(name), self.space, self.monitor)
        return [round(x, 1), round(y, 1)]

    def _target_shown(self, image: ImagePart) -> bool:
        from PIL import Image

        with Image.open(io.BytesIO(image.png)) as img:
            rgb = img.convert("RGB")
            sx, sy = centre("TARGET")
            scale = rgb.width / self.monitor.width
            r, g, b = rgb.getpixel((int((sx - self.monitor.left) * scale), int(sy * scale)))  # type: ignore[misc]
        return bool(g > 150 and r < 100 and b < 100)

    def answer(self, n: int, messages: Sequence[ChatMessage]) -> Completion:
        """Decide from the last screenshot and the last result (after thinking think_s)."""
        last = messages[-1]
        image = next(p for p in reversed(last.content) if isinstance(p, ImagePart))
        held = "Not executed" in last.text()
        if self.proposed is None or (self.proposed == "ARM" and held):
            self.proposed = "ARM"
            return Completion(xml_call(action="left_click", coordinate=self._point("ARM")))
        if self.proposed == "TARGET" and not held:
            return Completion(xml_call(action="terminate", status="success"))
        if self._target_shown(image):
            self.proposed = "TARGET"
            return Completion(xml_call(action="left_click", coordinate=self._point("TARGET")))
        return Completion(xml_call(action="terminate", status="failure"))

    def describe(self) -> dict[str, object]:
        """For run.json."""
        return {"kind": "looking", "think_s": self.think_s}


class SlowPerson:
    """Approves every action after a while, as a person looking at the screen would."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self, request: ApprovalRequest) -> Decision:
        """Look, then approve."""
        time.sleep(self.seconds)
        return Decision("approve", by="user")


def run_deskpilot(display: str, scenario: Scenario, tmp: Path) -> dict[str, Any]:
    """One scenario through run_task: what the app saw and what the recording says."""
    from actions.executor import Executor
    from actions.screen import Screen
    from actions.window import FocusProbe
    from agent.approval import auto_approve
    from agent.loop import LoopSettings, run_task
    from agent.recording import Recorder, read_run

    app = start_stale_app(display, tmp / "app.jsonl", scenario)
    probe = FocusProbe()
    try:
        screen = Screen()
        recorder = Recorder(tmp / "runs", {"task": TASK})
        result = run_task(
            TASK,
            backend=LookingModel(screen.monitor, scenario.think_s),
            screen=screen,
            executor=Executor(),  # type: ignore[arg-type]
            decide=SlowPerson(scenario.approve_s) if scenario.approve_s else auto_approve,
            recorder=recorder,
            settings=LoopSettings(max_steps=8),
            window_area=probe.focused_rect,
        )
        steps = read_run(recorder.dir).steps
        time.sleep(0.2)  # the last click's log line
        events = app.events()
    finally:
        probe.close()
        app.close()
    held = [s for s in steps if (s.get("freshness") or {}).get("stale")]
    covered = [e["t"] for e in events if e["event"] == "covered"]
    wrongly = [s for s in held if not covered or _epoch(s["ended_at"]) < covered[0]]
    return _summary(scenario, events, held=len(held), wrongly_held=len(wrongly)) | {
        "outcome": result.outcome
    }


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def run_peers(display: str, scenario: Scenario, tmp: Path) -> dict[str, Any]:
    """The same scenario through the peers' pipeline: act, sleep 1 s, screenshot, ask, act."""
    from actions.executor import Executor
    from actions.screen import Screen
    from actions.types import Answer, Terminate
    from agent.prompt import HistoryEntry, PromptBuilder
    from agent.protocol import format_tool_call, parse_completion, tool_schema
    from agent.vision import prepare

    app = start_stale_app(display, tmp / "app.jsonl", scenario)
    try:
        screen, executor = Screen(), Executor()
        model = LookingModel(screen.monitor, scenario.think_s)
        space = CoordinateSpace.relative()
        builder = PromptBuilder(TASK)
        history: list[HistoryEntry] = []
        for _ in range(8):
            image = prepare(screen.capture()).image
            completion = model.complete(builder.messages(history, image), [tool_schema(space)])
            action = parse_completion(completion, space).action
            if action is None or isinstance(action, Terminate | Answer):
                break
            time.sleep(scenario.approve_s)
            executor.execute(action, space=space, monitor=screen.monitor)
            history.append(HistoryEntry(image, format_tool_call(action), "Executed."))
            time.sleep(PEER_SLEEP_S)
        events = app.events()
    finally:
        app.close()
    return _summary(scenario, events, held=0, wrongly_held=0)


def _summary(
    scenario: Scenario, events: list[dict[str, Any]], *, held: int, wrongly_held: int
) -> dict[str, Any]:
    hits = [e["hit"] for e in events if e["event"] == "click"]
    return {
        "scenario": scenario.name,
        "clicks": hits,
        "executed_on_changed_target": hits.count("cover"),
        "target_clicked": hits.count("target"),
        "held_back": held,
        "wrongly_held_back": wrongly_held,
    }
