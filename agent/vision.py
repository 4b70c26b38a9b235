"""Screenshot preparation: Qwen's resize rule, visual-token counts, and one PNG encode per step."""

from __future__ import annotations

import math
import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
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


# zlib releases the GIL, so bands of one image compress in parallel (pigz's trick): each band
# is a raw deflate stream ended on a byte boundary (Z_SYNC_FLUSH), the last one finished; the
# concatenation is one valid stream. Bands below this size are not worth a thread hand-off.
_MIN_BAND_BYTES = 1 << 20
_BANDS = max(1, min(4, os.cpu_count() or 1))
_pool: ThreadPoolExecutor | None = None
_ADLER_BASE = 65521


def _adler32_combine(a1: int, a2: int, len2: int) -> int:
    """Adler-32 of A+B from those of A and B (zlib's adler32_combine, absent from Python)."""
    rem = len2 % _ADLER_BASE
    sum1 = a1 & 0xFFFF
    sum2 = (rem * sum1) % _ADLER_BASE
    sum1 += (a2 & 0xFFFF) + _ADLER_BASE - 1
    sum2 += ((a1 >> 16) & 0xFFFF) + ((a2 >> 16) & 0xFFFF) + _ADLER_BASE - rem
    sum1 %= _ADLER_BASE
    sum2 %= _ADLER_BASE
    return sum1 | (sum2 << 16)


def _deflate_band(data: memoryview, level: int, last: bool) -> tuple[bytes, int]:
    """One band as raw deflate, byte-aligned so that bands concatenate, and its Adler-32."""
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    deflated = c.compress(data) + c.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)
    return deflated, zlib.adler32(data)


def _zlib_parallel(data: memoryview, level: int) -> bytes:
    """zlib.compress(data, level), split into bands compressed on several cores."""
    global _pool
    n = min(_BANDS, max(1, len(data) // _MIN_BAND_BYTES))
    if n == 1:
        return zlib.compress(data, level)
    if _pool is None:
        _pool = ThreadPoolExecutor(_BANDS, thread_name_prefix="deskpilot-png")
    size = -(-len(data) // n)
    bands = [data[i * size : (i + 1) * size] for i in range(n)]
    parts = list(_pool.map(_deflate_band, bands, [level] * n, [i == n - 1 for i in range(n)]))
    adler = parts[0][1]
    for band, (_, a) in zip(bands[1:], parts[1:], strict=True):
        adler = _adler32_combine(adler, a, len(band))
    # zlib header for the default window, the bands, then the Adler-32 of the whole input.
    return b"\x78\x01" + b"".join(p for p, _ in parts) + struct.pack(">I", adler)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return (
        struct.pack(">I", len(body))
        + kind
        + body
        + struct.pack(">I", zlib.crc32(body, zlib.crc32(kind)))
    )


def encode_png(rgb: bytes, width: int, height: int, *, level: int = 1) -> bytes:
    """RGB bytes as a PNG: no row filter, zlib in parallel bands.

    Screens are mostly flat colour, so unfiltered rows deflate to about the size Pillow's
    adaptive filters reach, in a third of the time (and level 0 gives an uncompressed PNG).
    """
    import numpy as np

    rows = np.empty((height, width * 3 + 1), dtype=np.uint8)
    rows[:, 0] = 0  # filter type None on every row
    rows[:, 1:] = np.frombuffer(rgb, dtype=np.uint8, count=width * height * 3).reshape(
        height, width * 3
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", _zlib_parallel(rows.data.cast("B"), level)),
            _chunk(b"IEND", b""),
        )
    )


def model_image_size(width: int, height: int, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """The size we send: the captured size, scaled down (aspect kept) past max_pixels."""
    if width * height <= max_pixels:
        return width, height
    beta = math.sqrt(width * height / max_pixels)
    return max(1, int(width / beta)), max(1, int(height / beta))


def prepare(frame: Frame, *, max_pixels: int = MAX_PIXELS, png_level: int = 1) -> Observation:
    """Downscale only past max_pixels and encode PNG once (recorder and backend share it)."""
    w, h = model_image_size(frame.width, frame.height, max_pixels)
    rgb = frame.rgb
    if (w, h) != (frame.width, frame.height):
        from PIL import Image

        img = Image.frombytes("RGB", (frame.width, frame.height), frame.rgb)
        # reduce() first (integer box filter, fast) so the bilinear pass works on a small image.
        factor = min(frame.width // w, frame.height // h)
        if factor >= 2:
            img = img.reduce(factor)
        rgb = img.resize((w, h), Image.Resampling.BILINEAR).tobytes()
    png = encode_png(rgb, w, h, level=png_level)
    model_size = smart_resize(w, h, max_pixels=max_pixels)
    tokens = (model_size[0] // FACTOR) * (model_size[1] // FACTOR)
    return Observation(frame, ImagePart(png, w, h), model_size, tokens)
