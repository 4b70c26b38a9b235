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
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DIALOG = REPO / "tests" / "support" / "portal_dialog.py"
SYSTEM_PYTHON = "/usr/bin/python3"
LIBEXEC = Path("/usr/libexec")
PORTALS = Path("/usr/share/xdg-desktop-portal/portals")
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


@dataclass
class Gnome:
    """A headless GNOME (mutter) with the portals; `env` is what a client needs."""

    runtime: Path
    env: dict[str, str]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @classmethod
    def start(cls, timeout_s: float = 30.0) -> Gnome:
        """Start the bus, PipeWire, mutter and the portals; returns once the portal answers."""
        folder = Path(tempfile.mkdtemp(prefix="deskpilot-gnome-"))
        folder.chmod(0o700)
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DISPLAY", "WAYLAND_DISPLAY", "SWAYSOCK", "DBUS_SESSION_BUS_ADDRESS")
        }
        env.update(
            XDG_RUNTIME_DIR=str(folder),
            XDG_CURRENT_DESKTOP="GNOME",
            XDG_SESSION_TYPE="wayland",
            XDG_STATE_HOME=str(folder / "state"),
            GSETTINGS_BACKEND="memory",
        )
        # Only GNOME's portal backends: others installed beside them (KDE's) would be started
        # by the bus as well, and outlive it.
        portals = folder / "portals"
        portals.mkdir()
        for name in ("gnome.portal", "gtk.portal"):
            found = PORTALS / name
            if found.exists():
                shutil.copy(found, portals / name)
        env["XDG_DESKTOP_PORTAL_DIR"] = str(portals)
        gnome = cls(folder, env)
        try:
            bus = gnome._spawn(
                ["dbus-daemon", "--session", "--nofork", "--print-address=1"], capture=True
            )
            assert bus.stdout is not None
            env["DBUS_SESSION_BUS_ADDRESS"] = bus.stdout.readline().decode().strip()
            gnome._spawn(["pipewire"])
            gnome._spawn(["wireplumber"])
            gnome._spawn(
                ["mutter", "--headless", "--virtual-monitor", "1920x1080", "--wayland", "--no-x11"]
            )
            gnome.wait(lambda: (folder / "wayland-0").exists(), "mutter's Wayland socket")
            env["WAYLAND_DISPLAY"] = "wayland-0"
            gnome._spawn([str(LIBEXEC / "xdg-desktop-portal-gnome")])
            gnome._spawn([str(LIBEXEC / "xdg-desktop-portal")])
            gnome.wait(gnome._portal_ready, "xdg-desktop-portal", timeout_s)
        except BaseException:
            gnome.stop()
            raise
        return gnome

    def _spawn(self, cmd: list[str], *, capture: bool = False) -> subprocess.Popen[bytes]:
        log = open(self.runtime / f"{Path(cmd[0]).name}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            cmd,
            env=self.env,
            stdout=subprocess.PIPE if capture else log,
            stderr=log,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def _portal_ready(self) -> bool:
        done = subprocess.run(
            [
                "dbus-send", "--session", "--print-reply", "--dest=org.freedesktop.portal.Desktop",
                "/org/freedesktop/portal/desktop", "org.freedesktop.DBus.Properties.Get",
                "string:org.freedesktop.portal.RemoteDesktop", "string:version",
            ],
            env=self.env, capture_output=True, check=False, timeout=10,
        )  # fmt: skip
        return done.returncode == 0

    def wait(self, check: object, what: str, timeout_s: float = 30.0) -> None:
        """Poll check() until it is true."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if check():  # type: ignore[operator]
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")

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

    def stop(self) -> None:
        """End everything started, newest first, and remove the runtime folder."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        # xdg-document-portal (started by the bus on demand) mounts a FUSE file system at
        # $XDG_RUNTIME_DIR/doc; it may outlive the bus for a moment, so unmount it first.
        doc = self.runtime / "doc"
        if os.path.lexists(doc):  # a dead FUSE mount does not even answer ismount()
            for tool in ("fusermount3", "fusermount"):
                if shutil.which(tool):
                    subprocess.run([tool, "-uz", str(doc)], capture_output=True, timeout=10)
            if os.path.ismount(doc):
                subprocess.run(["umount", "-l", str(doc)], capture_output=True, timeout=10)
        shutil.rmtree(self.runtime, ignore_errors=True)
