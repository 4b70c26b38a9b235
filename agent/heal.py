"""Healing a replay: check each pointer action's target against the live screen; re-ground it
with the model only when the target no longer looks as recorded.

Before a pointer action runs, the region around each of its points in the recorded screenshot
is compared with the same region of the live screen (grey levels, as agent/replay.py compares
whole screens). When every region still matches, the recorded action runs and the model is
not asked. When one does not (the window moved, the layout changed), the model gets one
request: the step's intent (the recorded thinking, or the action's description), a crop of
the recorded screenshot around the target, and the live screenshot; its answer, parsed by
agent/protocol.py like any proposal, runs instead when it is the same kind of action. When the
model cannot give one, the step is left to the caller (ask a person, or stop).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actions.screen import CoordinateSpace, Frame
from actions.types import (
    Action,
    DoubleClick,
    HScroll,
    LeftClick,
    LeftClickDrag,
    MiddleClick,
    MouseMove,
    Point,
    RightClick,
    Scroll,
    TripleClick,
    action_arguments,
    describe,
)
from agent.backends.base import Backend, BackendError, ChatMessage, ImagePart
from agent.prompt import SYSTEM_PROMPT, SYSTEM_PROMPT_ABSOLUTE
from agent.protocol import parse_completion, tool_schema
from agent.records import StepRecord

# A region is the square of side 2 * half around a target, half = REGION_SHARE of the
# screenshot's width (at least MIN_HALF_PX): a button or a field with a little of what
# surrounds it. A pixel "changed" when its grey level moved by more than PIXEL_TOLERANCE of
# 255; the region no longer matches when more than REGION_THRESHOLD of its pixels changed
# (a caret or a hover highlight stays below it, a different widget does not).
REGION_SHARE = 0.03
MIN_HALF_PX = 16
PIXEL_TOLERANCE = 32
REGION_THRESHOLD = 0.12
CONTEXT_FACTOR = 3  # the crop the model sees is this many times wider than the checked region
MAX_INTENT_CHARS = 600


@dataclass(frozen=True, slots=True)
class HealNote:
    """What healing did at one step: checked, how much of the target differed, healed or not."""

    index: int
    checked: bool
    difference: float
    healed: bool = False
    action: dict[str, object] | None = None  # the re-grounded action's arguments, when healed
    error: str | None = None  # why the model could not re-ground it

    def to_json(self) -> dict[str, object]:
        """As a replayed step's `heal` field (docs/routines.md)."""
        return {
            "checked": self.checked,
            "difference": round(self.difference, 4),
            "healed": self.healed,
            "action": self.action,
            "error": self.error,
        }

    def line(self) -> str:
        """One line for the terminal."""
        pct = f"{self.difference * 100:.1f}% of the target region differs"
        if not self.checked:
            return "not a pointer action: not checked"
        if self.healed and self.action is not None:
            return f"{pct}; re-grounded by the model"
        if self.error is not None:
            return f"{pct}; the model could not re-ground it: {self.error}"
        return f"target as recorded ({pct})"


@dataclass(frozen=True, slots=True)
class Fix:
    """The action to run at a step (None: nobody could re-ground it) and what healing did."""

    action: Action | None
    note: HealNote


def target_points(action: Action) -> list[Point]:
    """The points a pointer action acts at (a drag: start, then end); [] for the others."""
    match action:
        case LeftClickDrag(coordinate=end, start_coordinate=start):
            return [start, end] if start is not None else [end]
        case (
            LeftClick(coordinate=c)
            | RightClick(coordinate=c)
            | MiddleClick(coordinate=c)
            | DoubleClick(coordinate=c)
            | TripleClick(coordinate=c)
            | MouseMove(coordinate=c)
        ):
            return [c]
        case Scroll(coordinate=c) | HScroll(coordinate=c):
            return [c] if c is not None else []
    return []


def _grey(image: Any, size: tuple[int, int] | None = None) -> Any:
    """A PIL image as a grey numpy array, resized first when a size is given."""
    import numpy as np
    from PIL import Image

    grey = image.convert("L")
    if size is not None and grey.size != size:
        grey = grey.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(grey, dtype=np.int16)


def _box(point: Point, space: CoordinateSpace, size: tuple[int, int], half: int) -> tuple[int, ...]:
    """The pixel box (left, top, right, bottom) of side 2*half around a model point."""
    width, height = size
    x = min(max(point[0] / space.width, 0.0), 1.0) * width
    y = min(max(point[1] / space.height, 0.0), 1.0) * height
    left = int(min(max(x - half, 0), max(width - 2 * half, 0)))
    top = int(min(max(y - half, 0), max(height - 2 * half, 0)))
    return left, top, min(width, left + 2 * half), min(height, top + 2 * half)


def region_difference(recorded: Any, live: Any, point: Point, space: CoordinateSpace) -> float:
    """Share (0..1) of the region around `point` that differs between two PIL screenshots."""
    import numpy as np

    a = _grey(recorded)
    b = _grey(live, (a.shape[1], a.shape[0]))
    half = max(MIN_HALF_PX, round(REGION_SHARE * a.shape[1]))
    left, top, right, bottom = _box(point, space, (a.shape[1], a.shape[0]), half)
    ra, rb = a[top:bottom, left:right], b[top:bottom, left:right]
    if ra.size == 0:
        return 0.0
    return float(np.mean(np.abs(ra - rb) > PIXEL_TOLERANCE))


