"""The desktop app: the live screen, the steps, the approval card; settings and runs a click away.

MainWindow lays the window out and wires its parts: ui/settings_dialog.py (every run option),
ui/run_view.py (the one place loop events are rendered), ui/choreography.py (when the window
makes way for the agent), ui/progress.py (step, time, the model's activity) and
ui/library.py (recorded runs). Tests observe it from tests/support, never from in here.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QByteArray,
    QObject,
    QRect,
    QSettings,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication, QImage, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from actions.screen import Monitor
from actions.types import describe
from agent.approval import ApprovalRequest, Decision
from agent.events import Event
from agent.textsafe import visible
from ui.app_text import app_words
from ui.choreography import Choreography
from ui.hotkey import GlobalHotkey, describe_combo
from ui.mcp_host import DEFAULT_PORT, McpHost, McpHostError
from ui.progress import RunProgress
from ui.run_controller import RunController
from ui.run_form import RunForm
from ui.run_view import RunPresenter
from ui.settings import AppSettings, load_settings, save_settings
from ui.settings_dialog import SettingsDialog
from ui.signal_bridge import SignalBridge
from ui.wayland import CaptureHider, on_wayland
from ui.widgets import (
    ApprovalPanel,
    ControlBar,
    LiveView,
    RecoverBar,
    fit_window,
    one_line,
    plain_label,
    risk_text,
)

# What the Help menu lists: every shortcut of the main window.
SHORTCUTS = (
    ("Ctrl+Enter", "Start the task"),
    ("Enter", "Approve the waiting action (in the note: Reject with the note)"),
    ("Esc", "Stop the run"),
    ("Ctrl+,", "Settings"),
    ("Ctrl+R", "Runs: the recorded runs"),
    ("Tab / Shift+Tab", "Move between fields"),
    ("F1", "This list"),
)
WINDOW_SIZE = (1280, 800)  # the first start's size, never larger than the screen


def _preload() -> None:
    """Import what a run needs, on the GUI thread, before any worker thread starts.

    First imports on the loop thread hold the GIL long enough to stall the GUI (30-70 ms in
    the first step), and PySide6 hooks every import: a large first import (openai, pydantic)
    on a worker thread while the GUI thread runs crashed the process once in CI (SIGSEGV in
    shibokensupport's feature hook). Paid once at start-up instead.
    """
    import importlib

    for name in (
        "numpy",
        "mss",
        "PIL.Image",
        "PIL.PngImagePlugin",
        "openai",
        "agent.loop",
        "agent.backends.factory",
        "agent.backends.openai_compat",
        "agent.backends.local",
        "actions.executor",
        "actions.focus",
        "actions.window",
        "actions.private_desktop",
        "actions.xpointer",
        "Xlib.display",
        "agent.risk",
        "agent.secrets",
    ):
        try:
            importlib.import_module(name)
        except Exception:  # a missing optional module shows up, with its reason, at run time
            pass
    # The openai client imports its HTTP stack (httpcore, ssl, truststore) on first use, not
    # on import: build one and let one request fail fast (nothing listens on port 9).
    try:
        import openai

        client = openai.OpenAI(
            base_url="http://127.0.0.1:9/v1", api_key="x", max_retries=0, timeout=0.5
        )
        try:
            client.models.list()
        except openai.OpenAIError:
            pass
        finally:
            client.close()
    except Exception:  # warming is best effort: the real backend reports real problems
        pass


class _HotkeyRelay(QObject):
    """Carries the hotkey from its listening thread to the GUI thread."""

    pressed = Signal()


class StallMeter:
    """Measures the GUI thread's longest stall with a 10 ms timer (for the figures and tests)."""

    def __init__(self) -> None:
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.last = 0.0
        self.max_gap_ms = 0.0

    def start(self) -> None:
        """Begin measuring."""
        self.last, self.max_gap_ms = time.monotonic(), 0.0
        self.timer.start()

    def stop(self) -> None:
        """End measuring."""
        self.timer.stop()

    def _tick(self) -> None:
        now = time.monotonic()
        self.max_gap_ms = max(self.max_gap_ms, (now - self.last) * 1000 - 10)
        self.last = now


def _monitor_choices() -> list[tuple[str, int]]:
    """The monitors to choose from, as the form lists them (none when no display lists them)."""
    try:
        from actions.screen import Screen

        monitors = Screen().list_monitors()
    except Exception:  # no display to list: the primary still works at run time
        return []
    out = []
    for m in monitors:
        mark = " (primary)" if m.primary else ""
        out.append((f"{m.index}: {m.width}x{m.height}{mark}", m.index))
    return out


def _button(text: str, tip: str) -> QPushButton:
    """A button whose accessible name is its label, with a tooltip."""
    button = QPushButton(text)
    button.setAccessibleName(text)
    button.setToolTip(tip)
    return button


class ModelStatus(QWidget):
    """The model backend's state: loading progress, ready, or what went wrong; Restart."""

    def __init__(self) -> None:
        super().__init__()
        self.label = plain_label("Model: starts with the first run")
        self.label.setAccessibleName("Model status")
        self.label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.progress = QProgressBar()
        self.progress.setAccessibleName("Model loading")
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(160)
        self.progress.setVisible(False)
        self.restart = _button(
            "Restart worker", "Close the model backend and start it again (no run may be going)"
        )
        self.restart.setEnabled(False)  # nothing to restart before a first run started one
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.progress)
        layout.addWidget(self.restart)

    def for_backend(self, kind: str) -> None:
        """A local worker restarts; an endpoint is reconnected."""
        text = "Restart worker" if kind == "local" else "Reconnect"
        self.restart.setText(text)
        self.restart.setAccessibleName(text)


