"""The desktop app: task entry, backend and approval settings, live view, approval, control."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QPoint, QRect, QSocketNotifier, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QGuiApplication, QImage, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QMainWindow,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from actions.screen import Monitor
from actions.types import describe
from agent import interrupts
from agent.approval import ApprovalRequest, Decision
from agent.events import (
    ActionExecuted,
    ActionProposed,
    BackendFailed,
    DecisionMade,
    Event,
    OutputInvalid,
    ScreenStale,
    StepStarted,
    TextStreamed,
)
from agent.textsafe import one_line, visible
from ui.guard import Rect
from ui.hotkey import GlobalHotkey, describe_combo
from ui.mcp_host import DEFAULT_PORT, McpHost, McpHostError, show_quietly
from ui.run_controller import RunController
from ui.run_form import RunForm
from ui.settings import AppSettings, load_settings, save_settings
from ui.wayland import CaptureHider, on_wayland
from ui.widgets import (
    ApprovalPanel,
    ControlBar,
    LiveView,
    RecoverBar,
    plain_label,
    plain_tip,
    risk_text,
)

# Time for the X server to unmap the window before the agent captures or acts.
STEP_ASIDE_MS = 250
LOG_LINES = 500  # the run log keeps this many lines


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
        self.excluded: list[Rect] = []
        # Wayland tells no client where its windows are: they hide during captures instead.
        self.capture_hider = CaptureHider(lambda: [self, self.bar]) if on_wayland() else None
        self.controller = RunController(
            excluded=lambda: list(self.excluded),
            hide=self.capture_hider.hidden if self.capture_hider is not None else None,
        )
        # MCP clients' actions are asked on the same card (ui/mcp_host.py), never during a run.
        self.mcp_host = McpHost(
            excluded=lambda: list(self.excluded),
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
        self.panel = ApprovalPanel(self.view)
        self.bar = ControlBar(describe_combo(self.settings.hotkey))
        self.stall = StallMeter()
        self.step_t0 = 0.0
        self.first_token_s: float | None = None
        self.streaming_kind = ""
        self._proposed: dict[int, str] = {}  # step -> the proposed action, described
        self.test_log = os.environ.get("DESKPILOT_UI_LOG")
        self.test_shots = os.environ.get("DESKPILOT_UI_SHOTS")
        self._build()
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

    # -- layout ---------------------------------------------------------------------------

    def _build(self) -> None:
        self.task = QPlainTextEdit()
        self.task.setPlaceholderText("What should deskpilot do? e.g. Open the terminal and list ~")
        self.task.setMaximumHeight(80)
        # Every run option, generated from agent.config (the CLI's flags come from there too).
        self.run_form = RunForm(monitors=_monitor_choices())
        self.calibrate_button = QPushButton("Calibrate")
        self.calibrate_button.setAccessibleName("Calibrate")
        self.calibrate_button.setToolTip(
            "Self-test: click targets near the corners and the centre of the monitor (or the "
            "private desktop) through the agent's own mapping and measure where they land"
        )
        self.serve_mcp_button = QPushButton("Serve MCP")
        self.serve_mcp_button.setAccessibleName("Serve MCP")
        self.serve_mcp_button.setCheckable(True)
        self.serve_mcp_button.setToolTip(
            f"Serve screenshot, act and run_task to MCP clients on http://127.0.0.1:{DEFAULT_PORT}"
            "/mcp (this computer only); actions that need you are asked here"
        )
        settings_scroll = QScrollArea()
        settings_scroll.setWidgetResizable(True)
        settings_scroll.setWidget(self.run_form)

        self.start_button = QPushButton("Start")
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.setToolTip("Hold the run at its next action until you approve it")
        self.stop_button = QPushButton("Stop")
        self.takeover_button = QPushButton("Take over")
        self.takeover_button.setCheckable(True)
        self.takeover_button.setEnabled(False)
        self.takeover_button.setToolTip(
            "Pause the agent and work on its private desktop yourself: clicks, the wheel and "
            "keys on the screenshot go there (Esc still stops the run)"
        )
        buttons = QHBoxLayout()
        for b in (self.start_button, self.pause_button, self.stop_button, self.takeover_button):
            b.setAccessibleName(b.text())
            buttons.addWidget(b)

        self.worker_label = plain_label("worker: not started (it starts with the first run)")
        self.worker_label.setWordWrap(True)
        self.worker_progress = QProgressBar()
        self.worker_progress.setRange(0, 1000)
        self.worker_progress.setVisible(False)
        self.restart_button = QPushButton("Restart worker")
        worker_box = QGroupBox("Model worker")
        wl = QVBoxLayout(worker_box)
        wl.addWidget(self.worker_label)
        wl.addWidget(self.worker_progress)
        wl.addWidget(self.restart_button)

        form = QFormLayout()
        form.addRow("Task", self.task)
        self.task.setAccessibleName("Task")
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.addLayout(form)
        ll.addLayout(buttons)
        ll.addWidget(worker_box)
        ll.addWidget(self.calibrate_button)
        ll.addWidget(self.serve_mcp_button)
        ll.addWidget(settings_scroll, 1)

        self.step_label = plain_label("idle")
        # Long status lines (a backend's error) are cut, not allowed to widen the window; the
        # whole line is in the tooltip and the run log.
        self.step_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.thinking = QPlainTextEdit()
        self.thinking.setReadOnly(True)
        self.thinking.setPlaceholderText("The model's thinking and answer stream here.")
        self.thinking.setMaximumHeight(140)
        # One line per notable event: risky, blocked and refused actions, backend faults.
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(LOG_LINES)
        self.log_view.setMaximumHeight(90)
        self.log_view.setPlaceholderText("Run log: blocked, refused and risky actions, faults.")
        self.recover_bar = RecoverBar()
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.addWidget(self.step_label)
        rl.addWidget(self.view, 1)
        rl.addWidget(self.thinking)
        rl.addWidget(self.log_view)
        rl.addWidget(self.recover_bar)
        rl.addWidget(self.panel)

        split = QSplitter()
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        split.setSizes([330, 800])
        self.setCentralWidget(split)
        self.resize(1200, 800)

    def _connect(self) -> None:
        self.start_button.clicked.connect(self.start_run)
        self.stop_button.clicked.connect(self.stop_run)
        self.pause_button.toggled.connect(self._pause)
        self.restart_button.clicked.connect(self.restart_worker)
        self.bar.stop_clicked.connect(self.stop_run)
        self.panel.decided.connect(self.on_decided)
        self.recover_bar.chosen.connect(self.on_recover_chosen)
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
        enter = QShortcut(QKeySequence(Qt.Key.Key_Return), self)
        enter.activated.connect(self._enter)
        QShortcut(QKeySequence(Qt.Key.Key_Enter), self).activated.connect(self._enter)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self).activated.connect(self.stop_run)

    # -- settings -------------------------------------------------------------------------

    def _load_into_form(self, s: AppSettings) -> None:
        self.task.setPlainText(s.task)
        self.run_form.load(s.run)
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
        try:
            save_settings(self.settings, self.settings_file)
        except OSError as exc:
            self.statusBar().showMessage(f"cannot save settings: {exc}")

    # -- run control ----------------------------------------------------------------------

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.pause_button.setEnabled(running)
        self.stop_button.setEnabled(running)
        self.restart_button.setEnabled(not running)
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
            self.statusBar().showMessage("Type a task first.")
            return
        from agent.config import ConfigError
        from agent.session import SessionError, load_risk_rules

        try:
            config = self.run_form.checked(self.settings.run)
            load_risk_rules(config)  # a bad rules file: say which and why, start nothing
        except (ConfigError, SessionError) as exc:
            what = exc.for_app if isinstance(exc, ConfigError) else f"risk rules: {exc}"
            message = one_line(what, 300)
            self.statusBar().showMessage(visible(message))
            self.step_label.setText(visible(message))
            return
        self.thinking.clear()
        self.log_view.clear()
        self.recover_bar.clear()
        self._proposed = {}
        self._set_running(True)
        self.bar.place(self._monitor_area())
        self.bar.set_status("starting")
        self.bar.show()
        self.stall.start()
        self._step_aside()
        QTimer.singleShot(
            STEP_ASIDE_MS,
            self,
            lambda: self.controller.start(task, config),
        )

    def stop_run(self) -> None:
        """The kill switch (Stop, Esc, the hotkey): cancel generation and release input."""
        if not self.controller.running:
            return
        self.controller.stop()
        self.panel.clear()
        self.recover_bar.clear()
        self.bar.set_status("stopping…")
        self.step_label.setText("stopping…")

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
        self._status("calibrating: targets appear and are clicked; hands off the mouse")

        def done(code: int, _status: object) -> None:
            output = bytes(process.readAllStandardOutput().data()).decode("utf-8", "replace")
            for line in output.splitlines():
                if line.strip():
                    self.add_log(f"calibrate: {line.strip()}")
            lines = [x for x in output.splitlines() if x.strip()]
            verdict = lines[-1].strip() if lines else f"calibrate exited with status {code}"
            self._status(verdict)
            self.calibrate_button.setEnabled(not self.controller.running)
            self._log_test("calibrated", code=code, verdict=verdict)
            process.deleteLater()

        process.finished.connect(done)
        process.start(sys.executable, args)

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
            takeover.failed.connect(self._status)
            self.view.set_forward(lambda action: takeover.send(action, self._private_monitor()))
            self.takeover_timer.start()
            takeover.refresh()
            self._status("taking over: your clicks and keys on the screenshot go to its desktop")
            self._log_test("takeover", on=True)
            return
        self.takeover_timer.stop()
        self.view.set_forward(None)
        takeover, self.takeover = self.takeover, None
        if takeover is not None:
            takeover.close()
            if self.pause_button.isChecked():
                self.pause_button.setChecked(False)
            self._status("the agent goes on from here")
        self._log_test("takeover", on=False)

    def _private_monitor(self) -> Monitor:
        """The private desktop's monitor, as the view shows it."""
        assert self.view.monitor is not None
        return self.view.monitor

    def _pause(self, paused: bool) -> None:
        self.controller.set_paused(paused)
        self.pause_button.setText("Resume" if paused else "Pause")
        self.bar.set_status("paused: the next action waits for you" if paused else "resumed")

    def restart_worker(self) -> None:
        """Close the backend and load it again."""
        self._save()
        self.worker_label.setText("worker: restarting")
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

    # -- stepping aside -------------------------------------------------------------------

    def _update_excluded(self) -> None:
        """Rectangles the agent must neither see nor act on: the bar, and this window if shown."""
        rects = [self.bar.global_rect()] if self.bar.isVisible() else []
        if self.capture_hider is not None:
            rects = []  # Qt's positions are not the screen's on Wayland (ui/wayland.py)
        elif self.isVisible():
            g = self.frameGeometry()
            rects.append((g.x(), g.y(), g.width(), g.height()))
        self.excluded = rects

    def _step_aside(self) -> None:
        if self.settings.run.desktop != "user":
            return  # the agent works on a desktop of its own: nothing here to make way for
        self.hide()
        self._update_excluded()

    def _come_back(self) -> None:
        self.showNormal()
        self.raise_()
        self.activateWindow()

    # -- controller signals ---------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """Show one loop event."""
        match event:
            case StepStarted(step=step):
                self.step_t0 = time.monotonic()
                self.first_token_s = None
                self.streaming_kind = ""
                self.thinking.clear()
                self._status(f"step {step + 1}: looking at the screen")
            case TextStreamed(step=step, kind=kind, text=text):
                if self.first_token_s is None:
                    self.first_token_s = time.monotonic() - self.step_t0
                    self._status(f"step {step + 1}: the model is thinking")
                if kind != self.streaming_kind:
                    if self.streaming_kind:
                        self.thinking.appendPlainText("")
                    self.thinking.appendPlainText("thinking:" if kind == "reasoning" else "")
                    self.streaming_kind = kind
                cursor = self.thinking.textCursor()
                cursor.movePosition(cursor.MoveOperation.End)
                # Thinking streams in pieces; each is shown with its controls made visible.
                cursor.insertText(visible(text))
                self.thinking.setTextCursor(cursor)
            case ActionProposed(step=step, proposal=prop, space=space, risk=risk):
                took = time.monotonic() - self.step_t0
                first = f", first token {self.first_token_s:.2f} s" if self.first_token_s else ""
                what = describe(prop.action) if prop.action is not None else "invalid output"
                warn = risk_text(risk)
                self._status(
                    f"step {step + 1}: {what}{f' ({warn})' if warn else ''}"
                    f" (model {took:.1f} s{first})"
                )
                if prop.action is not None:
                    self._proposed[step] = one_line(what, 100)
                    self.view.set_action(prop.action, space, editable=False)
            case OutputInvalid(step=step, error=error):
                self._status(f"step {step + 1}: invalid output, nothing executed")
                self.thinking.appendPlainText(f"\n[invalid output: {visible(error)}]")
                self.add_log(f"step {step + 1}: invalid output, nothing executed")
            case DecisionMade(step=step, decision=decision, risk=risk):
                self._on_decision(step, decision, risk)
            case BackendFailed():
                self._on_backend_error(event)
            case ScreenStale(step=step, reason=reason):
                line = f"step {step + 1}: screen changed before execution, not executed"
                self._status(f"{line}; asking the model again")
                self.add_log(f"{line} — {one_line(reason, 160)}")
            case ActionExecuted(step=step, ok=False, error=error):
                self._status(f"step {step + 1}: execution failed: {error}")
                self.add_log(f"step {step + 1}: execution failed: {one_line(str(error), 160)}")

    def _on_decision(self, step: int, decision: Decision, risk: Any) -> None:
        """Status and one log line; blocked and refused actions always say why."""
        n, what = step + 1, self._proposed.get(step, "the action")
        note = one_line(decision.note or "", 160)
        if decision.by == "rules":
            line = f"step {n}: BLOCKED, not executed: {what} — {note}"
            self._status(f"step {n}: blocked by your rules, not executed: {note}")
        elif decision.kind in ("skip", "reject") and decision.by != "user":
            line = f"step {n}: refused, not executed: {what} — {note or decision.by}"
            self._status(f"step {n}: refused: {note or decision.by}")
        elif decision.kind in ("skip", "reject"):
            verb = "skipped" if decision.kind == "skip" else "rejected"
            line = f"step {n}: {verb} by you, not executed: {what}"
            line += f" — note: {note}" if note else ""
            self._status(f"step {n}: {verb}")
        elif decision.kind == "stop":
            line = f"step {n}: stopped before {what}" + (f" — {note}" if note else "")
            self._status(f"step {n}: stop")
        else:
            self._status(f"step {n}: {decision.kind}")
            warn = risk_text(risk)
            if not warn:
                return  # safe and approved: the status line is enough
            by = "by you" if decision.by == "user" else f"by {decision.by}"
            line = f"step {n}: {decision.kind}d {by}: {what} ({warn})"
        self.add_log(line)

    def _on_backend_error(self, event: BackendFailed) -> None:
        """A model request failed: say so, and when it is retried."""
        error = one_line(event.error, 200)
        again = event.retry_in_s
        if again is not None:
            text = f"model backend: {error}; retrying in {again:g} s"
        else:
            text = f"model backend: {error}; retries did not help"
        self._status(text)
        self.statusBar().showMessage(visible(text))
        self.add_log(f"step {event.step + 1}: {text}")

    def add_log(self, line: str) -> None:
        """One line in the run log (with the time)."""
        self.log_view.appendPlainText(f"{time.strftime('%H:%M:%S')} {visible(line)}")

    def _status(self, text: str) -> None:
        self.step_label.setText(visible(text))
        self.step_label.setToolTip(plain_tip(text))
        self.bar.set_status(text)

    def on_observed(self, step: int, image: QImage, monitor: Monitor) -> None:
        """A new screenshot: show it; the window may come back while the model thinks."""
        self.view.set_frame(image, monitor)
        if self.controller.running and not self.controller.stop_event.is_set():
            self._come_back()
            self._update_excluded()

    def on_approval(self, request: ApprovalRequest) -> None:
        """An action waits for the user."""
        self.panel.set_request(request)
        self._come_back()
        self.approve_focus()
        where = f" (breakpoint: {request.breakpoint})" if request.breakpoint else ""
        why = risk_text(request.risk)
        if request.attention:
            why = f"{why}; paused: {request.attention}" if why else f"paused: {request.attention}"
        self._status(
            f"step {request.step + 1}: waiting for your decision{where}{f' — {why}' if why else ''}"
        )
        if why:
            what = one_line(describe(request.action), 100)
            self.add_log(f"step {request.step + 1}: waiting for you: {what} — {why}")
        self._log_test(
            "approval",
            step=request.step,
            action=describe(request.action),
            risk=request.risk.level,
            reason=request.risk.reason,
        )
        if self.test_shots:
            QTimer.singleShot(300, self, lambda: self._save_shots(request.step))

    def approve_focus(self) -> None:
        """Keyboard focus on Approve so Enter works at once."""
        self.panel.approve_button.setFocus()

    def on_aside(self, request: ApprovalRequest) -> None:
        """A policy-approved action: step aside, then let it run."""
        self._step_aside()
        QTimer.singleShot(STEP_ASIDE_MS, self, self.controller.resume)

    def on_decided(self, decision: Decision) -> None:
        """The user decided: step aside before anything executes, then hand it over."""
        if self.mcp_host.decide(decision):
            return  # an MCP client's action: its input makes way itself (ui/mcp_host.py)
        if decision.kind == "stop":
            self.controller.decide(decision)
            self.stop_run()
            return
        self._step_aside()
        QTimer.singleShot(STEP_ASIDE_MS, self, lambda: self.controller.decide(decision))

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
        self._update_excluded()
        self.statusBar().showMessage(f"MCP server on {url}")

    def on_mcp_approval(self, request: ApprovalRequest) -> None:
        """An MCP client's action waits on the card; the status line names the client."""
        self.on_approval(request)
        who = one_line(request.client or "unknown client", 80)
        self._status(f"MCP client {who} asks: {one_line(describe(request.action), 100)}")

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
            self._step_aside()
            QTimer.singleShot(STEP_ASIDE_MS, self, self.mcp_host.resume)
        else:
            show_quietly(self)
            self._update_excluded()

    def on_recover(self, error: str) -> None:
        """Retries did not help: come back and ask Retry / Restart worker / Stop."""
        local = self.settings.run.backend == "local"
        self.recover_bar.restart_button.setText("Restart worker" if local else "Reconnect")
        self.recover_bar.ask(error)
        self._come_back()
        self._status("model backend failed: Retry, Restart worker or Stop")
        self._log_test("recover", error=error)

    def on_recover_chosen(self, choice: str) -> None:
        """Hand the choice to the waiting loop thread."""
        text = {
            "retry": "retrying the model request",
            "restart": "restarting the model backend, then retrying",
            "stop": "ending the run after the backend failure",
        }[choice]
        self.add_log(text)
        self._status(text)
        self.controller.recover_choice(choice)  # type: ignore[arg-type]

    def on_progress(self, stage: str, fraction: object) -> None:
        """The local worker's download and load progress."""
        self.worker_progress.setVisible(True)
        if isinstance(fraction, float | int):
            self.worker_progress.setRange(0, 1000)
            self.worker_progress.setValue(int(fraction * 1000))
        else:
            self.worker_progress.setRange(0, 0)  # busy indicator: the stage has no fraction
        self.worker_label.setText(f"worker: {visible(stage)}")
        self.bar.set_status(f"model: {stage}")

    def on_worker_state(self, text: str) -> None:
        """Worker state: ready (device, memory) or an error with what to do."""
        if text.startswith("ready") or text.startswith("error"):
            self.worker_progress.setVisible(False)
        self.worker_label.setText(f"worker: {visible(text)}")

    def on_failed(self, message: str) -> None:
        """A run could not start or broke."""
        shown = visible(message)
        self.statusBar().showMessage(shown)
        self.step_label.setText(shown)
        if not message.startswith(("internal error", "risk rules:")):
            self.worker_label.setText(f"worker: error: {shown}")

    def on_finished(self, result: Any) -> None:
        """The run ended: come back, show how."""
        self.stall.stop()
        self.bar.hide()
        self.panel.clear()
        self.recover_bar.clear()
        self._set_running(False)
        self._come_back()
        self._update_excluded()
        if result is not None:
            text = f"finished: {result.outcome}: {result.message}"
            if result.answer:
                text += f" — answer: {result.answer}"
            self.step_label.setText(visible(text))
            self.statusBar().showMessage(visible(f"{text} (recording in {result.run_dir})"))
            self.add_log(one_line(text, 300))
        self._log_test(
            "finished",
            outcome=None if result is None else result.outcome,
            run_dir=None if result is None else result.run_dir,
            stall_max_ms=round(self.stall.max_gap_ms, 1),
        )

    # -- test hooks (DESKPILOT_UI_LOG / DESKPILOT_UI_SHOTS) -------------------------------

    def widget_rects(self) -> dict[str, list[int]]:
        """Global rectangles of the controls and of the drawn screenshot (for tests)."""
        out: dict[str, list[int]] = {}
        named: dict[str, QWidget] = {
            "start": self.start_button,
            "stop": self.stop_button,
            "takeover": self.takeover_button,
            "calibrate": self.calibrate_button,
            "approve": self.panel.approve_button,
            "skip": self.panel.skip_button,
            "reject": self.panel.reject_button,
            "panel_stop": self.panel.stop_button,
            "note": self.panel.note,
            "text_edit": self.panel.text_edit,
            "view": self.view,
            "retry": self.recover_bar.retry_button,
            "restart_worker": self.recover_bar.restart_button,
            "recover_stop": self.recover_bar.stop_button,
        }
        for name, w in named.items():
            p = w.mapToGlobal(QPoint(0, 0))
            out[name] = [p.x(), p.y(), w.width(), w.height()]
        t = self.view.target_rect()
        p = self.view.mapToGlobal(QPoint(0, 0))
        out["picture"] = [p.x() + t.x(), p.y() + t.y(), t.width(), t.height()]  # type: ignore[list-item]
        out["bar"] = list(self.bar.global_rect())
        return out

    def _log_test(self, event: str, **fields: Any) -> None:
        if not self.test_log:
            return
        record = {"event": event, **fields, "rects": self.widget_rects(), "t": time.time()}
        with open(self.test_log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    def _save_shots(self, step: int) -> None:
        assert self.test_shots
        folder = Path(self.test_shots)
        folder.mkdir(parents=True, exist_ok=True)
        self.grab().save(str(folder / f"window-step{step + 1}.png"))
        if self.bar.isVisible():
            self.bar.grab().save(str(folder / "control-bar.png"))
        self._log_test("shots", step=step)

    def showEvent(self, event: Any) -> None:  # noqa: N802
        """Log readiness once shown (test hook)."""
        super().showEvent(event)
        if not getattr(self, "_ready_logged", False):
            self._ready_logged = True
            QTimer.singleShot(
                200, self, lambda: self._log_test("ready", hotkey_error=self.hotkey.error)
            )

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        """Save the settings, stop the run and the worker."""
        if not self.controller.running:
            self._save()
        self.hotkey.stop()
        self.controller.shutdown()
        self.mcp_host.shutdown()
        self.bar.close()
        super().closeEvent(event)


class SignalBridge(QObject):
    """Ending signals (SIGTERM, SIGHUP, SIGQUIT, SIGINT) reach the Qt event loop.

    Python runs signal handlers only when the interpreter gets control; Qt's loop is C++. The C
    handler writes to a socket (signal.set_wakeup_fd) that a QSocketNotifier watches, so a
    Python slot runs at once, and with it agent.interrupts' handler, which calls `on_signal`.
    """

    def __init__(self, on_signal: Callable[[str], None]) -> None:
        super().__init__()
        self._read, self._write = socket.socketpair()
        self._read.setblocking(False)
        self._write.setblocking(False)
        self._old_fd = signal.set_wakeup_fd(self._write.fileno(), warn_on_full_buffer=False)
        self._notifier = QSocketNotifier(self._read.fileno(), QSocketNotifier.Type.Read, self)
        self._notifier.activated.connect(self._drain)
        interrupts.install()
        interrupts.notify(on_signal)

    def _drain(self) -> None:
        """Empty the wake-up socket; the signal's Python handler runs around this slot."""
        try:
            while self._read.recv(512):
                pass
        except OSError:
            pass  # drained (EAGAIN)

    def close(self) -> None:
        """Stop listening (the app is quitting)."""
        interrupts.notify(None)
        interrupts.stopping()
        self._notifier.setEnabled(False)
        signal.set_wakeup_fd(self._old_fd)
        self._read.close()
        self._write.close()


def run_app(argv: list[str] | None = None) -> int:
    """Start the Qt app; returns its exit status (1 when a signal ended it)."""
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    window = MainWindow()
    ended_by: list[str] = []

    def end(reason: str) -> None:
        # As the Stop button: cancel, release input, record the outcome (naming the signal);
        # closing the window then waits for the run thread, and the app quits.
        ended_by.append(reason)
        window.controller.stop(reason)
        window.close()
        app.quit()

    bridge = SignalBridge(end)
    geometry = os.environ.get("DESKPILOT_UI_GEOMETRY")  # tests place the window; users' WM does
    if geometry:
        x, y, w, h = (int(v) for v in geometry.split(","))
        window.setGeometry(x, y, w, h)
    window.show()
    # A signal while the window was being built already ran `end`: quit() needs a running loop.
    status = 1 if ended_by else int(app.exec())
    bridge.close()
    if ended_by:
        print(f"deskpilot: {ended_by[0]}", file=sys.stderr)
        return 1
    return status