def step_intent(step: StepRecord, action: Action) -> str:
    """What the step was for: its recorded thinking (bounded) and the action's description."""
    thinking = " ".join(str(step.thinking or "").split())
    if len(thinking) > MAX_INTENT_CHARS:
        thinking = thinking[: MAX_INTENT_CHARS - 3] + "..."
    done = f"The recorded action was {describe(action)}."
    return f"{thinking}\n{done}" if thinking else done


def _png(image: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def heal_messages(
    task: str, intent: str, kind: str, crop: Any, live: ImagePart, absolute: bool
) -> list[ChatMessage]:
    """The one request that re-grounds a step: intent, recorded crop, live screen."""
    ask = (
        f"Task: {task}\n\nA recorded step of this task must be done again, but the screen has "
        f"changed since it was recorded.\nStep: {intent}\n"
        "This is the region around the step's target as it looked when recorded:\n"
    )
    then = (
        f"\nFind that element on the current screen and call computer_use once with the same "
        f"action ({kind}) aimed at it. If it is not on the screen, terminate with status "
        "failure.\nCurrent screen:\n"
    )
    crop_part = ImagePart(_png(crop), crop.width, crop.height)
    return [
        ChatMessage("system", (SYSTEM_PROMPT_ABSOLUTE if absolute else SYSTEM_PROMPT,)),
        ChatMessage("user", (ask, crop_part, then, live)),
    ]


@dataclass
class Healer:
    """Checks and, when needed, re-grounds the pointer actions of one replay.

    `connect` makes the backend on the first request only: a replay whose checks all pass
    starts no model (no worker, no connection). `notes` keeps what happened at each step.
    """

    recording_dir: Path
    connect: Callable[[], Backend]
    task: str = ""
    threshold: float = REGION_THRESHOLD
    max_pixels: int | None = None
    cancel: threading.Event | None = None
    notes: list[HealNote] = field(default_factory=list)
    requests: int = 0
    _backend: Backend | None = None

    def check_and_fix(
        self, step: StepRecord, action: Action, live: Frame, space: CoordinateSpace
    ) -> Fix:
        """The action to run at `step` on the live screen, checked (and re-grounded) first."""
        index = step.index
        points = target_points(action)
        if not points or not step.screenshot:
            note = HealNote(index, False, 0.0)
            self.notes.append(note)
            return Fix(action, note)
        from PIL import Image

        with Image.open(io.BytesIO((self.recording_dir / str(step.screenshot)).read_bytes())) as im:
            recorded = im.convert("RGB")
        live_img = live.to_pil()
        difference = max(region_difference(recorded, live_img, p, space) for p in points)
        if difference <= self.threshold:
            note = HealNote(index, True, difference)
            self.notes.append(note)
            return Fix(action, note)
        healed, error = self._reground(step, action, recorded, live, space, points[0])
        note = HealNote(
            index,
            True,
            difference,
            healed=healed is not None,
            action=action_arguments(healed) if healed is not None else None,
            error=error,
        )
        self.notes.append(note)
        return Fix(healed, note)

    def _reground(
        self,
        step: StepRecord,
        action: Action,
        recorded: Any,
        live: Frame,
        space: CoordinateSpace,
        point: Point,
    ) -> tuple[Action | None, str | None]:
        """Ask the model for the step's action on the live screen; (action, None) or (None, why)."""
        from agent.vision import MAX_PIXELS, prepare

        half = max(MIN_HALF_PX, round(REGION_SHARE * recorded.width)) * CONTEXT_FACTOR
        crop = recorded.crop(_box(point, space, recorded.size, half))
        observation = prepare(live, max_pixels=self.max_pixels or MAX_PIXELS)
        messages = heal_messages(
            self.task,
            step_intent(step, action),
            action.name,
            crop,
            observation.image,
            space.kind == "absolute",
        )
        try:
            if self._backend is None:
                self._backend = self.connect()
            self.requests += 1
            completion = self._backend.complete(messages, [tool_schema(space)], cancel=self.cancel)
        except BackendError as exc:
            return None, f"model backend: {exc}"
        proposal = parse_completion(completion, space)
        if proposal.action is None:
            return None, f"invalid answer: {proposal.error}"
        if type(proposal.action) is not type(action):
            return None, f"it answered {describe(proposal.action)}, not a {action.name}"
        return proposal.action, None

    def summary(self) -> str:
        """How many steps were checked, passed and healed, for the end of a replay."""
        checked = [n for n in self.notes if n.checked]
        healed = [n.index + 1 for n in self.notes if n.healed]
        failed = [n.index + 1 for n in self.notes if n.checked and n.error is not None]
        text = (
            f"{len(checked)} pointer steps checked, {len(checked) - len(healed) - len(failed)} "
            f"as recorded, {len(healed)} re-grounded"
        )
        if healed:
            text += " (steps " + ", ".join(map(str, healed)) + ")"
        if failed:
            text += "; not re-grounded: steps " + ", ".join(map(str, failed))
        return text + f"; {self.requests} model requests"

    def close(self) -> None:
        """Release the backend, if one was made."""
        backend, self._backend = self._backend, None
        if backend is not None:
            backend.close()
