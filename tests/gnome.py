"""Helpers for tests on a private headless GNOME: mutter, PipeWire, the portals, the dialog.

Everything runs on a private session bus in a private runtime folder: dbus-daemon, pipewire,
wireplumber, `mutter --headless --virtual-monitor`, xdg-desktop-portal-gnome and
xdg-desktop-portal. The portal's sharing dialog is answered through AT-SPI by
tests/support/portal_dialog.py, run with Debian's python3 (pyatspi needs gi).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

from tests.support.portal_session import PortalSession

REPO = Path(__file__).resolve().parent.parent
DIALOG = REPO / "tests" / "support" / "portal_dialog.py"
SYSTEM_PYTHON = "/usr/bin/python3"
LIBEXEC = Path("/usr/libexec")
GNOME_PACKAGES = (
    "mutter xdg-desktop-portal xdg-desktop-portal-gnome pipewire wireplumber dbus "
    "gstreamer1.0-tools gstreamer1.0-pipewire python3-pyatspi at-spi2-core foot wl-clipboard"
)
APT_HINT = f"apt-get install -y --no-install-recommends {GNOME_PACKAGES}"


def missing_parts() -> list[str]:
    """What a headless GNOME session for the tests lacks."""
    missing = [
        t
        for t in ("mutter", "pipewire", "wireplumber", "dbus-daemon", "gst-launch-1.0")
        + ("foot", "wl-copy")
        if shutil.which(t) is None
    ]
    missing += [
        str(p)
        for p in (LIBEXEC / "xdg-desktop-portal", LIBEXEC / "xdg-desktop-portal-gnome")
        if not p.exists()
    ]
    if (
        shutil.which("gst-inspect-1.0")
        and subprocess.run(
            ["gst-inspect-1.0", "pipewiresrc"], capture_output=True, check=False
        ).returncode
    ):
        missing.append("GStreamer's pipewiresrc")
    if (
        not os.path.exists(SYSTEM_PYTHON)
        or subprocess.run(
            [SYSTEM_PYTHON, "-c", "import pyatspi"], capture_output=True, check=False
        ).returncode
    ):
        missing.append("pyatspi for /usr/bin/python3")
    return missing


def skip_without_gnome() -> None:
    """Skip the calling module, naming what is missing and the command to install it."""
    import pytest

    missing = missing_parts()
    if missing:
        names = ", ".join(missing)
        pytest.skip(f"{names} not installed: run `{APT_HINT}`", allow_module_level=True)


class Gnome(PortalSession):
    """A headless GNOME (mutter) with the portals; `env` is what a client needs."""

    @classmethod
    def start(cls, timeout_s: float = 30.0) -> Gnome:
        """Start the bus, PipeWire, mutter and the portals; returns once the portal answers."""
        gnome = cls.prepare("GNOME", ("gnome.portal", "gtk.portal"), GSETTINGS_BACKEND="memory")
        try:
            gnome.start_bus_and_pipewire()
            gnome.spawn(
                ["mutter", "--headless", "--virtual-monitor", "1920x1080", "--wayland", "--no-x11"]
            )
            gnome.wait(lambda: (gnome.runtime / "wayland-0").exists(), "mutter's Wayland socket")
            gnome.env["WAYLAND_DISPLAY"] = "wayland-0"
            gnome.spawn([str(LIBEXEC / "xdg-desktop-portal-gnome")])
            gnome.spawn([str(LIBEXEC / "xdg-desktop-portal")])
            gnome.wait(gnome.portal_ready, "xdg-desktop-portal", timeout_s)
        except BaseException:
            gnome.stop()
            raise
        return gnome

    def foot(self, command: str) -> subprocess.Popen[bytes]:
        """A maximised foot running a shell command (mutter places it over the whole monitor)."""
        proc = subprocess.Popen(
            ["foot", "--maximized", "sh", "-c", command],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.procs.append(proc)
        return proc

    def answer_dialog(self, choice: str, timeout_s: float = 60.0) -> threading.Thread:
        """Answer the next sharing dialog (share or cancel) from a thread; join it afterwards."""
        answered: list[int] = []

        def run() -> None:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                done = subprocess.run(
                    [SYSTEM_PYTHON, str(DIALOG), choice],
                    env=self.env, capture_output=True, check=False, timeout=30,
                )  # fmt: skip
                if done.returncode in (0, 4):
                    answered.append(done.returncode)
                    return
                time.sleep(0.2)

        thread = threading.Thread(target=run, daemon=True)
        thread.answered = answered  # type: ignore[attr-defined]
        thread.start()
        return thread

    def end_backend(self) -> None:
        """End the portal's GNOME backend: mutter then stops its sessions and their streams."""
        backend = next(p for p in self.procs if p.args[0].endswith("xdg-desktop-portal-gnome"))
        backend.terminate()
        backend.wait(timeout=10)
