"""The runs library: every recording listed, searched, opened, replayed, exported or deleted."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, MutableSet
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, Qt, QUrl, Signal
from PySide6.QtGui import QCloseEvent, QDesktopServices, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from agent.recording import read_run
from agent.textsafe import one_line, visible
from ui.app_text import app_words
from ui.debugger import BackendFactory, Debugger, recorded_backend
from ui.export import FORMATS, ExportError, export_run
from ui.run_index import RunSummary, delete_run, duration_text, scan_runs, when_text
from ui.widgets import ControlBar, fit_window, plain_label, plain_tip

REPO = Path(__file__).resolve().parent.parent
COLUMNS = ("Task", "When", "Outcome", "Steps", "Duration", "Model")
EXPORT_FORMATS = {
    "mp4": "MP4 video",
    "gif": "GIF animation",
    "html": "HTML page (one self-contained file)",
}


def subprocess_result(args: list[str]) -> str:
    """Run a quick deskpilot command (a routine's copy); its last line, in the app's words."""
    proc = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=120, check=False
    )
    lines = [x for x in (proc.stderr + proc.stdout).splitlines() if x.strip()]
    last = lines[-1].removeprefix("deskpilot: ") if lines else f"exit status {proc.returncode}"
    return one_line(last, 300)


def replay_command(run_dir: Path) -> list[str]:
    """The CLI that replays a recording on this desktop, as the library runs it.

    Guarded: safe steps on an unchanged screen run; a risky step or a screen that differs
    from the recording ends the replay (nobody sits at its terminal to approve), and blocked
    steps never run.
    """
    return [str(REPO / "main.py"), "replay", str(run_dir), "--execute", "--approve", "guarded"]


SORT_ROLE = Qt.ItemDataRole.UserRole + 1


class _Cell(QTableWidgetItem):
    """A table cell that sorts by its SORT_ROLE value when it has one, else by its text."""

    def __lt__(self, other: QTableWidgetItem) -> bool:
        mine, theirs = self.data(SORT_ROLE), other.data(SORT_ROLE)
        if isinstance(mine, float) and isinstance(theirs, float):
            return mine < theirs
        return self.text().casefold() < other.text().casefold()


def replay_words(line: str) -> str:
    """The replayer's last line as the library says it: no "replay stopped: " twice, and
    no terminal (a replay started here stops where it would need someone's approval)."""
    import re

    text = re.sub(r"^replay (?:stopped|done): ", "", line.strip())
    text = text.replace(
        " and nobody is at a terminal to approve it", " (a replay from here stops there)"
    )
    return app_words(text)


class _ExportRelay(QObject):
    """Carries export progress and its end from the export thread to the GUI thread."""

    step = Signal(int, int)
    done = Signal(str, bool)  # message, ok


class _Cancelled(Exception):
    """The export dialog closed mid-export."""


class ExportDialog(QDialog):
    """Choose a format and a file, then export with a progress bar (off the GUI thread)."""

    def __init__(self, run: RunSummary, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.run = run
        self.setWindowTitle(f"Export run: {one_line(run.task, 60)}")
        self.format = QComboBox()
        for key, label in EXPORT_FORMATS.items():
            self.format.addItem(label, key)
        self.format.setAccessibleName("Format")
        self.format.setToolTip("MP4 and GIF show each step for its real duration (0.5-5 s)")
        self.file = QLineEdit(str(run.dir / f"{run.run_id}.mp4"))
        self.file.setAccessibleName("File")
        self.file.setToolTip("Where the export is written (replaced if it exists)")
        browse = QPushButton("Browse…")
        browse.setAccessibleName("Browse…")
        browse.setToolTip("Choose the file to write")
        browse.clicked.connect(self._browse)
        self.progress = QProgressBar()
        self.progress.setAccessibleName("Export progress")
        self.progress.setRange(0, max(1, run.steps))
        self.progress.setValue(0)
        self.status = plain_label("")
        self.status.setWordWrap(True)
        self.status.setAccessibleName("Export status")
        self.export_button = QPushButton("Export")
        self.export_button.setAccessibleName("Export")
        self.export_button.setToolTip("Write the file (Enter)")
        self.export_button.setDefault(True)
        self.close_button = QPushButton("Close")
        self.close_button.setAccessibleName("Close")
        self.close_button.setToolTip("Close; an export under way is cancelled (Esc)")
        file_row = QHBoxLayout()
        file_row.addWidget(self.file, 1)
        file_row.addWidget(browse)
        form = QFormLayout()
        form.addRow("Format", self.format)
        form.addRow("File", file_row)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        self.format.currentIndexChanged.connect(self._format_changed)
        self.export_button.clicked.connect(self.start)
        self.close_button.clicked.connect(self.reject)
        self.relay = _ExportRelay()
        self.relay.step.connect(self._on_step)
        self.relay.done.connect(self._on_done)
        self.cancel = threading.Event()
        self.worker: threading.Thread | None = None
        self.written: Path | None = None
        self.resize(560, self.sizeHint().height())

    def _format_changed(self) -> None:
        path = Path(self.file.text().strip() or self.run.dir / self.run.run_id)
        self.file.setText(str(path.with_suffix("." + str(self.format.currentData()))))

    def _browse(self) -> None:
        fmt = str(self.format.currentData())
        path, _ = QFileDialog.getSaveFileName(
            self, "Export to", self.file.text(), f"{EXPORT_FORMATS[fmt]} (*.{fmt})"
        )
        if path:
            self.file.setText(path)

    def start(self) -> None:
        """Export in a thread; the progress bar follows each rendered step."""
        if self.worker is not None:
            return
        out = Path(self.file.text().strip()).expanduser()
        if not out.name or not out.parent.is_dir():
            self.status.setText(f"Choose a file in an existing folder (not {visible(str(out))}).")
            return
        fmt = next(f for f in FORMATS if f == self.format.currentData())
        self.export_button.setEnabled(False)
        self.format.setEnabled(False)
        self.status.setText(f"Exporting to {visible(str(out))}…")
        relay, cancel, run_dir = self.relay, self.cancel, self.run.dir

        def on_step(done: int, total: int) -> None:
            if cancel.is_set():
                raise _Cancelled
            relay.step.emit(done, total)

        def work() -> None:
            try:
                export_run(read_run(run_dir), fmt, out, show_progress=False, on_step=on_step)
            except _Cancelled:
                return
            except ExportError as exc:
                relay.done.emit(f"Cannot export: {exc}", False)
                return
            except OSError as exc:
                relay.done.emit(f"Cannot write {out}: {exc.strerror or exc}", False)
                return
            relay.done.emit(str(out), True)

        self.worker = threading.Thread(target=work, name="export", daemon=True)
        self.worker.start()

    def _on_step(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)

    def _on_done(self, message: str, ok: bool) -> None:
        self.worker = None
        self.export_button.setEnabled(True)
        self.format.setEnabled(True)
        if ok:
            self.written = Path(message)
            self.progress.setValue(self.progress.maximum())
            self.status.setText(f"Saved {visible(message)}")
        else:
            self.status.setText(visible(message))

    def done(self, result: int) -> None:
        """Closing cancels an export under way (its partial file is removed)."""
        self.cancel.set()
        super().done(result)


class RunsLibrary(QMainWindow):
    """Every recording in the runs folder, newest first, with search and actions on one."""

    def __init__(
        self,
        runs_dir: Path,
        *,
        backend_factory: BackendFactory | None = recorded_backend,
        breakpoints: MutableSet[int] | None = None,
        on_breakpoints: Callable[[frozenset[int]], None] | None = None,
        model_flags: Callable[[], list[str]] = lambda: [],
    ) -> None:
        super().__init__()
        # The backend flags a healing replay asks the model with (the app's run settings).
        self.model_flags = model_flags
        self.runs_dir = Path(runs_dir)
        self.on_breakpoints = on_breakpoints
        self.backend_factory = backend_factory
        self.breakpoints = breakpoints
        self.runs: list[RunSummary] = []
        self.debuggers: list[Debugger] = []
        self.export_dialog: ExportDialog | None = None
        self.replay: QProcess | None = None
        self.replay_bar: ControlBar | None = None
        self.replay_lines: list[str] = []  # what the replayer said, one line each
        self.setWindowTitle("deskpilot runs")
        self.search = QLineEdit()
        self.search.setPlaceholderText("task, outcome, model…")
        self.search.setAccessibleName("Search")
        self.search.setToolTip("Show only the runs whose task, outcome or model hold these words")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setAccessibleName("Runs")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setTabKeyNavigation(False)  # Tab moves on to the buttons
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in range(1, len(COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setSortIndicator(1, Qt.SortOrder.DescendingOrder)  # newest first
        self.buttons: dict[str, QPushButton] = {}
        tips = {
            "Open": "Step through the run in the debugger (Enter or double-click)",
            "Replay on desktop": "Run the recorded actions again on this desktop; it stops "
            "at a risky step or when the screen differs from the recording",
            "Replay with healing": "Replay it, checking each click's target; a target that "
            "moved is found again by the model (one request for that step only)",
            "Make routine…": "Copy the run as a routine: text you name becomes a parameter "
            "asked for at each replay",
            "Record demonstration": "Do the task yourself; every click, key and text is "
            "recorded as a run (Stop on the bar ends it)",
            "Export…": "Save the run as an MP4 video, a GIF or one HTML page",
            "Delete…": "Delete the recording (asks first)",
            "Show folder": "Open the recording's folder in the file manager",
            "Refresh": "Read the runs folder again (F5)",
        }
        row = QHBoxLayout()
        for label, tip in tips.items():
            button = QPushButton(label)
            button.setAccessibleName(label)
            button.setToolTip(tip)
            row.addWidget(button)
            self.buttons[label] = button
        row.addStretch(1)
        self.folder_label = plain_label()
        self.folder_label.setAccessibleName("Runs folder")
        search_row = QHBoxLayout()
        search_label = QLabel("Search")
        search_label.setBuddy(self.search)
        search_row.addWidget(search_label)
        search_row.addWidget(self.search, 1)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addLayout(search_row)
        layout.addWidget(self.table, 1)
        layout.addLayout(row)
        layout.addWidget(self.folder_label)
        self.setCentralWidget(central)
        self.search.textChanged.connect(self.filter)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.cellDoubleClicked.connect(lambda *_: self.open_selected())
        self.buttons["Open"].clicked.connect(self.open_selected)
        self.buttons["Replay on desktop"].clicked.connect(lambda: self.replay_selected())
        self.buttons["Replay with healing"].clicked.connect(lambda: self.replay_selected(True))
        self.buttons["Make routine…"].clicked.connect(self.make_routine)
        self.buttons["Record demonstration"].clicked.connect(self.record_demonstration)
        self.buttons["Export…"].clicked.connect(self.export_selected)
        self.buttons["Delete…"].clicked.connect(self.delete_selected)
        self.buttons["Show folder"].clicked.connect(self.show_folder)
        self.buttons["Refresh"].clicked.connect(self.refresh)
        for keys, slot in (
            ("Ctrl+W", self.close),
            ("Esc", self.close),
            ("F5", self.refresh),
            ("Ctrl+F", self.search.setFocus),
            ("Return", self.open_selected),
            ("Enter", self.open_selected),
            ("Delete", self.delete_selected),
        ):
            QShortcut(QKeySequence(keys), self).activated.connect(slot)
        self.refresh()
        fit_window(self, 1100, 700)

    # -- the list -------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the runs folder again, keeping the selected run selected."""
        chosen = self.selected()
        self.runs = scan_runs(self.runs_dir)
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(self.runs))
        for row, run in enumerate(self.runs):
            cells = (
                run.task,
                when_text(run.started),
                run.outcome,
                str(run.steps),
                duration_text(run.duration_s),
                run.model,
            )
            for col, text in enumerate(cells):
                item = _Cell(visible(text))
                item.setData(Qt.ItemDataRole.UserRole, row)
                # Sorted by value, not text: "10" after "9", dates and durations in order.
                key = {
                    1: run.started.timestamp() if run.started else 0.0,
                    3: float(run.steps),
                    4: run.duration_s or 0.0,
                }.get(col)
                if key is not None:
                    item.setData(SORT_ROLE, key)
                if col == 0:
                    item.setToolTip(plain_tip(f"{run.task}\n\n{run.outcome}: {run.message}"))
                elif col == 2 and run.message:
                    item.setToolTip(plain_tip(run.message))
                self.table.setItem(row, col, item)
        self.table.setSortingEnabled(True)
        count = len(self.runs)
        self.folder_label.setText(
            f"{count} run{'s' if count != 1 else ''} in {self.runs_dir}"
            if self.runs_dir.is_dir()
            else f"No runs yet: recordings will appear in {self.runs_dir}"
        )
        self.filter(self.search.text())
        if chosen is not None:
            self.select(chosen.dir)
        elif self.table.rowCount():
            self._select_first_visible()
        self._update_buttons()

    def filter(self, text: str) -> None:
        """Hide the runs that do not match every word of the search."""
        for view_row in range(self.table.rowCount()):
            run = self._run_at(view_row)
            self.table.setRowHidden(view_row, run is None or not run.matches(text))
        current = self.table.currentRow()
        if current < 0 or self.table.isRowHidden(current):
            self._select_first_visible()

    def _select_first_visible(self) -> None:
        for view_row in range(self.table.rowCount()):
            if not self.table.isRowHidden(view_row):
                self.table.selectRow(view_row)
                return
        self.table.clearSelection()

    def _run_at(self, view_row: int) -> RunSummary | None:
        item = self.table.item(view_row, 0)
        if item is None:
            return None
        index = item.data(Qt.ItemDataRole.UserRole)
        return self.runs[index] if isinstance(index, int) and index < len(self.runs) else None

    def selected(self) -> RunSummary | None:
        """The selected (and shown) run, if any."""
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows or self.table.isRowHidden(rows[0].row()):
            return None
        return self._run_at(rows[0].row())

    def select(self, run_dir: Path) -> bool:
        """Select the run in a folder; False when it is not listed."""
        for view_row in range(self.table.rowCount()):
            run = self._run_at(view_row)
            if run is not None and run.dir == run_dir and not self.table.isRowHidden(view_row):
                self.table.selectRow(view_row)
                return True
        return False

    def _update_buttons(self) -> None:
        chosen = self.selected() is not None
        for label, button in self.buttons.items():
            if label not in ("Refresh", "Record demonstration"):
                button.setEnabled(chosen)
        if self.replay is not None:
            for label in ("Replay on desktop", "Replay with healing", "Record demonstration"):
                self.buttons[label].setEnabled(False)

    # -- actions on one run ---------------------------------------------------------------

    def open_selected(self) -> Debugger | None:
        """Open the selected run in the debugger."""
        run = self.selected()
        if run is None:
            return None
        return self.open_run(run.dir)

    def open_run(self, run_dir: Path) -> Debugger | None:
        """Open one recording in a debugger window (kept until it closes)."""
        try:
            recording = read_run(run_dir)
        except (OSError, ValueError) as exc:
            self.statusBar().showMessage(visible(f"Cannot read {run_dir}: {exc}"))
            return None
        debugger = Debugger(
            recording, breakpoints=self.breakpoints, backend_factory=self.backend_factory
        )
        debugger.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        if self.on_breakpoints is not None:
            debugger.timeline.breakpoints_changed.connect(self.on_breakpoints)
        debugger.destroyed.connect(lambda *_: self._forget(debugger))
        self.debuggers.append(debugger)
        debugger.show()
        return debugger

    def _forget(self, debugger: Debugger) -> None:
        if debugger in self.debuggers:
            self.debuggers.remove(debugger)

    def export_selected(self) -> ExportDialog | None:
        """Ask for a format and file, then export the selected run."""
        run = self.selected()
        if run is None:
            return None
        self.export_dialog = ExportDialog(run, self)
        self.export_dialog.show()
        return self.export_dialog

    def delete_selected(self) -> None:
        """Delete the selected recording after the user confirms."""
        run = self.selected()
        if run is None:
            return
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "Delete run",
            f"Delete the recording of “{one_line(run.task, 120)}” ({run.steps} steps)?\n\n"
            f"{run.dir}\n\nThis cannot be undone.",
            QMessageBox.StandardButton.Cancel,
            self,
        )
        box.setTextFormat(Qt.TextFormat.PlainText)
        delete = box.addButton("Delete", QMessageBox.ButtonRole.DestructiveRole)
        delete.setAccessibleName("Delete")
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        if box.clickedButton() is not delete:
            return
        try:
            delete_run(self.runs_dir, run.dir)
        except (OSError, ValueError) as exc:
            self.statusBar().showMessage(visible(f"Cannot delete {run.dir}: {exc}"))
            return
        self.statusBar().showMessage(visible(f"Deleted {run.dir.name}"))
        self.refresh()

    def show_folder(self) -> None:
        """Open the selected recording's folder in the file manager."""
        run = self.selected()
        if run is not None and not QDesktopServices.openUrl(QUrl.fromLocalFile(str(run.dir))):
            self.statusBar().showMessage(visible(f"No file manager to open {run.dir}"))

    def replay_selected(self, heal: bool = False) -> None:
        """Replay the selected run on this desktop; this window steps aside meanwhile.

        heal: each pointer target is checked and re-grounded by the model when it moved. A
        routine's parameters are asked for first.
        """
        run = self.selected()
        if run is None or self.replay is not None:
            return
        params = self._ask_params(run.dir)
        if params is None:
            return
        args = replay_command(run.dir) + [a for p in params for a in ("--param", p)]
        if heal:
            args += ["--heal", *self.model_flags()]
        self._start(args, f"replaying {one_line(run.task, 60)}")

    def record_demonstration(self) -> None:
        """Record the person doing a task, until Stop on the bar (`main.py demo`)."""
        if self.replay is not None:
            return
        task, ok = QInputDialog.getText(self, "Record demonstration", "What will you show?")
        if not ok:
            return
        args = [str(REPO / "main.py"), "demo", "--runs-dir", str(self.runs_dir), "--task", task]
        self._start(args, "recording your demonstration: Stop ends it", interrupt=True)

    def make_routine(self) -> None:
        """Copy the selected run as a routine whose named texts are parameters."""
        run = self.selected()
        if run is None:
            return
        text, ok = QInputDialog.getMultiLineText(
            self,
            "Make routine",
            "One parameter a line, NAME=TEXT: the typed TEXT becomes {NAME}",
        )
        lines = [line.strip() for line in text.splitlines() if line.strip()] if ok else []
        if not lines:
            return
        out = self.runs_dir / f"{run.dir.name}-routine"
        n = 2
        while out.exists():
            out, n = self.runs_dir / f"{run.dir.name}-routine-{n}", n + 1
        args = [str(REPO / "main.py"), "routine", str(run.dir), "--out", str(out)]
        args += [a for line in lines for a in ("--param", line)]
        done = subprocess_result(args)
        self.refresh()
        self.select(out)
        self.statusBar().showMessage(visible(done))

    def _ask_params(self, run_dir: Path) -> list[str] | None:
        """NAME=VALUE for each parameter of a routine (none for a plain run; None: cancelled)."""
        try:
            names = (read_run(run_dir).info.get("routine") or {}).get("params") or []
        except Exception:  # an unreadable run replays without parameters; the replayer says why
            return []
        values: list[str] = []
        for name in names:
            value, ok = QInputDialog.getText(self, "Routine parameter", f"Value for {{{name}}}")
            if not ok:
                return None
            values.append(f"{name}={value}")
        return values

    def _start(self, args: list[str], status: str, *, interrupt: bool = False) -> None:
        """Run a deskpilot command that acts on the desktop, with a Stop bar; windows aside."""
        process = QProcess(self)
        process.setProgram(sys.executable)
        process.setArguments(args)
        process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        process.readyReadStandardOutput.connect(self._replay_output)
        process.finished.connect(self._replay_finished)
        self.replay = process
        self._interrupt = interrupt  # a demonstration ends with SIGINT, as Ctrl+C would
        self.replay_lines = []
        bar = ControlBar()
        bar.stop_clicked.connect(self.stop_replay)
        screen = self.screen() or QApplication.primaryScreen()
        bar.place(screen.geometry())
        bar.set_status(status)
        bar.show()
        self.replay_bar = bar
        self._update_buttons()
        # The recording's screens had no deskpilot window on them: step out of the picture.
        for window in self._windows():
            window.showMinimized()
        process.start()

    def _windows(self) -> list[QWidget]:
        windows: list[QWidget] = [self, *self.debuggers]
        parent = self.parentWidget()
        if parent is not None:
            windows.append(parent.window())
        return windows

    def _replay_output(self) -> None:
        assert self.replay is not None
        text = bytes(self.replay.readAllStandardOutput().data()).decode("utf-8", "replace")
        for line in text.splitlines():
            if line.strip():
                shown = one_line(line.removeprefix("deskpilot: "), 300)
                self.replay_lines.append(shown)
                if self.replay_bar is not None:
                    self.replay_bar.set_status(shown)

    def stop_replay(self) -> None:
        """End the replay (it releases any key or button it holds) or the demonstration."""
        if self.replay is None:
            return
        pid = self.replay.processId()
        if getattr(self, "_interrupt", False) and pid:
            os.kill(pid, signal.SIGINT)  # the demonstration writes its end and exits 0
        else:
            self.replay.terminate()

    def _replay_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        last = self.replay_lines[-1] if self.replay_lines else ""
        if self.replay_bar is not None:
            self.replay_bar.close()
            self.replay_bar = None
        self.replay = None
        for window in self._windows():
            window.showNormal()
        if getattr(self, "_interrupt", False):
            verdict = "Demonstration recorded" if code == 0 else "The demonstration failed"
        else:
            verdict = "Replay finished" if code == 0 else "Replay stopped"
        why = replay_words(last)
        self.refresh()  # a replay is recorded like a run: it is listed now
        self.statusBar().showMessage(visible(f"{verdict}: {why}" if why else verdict))

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        """Stop a replay under way and close the debuggers opened from here."""
        if self.replay is not None:
            self.replay.terminate()
            self.replay.waitForFinished(5000)
        for debugger in list(self.debuggers):
            debugger.close()
        super().closeEvent(event)


def main(argv: list[str] | None = None) -> int:
    """`python -m ui.library [RUNS_DIR]`: the library on its own (default: the runs folder)."""
    from agent.config import RunConfig

    parser = argparse.ArgumentParser(prog="python -m ui.library")
    parser.add_argument("runs_dir", nargs="?", type=Path, help="the runs folder")
    args = parser.parse_args(argv)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = RunsLibrary(args.runs_dir or RunConfig().runs_path())
    window.show()
    return int(app.exec())


if __name__ == "__main__":
    sys.exit(main())
