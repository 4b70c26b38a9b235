"""Draws a proposed action on the screenshot it refers to (live view, replay viewer, export).

Every coordinate goes through actions.screen's one mapping: model_to_screen, then
screen_to_image (and back through image_to_screen, screen_to_model); this module only scales
the captured image's pixels to the rectangle the picture is drawn in.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPainterPath, QPen, QPolygonF

from actions.keys import chord_text
from actions.screen import (
    CoordinateSpace,
    Monitor,
    image_to_screen,
    model_to_screen,
    screen_to_image,
    screen_to_model,
)
from actions.types import (
    Action,
    Answer,
    DoubleClick,
    HScroll,
    Key,
    LeftClick,
    LeftClickDrag,
    MiddleClick,
    MouseMove,
    Point,
    RightClick,
    Scroll,
    Terminate,
    TripleClick,
    Type,
    Wait,
    action_points,
)
from agent.textsafe import one_line, quote, visible

ACCENT = QColor(255, 0, 170)  # magenta: rare on desktops, so the mark stands out
HALO = QColor(255, 255, 255)
CALLOUT_BG = QColor(20, 20, 40)
CALLOUT_FG = QColor(255, 255, 255)
CALLOUT_MARGIN = 12.0


def _frame_size(monitor: Monitor) -> tuple[float, float]:
    """Size of the captured image in pixels (logical size times the HiDPI scale)."""
    return monitor.width * monitor.scale, monitor.height * monitor.scale


def model_to_view(
    point: Point,
    *,
    space: CoordinateSpace,
    monitor: Monitor,
    target: QRectF,
    image_size: tuple[int, int],
) -> QPointF:
    """Where a model point lands in a picture of image_size pixels drawn into target."""
    sx, sy = model_to_screen(point, space, monitor)
    # The centre of the screen pixel the action hits, in captured-image pixels.
    ix, iy = screen_to_image((sx + 0.5, sy + 0.5), monitor)
    fw, fh = _frame_size(monitor)
    px, py = ix * image_size[0] / fw, iy * image_size[1] / fh
    return QPointF(
        target.x() + px * target.width() / image_size[0],
        target.y() + py * target.height() / image_size[1],
    )


def view_to_model(
    pos: QPointF,
    *,
    space: CoordinateSpace,
    monitor: Monitor,
    target: QRectF,
    image_size: tuple[int, int],
) -> Point:
    """The model point for a position in the drawn picture (the inverse of model_to_view)."""
    px = (pos.x() - target.x()) * image_size[0] / target.width()
    py = (pos.y() - target.y()) * image_size[1] / target.height()
    fw, fh = _frame_size(monitor)
    ix = min(max(px * fw / image_size[0], 0.0), fw - 1e-6)
    iy = min(max(py * fh / image_size[1], 0.0), fh - 1e-6)
    screen = image_to_screen((ix, iy), monitor)
    x, y = screen_to_model(screen, space, monitor)
    # A model names points with one decimal at most; keep edits as readable as its output.
    return (round(x, 1), round(y, 1))


def action_point(action: Action) -> Point | None:
    """The point an action acts at (the end point for a drag), if it has one."""
    points = action_points(action)
    return points[-1] if points else None


def paint_action(
    painter: QPainter,
    action: Action,
    *,
    space: CoordinateSpace,
    monitor: Monitor,
    target: QRectF,
    image_size: tuple[int, int],
) -> None:
    """Draw one action over a screenshot already painted into target."""

    def at(point: Point) -> QPointF:
        return model_to_view(
            point, space=space, monitor=monitor, target=target, image_size=image_size
        )

    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    try:
        match action:
            case LeftClick() | RightClick() | MiddleClick() | DoubleClick() | TripleClick():
                p = at(action.coordinate)
                _crosshair(painter, p)
                _label(painter, p, f"{action.spec.button} ×{action.spec.clicks}")
            case MouseMove(coordinate=c):
                p = at(c)
                _crosshair(painter, p)
                _label(painter, p, "move")
            case LeftClickDrag(coordinate=end, start_coordinate=start):
                q = at(end)
                if start is not None:
                    _arrow(painter, at(start), q)
                _crosshair(painter, q)
                _label(painter, q, "drag to" if start is not None else "drag from pointer to")
            case Scroll(pixels=n, coordinate=c) | HScroll(pixels=n, coordinate=c):
                p = at(c) if c is not None else target.center()
                vertical = isinstance(action, Scroll)
                if vertical:
                    way = "up" if n > 0 else "down"
                    dx, dy = 0.0, (-1.0 if n > 0 else 1.0)
                else:
                    way = "right" if n > 0 else "left"
                    dx, dy = (1.0 if n > 0 else -1.0), 0.0
                length = 24.0 + 8.0 * min(abs(n), 10)
                _arrow(painter, p, QPointF(p.x() + dx * length, p.y() + dy * length))
                _crosshair(painter, p)
                _label(painter, p, f"scroll {way} {abs(n)}")
            case Type(text=text):
                # Newlines too are shown: a newline typed into a terminal runs the line.
                _callout(painter, target, "type: " + quote(visible(text, keep=""), 200))
            case Key(keys=keys):
                _callout(painter, target, "key: " + visible(chord_text(keys), keep=""))
            case Wait(time=t):
                _callout(painter, target, f"wait {t:g} s")
            case Terminate(status=s):
                _callout(painter, target, f"terminate: {s}")
            case Answer(text=text):
                _callout(painter, target, "answer: " + one_line(text, 200))
    finally:
        painter.restore()


def _crosshair(painter: QPainter, p: QPointF, radius: float = 11.0) -> None:
    """A ringed crosshair whose centre pixel is exactly the target point."""
    for colour, width in ((HALO, 5.0), (ACCENT, 2.0)):
        painter.setPen(QPen(colour, width))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawEllipse(p, radius, radius)
        painter.drawLine(QPointF(p.x() - 2 * radius, p.y()), QPointF(p.x() + 2 * radius, p.y()))
        painter.drawLine(QPointF(p.x(), p.y() - 2 * radius), QPointF(p.x(), p.y() + 2 * radius))


def _arrow(painter: QPainter, a: QPointF, b: QPointF) -> None:
    """A line from a to b with a head at b."""
    angle = math.atan2(b.y() - a.y(), b.x() - a.x())
    head = QPolygonF(
        [
            b,
            QPointF(b.x() - 14 * math.cos(angle - 0.4), b.y() - 14 * math.sin(angle - 0.4)),
            QPointF(b.x() - 14 * math.cos(angle + 0.4), b.y() - 14 * math.sin(angle + 0.4)),
        ]
    )
    path = QPainterPath(a)
    path.lineTo(b)
    for colour, width in ((HALO, 6.0), (ACCENT, 3.0)):
        painter.setPen(QPen(colour, width))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(path)
        painter.setBrush(colour)
        painter.drawPolygon(head)
    painter.setPen(QPen(ACCENT, 2.0))
    painter.setBrush(HALO)
    painter.drawEllipse(a, 5.0, 5.0)


def _label(painter: QPainter, p: QPointF, text: str) -> None:
    """A small tag beside a point."""
    font = QFont(painter.font())
    font.setBold(True)
    painter.setFont(font)
    fm = QFontMetricsF(font)
    box = QRectF(p.x() + 16, p.y() + 14, fm.horizontalAdvance(text) + 10, fm.height() + 4)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(ACCENT)
    painter.drawRoundedRect(box, 4, 4)
    painter.setPen(CALLOUT_FG)
    painter.drawText(box, Qt.AlignmentFlag.AlignCenter, text)


def _callout(painter: QPainter, target: QRectF, text: str) -> None:
    """A box at the picture's top-left holding the exact text or keys."""
    font = QFont(painter.font())
    font.setPointSizeF(max(font.pointSizeF(), 10.0) * 1.2)
    painter.setFont(font)
    width = max(target.width() - 2 * CALLOUT_MARGIN, 40.0)
    flags = Qt.TextFlag.TextWrapAnywhere
    fm = QFontMetricsF(font)
    inner = fm.boundingRect(QRectF(0, 0, width - 20, 10_000), int(flags), text)
    box = QRectF(
        target.x() + CALLOUT_MARGIN,
        target.y() + CALLOUT_MARGIN,
        min(width, inner.width() + 20),
        inner.height() + 14,
    )
    painter.setPen(QPen(ACCENT, 2.0))
    painter.setBrush(CALLOUT_BG)
    painter.drawRoundedRect(box, 6, 6)
    painter.setPen(CALLOUT_FG)
    painter.drawText(box.adjusted(10, 7, -10, -7), int(flags), text)
