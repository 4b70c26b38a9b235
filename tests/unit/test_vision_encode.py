"""The fast PNG encoder: any size decodes to exactly the input; bands join into one stream."""

from __future__ import annotations

import io
import random
import zlib

import numpy as np
import pytest
from PIL import Image

from actions.screen import Frame, Monitor
from agent.vision import _adler32_combine, encode_png, prepare, visual_tokens


@pytest.mark.parametrize(
    ("width", "height"), [(1, 1), (33, 7), (640, 400), (1920, 1080), (2000, 1500)]
)
@pytest.mark.parametrize("level", [0, 1, 6])
def test_png_round_trips(width: int, height: int, level: int) -> None:
    rng = np.random.default_rng(width * height + level)
    pixels = rng.integers(0, 4, (height, width, 3), dtype=np.uint8) * 60
    pixels[: height // 2] = (236, 236, 236)  # flat regions, as on a screen
    png = encode_png(pixels.tobytes(), width, height, level=level)
    img = Image.open(io.BytesIO(png))
    assert img.mode == "RGB" and img.size == (width, height)
    assert np.array_equal(np.asarray(img), pixels)
    # The one IDAT inflates in full: zlib checks the combined Adler-32 at its end.
    length = int.from_bytes(png[33:37], "big")
    assert png[37:41] == b"IDAT"
    raw = zlib.decompress(png[41 : 41 + length])
    assert len(raw) == height * (width * 3 + 1)


def test_adler32_combine_matches_zlib() -> None:
    rng = random.Random(8)
    for _ in range(300):
        a = rng.randbytes(rng.randint(0, 5000))
        b = rng.randbytes(rng.randint(0, 200_000))
        assert _adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b)) == zlib.adler32(a + b)


def test_prepare_resizes_only_past_max_pixels() -> None:
    mon = Monitor(1, 0, 0, 3840, 2160)
    frame = Frame(bytes(3840 * 2160 * 3), 3840, 2160, mon, 0.0)
    full = prepare(frame)
    assert (full.image.width, full.image.height) == (3840, 2160) and full.tokens == 8160
    small = prepare(frame, max_pixels=1920 * 1080)
    assert small.image.width * small.image.height <= 1920 * 1080
    assert small.tokens == visual_tokens(
        small.image.width, small.image.height, max_pixels=1920 * 1080
    )
    assert Image.open(io.BytesIO(small.image.png)).size == (small.image.width, small.image.height)
