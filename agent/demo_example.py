"""A recording (a person's demonstration or an earlier run) as an example in a run's prompt.

`main.py run TASK --example RUN`: the recording's executed actions as numbered lines, and the
screens before a few of its pointer actions (downscaled, the target ringed in red), fitted
into agent.prompt.EXAMPLE_TOKENS by agent.prompt.fit_example.
"""

from __future__ import annotations

import io
from pathlib import Path

from actions.types import Action, describe
from agent.backends.base import ImagePart, Part
from agent.prompt import EXAMPLE_TOKENS, fit_example
from agent.records import StepRecord

MAX_FRAMES = 3
FRAME_PIXELS = 640 * 400  # ~240 visual tokens a frame: the layout, not the fine print
MAX_LINE_CHARS = 200


class ExampleError(ValueError):
    """The example recording cannot be used; one line."""


def _frame(path: Path, action: Action, space_w: float, space_h: float) -> ImagePart:
    """A step's screenshot, downscaled to FRAME_PIXELS, with its target(s) ringed."""
    from PIL import Image, ImageDraw

    from agent.heal import target_points

    with Image.open(path) as img:
        rgb = img.convert("RGB")
    scale = min(1.0, (FRAME_PIXELS / (rgb.width * rgb.height)) ** 0.5)
    small = rgb.resize((max(1, int(rgb.width * scale)), max(1, int(rgb.height * scale))))
    draw = ImageDraw.Draw(small)
    radius = max(6, small.width // 60)
    for x, y in target_points(action):
        cx, cy = x / space_w * small.width, y / space_h * small.height
        draw.ellipse(
            (cx - radius, cy - radius, cx + radius, cy + radius), outline=(255, 0, 0), width=3
        )
    buf = io.BytesIO()
    small.save(buf, format="PNG", compress_level=1)
    # The source screenshot's path: the prompt record points at the frame it was made from.
    return ImagePart(buf.getvalue(), small.width, small.height, str(path.resolve()))


def example_from_run(
    run_dir: Path, budget: int = EXAMPLE_TOKENS, max_frames: int = MAX_FRAMES
) -> tuple[Part, ...]:
    """The prompt parts showing a recording as an example (ExampleError when unusable)."""
    from agent.heal import target_points
    from agent.protocol import ProtocolError
    from agent.recording import read_run
    from agent.replay import executed_action, step_geometry

    run_dir = Path(run_dir)
    if not (run_dir / "run.json").is_file():
        raise ExampleError(f"--example {run_dir}: not a recording (no run.json)")
    recording = read_run(run_dir)
    lines: list[str] = []
    pointer: list[tuple[int, Action, StepRecord]] = []
    for step in recording.records:
        try:
            action = executed_action(step)
        except ProtocolError:
            continue
        if action is None:
            continue
        text = describe(action)
        if len(text) > MAX_LINE_CHARS:
            text = text[: MAX_LINE_CHARS - 3] + "..."
        lines.append(f"{len(lines) + 1}. {text}")
        if target_points(action) and step.screenshot:
            pointer.append((len(lines), action, step))
    if not lines:
        raise ExampleError(f"--example {run_dir}: the recording has no executed actions")
    if len(pointer) > max_frames:  # spread over the task: its start, middle and end
        last = len(pointer) - 1
        picks = sorted({round(i * last / (max_frames - 1)) for i in range(max_frames)})
        pointer = [pointer[i] for i in picks] if max_frames > 1 else pointer[:1]
    frames: list[tuple[str, ImagePart]] = []
    for number, action, step in pointer:
        geometry = step_geometry(step)
        if geometry is None:
            continue
        space = geometry[0]
        shot = run_dir / str(step.screenshot)
        if not shot.is_file():
            continue
        image = _frame(shot, action, space.width, space.height)
        frames.append((f"\nThe screen before step {number} (its target ringed):\n", image))
    heading = f"Task: {recording.info.get('task') or '(not given)'}\nSteps:"
    return fit_example(heading, lines, frames, budget)
