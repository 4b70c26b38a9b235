"""The runs library (offscreen Qt) and the runs-folder index under it."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from tests.replay.conftest import make_recording
from ui.library import RunsLibrary, replay_command, replay_words
from ui.run_index import NotARecording, delete_run, duration_text, scan_runs, when_text


def shown(library: RunsLibrary) -> list[list[str]]:
    """The visible rows' cells."""
    table = library.table
    return [
        [(item.text() if (item := table.item(r, c)) else "") for c in range(table.columnCount())]
        for r in range(table.rowCount())
        if not table.isRowHidden(r)
    ]


def test_runs_are_listed_newest_first_with_their_facts_and_searched(
    qtbot: Any, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    first = make_recording(runs).dir
    second = make_recording(runs).dir
    info = json.loads((second / "run.json").read_text())
    info["task"] = "rename the report"
    (second / "run.json").write_text(json.dumps(info))
    (runs / "not-a-run").mkdir()  # ignored: no run.json
    library = RunsLibrary(runs, backend_factory=None)
    qtbot.addWidget(library)
    rows = shown(library)
    assert [r[0] for r in rows] == ["rename the report", "save the file"]
    assert rows[1][2:4] == ["success", "6"] and rows[1][5] == "fake-qwen"
    assert rows[1][4].endswith(" s")  # the duration
    chosen = library.selected()
    assert chosen is not None and chosen.dir == second
    assert library.folder_label.text() == f"2 runs in {runs}"
    library.search.setText("SAVE file")
    assert [r[0] for r in shown(library)] == ["save the file"]
    chosen = library.selected()
    assert chosen is not None and chosen.dir == first
    library.search.setText("nothing like this")
    assert shown(library) == [] and library.selected() is None
    assert not library.buttons["Open"].isEnabled() and library.buttons["Refresh"].isEnabled()


def test_delete_asks_first_and_removes_only_the_chosen_run(qtbot: Any, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    keep = make_recording(runs).dir
    doomed = make_recording(runs).dir
    library = RunsLibrary(runs, backend_factory=None)
    qtbot.addWidget(library)
    assert library.select(doomed)

    def answer(button: str) -> None:
        box = next(w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox))
        chosen = next(b for b in box.buttons() if b.text() == button)
        chosen.click()

    QTimer.singleShot(100, lambda: answer("Cancel"))
    library.delete_selected()
    assert doomed.exists()
    QTimer.singleShot(100, lambda: answer("Delete"))
    library.delete_selected()
    assert not doomed.exists() and keep.exists()
    assert [r[0] for r in shown(library)] == ["save the file"]


def test_the_export_dialog_writes_html_with_progress(qtbot: Any, tmp_path: Path) -> None:
    run = make_recording(tmp_path / "runs").dir
    library = RunsLibrary(tmp_path / "runs", backend_factory=None)
    qtbot.addWidget(library)
    dialog = library.export_selected()
    assert dialog is not None
    dialog.format.setCurrentIndex(dialog.format.findData("html"))
    assert dialog.file.text() == str(run / f"{run.name}.html")
    seen: list[int] = []
    dialog.relay.step.connect(lambda done, total: seen.append(done))
    dialog.start()
    qtbot.waitUntil(lambda: dialog.written is not None, timeout=30000)
    assert seen == list(range(7))  # before each of the 6 steps, and at the end
    assert dialog.progress.value() == dialog.progress.maximum() == 6
    text = (run / f"{run.name}.html").read_text(encoding="utf-8")
    assert text.count("<section id='step-") == 6
    dialog.close()


def test_export_into_a_missing_folder_says_so(qtbot: Any, tmp_path: Path) -> None:
    make_recording(tmp_path / "runs")
    library = RunsLibrary(tmp_path / "runs", backend_factory=None)
    qtbot.addWidget(library)
    dialog = library.export_selected()
    assert dialog is not None
    dialog.file.setText(str(tmp_path / "no" / "such" / "folder" / "x.mp4"))
    dialog.start()
    assert dialog.worker is None and dialog.status.text().startswith("Choose a file")


def test_the_index_reads_summaries_and_refuses_to_delete_outside(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    made = make_recording(runs).dir
    (summary,) = scan_runs(runs)
    assert summary.steps == 6 and summary.outcome == "success" and summary.duration_s is not None
    assert summary.matches("save FILE success") and not summary.matches("save invoice")
    broken = runs / "20000101-000000-000000"
    broken.mkdir()
    (broken / "run.json").write_text("{ half")
    assert [s.dir for s in scan_runs(runs)] == [made]  # unreadable run.json: skipped
    outside = tmp_path / "elsewhere"
    shutil.copytree(made, outside)
    with pytest.raises(NotARecording):
        delete_run(runs, outside)
    with pytest.raises(NotARecording):
        delete_run(runs, runs / "missing")
    assert outside.exists()
    assert duration_text(None) == "–" and duration_text(12.34) == "12.3 s"
    assert duration_text(245) == "4 min 05 s" and duration_text(3720) == "1 h 02 min"
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    assert when_text(datetime(2025, 1, 2, 3, 4, tzinfo=UTC), now).startswith("2025-01-0")
    assert when_text(None) == "unknown"


def test_the_replayers_verdict_is_said_in_the_apps_words() -> None:
    line = (
        "deskpilot: replay stopped: step 2: the screen differs from the recording and nobody "
        "is at a terminal to approve it; nothing was executed"
    )
    assert replay_words(line.removeprefix("deskpilot: ")) == (
        "step 2: the screen differs from the recording (a replay from here stops there); "
        "nothing was executed"
    )
    assert replay_words("replay done: replayed 3 actions") == "replayed 3 actions"
    assert replay_command(Path("/runs/r1"))[1:] == [
        "replay", "/runs/r1", "--execute", "--approve", "guarded"
    ]  # fmt: skip
