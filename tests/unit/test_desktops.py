"""The private desktop's option parsing and the calibration's hints, without a display."""

from __future__ import annotations

import pytest

from actions.calibrate import MonitorReport, TargetResult, _hints, targets
from actions.private_desktop import choose_mode, parse_size
from actions.screen import Monitor


def test_desktop_size_parses_and_refuses() -> None:
    assert parse_size("1920x1080") == (1920, 1080)
    assert parse_size("800X600") == (800, 600)
    for bad in ("1920", "x1080", "1920x", "-5x10", "100x100", "99999x1080", "axb"):
        with pytest.raises(ValueError):
            parse_size(bad)


def test_private_means_a_window_only_with_a_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    assert choose_mode("private") == "headless"
    assert choose_mode("user") is None
    assert choose_mode("window") == "window"
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}")
    assert choose_mode("private") == "window"
    with pytest.raises(ValueError):
        choose_mode("elsewhere")


B = Monitor(2, 1920, 176, 1280, 1024, name="B")
A = Monitor(1, 0, 0, 1920, 1080, primary=True, name="A")


def _report(landed: list[tuple[int, int]], monitor: Monitor = B) -> MonitorReport:
    results = tuple(
        TargetResult(place, target, (float(target[0]), float(target[1])), (0.0, 0.0), hit)
        for (place, target), hit in zip(targets(monitor), landed, strict=True)
    )
    return MonitorReport(monitor, monitor, results, ())


def test_hints_name_a_scale_an_offset_and_a_wrong_monitor() -> None:
    spots = [t for _, t in targets(B)]
    assert _hints(_report(spots), [A, B]) == []
    # Every click at 0.8 of its distance from the origin: an unknown 1.25 scale.
    scaled = [
        (B.left + round((x - B.left) * 0.8), B.top + round((y - B.top) * 0.8)) for x, y in spots
    ]
    assert any("scale setting of about 1.25" in h for h in _hints(_report(scaled), [A, B]))
    shifted = [(x + 7, y - 3) for x, y in spots]
    assert any("+7,-3 px off" in h for h in _hints(_report(shifted), [A, B]))
    # Clicks meant for B that land on A (and, A being shorter, below it: in no monitor).
    on_a = [(x - 1920, y) for x, y in spots]
    hints = _hints(_report(on_a), [A, B])
    assert any(
        "meant for monitor 2 landed on a gap between monitors, monitor 1" in h for h in hints
    )
