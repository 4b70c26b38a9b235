"""Adaptive settle on a real X server: it waits out an animation, returns soon on a still one.

Settle has no fixed minimum (issue 16): when the app has not reacted at all within
SETTLE_REACTION_S, settle returns and the freshness check catches the late change before the
next action. So the contract checked here: settle never returns while the animation runs
(after its first frame and before its last one).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from actions.screen import SETTLE_REACTION_S, Screen, frame_difference
from tests.support.animate import AnimateApp, start_animate_app
from tests.support.x11 import move_pointer

GEOMETRY = (100, 100, 600, 400)


@pytest.fixture
def animate_app(xdisplay: str, tmp_path: Path) -> Iterator[AnimateApp]:
    """The animate app (500 ms of animation after each click) on the private display."""
    app = start_animate_app(xdisplay, tmp_path / "animate.jsonl", GEOMETRY, duration_s=0.5)
    yield app
    app.close()


def test_settle_waits_until_the_animation_has_ended(xdisplay: str, animate_app: AnimateApp) -> None:
    import pyautogui  # after the display fixture: pyautogui binds DISPLAY at import

    screen = Screen()
    x, y, w, h = GEOMETRY
    move_pointer(xdisplay, x + w // 2, y + h // 2)
    for n in range(1, 4):
        screen.capture()  # as the loop's freshness check does right before each action
        pyautogui.click(x + w // 2, y + h // 2, _pause=False)
        clicked = time.time()
        waited = screen.wait_until_stable(max_s=3.0)  # the defaults: no minimum wait
        returned = time.time()
        end = animate_app.wait_event("anim_end", count=n)[-1]
        start = animate_app.events("anim_start")[-1]
        assert start["t"] >= clicked - 0.05, "the click did not start an animation"
        # Before the app's first frame (a late reaction) or after its last one: never between.
        assert returned < start["t"] or returned >= end["t"], (returned, start, end, waited)
        assert waited < 3.0, "settle ran into its upper bound on an animation that ends"


def test_settle_on_a_still_screen_returns_at_its_lower_bound(
    xdisplay: str, animate_app: AnimateApp
) -> None:
    screen = Screen()
    waits = [screen.wait_until_stable(min_s=0.1, max_s=2.0) for _ in range(5)]
    assert min(waits) >= 0.1
    # Not a timing assertion on speed: it must not have run into the 2 s upper bound.
    assert statistics.median(waits) < 1.0, waits


def test_settle_without_a_minimum_returns_once_quiet(
    xdisplay: str, animate_app: AnimateApp
) -> None:
    screen = Screen()
    waits = [screen.wait_until_stable(max_s=2.0) for _ in range(5)]
    # Nothing changes: one frame of stillness; the bound is only far away, not a timing.
    assert min(waits) >= SETTLE_REACTION_S
    assert statistics.median(waits) < 1.0, waits


def test_settle_gives_up_at_its_upper_bound(xdisplay: str, animate_app: AnimateApp) -> None:
    import pyautogui

    screen = Screen()
    x, y, w, h = GEOMETRY
    screen.capture()  # as the loop's freshness check does right before each action
    pyautogui.click(x + w // 2, y + h // 2, _pause=False)
    animate_app.wait_event("anim_start")
    waited = screen.wait_until_stable(max_s=0.2)
    assert 0.2 <= waited < 0.5  # bounded even while the app still animates
    animate_app.wait_event("anim_end")


def test_frame_difference_counts_changed_pixels() -> None:
    a = bytes(4 * 100)
    b = bytearray(a)
    b[4 * 7] = 1
    b[4 * 9 + 2] = 5
    assert frame_difference(a, a) == 0
    assert frame_difference(a, bytes(b)) == 2
    assert frame_difference(a, a[:-4]) == 100


def test_frame_difference_counts_rgb_pixels_too() -> None:
    a = bytes(3 * 100)
    b = bytearray(a)
    b[3 * 7 + 1] = 1
    b[3 * 9] = b[3 * 9 + 2] = 5  # two channels of one pixel: one pixel
    assert frame_difference(a, bytes(b), bytes_per_pixel=3) == 2
    assert frame_difference(a, a[:-3], bytes_per_pixel=3) == 100
