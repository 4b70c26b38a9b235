"""Export a recorded run as MP4 (PyAV), GIF (Pillow) or one self-contained HTML page."""

from __future__ import annotations

import base64
import html
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

from actions.types import Action, describe
from agent.recording import INTERRUPTED, Recording, prompt_messages
from agent.records import StepRecord, tool_call_json
from agent.replay import step_geometry as step_space_monitor
from agent.textsafe import one_line, visible

Format = Literal["mp4", "gif", "html"]
FORMATS: tuple[Format, ...] = ("mp4", "gif", "html")

# A step that took 0.05 s would flash by unseen, one that waited 2 minutes for a slow model
# would stall the video: each frame lasts the step's real duration, clamped to these bounds.
MIN_FRAME_S = 0.5
MAX_FRAME_S = 5.0
VIDEO_FPS = 10  # constant frame rate: every player seeks it; durations round to 0.1 s
MAX_VIDEO_WIDTH = 1280  # larger screenshots are scaled down; keeps files and encoding small
CAPTION_HEIGHT = 64
THINKING_EXCERPT = 160

T = TypeVar("T")


class ExportError(RuntimeError):
    """The recording cannot be exported (no steps, unwritable output, missing codec)."""


# --------------------------------------------------------------------------- step helpers


def shown_action(step: StepRecord) -> Action | None:
    """The action to draw for a step: what was executed, else what the model proposed."""
    from agent.protocol import ProtocolError, parse_arguments

    found = step_space_monitor(step)
    args = (step.execution.action if step.execution is not None else None) or step.action
    if found is None or not args:
        return None
    try:
        return parse_arguments(args, found[0])
    except (ProtocolError, ValueError, TypeError):
        return None  # a hand-edited or foreign recording: show no overlay rather than fail


def frame_seconds(step: StepRecord) -> float:
    """How long a step's frame is shown: its real duration within MIN_FRAME_S..MAX_FRAME_S."""
    total = step.timings.get("total_s")
    seconds = float(total) if isinstance(total, int | float) else MIN_FRAME_S
    return min(max(seconds, MIN_FRAME_S), MAX_FRAME_S)


def video_frame_count(step: StepRecord) -> int:
    """Frames a step occupies in the MP4 at VIDEO_FPS."""
    return max(1, round(frame_seconds(step) * VIDEO_FPS))


def caption_lines(step: StepRecord, total: int) -> tuple[str, str]:
    """Two caption lines: step, action, decision and time; then thinking or the error."""
    action = shown_action(step)
    what = describe(action) if action is not None else "no valid action"
    kind = step.decision.kind if step.decision is not None else None
    how = f" [{kind}]" if kind not in (None, "approve") else ""
    secs = step.timings.get("total_s")
    took = f"  {secs:.1f} s" if isinstance(secs, int | float) else ""
    first = f"step {step.index + 1}/{total}: {what}{how}{took}"
    problem = step.parse_error or step.error
    if step.interrupted:  # its last line is "executing": the process died mid-action
        problem = f"{INTERRUPTED}{f' ({problem})' if problem else ''}"
    second = f"! {problem}" if problem else step.thinking
    # Model text, drawn into frames and shown in the viewer: controls made visible.
    return one_line(first, 200), one_line(second, THINKING_EXCERPT)


# --------------------------------------------------------------------------- Qt rendering


def ensure_gui() -> Any:
    """A QGuiApplication for fonts; offscreen unless one already runs (the app, the viewer)."""
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance()
    if app is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # export never opens a window
        app = QGuiApplication(sys.argv[:1])
    return app


