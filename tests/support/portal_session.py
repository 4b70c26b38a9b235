"""A private desktop session for the portal tests: its bus, PipeWire, portals and processes.

tests/gnome.py (mutter) and tests/kde.py (kwin) start their compositor and portal backend on
top of this; everything runs on a private session bus in a private runtime folder and ends
with `stop()`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

PORTALS = Path("/usr/share/xdg-desktop-portal/portals")


@dataclass
class PortalSession:
    """Processes started for one test session; `env` is what a client of it needs."""

    runtime: Path
    env: dict[str, str]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @classmethod
    def prepare(cls, desktop: str, portal_files: Iterable[str], **env: str) -> Self:
        """A runtime folder and environment for XDG_CURRENT_DESKTOP=desktop (nothing started).

        Only the named portal backends are offered: others installed beside them would be
        started by the bus as well, and outlive it.
        """
        folder = Path(tempfile.mkdtemp(prefix=f"deskpilot-{desktop.lower()}-"))
        folder.chmod(0o700)
        base = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DISPLAY", "WAYLAND_DISPLAY", "SWAYSOCK", "DBUS_SESSION_BUS_ADDRESS")
        }
        base.update(
            XDG_RUNTIME_DIR=str(folder),
            XDG_CURRENT_DESKTOP=desktop,
            XDG_SESSION_TYPE="wayland",
            XDG_STATE_HOME=str(folder / "state"),
            **env,
        )
        portals = folder / "portals"
        portals.mkdir()
        for name in portal_files:
            if (PORTALS / name).exists():
                shutil.copy(PORTALS / name, portals / name)
        base["XDG_DESKTOP_PORTAL_DIR"] = str(portals)
        return cls(folder, base)

    def start_bus_and_pipewire(self) -> None:
        """The private session bus (its address into `env`), PipeWire and WirePlumber."""
        bus = self.spawn(
            ["dbus-daemon", "--session", "--nofork", "--print-address=1"], capture=True
        )
        assert bus.stdout is not None
        self.env["DBUS_SESSION_BUS_ADDRESS"] = bus.stdout.readline().decode().strip()
        self.spawn(["pipewire"])
        self.spawn(["wireplumber"])

    def spawn(self, cmd: list[str], *, capture: bool = False) -> subprocess.Popen[bytes]:
        """Start a process of the session, its output in the runtime folder's <name>.log."""
        log = open(self.runtime / f"{Path(cmd[0]).name}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            cmd, env=self.env, stdout=subprocess.PIPE if capture else log, stderr=log
        )
        log.close()
        self.procs.append(proc)
        return proc

    def portal_ready(self) -> bool:
        """Whether xdg-desktop-portal answers with its RemoteDesktop interface."""
        done = subprocess.run(
            [
                "dbus-send", "--session", "--print-reply", "--dest=org.freedesktop.portal.Desktop",
                "/org/freedesktop/portal/desktop", "org.freedesktop.DBus.Properties.Get",
                "string:org.freedesktop.portal.RemoteDesktop", "string:version",
            ],
            env=self.env, capture_output=True, check=False, timeout=10,
        )  # fmt: skip
        return done.returncode == 0

    def wait(self, check: Callable[[], object], what: str, timeout_s: float = 30.0) -> None:
        """Poll check() until it is true."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")

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
