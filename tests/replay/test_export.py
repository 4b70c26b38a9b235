"""Export: MP4 and GIF decode to the expected frames, HTML is self-contained and escaped."""

from __future__ import annotations

import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from agent.recording import read_run
from tests.replay.conftest import Made

ROOT = Path(__file__).resolve().parents[2]


class Attributes(HTMLParser):
    """Collects the tags and attributes a browser would see."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [(k, v or "") for k, v in attrs]


def export(run_dir: Path, fmt: str, out: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "main.py", "export", str(run_dir), "--format", fmt, "--out", str(out)]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_mp4_has_a_frame_per_tenth_of_a_second_of_each_step(made: Made, tmp_path: Path) -> None:
    import av

    from ui.export import CAPTION_HEIGHT, frame_seconds, video_frame_count

    out = tmp_path / "run.mp4"
    proc = export(made.dir, "mp4", out)
    assert proc.returncode == 0, proc.stderr
    assert "6/6" in proc.stderr  # the progress bar reached the end
    steps = read_run(made.dir).records
    # The fake steps are fast: every one is held for the documented minimum.
    assert all(frame_seconds(s) == 0.5 for s in steps)
    with av.open(str(out)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == sum(video_frame_count(s) for s in steps) == 6 * 5
    assert (frames[0].width, frames[0].height) == (320, 200 + CAPTION_HEIGHT)


def test_gif_has_one_frame_per_step_with_honest_durations(made: Made, tmp_path: Path) -> None:
    from PIL import Image

    out = tmp_path / "run.gif"
    proc = export(made.dir, "gif", out)
    assert proc.returncode == 0, proc.stderr
    with Image.open(out) as gif:
        assert gif.n_frames == 6
        durations = []
        for i in range(gif.n_frames):
            gif.seek(i)
            durations.append(gif.info["duration"])
    assert durations == [500] * 6


def test_html_holds_every_step_fetches_nothing_and_escapes_model_output(
    made: Made, tmp_path: Path
) -> None:
    out = tmp_path / "run.html"
    proc = export(made.dir, "html", out)
    assert proc.returncode == 0, proc.stderr
    page = out.read_text(encoding="utf-8")
    for i in range(6):
        assert f"id='step-{i}'" in page
    assert page.count("src='data:image/png;base64,") == 6
    # No external reference of any kind: every URL attribute of a real tag is a data URL.
    parser = Attributes()
    parser.feed(page)
    refs = [v for name, v in parser.attrs if name in ("src", "href", "action", "poster")]
    assert len(refs) == 6 and all(v.startswith("data:image/png;base64,") for v in refs)
    assert {t for t in parser.tags} <= {
        "html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "p", "b",
        "section", "img", "details", "summary", "pre", "table", "tr", "th", "td",
    }  # fmt: skip
    assert "url(" not in page and "@import" not in page
    # Hostile model output appears only escaped.
    assert "<script>" not in page and '<img src="http' not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<details><summary>Thinking</summary>" in page
    assert "héllo &lt;b&gt;" in page  # the proposed text, escaped


@pytest.mark.parametrize("fmt", ["mp4", "gif", "html"])
def test_a_torn_recording_exports_its_complete_steps(made: Made, fmt: str, tmp_path: Path) -> None:
    path = made.dir / "steps.jsonl"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])
    out = tmp_path / f"run.{fmt}"
    proc = export(made.dir, fmt, out)
    assert proc.returncode == 0, proc.stderr
    assert "torn last line" in proc.stderr and out.stat().st_size > 0
