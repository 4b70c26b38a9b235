"""The timeline of steps: a thumbnail, the action in words, the decision, result and timings.

The debugger shows a recording's steps in it, the main window a live run's; each row has a
checkbox that sets a breakpoint before that step (1-based step numbers, as users count).
"""

from __future__ import annotations

from collections.abc import MutableSet

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListWidget, QListWidgetItem

from ui.step_text import StepLines
from ui.widgets import plain_tip

THUMB = QSize(128, 72)
BREAKPOINT_TIP = "Check to pause before this step (a breakpoint)"


class StepTimeline(QListWidget):
    """One row per step; the checked rows are the breakpoints."""

    breakpoints_changed = Signal(object)  # frozenset[int]: the checked steps, 1-based

    def __init__(self, breakpoints: MutableSet[int] | None = None) -> None:
        super().__init__()
        # The caller's set: checking a row adds its step number there, unchecking removes it.
        self.breakpoints: MutableSet[int] = breakpoints if breakpoints is not None else set()
        self.setIconSize(THUMB)
        self.setWordWrap(True)
        self.setUniformItemSizes(False)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setAccessibleName("Steps")
        self.setToolTip("Steps of the run; check a step to set a breakpoint before it")
        self.itemChanged.connect(self._on_item_changed)

    def set_row(self, index: int, lines: StepLines, thumb: QImage | None = None) -> None:
        """Show step `index` (0-based), adding rows up to it when needed."""
        self.blockSignals(True)
        try:
            while self.count() <= index:
                item = QListWidgetItem()
                n = self.count() + 1
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(
                    Qt.CheckState.Checked if n in self.breakpoints else Qt.CheckState.Unchecked
                )
                self.addItem(item)
            item = self.item(index)
            item.setText(f"{lines.title}\n{lines.detail}" if lines.detail else lines.title)
            tip = f"{lines.title}\n{lines.detail}"
            if lines.thinking:
                tip += f"\n\nThinking:\n{lines.thinking[:1500]}"
            item.setToolTip(plain_tip(f"{tip}\n\n{BREAKPOINT_TIP}"))
            if thumb is not None and not thumb.isNull():
                item.setIcon(QIcon(QPixmap.fromImage(thumb)))
        finally:
            self.blockSignals(False)

    def breakpoint_steps(self) -> frozenset[int]:
        """The checked steps, 1-based."""
        return frozenset(self.breakpoints)

    def set_breakpoint(self, step: int, on: bool) -> None:
        """Check or uncheck the row of a 1-based step number (the set follows)."""
        if 1 <= step <= self.count():
            state = Qt.CheckState.Checked if on else Qt.CheckState.Unchecked
            self.item(step - 1).setCheckState(state)

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        step = self.row(item) + 1
        if item.checkState() == Qt.CheckState.Checked:
            if step in self.breakpoints:
                return
            self.breakpoints.add(step)
        elif step in self.breakpoints:
            self.breakpoints.discard(step)
        else:
            return
        self.breakpoints_changed.emit(frozenset(self.breakpoints))
