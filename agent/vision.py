"""Screenshot preparation: Qwen's resize rule, visual-token counts, and one PNG encode per step."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

from actions.screen import Frame
from agent.backends.base import ImagePart

PATCH = 16
MERGE = 2
FACTOR = PATCH * MERGE  # one visual token per 32x32 cell
MIN_PIXELS = 65_536
MAX_PIXELS = 16_777_216


def smart_resize(
    width: int, height: int, *, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS
) -> tuple[int, int]:
    """The size Qwen's image processor resizes to: multiples of 32, pixels within bounds."""
    if width <= 0 or height <= 0:
        raise ValueError(f"bad image size {width}x{height}")
    w = max(FACTOR, round(width / FACTOR) * FACTOR)
    h = max(FACTOR, round(height / FACTOR) * FACTOR)
    if w * h > max_pixels:
        beta = math.sqrt(width * height / max_pixels)
        w = max(FACTOR, math.floor(width / beta / FACTOR) * FACTOR)
        h = max(FACTOR, math.floor(height / beta / FACTOR) * FACTOR)
    elif w * h < min_pixels:
        beta = math.sqrt(min_pixels / (width * height))
        w = math.ceil(width * beta / FACTOR) * FACTOR
        h = math.ceil(height * beta / FACTOR) * FACTOR
    return w, h


def visual_tokens(width: int, height: int, *, max_pixels: int = MAX_PIXELS) -> int:
    """Visual tokens Qwen 3.5 spends on an image of this size."""
    w, h = smart_resize(width, height, max_pixels=max_pixels)
    return (w // FACTOR) * (h // FACTOR)


@dataclass(frozen=True, slots=True)
class Observation:
    """What the model is shown for one step: the frame, the image sent, and its token cost."""

    frame: Frame
    image: ImagePart
    model_size: tuple[int, int]  # size after the processor's resize (absolute coordinates)
    tokens: int


def prepare(frame: Frame, *, max_pixels: int = MAX_PIXELS, png_level: int = 1) -> Observation:
    """Downscale past max_pixels, encode PNG once (recorder and backend share the bytes)."""
    from PIL import Image

    img = Image.frombytes("RGB", (frame.width, frame.height), frame.rgb)
    if frame.width * frame.height > max_pixels:
        beta = math.sqrt(frame.width * frame.height / max_pixels)
        size = (max(1, int(frame.width / beta)), max(1, int(frame.height / beta)))
        img = img.resize(size, Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=png_level)
    w, h = img.size
    model_size = smart_resize(w, h, max_pixels=max_pixels)
    tokens = (model_size[0] // FACTOR) * (model_size[1] // FACTOR)
    return Observation(frame, ImagePart(buf.getvalue(), w, h), model_size, tokens)