def render_step(
    recording: Recording, step: StepRecord, size: tuple[int, int], *, caption: bool = True
) -> Any:
    """A QImage of size: the step's screenshot (fitted) with its overlay and caption."""
    from PySide6.QtCore import QRectF, Qt
    from PySide6.QtGui import QColor, QFont, QImage, QPainter

    from ui.overlay import paint_action

    ensure_gui()
    width, height = size
    out = QImage(width, height, QImage.Format.Format_RGB888)
    out.fill(QColor(32, 32, 32))
    painter = QPainter(out)
    try:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        shot_h = height - (CAPTION_HEIGHT if caption else 0)
        shot = QImage()
        if step.screenshot:
            shot.load(str(recording.dir / step.screenshot))
        if not shot.isNull() and shot_h > 0:
            scale = min(width / shot.width(), shot_h / shot.height())
            w, h = shot.width() * scale, shot.height() * scale
            target = QRectF((width - w) / 2, (shot_h - h) / 2, w, h)
            painter.drawImage(target, shot)
            action = shown_action(step)
            found = step_space_monitor(step)
            if action is not None and found is not None:
                paint_action(
                    painter,
                    action,
                    space=found[0],
                    monitor=found[1],
                    target=target,
                    image_size=(shot.width(), shot.height()),
                )
        if caption:
            total = int(recording.info.get("steps") or len(recording.steps))
            total = max(total, len(recording.steps))
            first, second = caption_lines(step, total)
            painter.fillRect(QRectF(0, shot_h, width, CAPTION_HEIGHT), QColor(0, 0, 0))
            font = QFont()
            font.setPixelSize(18)
            painter.setFont(font)
            painter.setPen(QColor(255, 255, 255))
            flags = int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
            painter.drawText(QRectF(10, shot_h + 4, width - 20, 28), flags, first)
            font.setPixelSize(15)
            painter.setFont(font)
            painter.setPen(QColor(200, 200, 200))
            painter.drawText(QRectF(10, shot_h + 32, width - 20, 28), flags, second)
    finally:
        painter.end()
    return out


def frame_size(recording: Recording) -> tuple[int, int]:
    """Video/GIF frame size: the first screenshot scaled to MAX_VIDEO_WIDTH, plus the caption."""
    from PySide6.QtGui import QImageReader

    w, h = 1280, 720
    for step in recording.records:
        if step.screenshot:
            found = QImageReader(str(recording.dir / step.screenshot)).size()
            if found.isValid():
                w, h = found.width(), found.height()
                break
    if w > MAX_VIDEO_WIDTH:
        w, h = MAX_VIDEO_WIDTH, round(h * MAX_VIDEO_WIDTH / w)
    # yuv420p needs even sizes.
    return w - w % 2, (h + CAPTION_HEIGHT) - (h + CAPTION_HEIGHT) % 2


def qimage_rgb(image: Any) -> Any:
    """A QImage as an HxWx3 uint8 numpy array (copied, so the QImage may go)."""
    import numpy as np
    from PySide6.QtGui import QImage

    img = image.convertToFormat(QImage.Format.Format_RGB888)
    w, h, bpl = img.width(), img.height(), img.bytesPerLine()
    arr = np.frombuffer(bytes(img.constBits()), dtype=np.uint8).reshape(h, bpl)
    return arr[:, : w * 3].reshape(h, w, 3).copy()


