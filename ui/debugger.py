"""The debugger: step through a recording, see everything a step recorded, ask the model again.

Each step shows its screenshot scaled to fit with the action drawn on it (ui/overlay.py through
the live view), the thinking as text, the raw output, the parse result or error, the decision,
what ran, timings and token counts. Checking a step in the timeline sets a breakpoint there.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, MutableSet, Sequence
from dataclasses import replace

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QCloseEvent, QImage, QImageReader, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from actions.types import Action
from agent.backends.base import Backend, ChatMessage, Completion, OnDelta
from agent.config import RunConfig
from agent.recording import Recording, prompt_messages
from agent.records import StepRecord, tool_call_json
from agent.replay import recorded_action, step_geometry
from agent.textsafe import one_line, visible
from ui.step_text import action_words, decision_words, result_words, step_lines, timing_words
from ui.timeline import THUMB, StepTimeline
from ui.widgets import LiveView, fit_window, plain_label

BackendFactory = Callable[[Recording], Backend]


def recorded_backend(recording: Recording, base: RunConfig | None = None) -> Backend:
    """A backend like the one that made the recording: its server and model, or its worker.

    `base` gives everything else (the API key's variable, timeouts, the device): the app's
    settings, or the defaults.
    """
    from agent.session import open_backend

    config = base or RunConfig()
    info = recording.info.get("backend") or {}
    model = str(recording.info.get("model") or "")
    if info.get("kind") == "openai":
        config = replace(config, backend="openai", endpoint=str(info.get("endpoint") or ""))
        if info.get("api_key_env"):
            config = replace(config, api_key_env=str(info["api_key_env"]))
    else:
        config = replace(config, backend="local")
    return open_backend(replace(config, model=model or config.model))


class Borrowed:
    """A backend lent to the debugger: asked like any other, never closed by it (the app's
    loaded worker, which a second copy would only duplicate in memory)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.model = backend.model

    def complete(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[dict[str, object]],
        *,
        on_delta: OnDelta | None = None,
        cancel: threading.Event | None = None,
    ) -> Completion:
        """The lender's answer."""
        return self.backend.complete(messages, tools, on_delta=on_delta, cancel=cancel)

    def describe(self) -> dict[str, object]:
        """The lender's facts."""
        return self.backend.describe()

    def close(self) -> None:
        """Nothing: the lender closes it."""


def _json(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _text_box(placeholder: str, name: str) -> QPlainTextEdit:
    """A read-only plain-text box: model output shown as text, never as rich text."""
    box = QPlainTextEdit()
    box.setReadOnly(True)
    box.setPlaceholderText(placeholder)
    box.setAccessibleName(name)
    return box


class _AskRelay(QObject):
    """Carries the ask-again result from its thread to the GUI thread."""

    done = Signal(object, object)  # (step index, AskAgain or the error text)


class StepDetails(QTabWidget):
    """One step's recorded fields: a summary, the thinking, the raw output, the prompt."""

    def __init__(self) -> None:
        super().__init__()
        summary = QWidget()
        form = QFormLayout(summary)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.fields: dict[str, QLabel] = {}
        for name in ("Action", "Parse", "Decision", "Executed", "Result", "Timings", "Tokens"):
            label = plain_label()
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setAccessibleName(name)
            form.addRow(name, label)
            self.fields[name] = label
        self.thinking = _text_box("The model wrote no thinking at this step.", "Thinking")
        self.raw = _text_box("No output recorded.", "Raw output")
        self.prompt = _text_box("No prompt recorded at this step.", "Prompt")
        self.addTab(summary, "Step")
        self.addTab(self.thinking, "Thinking")
        self.addTab(self.raw, "Raw output")
        self.addTab(self.prompt, "Prompt")
        self.setAccessibleName("Step details")

    def show_step(self, recording: Recording, step: StepRecord, action: Action | None) -> None:
        """Fill every tab from one recorded step."""
        f = self.fields
        f["Action"].setText(action_words(action) if action is not None else "no valid action")
        f["Parse"].setText(
            f"error: {one_line(step.parse_error, 600)}"
            if step.parse_error
            else f"one valid call: {one_line(_json(step.action), 600)}"
        )
        f["Decision"].setText(decision_words(step.decision))
        execution = step.execution
        if execution is not None and execution.executed is not False:
            ran = one_line(_json(execution.action), 300)
            detail = one_line(execution.detail or execution.error or "", 300)
            f["Executed"].setText(f"{ran}{f' — {detail}' if detail else ''}")
        else:
            f["Executed"].setText("nothing")
        result = result_words(step)
        if step.result is None:
            f["Result"].setText(result)
        else:
            f["Result"].setText(f"{result}; told the model: {one_line(step.result, 400)}")
        f["Timings"].setText(timing_words(step) or "none recorded")
        f["Tokens"].setText(
            ", ".join(f"{k} {v}" for k, v in step.tokens.items() if v is not None)
            or "none recorded"
        )
        self.thinking.setPlainText(visible(step.thinking))
        raw = visible(step.raw_output)
        if step.tool_calls:
            calls = [tool_call_json(c) for c in step.tool_calls]
            raw += "\n\n--- structured tool calls ---\n" + visible(
                json.dumps(calls, ensure_ascii=False, indent=1)
            )
        self.raw.setPlainText(raw)
        messages = prompt_messages(recording, step.index)
        if messages is None:
            self.prompt.setPlainText("")
        else:
            lines = []
            for msg in messages:
                text = "".join(
                    p["text"] if p["type"] == "text" else f"[screenshot {p.get('path')}]"
                    for p in msg["content"]
                )
                for call in msg.get("tool_calls") or ():
                    text += f"[tool call {call.get('name')}: {call.get('arguments')}]"
                lines.append(f"── {msg['role']} ──\n{text}")
            self.prompt.setPlainText(visible("\n\n".join(lines)))


class AskAgainPanel(QWidget):
    """The recorded proposal and the one the model makes now, side by side."""

    def __init__(self) -> None:
        super().__init__()
        self.verdict = plain_label("Ask the model again at this step to compare.")
        self.verdict.setWordWrap(True)
        self.verdict.setAccessibleName("Comparison")
        self.recorded = _text_box("", "Recorded")
        self.now = _text_box("", "Asked again now")
        cols = QHBoxLayout()
        for title, box in (("Recorded", self.recorded), ("Asked again now", self.now)):
            col = QVBoxLayout()
            col.addWidget(plain_label(title))
            col.addWidget(box)
            cols.addLayout(col)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.verdict)
        layout.addLayout(cols, 1)

    @staticmethod
    def column(action: Action | None, error: object, thinking: str) -> str:
        """A proposal as text: the action in words (or the error), then the thinking."""
        head = action_words(action) if action is not None else f"invalid: {error}"
        return visible(f"{head}\n\nThinking:\n{thinking.strip() or '(none)'}")


class Debugger(QMainWindow):
    """A recording's timeline on the left; the chosen step's picture and fields on the right."""

    def __init__(
        self,
        recording: Recording,
        *,
        breakpoints: MutableSet[int] | None = None,
        backend_factory: BackendFactory | None = recorded_backend,
    ) -> None:
        super().__init__()
        self.recording = recording
        self.backend_factory = backend_factory
        self.setWindowTitle(f"deskpilot debugger: {one_line(str(recording.info.get('task', '')))}")
        self.steps = recording.records
        self.actions_: list[Action | None] = [self._proposed(s) for s in self.steps]
        self.timeline = StepTimeline(breakpoints)
        self.search = QLineEdit()
        self.search.setPlaceholderText("thinking, output, action…")
        self.search.setAccessibleName("Search")
        self.search.setToolTip("Show only the steps whose recorded text contains this")
        self.view = LiveView()
        self.view.setAccessibleName("Screenshot")
        self.details = StepDetails()
        self.ask_panel = AskAgainPanel()
        self.details.addTab(self.ask_panel, "Ask again")
        self.position = plain_label()
        self.position.setAccessibleName("Position")
        self.back_button = QPushButton("Back")
        self.back_button.setToolTip("The previous step (Left or Up)")
        self.forward_button = QPushButton("Forward")
        self.forward_button.setToolTip("The next step (Right or Down)")
        self.ask_button = QPushButton("Ask again")
        self.ask_button.setToolTip(
            "Send this step's recorded prompt and screenshot to the model again and compare "
            "its answer with the recorded one; nothing is executed"
        )
        self.close_button = QPushButton("Close")
        self.close_button.setToolTip("Close the debugger (Ctrl+W or Esc)")
        for b in (self.back_button, self.forward_button, self.ask_button, self.close_button):
            b.setAccessibleName(b.text())
        self.ask_button.setEnabled(backend_factory is not None)
        self._build()
        self._asking: threading.Event | None = None
        self._relay = _AskRelay()
        self._relay.done.connect(self._on_asked)
        for row, step in enumerate(self.steps):
            self.timeline.set_row(row, step_lines(step, self.actions_[row]), self._thumb(step))
        self.timeline.currentRowChanged.connect(self.show_step)
        self.back_button.clicked.connect(lambda: self.go(-1))
        self.forward_button.clicked.connect(lambda: self.go(1))
        self.ask_button.clicked.connect(self.ask_again)
        self.close_button.clicked.connect(self.close)
        self.search.textChanged.connect(self.filter)
        for keys in ("Ctrl+W", "Esc"):
            QShortcut(QKeySequence(keys), self).activated.connect(self.close)
        for keys, delta in (("Left", -1), ("Up", -1), ("Right", 1), ("Down", 1)):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
            shortcut.activated.connect(lambda d=delta: self.go(d))
        if self.steps:
            self.timeline.setCurrentRow(0)
        else:
            self.position.setText("This recording has no complete step.")
        if recording.warnings:
            self.statusBar().showMessage(visible("; ".join(recording.warnings)))
        fit_window(self, 1400, 900)

    def _build(self) -> None:
        top = QHBoxLayout()
        top.addWidget(self.back_button)
        top.addWidget(self.forward_button)
        top.addWidget(self.position, 1)
        top.addWidget(self.ask_button)
        top.addWidget(self.close_button)
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        search_row = QHBoxLayout()
        search_label = QLabel("Search")
        search_label.setBuddy(self.search)
        search_row.addWidget(search_label)
        search_row.addWidget(self.search, 1)
        lv.addLayout(search_row)
        lv.addWidget(self.timeline, 1)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.view)
        right.addWidget(self.details)
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 2)
        split = QSplitter()
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        split.setSizes([330, 950])
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(top)
        layout.addWidget(split, 1)
        self.setCentralWidget(central)

    def _thumb(self, step: StepRecord) -> QImage | None:
        """The step's screenshot, small (no overlay: at this size it would hide the picture)."""
        if not step.screenshot:
            return None
        reader = QImageReader(str(self.recording.dir / step.screenshot))
        size = reader.size()
        if size.isValid():
            reader.setScaledSize(size.scaled(THUMB, Qt.AspectRatioMode.KeepAspectRatio))
        image = reader.read()
        return None if image.isNull() else image

    @staticmethod
    def _proposed(step: StepRecord) -> Action | None:
        try:
            return recorded_action(step)
        except (ValueError, TypeError, KeyError):
            return None  # a hand-edited or foreign recording: no overlay rather than a crash

    @property
    def current(self) -> int:
        """The row shown (0-based), -1 when none."""
        return self.timeline.currentRow()

    def go(self, delta: int) -> None:
        """Step forward or back among the steps the search shows."""
        row = self.timeline.currentRow() + delta
        while 0 <= row < self.timeline.count() and self.timeline.item(row).isHidden():
            row += delta
        if 0 <= row < self.timeline.count():
            self.timeline.setCurrentRow(row)

    def filter(self, text: str) -> None:
        """Hide steps whose recorded text does not contain the search text."""
        needle = text.strip().lower()
        for row, step in enumerate(self.steps):
            # The prompt repeats earlier steps: searching it would match every later step.
            own = {k: v for k, v in step.to_json().items() if k != "prompt"}
            haystack = json.dumps(own, ensure_ascii=False).lower()
            self.timeline.item(row).setHidden(bool(needle) and needle not in haystack)

    def show_step(self, row: int) -> None:
        """Show one step: its picture with the overlay, and every recorded field."""
        if not 0 <= row < len(self.steps):
            return
        step = self.steps[row]
        total = len(self.steps)
        self.position.setText(f"Step {row + 1} of {total}")
        self.back_button.setEnabled(row > 0)
        self.forward_button.setEnabled(row < total - 1)
        image, geometry = QImage(), step_geometry(step)
        if step.screenshot:
            image.load(str(self.recording.dir / step.screenshot))
        if not image.isNull() and geometry is not None:
            self.view.set_frame(image, geometry[1])
            self.view.set_action(self.actions_[row], geometry[0], editable=False)
        else:
            self.view.image = None
            self.view.update()
        self.details.show_step(self.recording, step, self.actions_[row])
        recorded = self.actions_[row]
        self.ask_panel.recorded.setPlainText(
            AskAgainPanel.column(recorded, step.parse_error, step.thinking)
        )
        self.ask_panel.now.setPlainText("")
        self.ask_panel.verdict.setText("Ask the model again at this step to compare.")

    # -- ask again ------------------------------------------------------------------------

    def ask_again(self) -> None:
        """Send the shown step to the model again, off the GUI thread; executes nothing."""
        row = self.current
        if self.backend_factory is None or row < 0 or self._asking is not None:
            return
        index = self.steps[row].index
        cancel = threading.Event()
        self._asking = cancel
        self.ask_button.setEnabled(False)
        self.details.setCurrentWidget(self.ask_panel)
        self.ask_panel.verdict.setText(f"Asking the model again at step {index + 1}…")
        factory, recording, relay = self.backend_factory, self.recording, self._relay

        def work() -> None:
            from agent.replay import ask_again

            outcome: object
            try:
                backend = factory(recording)
                try:
                    outcome = ask_again(recording, index, backend, cancel=cancel)
                finally:
                    backend.close()
            except Exception as exc:  # shown to the user; the recording is untouched
                outcome = one_line(str(exc) or type(exc).__name__, 400)
            if not cancel.is_set():
                relay.done.emit(index, outcome)

        threading.Thread(target=work, name="ask-again", daemon=True).start()

    def _on_asked(self, index: int, outcome: object) -> None:
        self._asking = None
        self.ask_button.setEnabled(True)
        row = self.current
        if row < 0 or self.steps[row].index != index:
            return  # the user moved on; the answer belongs to another step
        if isinstance(outcome, str):
            self.ask_panel.verdict.setText(f"The model could not be asked: {outcome}")
            return
        proposal = outcome.proposal  # type: ignore[attr-defined]
        self.ask_panel.now.setPlainText(
            AskAgainPanel.column(proposal.action, proposal.error, proposal.thinking)
        )
        same = proposal.action is not None and proposal.action == self.actions_[row]
        self.ask_panel.verdict.setText(
            f"Step {index + 1}: the model proposes the same action now."
            if same
            else f"Step {index + 1}: the model proposes something different now."
        )

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        """Cancel a pending ask-again request."""
        if self._asking is not None:
            self._asking.set()
        super().closeEvent(event)


def run_viewer(recording: Recording) -> int:
    """Open the debugger on a recording and run the Qt event loop until it closes.

    An ending signal (Ctrl-C, SIGTERM) closes it: Qt's loop would otherwise never let
    Python's handler run.
    """
    from ui.signal_bridge import SignalBridge

    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = Debugger(recording)
    ended: list[str] = []

    def end(reason: str) -> None:
        ended.append(reason)
        window.close()
        app.quit()

    bridge = SignalBridge(end)
    window.show()
    status = 1 if ended else int(app.exec())
    bridge.close()
    return 1 if ended else status
