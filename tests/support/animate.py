"""Start tests/apps/animate_app.py on a private display and read its event log."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.x11 import REPO, stop_process, wait_for_window, wait_until, x_env

ANIMATE_APP = REPO / "tests" / "apps" / "animate_app.py"


@dataclass
class AnimateApp:
    """A running animate app and its JSON-lines log."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    title: str

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Every logged event (of one kind)."""
        if not self.log_path.exists():
            return []
        out = []
        for line in self.log_path.read_text(encoding="utf-8").splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line being written right now
            if kind is None or event["event"] == kind:
                out.append(event)
        return out

    def wait_event(
        self, kind: str, count: int = 1, timeout_s: float = 10.0
    ) -> list[dict[str, Any]]:
        """Wait until at least count events of this kind were logged."""
        return list(
            wait_until(
                lambda: (evs := self.events(kind)) and len(evs) >= count and evs,
                timeout_s,
                f"{count} {kind} event(s) from the animate app",
            )
        )

    def close(self) -> None:
        """Stop the app."""
        stop_process(self.proc)


def start_animate_app(
    display: str,
    log_path: Path,
    geometry: tuple[int, int, int, int],
    *,
    duration_s: float = 0.5,
    image: Path | None = None,
    title: str = "deskpilot animate app",
    timeout_s: float = 30.0,
) -> AnimateApp:
    """Launch the app (xcb, on the display) and wait until it is ready and mapped."""
    x, y, w, h = geometry
    env = x_env(display, QT_QPA_PLATFORM="xcb")
    env.pop("WAYLAND_DISPLAY", None)
    env.update(QT_ACCESSIBILITY="0", NO_AT_BRIDGE="1", QT_IM_MODULE="")
    env["QT_LOGGING_RULES"] = "qt.qpa.*=false"
    cmd = [
        sys.executable,
        str(ANIMATE_APP),
        "--geometry",
        f"{x},{y},{w},{h}",
        "--log",
        str(log_path),
        "--duration",
        str(duration_s),
        "--title",
        title,
    ]
    if image is not None:
        cmd += ["--image", str(image)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    app = AnimateApp(proc, log_path, title)
    try:
        app.wait_event("ready", timeout_s=timeout_s)
        wait_for_window(display, name=title, proc=proc, timeout_s=timeout_s)
    except BaseException:
        app.close()
        raise
    return app