def qimage_png(image: Any) -> bytes:
    """A QImage encoded as PNG."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice

    data = QByteArray()
    buf = QBuffer(data)
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buf, "PNG")
    buf.close()
    return bytes(data.data())


# --------------------------------------------------------------------------- progress


def progress(items: list[T], desc: str) -> Iterator[T]:
    """Iterate with a terminal progress bar (tqdm when installed, else a plain counter)."""
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    if tqdm is not None:
        yield from tqdm(items, desc=desc, unit="step", file=sys.stderr, leave=True)
        return
    n = len(items)
    for i, item in enumerate(items, start=1):
        yield item
        end = "\n" if i == n else ""
        sys.stderr.write(f"\r{desc}: {i}/{n}{end}")
        sys.stderr.flush()


# --------------------------------------------------------------------------- writers


def export_run(
    recording: Recording,
    fmt: Format,
    out: Path,
    *,
    show_progress: bool = True,
    on_step: Callable[[int, int], None] | None = None,
) -> Path:
    """Write the recording to out in the given format; returns out.

    on_step(done, total) is called before each step is rendered and once at the end (the
    app's progress bar); an exception raised there cancels the export and leaves no file.
    """
    if not recording.records:
        raise ExportError("the recording has no complete step to export")
    steps = list(recording.records)
    items: Iterable[StepRecord] = progress(steps, f"export {fmt}") if show_progress else steps
    if on_step is not None:
        items = _reporting(items, len(steps), on_step)
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")  # a crash leaves no half file under the real name
    try:
        if fmt == "mp4":
            _write_mp4(recording, items, tmp)
        elif fmt == "gif":
            _write_gif(recording, items, tmp)
        elif fmt == "html":
            tmp.write_text(render_html(recording, items), encoding="utf-8")
        else:
            raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _reporting(items: Iterable[T], total: int, on_step: Callable[[int, int], None]) -> Iterator[T]:
    """Iterate, telling on_step how many items are done before each and at the end."""
    done = 0
    for item in items:
        on_step(done, total)
        yield item
        done += 1
    on_step(done, total)


def _video_codec() -> str:
    """The best H.264 encoder PyAV's build has, else MPEG-4 part 2."""
    import av

    for name in ("libx264", "h264", "mpeg4"):
        if name in av.codecs_available:
            try:
                av.codec.Codec(name, "w")
                return name
            except Exception:  # listed but without an encoder in this build
                continue
    raise ExportError("PyAV has no H.264 or MPEG-4 encoder")


def _write_mp4(recording: Recording, steps: Iterable[StepRecord], out: Path) -> None:
    """Constant-rate MP4: each step's frame repeated for its (clamped) duration."""
    import av

    size = frame_size(recording)
    with av.open(str(out), mode="w", format="mp4") as container:
        stream = container.add_stream(_video_codec(), rate=VIDEO_FPS)
        assert isinstance(stream, av.video.stream.VideoStream)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        if stream.codec_context.name == "libx264":
            stream.options = {"preset": "veryfast", "crf": "23"}
        for step in steps:
            rgb = qimage_rgb(render_step(recording, step, size))
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            for _ in range(video_frame_count(step)):
                for packet in stream.encode(frame):
                    container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def _write_gif(recording: Recording, steps: Iterable[StepRecord], out: Path) -> None:
    """Animated GIF, one frame per step, each lasting the step's (clamped) duration."""
    from PIL import Image

    size = frame_size(recording)
    frames: list[Image.Image] = []
    durations: list[int] = []
    for step in steps:
        rgb = qimage_rgb(render_step(recording, step, size))
        frames.append(Image.fromarray(rgb).quantize(colors=256, method=Image.Quantize.MEDIANCUT))
        durations.append(round(frame_seconds(step) * 1000))
    frames[0].save(
        out,
        format="GIF",
        save_all=True,
        append_images=frames[1:],
        duration=durations,
        loop=0,
        disposal=1,
        optimize=False,  # optimizing may merge identical frames: one frame per step stays true
    )


# --------------------------------------------------------------------------- HTML

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:16px;
background:#fafafa;color:#222}
header{border-bottom:1px solid #ccc;margin-bottom:16px}
section{background:#fff;border:1px solid #ddd;border-radius:6px;margin:0 0 18px;padding:12px}
img{max-width:100%;border:1px solid #ccc}
pre{white-space:pre-wrap;word-break:break-word;background:#f3f3f3;padding:8px;margin:4px 0}
.err{color:#a00}.meta{color:#555;font-size:12px}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:2px 6px;text-align:left}
"""

# Nothing may be fetched: the page carries everything, and the browser is told so.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _esc(value: object) -> str:
    """Model output and recorded text are hostile: escape everything, quotes included, and
    show controls, bidi overrides and invisible characters (agent/textsafe.py)."""
    return html.escape(visible(str(value)), quote=True)


def _pre(value: object) -> str:
    """A value in a <pre>, JSON for structures."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=1)
    return f"<pre>{_esc(text)}</pre>"


def _data_url(png: bytes) -> str:
    """PNG bytes as a data URL."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def render_html(recording: Recording, steps: Iterable[StepRecord]) -> str:
    """One self-contained page: every step with its overlaid screenshot and everything recorded."""
    info = recording.info
    outcome = info.get("outcome") or {}
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<meta http-equiv='Content-Security-Policy' content=\"{_CSP}\">",
        f"<title>deskpilot run {_esc(info.get('run_id', ''))}</title><style>{_CSS}</style>",
        "</head><body><header>",
        f"<h1>{_esc(info.get('task', ''))}</h1>",
        "<p class='meta'>",
        f"run {_esc(info.get('run_id', ''))} · model {_esc(info.get('model', ''))} · ",
        f"started {_esc(info.get('started_at', ''))} · ended {_esc(info.get('ended_at'))} · ",
        f"outcome <b>{_esc(outcome.get('status'))}</b>: {_esc(outcome.get('message'))}",
        "</p>",
    ]
    if outcome.get("answer") is not None:
        parts.append(f"<p>Answer: {_esc(outcome['answer'])}</p>")
    parts.append(_redacted_html(info.get("redacted")))
    for warning in recording.warnings:
        parts.append(f"<p class='err'>warning: {_esc(warning)}</p>")
    parts.append("</header>")
    for step in steps:
        parts.append(_step_html(recording, step))
    parts.append("</body></html>\n")
    return "".join(parts)


def _step_html(recording: Recording, step: StepRecord) -> str:
    """One step's section."""
    index = step.index
    action = shown_action(step)
    title = describe(action) if action is not None else "no valid action"
    out = [f"<section id='step-{index}'><h2>Step {index + 1}: {_esc(title)}</h2>"]
    if step.screenshot:
        image = render_step(recording, step, _html_size(recording, step.screenshot), caption=False)
        out.append(f"<img alt='step {index + 1} screenshot' src='{_data_url(qimage_png(image))}'>")
    out.append(_redacted_html(step.redacted))
    if step.interrupted:
        out.append(f"<p class='err'>{_esc(INTERRUPTED)}</p>")
    for problem, label in ((step.parse_error, "Parse error"), (step.error, "Error")):
        if problem:
            out.append(f"<p class='err'>{label}: {_esc(problem)}</p>")
    if step.thinking:
        out.append(f"<details><summary>Thinking</summary>{_pre(step.thinking)}</details>")
    out.append(f"<details><summary>Raw output</summary>{_pre(step.raw_output)}")
    if step.tool_calls:
        out.append(_pre([tool_call_json(c) for c in step.tool_calls]))
    out.append("</details>")
    rows: list[tuple[str, object]] = [
        ("proposed action", step.action),
        ("decision", None if step.decision is None else step.decision.to_json()),
        ("execution", None if step.execution is None else step.execution.to_json()),
        ("result", step.result),
        ("tokens", step.tokens),
        ("timings", step.timings),
    ]
    out.append("<table>")
    for name, value in rows:
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        out.append(f"<tr><th>{_esc(name)}</th><td>{_esc(shown)}</td></tr>")
    out.append("</table>")
    messages = prompt_messages(recording, index)
    if messages is not None:
        out.append(f"<details><summary>Prompt ({len(messages)} messages)</summary>")
        for msg in messages:
            text = "".join(
                p["text"] if p["type"] == "text" else f"[image {p.get('path')}]"
                for p in msg["content"]
            )
            # Qwen 3.5's native shape: the call is in tool_calls, not in the text.
            text += "".join(
                f"[tool call {c.get('name')}: {c.get('arguments')}]"
                for c in msg.get("tool_calls") or ()
            )
            out.append(f"<p class='meta'>{_esc(msg['role'])}</p>{_pre(text)}")
        out.append("</details>")
    out.append("</section>")
    return "".join(out)


def _redacted_html(reasons: object) -> str:
    """Why text shows as [REDACTED] (the recorder stores reasons, never the text)."""
    if not isinstance(reasons, list) or not reasons:
        return ""
    return f"<p class='meta'>Redacted: {_esc('; '.join(str(r) for r in reasons))}</p>"


def _html_size(recording: Recording, screenshot: str) -> tuple[int, int]:
    """The screenshot's own size (HTML keeps full resolution)."""
    from PySide6.QtGui import QImageReader

    found = QImageReader(str(recording.dir / screenshot)).size()
    return (found.width(), found.height()) if found.isValid() else (1280, 720)
