"""Bench helpers: a private Xvfb showing a desktop-like picture, and the scripted model server."""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def desktop_picture(width: int, height: int, path: Path, seed: int = 8) -> Path:
    """A busy desktop: a panel, windows with title bars, lines of text, buttons."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    img = Image.new("RGB", (width, height), (58, 110, 165))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, width, 28), fill=(40, 40, 40))
    draw.text((10, 8), "Activities    Files    Terminal    12:34", fill="white")
    words = "file edit view the quick brown fox jumps over lazy dog 0123456789 save open".split()
    for _ in range(6):
        w, h = rng.randint(width // 4, width // 2), rng.randint(height // 4, height // 2)
        x, y = rng.randint(0, width - w), rng.randint(30, height - h)
        draw.rectangle((x, y, x + w, y + h), fill=(245, 245, 245), outline=(90, 90, 90))
        draw.rectangle((x, y, x + w, y + 24), fill=(220, 220, 225))
        draw.text((x + 8, y + 6), " ".join(rng.choices(words, k=4)), fill="black")
        for ty in range(y + 34, y + h - 16, 16):
            line = " ".join(rng.choices(words, k=rng.randint(2, max(3, w // 45))))
            draw.text((x + 10, ty), line, fill=(rng.randint(0, 80),) * 3)
        draw.rectangle((x + w - 90, y + h - 34, x + w - 12, y + h - 10), fill=(200, 220, 255))
    img.save(path)
    return path


@contextmanager
def private_desktop(width: int, height: int, *, picture: bool = True) -> Iterator[str]:
    """A private Xvfb (with a full-screen desktop picture unless not wanted); DISPLAY set here."""
    from tests.support.animate import start_animate_app
    from tests.support.x11 import start_xvfb

    saved = os.environ.get("DISPLAY")
    server = start_xvfb(width, height)  # XAUTHORITY holds its cookie until it closes
    os.environ["DISPLAY"] = server.display
    try:
        with tempfile.TemporaryDirectory(prefix="deskpilot-bench-x-") as tmp:
            app = None
            if picture:
                image = desktop_picture(width, height, Path(tmp) / "desktop.png")
                app = start_animate_app(
                    server.display, Path(tmp) / "app.jsonl", (0, 0, width, height), image=image
                )
            try:
                yield server.display
            finally:
                if app is not None:
                    app.close()
    finally:
        server.close()
        if saved is None:
            os.environ.pop("DISPLAY", None)
        else:
            os.environ["DISPLAY"] = saved