class MainWindow(QMainWindow):
    """deskpilot's main window."""

    def __init__(
        self,
        settings: AppSettings | None = None,
        settings_file: Path | None = None,
        *,
        global_hotkey: bool = True,
    ) -> None:
        super().__init__()
        self.settings_file = settings_file
        self.settings = settings or load_settings(settings_file)
        self.setWindowTitle("deskpilot")
        self.bar = ControlBar(describe_combo(self.settings.hotkey))
        # Wayland tells no client where its windows are: they hide during captures instead.
        self.capture_hider = CaptureHider(lambda: [self, self.bar]) if on_wayland() else None
        self.choreography = Choreography(
            self,
            self.bar,
            lambda: self.settings.run.desktop == "user",
            positions_known=self.capture_hider is None,
        )
        self.controller = RunController(
            excluded=lambda: list(self.choreography.excluded),
            hide=self.capture_hider.hidden if self.capture_hider is not None else None,
        )
        # MCP clients' actions are asked on the same card (ui/mcp_host.py), never during a run.
        self.mcp_host = McpHost(
            excluded=lambda: list(self.choreography.excluded),
            busy=lambda: self.controller.running,
            hide=self.capture_hider.hidden if self.capture_hider is not None else None,
        )
        # Taking over a private desktop (ui/takeover.py): its X display while one runs.
        self.private_display = ""
        self.takeover: Any = None
        self.takeover_timer = QTimer(self)
        self.takeover_timer.setInterval(300)  # the private desktop, live, while taking over
        self.takeover_timer.timeout.connect(
            lambda: self.takeover.refresh() if self.takeover is not None else None
        )
        self.view = LiveView()
        self.view.setAccessibleName("Screen")
        self.panel = ApprovalPanel(self.view)
        self.progress = RunProgress()
        self.presenter = RunPresenter(self.view, self.progress)
        self.step_label = self.presenter.step_label
        self.log_view = self.presenter.log_view
        self.thinking = self.presenter.thinking
        self.timeline = self.presenter.timeline
        self.breakpoints: set[int] = set()
        self.timeline.breakpoints = self.breakpoints
        self.settings_dialog = SettingsDialog(_monitor_choices(), self)
        self.run_form: RunForm = self.settings_dialog.form
        self.calibrate_button = self.settings_dialog.calibrate_button
        self.model_status = ModelStatus()
        self.worker_label = self.model_status.label
        self.worker_progress = self.model_status.progress
        self.restart_button = self.model_status.restart
        self.library: Any = None
        self.stall = StallMeter()
        self._build()
        self._menus()
        self._load_into_form(self.settings)
        self._connect()
        self._set_running(False)
        _preload()
        self.hotkey_relay = _HotkeyRelay()
        self.hotkey_relay.pressed.connect(self.stop_run)
        self.hotkey = GlobalHotkey(self.settings.hotkey, self.hotkey_relay.pressed.emit)
        if not global_hotkey:
            self.hotkey.error = "global hotkey off"
            self.statusBar().showMessage("Kill switch: Esc here, or Stop")
        elif self.hotkey.start():
            self.statusBar().showMessage(
                f"Kill switch: {describe_combo(self.settings.hotkey)} anywhere, Esc here, or Stop"
            )
        else:
            self.statusBar().showMessage(f"{self.hotkey.error}; use Stop or Esc")
        self._restore_geometry()

    # -- layout ---------------------------------------------------------------------------

    def _build(self) -> None:
        self.task = QPlainTextEdit()
        self.task.setPlaceholderText("What should deskpilot do? e.g. Open the terminal and list ~")
        self.task.setAccessibleName("Task")
        self.task.setToolTip("The task, in your words; Ctrl+Enter starts it")
        self.task.setTabChangesFocus(True)  # Tab moves on; the task is one paragraph
        self.task.setFixedHeight(56)
        task_label = QLabel("&Task")
        task_label.setBuddy(self.task)
        self.start_button = _button("Start", "Start the task (Ctrl+Enter)")
        self.pause_button = _button("Pause", "Hold the run at its next action until you approve it")
        self.pause_button.setCheckable(True)
        self.stop_button = _button("Stop", "End the run now; nothing more runs (Esc)")
        self.takeover_button = _button(
            "Take over",
            "Pause the agent and work on its private desktop yourself: clicks, the wheel and "
            "keys on the screenshot go there (Esc still stops the run)",
        )
        self.takeover_button.setCheckable(True)
        self.takeover_button.setEnabled(False)
        self.settings_button = _button(
            "Settings", "Every run option: model, approval, limits (Ctrl+,)"
        )
        self.runs_button = _button("Runs", "The recorded runs: open, step through, export (Ctrl+R)")
        self.serve_mcp_button = _button(
            "Serve MCP",
            f"Serve screenshot, act and run_task to MCP clients on http://127.0.0.1:{DEFAULT_PORT}"
            "/mcp (this computer only); actions that need you are asked here",
        )
        self.serve_mcp_button.setCheckable(True)
        top = QHBoxLayout()
        top.addWidget(task_label)
        top.addWidget(self.task, 1)
        for b in (
            self.start_button,
            self.pause_button,
            self.stop_button,
            self.takeover_button,
            self.settings_button,
            self.runs_button,
            self.serve_mcp_button,
        ):
            top.addWidget(b)
        status_row = QHBoxLayout()
        status_row.addWidget(self.progress, 3)
        status_row.addWidget(self.model_status, 2)
        self.step_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.recover_bar = RecoverBar()
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.view, 1)  # the live screen: the largest thing in the window
        ll.addWidget(self.recover_bar)
        ll.addWidget(self.panel)
        self.details = QTabWidget()
        self.details.addTab(self.thinking, "Thinking")
        self.details.addTab(self.log_view, "Run log")
        self.details.setAccessibleName("Thinking and run log")
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.timeline)
        right.addWidget(self.details)
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 2)
        right.setChildrenCollapsible(True)  # the thinking folds away by dragging it down
        split = QSplitter()
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 1)
        split.setSizes([900, 360])
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(6, 6, 6, 0)
        layout.addLayout(top)
        layout.addLayout(status_row)
        layout.addWidget(self.step_label)
        layout.addWidget(split, 1)
        self.setCentralWidget(central)

    def _menus(self) -> None:
        run = self.menuBar().addMenu("&Run")
        self.start_action = self._action(run, "Start", "Ctrl+Return", self.start_run)
        self._action(run, "Stop", "Esc", self.stop_run, shortcut_here=False)
        run.addSeparator()
        self._action(run, "Settings…", "Ctrl+,", self.show_settings)
        self._action(run, "Runs…", "Ctrl+R", self.show_runs)
        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "Keyboard shortcuts", "F1", self.show_shortcuts)
        self._action(help_menu, "About deskpilot", "", self.show_about)

    def _action(
        self,
        menu: Any,
        text: str,
        keys: str,
        slot: Callable[[], Any],
        *,
        shortcut_here: bool = True,
    ) -> QAction:
        action = QAction(text, self)
        if keys and shortcut_here:
            action.setShortcut(QKeySequence(keys))
        elif keys:
            action.setText(f"{text}\t{keys}")  # shown; the window's own shortcut handles it
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _connect(self) -> None:
        self.start_button.clicked.connect(self.start_run)
        self.stop_button.clicked.connect(self.stop_run)
        self.pause_button.toggled.connect(self._pause)
        self.restart_button.clicked.connect(self.restart_worker)
        self.settings_button.clicked.connect(self.show_settings)
        self.runs_button.clicked.connect(self.show_runs)
        self.bar.stop_clicked.connect(self.stop_run)
        self.panel.decided.connect(self.on_decided)
        self.recover_bar.chosen.connect(self.on_recover_chosen)
        self.presenter.status.connect(self.bar.set_status)
        self.progress.changed.connect(self._progress_to_bar)
        self.timeline.breakpoints_changed.connect(self._breakpoints_changed)
        c = self.controller
        c.loop_event.connect(self.on_event)
        c.observed.connect(self.on_observed)
        c.approval_requested.connect(self.on_approval)
        c.aside_requested.connect(self.on_aside)
        c.progress.connect(self.on_progress)
        c.worker_state.connect(self.on_worker_state)
        c.finished.connect(self.on_finished)
        c.failed.connect(self.on_failed)
        c.recover_requested.connect(self.on_recover)
        c.desktop_ready.connect(self.on_desktop_ready)
        self.takeover_button.toggled.connect(self._take_over)
        self.calibrate_button.clicked.connect(self.calibrate)
        self.serve_mcp_button.toggled.connect(self.serve_mcp)
        h = self.mcp_host
        h.observed.connect(self.view.set_frame)
        h.approval_requested.connect(self.on_mcp_approval)
        h.make_way.connect(self._mcp_make_way)
        h.stopped.connect(self.on_mcp_stopped)
        QShortcut(QKeySequence("Ctrl+Enter"), self).activated.connect(self.start_run)
        for key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            QShortcut(QKeySequence(key), self).activated.connect(self._enter)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self).activated.connect(self.stop_run)

    # -- settings -------------------------------------------------------------------------

    def _load_into_form(self, s: AppSettings) -> None:
        self.task.setPlainText(s.task)
        self.run_form.load(s.run)
        self.model_status.for_backend(s.run.backend)
        self.breakpoints.update(
            int(p) for p in s.run.break_at.split(",") if p.strip().isdigit() and int(p) > 0
        )
        if s.ignored:
            self.statusBar().showMessage("settings ignored: " + "; ".join(s.ignored))

    def form_settings(self) -> AppSettings:
        """The settings as the form shows them (the run options not checked yet)."""
        return dataclasses.replace(
            self.settings,
            task=self.task.toPlainText().strip(),
            run=self.run_form.config(self.settings.run),
        )

    def _save(self) -> None:
        self.settings = self.form_settings()
        self.model_status.for_backend(self.settings.run.backend)
        try:
            save_settings(self.settings, self.settings_file)
        except OSError as exc:
            self.statusBar().showMessage(f"cannot save settings: {exc}")

    def _breakpoints_changed(self, steps: object) -> None:
        """Breakpoints set in a timeline apply to the next run (Settings: Break at steps)."""
        text = ",".join(str(n) for n in sorted(self.breakpoints))
        self.run_form.set_value("break_at", text)
        where = f"before step {text}" if text else "none"
        self.statusBar().showMessage(f"Breakpoints for the next run: {where}")

    def show_settings(self) -> None:
        """Open the Settings dialog (every run option)."""
        self.settings_dialog.show()
        self.settings_dialog.raise_()
        self.settings_dialog.activateWindow()

    def show_runs(self) -> None:
        """Open the runs library on the configured runs folder."""
        from ui.library import RunsLibrary

        self._save()
        if self.library is None:
            base = self.settings.run
            self.library = RunsLibrary(
                base.runs_path(),
                backend_factory=self._ask_again_backend,
                breakpoints=self.breakpoints,
                on_breakpoints=self._breakpoints_changed,
                model_flags=self._model_flags,
            )
        else:
            self.library.refresh()
        self.library.show()
        self.library.raise_()
        self.library.activateWindow()

    def _model_flags(self) -> list[str]:
        """The backend options of the run settings as flags (a healing replay asks that model)."""
        from agent.config import BACKEND_OPTIONS, cli_args

        return cli_args(self.settings.run, BACKEND_OPTIONS)

    def _ask_again_backend(self, recording: Any) -> Any:
        """The model a debugger asks again: the app's loaded local worker when the recording
        was made with the same model (no second copy in memory), else one like the recording's.
        """
        from ui.debugger import Borrowed, recorded_backend

        held = self.controller.backend
        info = recording.info.get("backend") or {}
        same_model = str(recording.info.get("model") or "") == getattr(held, "model", None)
        if held is not None and info.get("kind") == "local" and same_model:
            if self.controller.running:
                raise RuntimeError("the model is busy with a run; ask again when it has ended")
            return Borrowed(held)
        return recorded_backend(recording, self.settings.run)

    def show_shortcuts(self) -> None:
        """The Help menu's list of shortcuts."""
        kill = describe_combo(self.settings.hotkey)
        rows = [*SHORTCUTS, (kill, "Stop the run from anywhere (the global kill switch)")]
        box = QMessageBox(self)
        box.setWindowTitle("Keyboard shortcuts")
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.setText("\n".join(f"{keys}\t{what}" for keys, what in rows))
        box.exec()

    def show_about(self) -> None:
        """What deskpilot is, in one box."""
        QMessageBox.about(
            self,
            "About deskpilot",
            "deskpilot: a desktop agent that asks before it acts, records every step, "
            "and lets you replay, debug and export what it did.",
        )

    # -- window size and place --------------------------------------------------------------

    def _restore_geometry(self) -> None:
        """Last session's size and place, if they still fit a screen; else a size that fits."""
        saved = self._window_settings().value("main_window/geometry")
        if isinstance(saved, QByteArray | bytes) and self.restoreGeometry(QByteArray(saved)):
            screen = self.screen() or QGuiApplication.primaryScreen()
            area = screen.availableGeometry() if screen is not None else None
            if area is not None and area.contains(self.frameGeometry().adjusted(0, 0, -1, -1)):
                return
        fit_window(self, *WINDOW_SIZE)

    def _window_settings(self) -> QSettings:
        """Where the window's size and place are kept: window.ini beside settings.toml."""
        from ui.settings import settings_path

        path = (self.settings_file or settings_path()).with_name("window.ini")
        return QSettings(str(path), QSettings.Format.IniFormat)

    def _save_geometry(self) -> None:
        self._window_settings().setValue("main_window/geometry", self.saveGeometry())

    # -- run control ----------------------------------------------------------------------

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.start_action.setEnabled(not running)
        self.pause_button.setEnabled(running)
        self.stop_button.setEnabled(running)
        self.restart_button.setEnabled(not running and self.controller.backend is not None)
        self.calibrate_button.setEnabled(not running)
        self.task.setEnabled(not running)
        self.run_form.set_editable(not running)
        if not running:
            self.pause_button.setChecked(False)

    def _monitor_area(self) -> QRect:
        """The driven monitor's rectangle (Qt's screens match mss's by geometry)."""
        screens = QGuiApplication.screens()
        wanted = self.settings.run.monitor
        if wanted:
            try:
                from actions.screen import Screen

                m = Screen(wanted).monitor
                return QRect(m.left, m.top, m.width, m.height)
            except Exception:  # fall back to the primary screen's rectangle
                pass
        primary = QGuiApplication.primaryScreen() or (screens[0] if screens else None)
        return primary.geometry() if primary is not None else QRect(0, 0, 1920, 1080)

    def start_run(self) -> None:
        """Start: save the settings, step aside, run the task on the controller's thread."""
        if self.controller.running:
            return
        self._save()
        task = self.settings.task
        if not task:
            self._say("Type a task first.")
            self.task.setFocus()
            return
        from agent.config import ConfigError
        from agent.session import SessionError, load_risk_rules

        try:
            config = self.run_form.checked(self.settings.run)
            load_risk_rules(config)  # a bad rules file: say which and why, start nothing
        except (ConfigError, SessionError) as exc:
            what = exc.for_app if isinstance(exc, ConfigError) else f"risk rules: {exc}"
            self._say(app_words(what, backend=self.settings.run.backend, limit=300))
            return
        # Each run starts clean: no step, screenshot, thinking or message of the last one stays.
        self.presenter.reset(config.max_steps)
        self.panel.clear()
        self.recover_bar.clear()
        self.statusBar().clearMessage()
        self._set_running(True)
        self.bar.place(self._monitor_area())
        self.bar.set_status("starting")
        self.bar.show()
        self.stall.start()
        wait = self.choreography.step_aside()
        QTimer.singleShot(wait, self, lambda: self.controller.start(task, config))

    def stop_run(self) -> None:
        """The kill switch (Stop, Esc, the hotkey): cancel generation and release input."""
        if not self.controller.running:
            return
        self.controller.stop()
        self.panel.clear()
        self.recover_bar.clear()
        self.bar.set_status("stopping…")
        self.presenter.set_status("stopping…")

    def _say(self, text: str) -> None:
        """A message in the status line and the status bar."""
        self.presenter.set_status(text)
        self.statusBar().showMessage(visible(text))

    def _progress_to_bar(self, line: str) -> None:
        if self.controller.running:
            self.bar.set_status(line)

    def calibrate(self) -> None:
        """Run `deskpilot calibrate` for the chosen monitor or desktop; the verdict in the log."""
        from PySide6.QtCore import QProcess

        s = self.form_settings().run
        args = ["-m", "main", "calibrate"]
        if s.monitor:
            args += ["--monitor", str(s.monitor)]
        if s.desktop != "user":
            args += ["--desktop", s.desktop, "--desktop-size", s.desktop_size]
        process = QProcess(self)
        process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        self.calibrate_button.setEnabled(False)
        self.presenter.set_status(
            "calibrating: targets appear and are clicked; hands off the mouse"
        )

        def done(code: int, _status: object) -> None:
            output = bytes(process.readAllStandardOutput().data()).decode("utf-8", "replace")
            for line in output.splitlines():
                if line.strip():
                    self.presenter.add_log(f"calibrate: {line.strip()}")
            lines = [x for x in output.splitlines() if x.strip()]
            verdict = lines[-1].strip() if lines else f"calibrate exited with status {code}"
            self.presenter.set_status(verdict)
            self.calibrate_button.setEnabled(not self.controller.running)
            self.calibrated.emit(code, verdict)
            process.deleteLater()

        process.finished.connect(done)
        process.start(sys.executable, args)

    calibrated = Signal(int, str)  # exit status, verdict line (for whoever watches)
    took_over = Signal(bool)  # taking over the private desktop began (True) or ended

    def on_desktop_ready(self, display: str) -> None:
        """A private desktop started (its X display) or ended ("")."""
        self.private_display = display
        self.takeover_button.setEnabled(bool(display))
        if not display:
            self.takeover_button.setChecked(False)

    def _take_over(self, on: bool) -> None:
        """Work on the private desktop from the live view while the agent waits."""
        from ui.takeover import TakeOver

        if on and self.private_display:
            if not self.pause_button.isChecked():
                self.pause_button.setChecked(True)  # the agent waits at its next action
            takeover = self.takeover = TakeOver(self.private_display)
            takeover.frame.connect(self.view.set_frame)
            takeover.failed.connect(self.presenter.set_status)
            self.view.set_forward(lambda action: takeover.send(action, self._private_monitor()))
            self.takeover_timer.start()
            takeover.refresh()
            self.presenter.set_status(
                "taking over: your clicks and keys on the screenshot go to its desktop"
            )
            self.took_over.emit(True)
            return
        self.takeover_timer.stop()
        self.view.set_forward(None)
        takeover, self.takeover = self.takeover, None
        if takeover is not None:
            takeover.close()
            if self.pause_button.isChecked():
                self.pause_button.setChecked(False)
            self.presenter.set_status("the agent goes on from here")
        self.took_over.emit(False)

    def _private_monitor(self) -> Monitor:
        """The private desktop's monitor, as the view shows it."""
        assert self.view.monitor is not None
        return self.view.monitor

    def _pause(self, paused: bool) -> None:
        self.controller.set_paused(paused)
        text = "Resume" if paused else "Pause"
        self.pause_button.setText(text)
        self.pause_button.setAccessibleName(text)
        self.bar.set_status("paused: the next action waits for you" if paused else "resumed")

    def restart_worker(self) -> None:
        """Close the backend and load it again."""
        self._save()
        self.worker_label.setText("Model: restarting")
        self.restart_button.setEnabled(False)
        self.controller.restart_backend(self.settings.run)

    def _enter(self) -> None:
        if self.takeover is not None and self.view.hasFocus():
            from actions.types import Key

            self.view.forward(Key(("Return",)))  # type: ignore[misc]  # set while taking over
            return
        if not self.panel.pending:
            return
        if self.panel.note.hasFocus():
            self.panel.reject()
        elif not self.panel.text_edit.hasFocus():
            self.panel.approve()

    # -- controller signals ---------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """Show one loop event (ui/run_view.py renders them all)."""
        self.presenter.on_event(event)

    def on_observed(self, step: int, image: QImage, monitor: Monitor) -> None:
        """A new screenshot; unless unattended, the window comes back while the model thinks.

        In auto mode it stays out of the way from the first step to the last (the control bar
        shows the progress): nothing is mapped, unmapped or focused between steps.
        """
        self.view.set_frame(image, monitor)
        self.presenter.on_observed(step, image)
        running = self.controller.running and not self.controller.stop_event.is_set()
        if running and self.settings.run.approve != "auto":
            self.choreography.come_back(activate=False)

    def on_approval(self, request: ApprovalRequest) -> None:
        """An action waits for the user: the card is filled and the window takes the focus."""
        self.panel.set_request(request)
        self.choreography.come_back(activate=True)
        self.approve_focus()
        where = f" (breakpoint: {request.breakpoint})" if request.breakpoint else ""
        why = risk_text(request.risk)
        if request.attention:
            why = f"{why}; paused: {request.attention}" if why else f"paused: {request.attention}"
        self.presenter.set_status(
            f"step {request.step + 1}: waiting for your decision{where}{f' — {why}' if why else ''}"
        )
        self.presenter.waiting(request.step, request.action, why)

    def approve_focus(self) -> None:
        """Keyboard focus on Approve so Enter works at once."""
        self.panel.approve_button.setFocus()

    def on_aside(self, request: ApprovalRequest) -> None:
        """A policy-approved action: out of the way (if shown), then let it run."""
        wait = self.choreography.step_aside()
        QTimer.singleShot(wait, self, self.controller.resume)

    def on_decided(self, decision: Decision) -> None:
        """The user decided: step aside before anything executes, then hand it over."""
        if self.mcp_host.decide(decision):
            return  # an MCP client's action: its input makes way itself (ui/mcp_host.py)
        if decision.kind == "stop":
            self.controller.decide(decision)
            self.stop_run()
            return
        wait = self.choreography.step_aside()
        QTimer.singleShot(wait, self, lambda: self.controller.decide(decision))

    def serve_mcp(self, on: bool) -> None:
        """Start or stop the app's MCP server (loopback only) with the current run settings."""
        if not on:
            self.mcp_host.stop()
            self.statusBar().showMessage("MCP server stopped")
            return
        from agent.config import ConfigError

        self._save()
        try:
            url = self.mcp_host.start(self.run_form.checked(self.settings.run))
        except (ConfigError, McpHostError) as exc:
            what = exc.for_app if isinstance(exc, ConfigError) else str(exc)
            self.serve_mcp_button.setChecked(False)  # first: unchecking says "stopped"
            self.statusBar().showMessage(visible(one_line(f"MCP server: {what}", 300)))
            return
        self.choreography.update_excluded()
        self.statusBar().showMessage(f"MCP server on {url}")

    def on_mcp_approval(self, request: ApprovalRequest) -> None:
        """An MCP client's action waits on the card; the status line names the client."""
        self.on_approval(request)
        who = one_line(request.client or "unknown client", 80)
        self.presenter.set_status(
            f"MCP client {who} asks: {one_line(describe(request.action), 100)}"
        )

    def on_mcp_stopped(self, error: str) -> None:
        """The MCP server ended (asked to, or it broke): no client waits on the card now."""
        self.serve_mcp_button.setChecked(False)
        if not self.controller.running:
            self.panel.clear()
        if error:
            self.statusBar().showMessage(visible(one_line(error, 300)))

    def _mcp_make_way(self, aside: bool) -> None:
        """Out of the way before a client's input (then let it run); back, unfocused, after."""
        if aside:
            wait = self.choreography.step_aside()
            QTimer.singleShot(wait, self, self.mcp_host.resume)
        else:
            self.choreography.come_back(activate=False)

    def on_recover(self, error: str) -> None:
        """Retries did not help: come back and ask Retry / Restart worker / Stop."""
        local = self.settings.run.backend == "local"
        self.recover_bar.restart_button.setText("Restart worker" if local else "Reconnect")
        self.recover_bar.ask(app_words(error, backend=self.settings.run.backend, limit=300))
        self.choreography.come_back(activate=True)
        again = "Restart worker" if local else "Reconnect"
        self.presenter.set_status(f"the model failed: Retry, {again} or Stop")

    def on_recover_chosen(self, choice: str) -> None:
        """Hand the choice to the waiting loop thread."""
        text = {
            "retry": "asking the model again",
            "restart": "restarting the model backend, then retrying",
            "stop": "ending the run after the backend failure",
        }[choice]
        self.presenter.add_log(text)
        self.presenter.set_status(text)
        self.controller.recover_choice(choice)  # type: ignore[arg-type]

    def on_progress(self, stage: str, fraction: object) -> None:
        """The local worker's download and load progress."""
        self.worker_progress.setVisible(True)
        if isinstance(fraction, float | int):
            self.worker_progress.setRange(0, 1000)
            self.worker_progress.setValue(int(fraction * 1000))
        else:
            self.worker_progress.setRange(0, 0)  # busy indicator: the stage has no fraction
        self.worker_label.setText(f"Model: {visible(stage)}")
        self.bar.set_status(f"model: {stage}")

    def on_worker_state(self, text: str) -> None:
        """The backend's state: ready (device, memory) or an error with what to do."""
        if text.startswith("ready") or text.startswith("error"):
            self.worker_progress.setVisible(False)
        shown = app_words(text, backend=self.settings.run.backend, limit=300)
        self.worker_label.setText(f"Model: {visible(shown)}")
        self.worker_label.setToolTip(visible(shown))
        self.restart_button.setEnabled(
            not self.controller.running and self.controller.backend is not None
        )

    def on_failed(self, message: str) -> None:
        """A run could not start or broke: the reason in the app's words."""
        shown = app_words(message, backend=self.settings.run.backend, limit=400)
        self._say(shown)
        if not message.startswith(("internal error", "risk rules:")):
            self.worker_label.setText(f"Model: error: {visible(shown)}")

    def on_finished(self, result: Any) -> None:
        """The run ended: come back (without taking the focus), show how."""
        self.stall.stop()
        self.panel.clear()
        self.recover_bar.clear()
        self._set_running(False)
        self.choreography.come_back(activate=False)
        self.bar.hide()
        if result is not None:
            text = f"finished: {result.outcome}: {result.message}"
            if result.answer:
                text += f" — answer: {result.answer}"
            self.progress.finish(f"finished: {result.outcome}")
            self.presenter.set_status(text)
            self.statusBar().showMessage(visible(f"{text} (recording in {result.run_dir})"))
            self.presenter.add_log(one_line(text, 300))
        else:
            self.progress.finish("did not start")
        if self.library is not None:
            self.library.refresh()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        """Save the settings and the window's place, stop the run and the worker."""
        if not self.controller.running:
            self._save()
        self._save_geometry()
        self.hotkey.stop()
        self.controller.shutdown()
        self.mcp_host.shutdown()
        self.bar.close()
        self.settings_dialog.close()
        if self.library is not None:
            self.library.close()
        super().closeEvent(event)


