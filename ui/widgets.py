"""The live view, the approval panel, the recovery bar and the control bar."""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Callable

from PySide6.QtCore import QPoint, QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QGuiApplication,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from actions.keys import KeyNameError, chord_text, split_plus
from actions.screen import CoordinateSpace, Monitor
from actions.types import Action, Key, LeftClickDrag, Type
from agent.approval import ApprovalRequest, Decision
from agent.risk import Risk
from agent.textsafe import one_line, visible
from ui.overlay import action_point, model_to_view, paint_action, view_to_model
from ui.step_text import action_words

GRAB_RADIUS = 16.0  # how close to a drag's start a press must be to move the start

# Colours of the risk line: strong enough to be read before the Approve button is.
RISK_STYLE = {
    "risky": "background: #f0a020; color: black; font-weight: bold; padding: 4px;",
    "blocked": "background: #c0203a; color: white; font-weight: bold; padding: 4px;",
    "attention": "background: #ffd84a; color: black; font-weight: bold; padding: 4px;",
}


def risk_text(risk: Risk | None) -> str:
    """'Risky: <reason>' / 'Blocked: <reason>', or "" for a safe (or unassessed) action."""
    if risk is None or risk.level == "safe":
        return ""
    return f"{risk.level.capitalize()}: {one_line(risk.reason or 'no reason given', 500)}"


def plain_label(text: str = "") -> QLabel:
    """A label that shows its text as plain text: QLabel would render model text as HTML."""
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)
    return label


# Room left around a window for the window manager's frame and title bar.
FRAME_ALLOWANCE = (16, 48)


