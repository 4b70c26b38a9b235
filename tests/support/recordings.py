"""Recordings made by the real loop against a scripted model server, on a painted stand-in screen.

The screen is a full-size desktop picture with a coloured square in each corner (red top-left,
green top-right, blue bottom-left, yellow bottom-right): a viewer that shows the whole
screenshot shows all four. Each executed action moves a white square, so steps differ.
"""

from __future__ import annotations

from pathlib import Path

from actions.screen import Frame, Monitor
from actions.types import Action
from agent.approval import Decision
from agent.loop import LoopSettings, run_task
from agent.recording import Recorder, run_info
from tests.support.fakes import RecordingExecutor
from tests.support.scripted_server import Reply, xml_call

CORNER = 120  # side of each corner square, in screen pixels
CORNERS = {
    "top_left": (230, 30, 30),
    "top_right": (30, 200, 60),
    "bottom_left": (40, 60, 230),
    "bottom_right": (240, 220, 30),
}
BACKGROUND = (70, 74, 82)


class PaintedScreen:
    """A width x height 'desktop' with four coloured corners and a square that moves."""

    def __init__(self, width: int, height: int) -> None:
        self.monitor = Monitor(0, 0, 0, width, height, primary=True)
        self.moves = 0

    def capture(self) -> Frame:
        """The picture as it is now."""
        import numpy as np

        w, h = self.monitor.width, self.monitor.height
        img = np.empty((h, w, 3), dtype=np.uint8)
        img[:] = BACKGROUND
        img[:CORNER, :CORNER] = CORNERS["top_left"]
        img[:CORNER, w - CORNER :] = CORNERS["top_right"]
        img[h - CORNER :, :CORNER] = CORNERS["bottom_left"]
        img[h - CORNER :, w - CORNER :] = CORNERS["bottom_right"]
        x = (200 + 150 * self.moves) % (w - 300)
        img[h // 3 : h // 3 + 160, x : x + 240] = 235
        return Frame(img.tobytes(), w, h, self.monitor, 0.0)

    def wait_until_stable(self, *, min_s: float, max_s: float, cancel: object = None) -> float:
        """Nothing moves by itself."""
        return 0.0


class MovingExecutor(RecordingExecutor):
    """Performs nothing; each action moves the painted square."""

    def __init__(self, screen: PaintedScreen) -> None:
        super().__init__()
        self.screen = screen

    def on_execute(self, action: Action) -> None:
        """The screen changes as if the action had done something."""
        self.screen.moves += 1


# Four steps: a click with thinking, typing, a chord, the end.
SCRIPT = [
    Reply(
        xml_call(action="left_click", coordinate=[500, 400]),
        reasoning="The text field is in the middle; click it first.",
    ),
    Reply(xml_call(action="type", text="hello from the library test")),
    Reply(xml_call(action="key", keys=["ctrl", "s"])),
    Reply("Saved. " + xml_call(action="terminate", status="success")),
]


def record_run(runs: Path, endpoint: str, task: str, size: tuple[int, int]) -> Path:
    """Run SCRIPT's four steps through run_task against the server at endpoint; the folder."""
    from agent.backends.factory import build_backend

    screen = PaintedScreen(*size)
    backend = build_backend("openai", endpoint=endpoint, model="Qwen/Qwen3.5-9B")
    settings = LoopSettings(max_steps=10, settle_min_s=0.0)
    recorder = Recorder(
        runs,
        run_info(
            task,
            backend=backend,
            approval="auto",
            monitor=screen.monitor,
            settings=settings.to_json(),
        ),
    )
    try:
        result = run_task(
            task,
            backend=backend,
            screen=screen,
            executor=MovingExecutor(screen),
            decide=lambda request: Decision("approve", by="auto"),
            recorder=recorder,
            settings=settings,
        )
    finally:
        backend.close()
    assert result.outcome == "success", result
    return recorder.dir
