"""The one coordinate mapping: model space <-> screen pixels, across layouts and scale factors."""

from __future__ import annotations

import math

import pytest

from actions.screen import (
    CoordinateSpace,
    Monitor,
    image_to_screen,
    model_to_screen,
    screen_to_image,
    screen_to_model,
)

REL = CoordinateSpace.relative()

LAYOUTS = [
    Monitor(1, 0, 0, 1920, 1080, primary=True),
    Monitor(2, 1920, 0, 2560, 1440),
    Monitor(3, -1280, -200, 1280, 1024),  # left of and above the primary: negative origin
    Monitor(4, 0, -1080, 1920, 1080),  # stacked above
    Monitor(5, 0, 0, 1440, 900, scale=2.0),  # HiDPI: 2880x1800 physical, 1440x900 logical
    Monitor(6, 3000, 500, 1707, 960, scale=1.5),  # fractional scaling
]


@pytest.mark.parametrize("mon", LAYOUTS, ids=lambda m: f"mon{m.index}")
def test_corners_and_centre(mon: Monitor) -> None:
    assert model_to_screen((0, 0), REL, mon) == (mon.left, mon.top)
    assert model_to_screen((1000, 1000), REL, mon) == (
        mon.left + mon.width - 1,
        mon.top + mon.height - 1,
    )
    cx, cy = model_to_screen((500, 500), REL, mon)
    assert abs(cx - (mon.left + mon.width / 2)) <= 1
    assert abs(cy - (mon.top + mon.height / 2)) <= 1


@pytest.mark.parametrize("mon", LAYOUTS, ids=lambda m: f"mon{m.index}")
def test_every_pixel_round_trips(mon: Monitor) -> None:
    # The inverse (overlay, replay) must land back on the same pixel for every column/row.
    for sx in range(mon.left, mon.left + mon.width, 7):
        for sy in (mon.top, mon.top + mon.height // 3, mon.top + mon.height - 1):
            p = screen_to_model((sx, sy), REL, mon)
            assert REL.contains(p)
            assert model_to_screen(p, REL, mon) == (sx, sy)


def test_points_stay_on_their_monitor() -> None:
    mon = LAYOUTS[2]
    for v in (0, 0.4, 333.3, 999.9, 1000):
        x, y = model_to_screen((v, v), REL, mon)
        assert mon.left <= x < mon.left + mon.width
        assert mon.top <= y < mon.top + mon.height


def test_absolute_space_is_pixels_of_the_resized_image() -> None:
    mon = Monitor(1, 0, 0, 1920, 1080)
    space = CoordinateSpace.absolute(1280, 736)  # what the processor resized 1920x1080 to
    assert model_to_screen((640, 368), space, mon) == (960, 540)
    assert model_to_screen((1280, 736), space, mon) == (1919, 1079)
    p = screen_to_model((960, 540), space, mon)
    assert space.contains(p)
    assert model_to_screen(p, space, mon) == (960, 540)


def test_hidpi_image_pixels() -> None:
    mon = LAYOUTS[4]  # scale 2
    sx, sy = model_to_screen((500, 500), REL, mon)
    assert (sx, sy) == (720, 450)
    assert screen_to_image((sx, sy), mon) == (1440, 900)
    assert image_to_screen((1440, 900), mon) == (720, 450)
    assert image_to_screen((2879, 1799), mon) == (1439, 899)


def test_non_finite_is_refused() -> None:
    mon = LAYOUTS[0]
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError):
            model_to_screen((bad, 10), REL, mon)


def test_space_contains() -> None:
    assert (
        REL.contains((0, 1000)) and not REL.contains((-0.01, 5)) and not REL.contains((5, 1000.5))
    )
