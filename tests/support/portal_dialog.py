"""Answers xdg-desktop-portal-gnome's sharing dialog through AT-SPI (run with Debian's python3).

Usage: python3 portal_dialog.py share|cancel. Exit 0 once answered, 3 while no dialog is open,
4 when remote interaction could not be turned on.
pyatspi imports only in the system Python (it needs gi), hence a script of its own.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import pyatspi  # type: ignore[import-not-found]


def find(node: Any, wanted: Any, depth: int = 0) -> Any:
    """The first accessible below node (depth first) for which wanted() holds."""
    try:
        if wanted(node):
            return node
    except Exception:  # a node that vanished while we looked
        return None
    if depth > 16:
        return None
    for i in range(node.childCount):
        found = find(node.getChildAtIndex(i), wanted, depth + 1)
        if found is not None:
            return found
    return None


def main() -> int:
    """Pick the first monitor, allow remote interaction, then press Share (or Cancel)."""
    desktop = pyatspi.Registry.getDesktop(0)
    app = find(
        desktop,
        lambda a: a.getRoleName() == "application" and a.name == "xdg-desktop-portal-gnome",
    )
    button_name = "Share" if sys.argv[1:] == ["share"] else "Cancel"
    button = app and find(app, lambda a: a.getRoleName() == "push button" and button_name in a.name)
    if not button:
        return 3
    if button_name == "Share":
        item = find(
            app,
            lambda a: a.getRoleName() == "list item" and a.name != "Allow remote interaction",
        )
        if item is not None:
            item.parent.querySelection().selectChild(item.getIndexInParent())
        box = find(app, lambda a: a.getRoleName() == "check box")
        if box is not None and not box.getState().contains(pyatspi.STATE_CHECKED):
            box.queryAction().doAction(0)
            # The toggle lands on the dialog's main loop later: Share only once it shows.
            for _ in range(100):
                if box.getState().contains(pyatspi.STATE_CHECKED):
                    break
                time.sleep(0.02)
            else:
                return 4
    button.queryAction().doAction(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