def fit_window(window: QWidget, width: int, height: int) -> None:
    """Size a top-level window to width x height at most, never past the screen's free area.

    Centred on the screen under the window (or the primary screen); a window larger than
    the screen would hide its own buttons and status bar.
    """
    screen = window.screen() or QGuiApplication.primaryScreen()
    if screen is None:
        window.resize(width, height)
        return
    area = screen.availableGeometry()
    w = min(width, area.width() - FRAME_ALLOWANCE[0])
    h = min(height, area.height() - FRAME_ALLOWANCE[1])
    window.resize(max(w, 200), max(h, 150))
    # move() places the frame's corner: centre the frame (the window plus its allowance).
    window.move(
        area.x() + max(0, (area.width() - w - FRAME_ALLOWANCE[0]) // 2),
        area.y() + max(0, (area.height() - h - FRAME_ALLOWANCE[1]) // 2),
    )


def plain_tip(text: str) -> str:
    """A tooltip showing text literally (tooltips too guess rich text), controls made visible."""
    return f"<p style='white-space:pre-wrap'>{html.escape(visible(text), quote=False)}</p>"


class LiveView(QWidget):
    """The screenshot the model saw, scaled to fit, with the proposed action drawn on it."""

    edited = Signal(object)  # the action after the user moved its point

    def __init__(self) -> None:
        super().__init__()
        self.image: QImage | None = None
        self.monitor: Monitor | None = None
        self.action: Action | None = None
        self.space = CoordinateSpace.relative()
        self.editable = False
        self.banner = ""  # e.g. "breakpoint: step 3", drawn over the picture's corner
        self._part = "end"
        self._scaled: QImage | None = None  # the picture at the drawn size, scaled once
        # Taking over a private desktop: the user's clicks, wheel and keys on the picture are
        # sent there as actions (ui/takeover.py) instead of editing the proposal.
        self.forward: Callable[[Action], None] | None = None
        self.setMinimumSize(320, 180)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_frame(self, image: QImage, monitor: Monitor) -> None:
        """Show a new screenshot (and forget the previous step's action)."""
        self.image, self.monitor, self.action, self.editable = image, monitor, None, False
        self._scaled = None
        self.update()

    def clear(self) -> None:
        """No screenshot: a new run starts from an empty view."""
        self.image, self.monitor, self.action, self.editable = None, None, None, False
        self._scaled = None
        self.banner = ""
        self.update()

    def set_action(self, action: Action | None, space: CoordinateSpace, editable: bool) -> None:
        """Draw this action; editable lets a click or drag move its point."""
        self.action, self.space, self.editable = action, space, editable
        self.setCursor(Qt.CursorShape.CrossCursor if editable else Qt.CursorShape.ArrowCursor)
        self.update()

    def set_banner(self, text: str) -> None:
        """A line drawn over the top-left corner ("" hides it)."""
        if text != self.banner:
            self.banner = text
            self.update()

    def image_size(self) -> tuple[int, int]:
        """The screenshot's size in pixels."""
        assert self.image is not None
        return self.image.width(), self.image.height()

    def target_rect(self) -> QRectF:
        """Where the picture is drawn: the widget, keeping the aspect ratio, centred."""
        if self.image is None or self.image.isNull():
            return QRectF(self.rect())
        iw, ih = self.image_size()
        scale = min(self.width() / iw, self.height() / ih)
        w, h = iw * scale, ih * scale
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        """Picture, then the action over it."""
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(30, 30, 34))
        if self.image is not None and self.monitor is not None:
            target = self.target_rect()
            size = target.size().toSize()
            if self._scaled is None or self._scaled.size() != size:
                # Smooth scaling of a full screenshot costs tens of ms: once per frame and size,
                # not on every repaint (the crosshair moves while editing).
                self._scaled = self.image.scaled(
                    size,
                    Qt.AspectRatioMode.IgnoreAspectRatio,
                    Qt.TransformationMode.SmoothTransformation,
                )
            painter.drawImage(target, self._scaled)
            if self.action is not None:
                paint_action(
                    painter,
                    self.action,
                    space=self.space,
                    monitor=self.monitor,
                    target=target,
                    image_size=self.image_size(),
                )
        else:
            painter.setPen(QColor(170, 170, 170))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "no screenshot yet")
        if self.banner:
            box = painter.fontMetrics().boundingRect(self.banner).adjusted(-6, -3, 6, 3)
            box.moveTopLeft(QPoint(8, 8))
            painter.fillRect(box, QColor(200, 40, 40))
            painter.setPen(QColor(255, 255, 255))
            painter.drawText(box, Qt.AlignmentFlag.AlignCenter, self.banner)
        painter.end()

    def set_forward(self, forward: Callable[[Action], None] | None) -> None:
        """Send the user's input on the picture to `forward` (None: back to viewing)."""
        self.forward = forward
        self.setFocusPolicy(
            Qt.FocusPolicy.StrongFocus if forward is not None else Qt.FocusPolicy.NoFocus
        )
        self.setCursor(
            Qt.CursorShape.PointingHandCursor if forward is not None else Qt.CursorShape.ArrowCursor
        )
        if forward is not None:
            self.setFocus()

    def _picture_point(self, pos: QPointF) -> tuple[float, float] | None:
        """The 0-1000 point under a position in the picture, or None off the picture."""
        if self.image is None or self.monitor is None:
            return None
        target = self.target_rect()
        if not target.contains(pos):
            return None
        return view_to_model(
            pos,
            space=CoordinateSpace.relative(),
            monitor=self.monitor,
            target=target,
            image_size=self.image_size(),
        )

    def _forward_click(self, event: QMouseEvent) -> bool:
        from ui.takeover import click_action

        point = self._picture_point(event.position())
        if self.forward is None or point is None:
            return False
        self.forward(click_action(event.button(), point))
        return True

    def focusNextPrevChild(self, next: bool) -> bool:  # noqa: N802, A002
        """Taking over: Tab is a key for the private desktop, not a move to the next field."""
        return False if self.forward is not None else super().focusNextPrevChild(next)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        """Taking over: the second click of a double click."""
        if not self._forward_click(event):
            super().mouseDoubleClickEvent(event)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        """Taking over: the wheel scrolls the private desktop where the pointer is."""
        from ui.takeover import scroll_action

        point = self._picture_point(event.position())
        steps = event.angleDelta().y() // 120
        if self.forward is None or point is None or steps == 0:
            return super().wheelEvent(event)
        self.forward(scroll_action(point, steps))

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        """Taking over: keys and text go to the private desktop."""
        from ui.takeover import key_action

        action = key_action(event) if self.forward is not None else None
        if action is None:
            return super().keyPressEvent(event)
        self.forward(action)  # type: ignore[misc]  # checked just above

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        """Clicking the picture moves the action's point there (the start, near a drag's)."""
        if self._forward_click(event):
            return
        if not self._can_edit() or event.button() != Qt.MouseButton.LeftButton:
            return super().mousePressEvent(event)
        self._part = "end"
        action = self.action
        if isinstance(action, LeftClickDrag) and action.start_coordinate is not None:
            start = self._to_view(action.start_coordinate)
            end = self._to_view(action.coordinate)
            pos = event.position()
            if _dist(pos, start) <= GRAB_RADIUS and _dist(pos, start) < _dist(pos, end):
                self._part = "start"
        self._move_to(event.position())

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        """Dragging keeps moving the point."""
        if self._can_edit() and event.buttons() & Qt.MouseButton.LeftButton:
            self._move_to(event.position())
        else:
            super().mouseMoveEvent(event)

    def _can_edit(self) -> bool:
        return (
            self.editable
            and self.action is not None
            and self.image is not None
            and self.monitor is not None
            and (action_point(self.action) is not None or hasattr(self.action, "coordinate"))
        )

    def _to_view(self, point: tuple[float, float]) -> QPointF:
        assert self.monitor is not None
        return model_to_view(
            point,
            space=self.space,
            monitor=self.monitor,
            target=self.target_rect(),
            image_size=self.image_size(),
        )

    def _move_to(self, pos: QPointF) -> None:
        assert self.monitor is not None and self.action is not None
        target = self.target_rect()
        clamped = QPointF(
            min(max(pos.x(), target.left()), target.right()),
            min(max(pos.y(), target.top()), target.bottom()),
        )
        point = view_to_model(
            clamped,
            space=self.space,
            monitor=self.monitor,
            target=target,
            image_size=self.image_size(),
        )
        if self._part == "start" and isinstance(self.action, LeftClickDrag):
            self.action = dataclasses.replace(self.action, start_coordinate=point)
        else:
            self.action = dataclasses.replace(self.action, coordinate=point)  # type: ignore[arg-type]
        self.update()
        self.edited.emit(self.action)