def run_app(argv: list[str] | None = None) -> int:
    """Start the Qt app; returns its exit status (1 when a signal ended it)."""
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    follow_color_scheme(app)
    window = MainWindow()
    return run_window(app, window)


def follow_color_scheme(app: Any) -> None:
    """The palette of the system's light or dark scheme, now and whenever it changes.

    The desktop's scheme reaches Qt through its platform theme (the xdg-desktop-portal's
    color-scheme setting on GNOME and KDE); Fusion draws with the palette set here, since the
    style X11's default picks has no dark variant.
    """
    app.setStyle("Fusion")
    hints = app.styleHints()
    apply_color_scheme(app, hints.colorScheme())
    hints.colorSchemeChanged.connect(lambda scheme: apply_color_scheme(app, scheme))


def apply_color_scheme(app: Any, scheme: Qt.ColorScheme) -> None:
    """A dark palette for the dark scheme, Fusion's own light one otherwise."""
    if scheme != Qt.ColorScheme.Dark:
        app.setPalette(app.style().standardPalette())
        return
    from PySide6.QtGui import QColor, QPalette

    role, dark = QPalette.ColorRole, QPalette()
    for r, rgb in (
        (role.Window, (45, 45, 48)),
        (role.WindowText, (230, 230, 230)),
        (role.Base, (30, 30, 32)),
        (role.AlternateBase, (45, 45, 48)),
        (role.Text, (230, 230, 230)),
        (role.Button, (55, 55, 60)),
        (role.ButtonText, (230, 230, 230)),
        (role.ToolTipBase, (60, 60, 64)),
        (role.ToolTipText, (230, 230, 230)),
        (role.PlaceholderText, (150, 150, 150)),
        (role.Highlight, (60, 110, 190)),
        (role.HighlightedText, (255, 255, 255)),
        (role.Link, (120, 170, 255)),
    ):
        dark.setColor(r, QColor(*rgb))
    for r in (role.Text, role.ButtonText, role.WindowText):
        dark.setColor(QPalette.ColorGroup.Disabled, r, QColor(130, 130, 130))
    app.setPalette(dark)


def run_window(app: Any, window: MainWindow) -> int:
    """Show the window and run the event loop; an ending signal stops the run, then quits."""
    ended_by: list[str] = []

    def end(reason: str) -> None:
        # As the Stop button: cancel, release input, record the outcome (naming the signal);
        # closing the window then waits for the run thread, and the app quits.
        ended_by.append(reason)
        window.controller.stop(reason)
        window.close()
        app.quit()

    bridge = SignalBridge(end)
    window.show()
    # A signal while the window was being built already ran `end`: quit() needs a running loop.
    status = 1 if ended_by else int(app.exec())
    bridge.close()
    if ended_by:
        print(f"deskpilot: {ended_by[0]}", file=sys.stderr)
        return 1
    return status
