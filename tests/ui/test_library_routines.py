"""The runs library makes routines, replays them with healing, and records demonstrations."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QInputDialog

from agent.config import RunConfig, cli_args
from agent.recording import read_run
from tests.replay.conftest import make_recording
from ui.library import RunsLibrary


def test_a_run_becomes_a_routine_and_its_healing_replay_asks_for_the_values(
    qtbot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = tmp_path / "runs"
    made = make_recording(runs).dir  # its typed text: "edited <i>" (the user's edit)
    flags = cli_args(RunConfig(backend="openai", endpoint="http://127.0.0.1:9/v1"), ["backend"])
    library = RunsLibrary(runs, backend_factory=None, model_flags=lambda: flags)
    qtbot.addWidget(library)
    assert library.select(made)
    monkeypatch.setattr(
        QInputDialog, "getMultiLineText", lambda *a, **k: ("what=edited <i>\n", True)
    )
    library.make_routine()
    routine = runs / f"{made.name}-routine"
    assert read_run(routine).info["routine"]["params"] == ["what"]
    assert library.selected() is not None and library.selected().dir == routine  # type: ignore[union-attr]
    assert json.loads((made / "run.json").read_text()).get("routine") is None  # unchanged

    started: list[list[str]] = []
    monkeypatch.setattr(library, "_start", lambda args, status, **k: started.append(args))
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("Ann & Bob", True))
    library.replay_selected(heal=True)
    (args,) = started
    assert args[1:4] == ["replay", str(routine), "--execute"]
    assert ["--param", "what=Ann & Bob"] == args[args.index("--param") : args.index("--param") + 2]
    assert args[args.index("--heal") + 1 :] == ["--backend", "openai"]


def test_record_demonstration_records_until_stop(
    qtbot: Any, tmp_path: Path, xdisplay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = tmp_path / "runs"
    monkeypatch.setenv("DISPLAY", xdisplay)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    library = RunsLibrary(runs, backend_factory=None)
    qtbot.addWidget(library)
    assert library.buttons["Record demonstration"].isEnabled()  # no run needs choosing
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("show the form", True))
    library.record_demonstration()
    qtbot.waitUntil(
        lambda: any("recording demonstration to" in x for x in library.replay_lines), timeout=30000
    )
    time.sleep(0.3)
    library.stop_replay()
    qtbot.waitUntil(lambda: library.replay is None, timeout=30000)
    (run,) = [read_run(d) for d in runs.iterdir()]
    assert run.info["task"] == "show the form" and run.info["outcome"] is not None
    assert library.statusBar().currentMessage().startswith("Demonstration recorded")