def _dist(a: QPointF, b: QPointF) -> float:
    return float(((a.x() - b.x()) ** 2 + (a.y() - b.y()) ** 2) ** 0.5)


class ApprovalPanel(QWidget):
    """Approve (Enter), edit, skip, reject with a note, or stop (Esc) one proposed action."""

    decided = Signal(object)  # Decision

    def __init__(self, view: LiveView) -> None:
        super().__init__()
        self.view = view
        self.request: ApprovalRequest | None = None
        self.title = plain_label("No action waiting.")
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # Why this action waits (risk rules) and why the run paused (runaway), coloured.
        self.risk_label = plain_label()
        self.risk_label.setWordWrap(True)
        self.attention_label = plain_label()
        self.attention_label.setWordWrap(True)
        self.attention_label.setStyleSheet(RISK_STYLE["attention"])
        self.hint = plain_label()
        self.hint.setStyleSheet("color: gray")
        self.text_edit = QPlainTextEdit()
        self.text_edit.setMaximumHeight(54)
        self.text_edit.setPlaceholderText("text or keys to send")
        self.note = QLineEdit()
        self.note.setPlaceholderText("note for the model (sent with Reject)")
        self.client_label = plain_label()  # which MCP client asks, when one does
        self.client_label.setAccessibleName("Asked by")
        self.approve_button = QPushButton("Approve")
        self.approve_button.setToolTip("Run this action, as edited if you edited it (Enter)")
        self.edit_button = QPushButton("Edit")
        self.edit_button.setToolTip(
            "Change the action before it runs: its text or keys below, or its point by "
            "clicking or dragging on the screenshot; then Approve"
        )
        self.continue_button = QPushButton("Continue")
        self.continue_button.setToolTip(
            "At a breakpoint: approve this action and stop stepping (back to the approval mode)"
        )
        self.skip_button = QPushButton("Skip")
        self.skip_button.setToolTip("Do not run this action; the model is told and goes on")
        self.reject_button = QPushButton("Reject")
        self.reject_button.setToolTip(
            "Refuse this action; the note (if any) goes back to the model (Enter in the note)"
        )
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("End the run here; nothing more runs (Esc)")
        self.reset_button = QPushButton("Undo edit")
        self.reset_button.setToolTip("Back to the action the model proposed")
        self.approve_button.setDefault(True)
        self.text_edit.setAccessibleName("Text or keys")
        self.text_edit.setTabChangesFocus(True)
        self.note.setAccessibleName("Note")
        buttons = QHBoxLayout()
        for b in (
            self.approve_button,
            self.edit_button,
            self.continue_button,
            self.reset_button,
            self.skip_button,
            self.reject_button,
            self.stop_button,
        ):
            b.setAccessibleName(b.text())
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.client_label)
        layout.addWidget(self.risk_label)
        layout.addWidget(self.attention_label)
        layout.addWidget(self.hint)
        layout.addWidget(self.text_edit)
        layout.addWidget(self.note)
        layout.addLayout(buttons)
        self.approve_button.clicked.connect(self.approve)
        self.edit_button.clicked.connect(self.edit)
        self.continue_button.clicked.connect(self.continue_run)
        self.skip_button.clicked.connect(self.skip)
        self.reject_button.clicked.connect(self.reject)
        self.stop_button.clicked.connect(self.stop)
        self.reset_button.clicked.connect(self.reset)
        self.note.returnPressed.connect(self.reject)
        view.edited.connect(self._on_edited)
        self.clear()

    @property
    def pending(self) -> bool:
        """Whether an action waits for a decision."""
        return self.request is not None

    def set_request(self, request: ApprovalRequest) -> None:
        """Show a proposed action and enable the controls."""
        self.request = request
        self.view.set_action(request.action, request.space, editable=True)
        action = request.action
        self.text_edit.setVisible(isinstance(action, Type | Key))
        # Shown with controls and invisible characters as escapes; left as shown, it is the
        # model's text, and an edit types what the user sees.
        if isinstance(action, Type):
            self.text_edit.setPlainText(visible(action.text))
        elif isinstance(action, Key):
            self.text_edit.setPlainText(visible(chord_text(action.keys)))
        self.hint.setText(
            "Edit: click or drag on the screenshot to move the point."
            if action_point(action) is not None or hasattr(action, "coordinate")
            else "Edit: change the text or keys below."
        )
        self.note.clear()
        self._refresh_title()
        client = getattr(request, "client", None)  # MCP requests name their client
        self.client_label.setText(f"Asked by {one_line(str(client), 120)}" if client else "")
        self.client_label.setVisible(bool(client))
        risk = risk_text(request.risk)
        self.risk_label.setText(risk)
        self.risk_label.setStyleSheet(RISK_STYLE.get(request.risk.level, ""))
        self.risk_label.setVisible(bool(risk))
        attention = request.attention
        self.attention_label.setText(f"Paused: {one_line(attention, 500)}" if attention else "")
        self.attention_label.setVisible(attention is not None)
        for w in self._controls():
            w.setEnabled(True)
        # Continue only means something at a breakpoint (or while stepping after one).
        self.continue_button.setVisible(request.breakpoint is not None)
        self.continue_button.setEnabled(request.breakpoint is not None)
        self.view.set_banner(f"breakpoint: {request.breakpoint}" if request.breakpoint else "")

    def clear(self) -> None:
        """No action waiting: disable the controls."""
        self.request = None
        self.title.setText("No action waiting.")
        self.client_label.setVisible(False)
        self.hint.setText("")
        self.risk_label.setText("")
        self.risk_label.setVisible(False)
        self.attention_label.setText("")
        self.attention_label.setVisible(False)
        self.text_edit.setVisible(False)
        for w in self._controls():
            w.setEnabled(False)
        self.continue_button.setEnabled(False)
        self.continue_button.setVisible(False)
        self.view.set_banner("")
        if self.view.editable:
            self.view.set_action(self.view.action, self.view.space, editable=False)

    def _controls(self) -> list[QWidget]:
        return [
            self.approve_button,
            self.edit_button,
            self.skip_button,
            self.reject_button,
            self.stop_button,
            self.reset_button,
            self.note,
            self.text_edit,
        ]

    def current_action(self) -> Action | None:
        """The action as edited so far (point from the view, text or keys from the field)."""
        if self.request is None:
            return None
        action = self.view.action or self.request.action
        typed = self.text_edit.toPlainText()
        if isinstance(action, Type) and typed != visible(action.text):
            action = Type(typed)
        elif isinstance(action, Key) and typed != visible(chord_text(action.keys)):
            try:
                keys = split_plus(typed) if typed.strip() else ()
            except KeyNameError:
                keys = (typed.strip(),)  # not a chord: validating the edit says why
            action = Key(keys) if keys else action
        return action

    def _refresh_title(self) -> None:
        if self.request is None:
            return
        current = self.current_action()
        text = f"Step {self.request.step + 1}: {one_line(action_words(self.request.action), 500)}"
        if self.request.breakpoint is not None:
            text += f"  (breakpoint: {self.request.breakpoint})"
        if current is not None and current != self.request.action:
            text += f"\nedited to: {one_line(action_words(current), 500)}"
        self.title.setText(text)

    def _on_edited(self, action: object) -> None:
        self._refresh_title()

    def _emit(self, decision: Decision) -> None:
        if self.request is None:
            return
        self.clear()
        self.decided.emit(decision)

    def approve(self) -> None:
        """Approve, or send the edit when the action was changed."""
        self._approve(resume=False)

    def _approve(self, resume: bool) -> None:
        if self.request is None:
            return
        current = self.current_action()
        if current is not None and current != self.request.action:
            self._emit(Decision("edit", action=current, resume=resume))
        else:
            self._emit(Decision("approve", resume=resume))

    def edit(self) -> None:
        """Start editing: the text field for text and keys, else the point on the screenshot."""
        if self.request is None:
            return
        if self.text_edit.isVisible():
            self.text_edit.setFocus()
            self.text_edit.selectAll()
        else:
            self.view.setFocus()
            self.hint.setText("Click or drag on the screenshot to move the point, then Approve.")

    def continue_run(self) -> None:
        """At a breakpoint: approve (with any edit) and leave stepping mode."""
        if self.request is not None and self.request.breakpoint is not None:
            self._approve(resume=True)

    def skip(self) -> None:
        """Do nothing this step; the model is told."""
        self._emit(Decision("skip"))

    def reject(self) -> None:
        """Refuse, with the note (if any) sent back to the model."""
        self._emit(Decision("reject", note=self.note.text().strip() or None))

    def stop(self) -> None:
        """End the run."""
        self._emit(Decision("stop"))

    def reset(self) -> None:
        """Undo edits: back to the model's proposal."""
        if self.request is not None:
            self.set_request(self.request)


