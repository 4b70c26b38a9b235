"""Overlays land where actions.screen's mapping says, for every kind of action."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import QColor, QImage, QPainter

from actions.screen import (
    CoordinateSpace,
    Monitor,
    image_to_screen,
    model_to_screen,
    screen_to_image,
)
from actions.types import Action, DoubleClick, Key, LeftClick, LeftClickDrag, Scroll, Type
from ui.overlay import ACCENT, CALLOUT_BG, model_to_view, paint_action, view_to_model

# Painting text needs a QGuiApplication (fonts).
pytestmark = pytest.mark.usefixtures("qapp")

REL = CoordinateSpace.relative()
PLAIN = Monitor(1, 0, 0, 1920, 1080, primary=True)
# A HiDPI monitor left of the primary: negative origin, 2 captured pixels per logical pixel.
HIDPI = Monitor(2, -1920, -200, 1920, 1080, scale=2.0)
BLACK = QColor(0, 0, 0)


def render(action: Action, monitor: Monitor, target: QRectF, image_size: tuple[int, int]) -> QImage:
    img = QImage(1000, 700, QImage.Format.Format_RGB32)
    img.fill(BLACK)
    painter = QPainter(img)
    paint_action(painter, action, space=REL, monitor=monitor, target=target, image_size=image_size)
    painter.end()
    return img


def colour_at(img: QImage, p: QPointF) -> QColor:
    return img.pixelColor(int(p.x()), int(p.y()))


def expected_view_point(
    point: tuple[float, float], monitor: Monitor, target: QRectF, image_size: tuple[int, int]
) -> QPointF:
    """The mapping spelled out from actions.screen's functions, independent of the overlay."""
    sx, sy = model_to_screen(point, REL, monitor)
    ix, iy = screen_to_image((sx + 0.5, sy + 0.5), monitor)
    fw, fh = monitor.width * monitor.scale, monitor.height * monitor.scale
    return QPointF(target.x() + ix / fw * target.width(), target.y() + iy / fh * target.height())


def test_click_crosshair_is_at_the_mapped_point_plain_and_hidpi() -> None:
    for monitor, size in ((PLAIN, (1920, 1080)), (HIDPI, (1280, 720))):
        target = QRectF(37, 21, 960, 540)
        point = (250.0, 612.5)
        img = render(LeftClick(point), monitor, target, size)
        at = model_to_view(point, space=REL, monitor=monitor, target=target, image_size=size)
        exp = expected_view_point(point, monitor, target, size)
        assert abs(at.x() - exp.x()) < 1e-6 and abs(at.y() - exp.y()) < 1e-6
        assert colour_at(img, at) == ACCENT
        assert colour_at(img, at + QPointF(60, -60)) == BLACK  # nothing far from the mark


def test_view_to_model_inverts_through_image_to_screen() -> None:
    target = QRectF(10, 10, 960, 540)
    for monitor, size in ((PLAIN, (1920, 1080)), (HIDPI, (1280, 720))):
        pos = QPointF(500.3, 211.7)
        back = view_to_model(pos, space=REL, monitor=monitor, target=target, image_size=size)
        fw = monitor.width * monitor.scale
        ix = (pos.x() - target.x()) * fw / target.width()
        iy = (pos.y() - target.y()) * fw / target.width()
        assert model_to_screen(back, REL, monitor) == image_to_screen((ix, iy), monitor)


def test_double_click_drag_and_scroll_marks() -> None:
    target = QRectF(0, 0, 960, 540)
    size = (1920, 1080)

    def at(p: tuple[float, float]) -> QPointF:
        return model_to_view(p, space=REL, monitor=PLAIN, target=target, image_size=size)

    img = render(DoubleClick((700, 300)), PLAIN, target, size)
    assert colour_at(img, at((700, 300))) == ACCENT

    start, end = (100.0, 200.0), (600.0, 800.0)
    img = render(LeftClickDrag(end, start), PLAIN, target, size)
    a, b = at(start), at(end)
    assert colour_at(img, b) == ACCENT
    mid = (a + b) / 2
    assert colour_at(img, mid) == ACCENT  # the path between start and end

    img = render(Scroll(-3, (500, 500)), PLAIN, target, size)
    p = at((500, 500))
    assert colour_at(img, p) == ACCENT
    assert colour_at(img, p + QPointF(0, 40)) == ACCENT  # arrow pointing down (3 clicks)
    assert colour_at(img, p + QPointF(40, -40)) == BLACK


def test_type_and_key_callouts_hold_the_text() -> None:
    target = QRectF(20, 30, 960, 540)
    for action in (Type("héllo <> 你好"), Key(("ctrl", "a"))):
        img = render(action, PLAIN, target, (1920, 1080))
        assert colour_at(img, QPointF(20 + 15, 30 + 16)) == CALLOUT_BG
        assert colour_at(img, QPointF(900, 500)) == BLACK