class RecoverBar(QWidget):
    """After retries failed: what went wrong, and Retry / Restart worker / Stop."""

    chosen = Signal(str)  # "retry", "restart" or "stop"

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("RecoverBar")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setStyleSheet("#RecoverBar { background: #5a1e1e; } QLabel { color: white; }")
        self.message = plain_label()
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.retry_button = QPushButton("Retry")
        self.retry_button.setToolTip("Send the same request to the model again")
        self.restart_button = QPushButton("Restart worker")
        self.restart_button.setToolTip("Close the model backend, start it again, then retry")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("End the run; the recording keeps every step so far")
        buttons = QHBoxLayout()
        for b in (self.retry_button, self.restart_button, self.stop_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.addWidget(self.message)
        layout.addLayout(buttons)
        self.retry_button.clicked.connect(lambda: self._choose("retry"))
        self.restart_button.clicked.connect(lambda: self._choose("restart"))
        self.stop_button.clicked.connect(lambda: self._choose("stop"))
        self._pending = False
        self.setVisible(False)

    @property
    def pending(self) -> bool:
        """Whether a failure waits for the user's choice (even while the window is hidden)."""
        return self._pending

    def ask(self, error: str) -> None:
        """Show what failed and enable the choices."""
        self.message.setText(f"The model backend failed: {one_line(error, 300)}")
        for b in (self.retry_button, self.restart_button, self.stop_button):
            b.setEnabled(True)
        self._pending = True
        self.setVisible(True)
        self.retry_button.setFocus()

    def clear(self) -> None:
        """Nothing to choose."""
        self._pending = False
        self.setVisible(False)

    def _choose(self, choice: str) -> None:
        if not self._pending:
            return
        self.clear()
        self.chosen.emit(choice)


class ControlBar(QWidget):
    """A small always-on-top bar with the run's status and a Stop button."""

    stop_clicked = Signal()

    def __init__(self, hotkey_text: str = "") -> None:
        super().__init__(
            None,
            Qt.WindowType.Window
            | Qt.WindowType.FramelessWindowHint
            | Qt.WindowType.WindowStaysOnTopHint
            | Qt.WindowType.Tool
            | Qt.WindowType.WindowDoesNotAcceptFocus,
        )
        self.setWindowTitle("deskpilot control bar")
        self.setStyleSheet(
            "ControlBar { background: #1e1e2a; } QLabel { color: white; }"
            " QPushButton { background: #c0203a; color: white; padding: 4px 10px; }"
        )
        self.status = plain_label("starting")
        self.status.setMinimumWidth(300)
        self.stop_button = QPushButton("Stop" + (f" ({hotkey_text})" if hotkey_text else ""))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        layout.addWidget(QLabel("deskpilot"))
        layout.addWidget(self.status, 1)
        layout.addWidget(self.stop_button)
        self.stop_button.clicked.connect(self.stop_clicked)
        self.resize(560, 40)

    def set_status(self, text: str) -> None:
        """One line of status (elided by the label's width)."""
        self.status.setText(one_line(text, 80))

    def place(self, area: QRect) -> None:
        """At the top-right corner of the monitor being driven."""
        self.move(area.x() + area.width() - self.width() - 8, area.y() + 8)

    def global_rect(self) -> tuple[int, int, int, int]:
        """x, y, width, height on the screen."""
        g = self.frameGeometry()
        return g.x(), g.y(), g.width(), g.height()
