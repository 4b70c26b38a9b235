"""Helpers for tests on a private headless KDE Plasma session: kwin, PipeWire, the portals.

Everything runs on a private session bus in a private runtime folder: dbus-daemon, pipewire,
wireplumber, `kwin_wayland --virtual`, xdg-desktop-portal-kde and xdg-desktop-portal. Debian's
/usr/bin/kwin_wayland carries a file capability (cap_sys_resource) that a container may refuse
to execute ("Operation not permitted"); a copy without it runs the same.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

LIBEXEC = Path("/usr/lib/x86_64-linux-gnu/libexec")
PORTAL = Path("/usr/libexec/xdg-desktop-portal")
PORTALS = Path("/usr/share/xdg-desktop-portal/portals")
KDE_PACKAGES = (
    "kwin-wayland xdg-desktop-portal xdg-desktop-portal-kde qtwayland5 pipewire wireplumber "
    "dbus gstreamer1.0-tools gstreamer1.0-pipewire"
)
APT_HINT = f"apt-get install -y --no-install-recommends {KDE_PACKAGES}"


def kde_portal() -> Path:
    """Where xdg-desktop-portal-kde is installed (multiarch libexec or plain)."""
    for folder in (LIBEXEC, Path("/usr/libexec")):
        if (folder / "xdg-desktop-portal-kde").exists():
            return folder / "xdg-desktop-portal-kde"
    return LIBEXEC / "xdg-desktop-portal-kde"


def missing_parts() -> list[str]:
    """What a headless KDE session for the tests lacks."""
    missing = [
        t
        for t in ("kwin_wayland", "pipewire", "wireplumber", "dbus-daemon", "gst-launch-1.0")
        if shutil.which(t) is None
    ]
    missing += [str(p) for p in (PORTAL, kde_portal()) if not p.exists()]
    return missing


def skip_without_kde() -> None:
    """Skip the calling module, naming what is missing and the command to install it."""
    import pytest

    missing = missing_parts()
    if missing:
        names = ", ".join(missing)
        pytest.skip(f"{names} not installed: run `{APT_HINT}`", allow_module_level=True)


@dataclass
class Kde:
    """A headless kwin with the KDE portal; `env` is what a client needs."""

    runtime: Path
    env: dict[str, str]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @classmethod
    def start(cls, timeout_s: float = 60.0) -> Kde:
        """Start the bus, PipeWire, kwin and the portals; returns once the portal answers."""
        folder = Path(tempfile.mkdtemp(prefix="deskpilot-kde-"))
        folder.chmod(0o700)
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DISPLAY", "WAYLAND_DISPLAY", "SWAYSOCK", "DBUS_SESSION_BUS_ADDRESS")
        }
        env.update(
            XDG_RUNTIME_DIR=str(folder),
            XDG_CURRENT_DESKTOP="KDE",
            XDG_SESSION_TYPE="wayland",
            XDG_STATE_HOME=str(folder / "state"),
            XDG_CONFIG_HOME=str(folder / "config"),
            XDG_DATA_HOME=str(folder / "data"),
            XDG_CACHE_HOME=str(folder / "cache"),
            KDE_FULL_SESSION="true",
            KDE_SESSION_VERSION="5",
            QT_QPA_PLATFORM="wayland",
        )
        portals = folder / "portals"
        portals.mkdir()
        if (PORTALS / "kde.portal").exists():
            shutil.copy(PORTALS / "kde.portal", portals / "kde.portal")
        env["XDG_DESKTOP_PORTAL_DIR"] = str(portals)
        kde = cls(folder, env)
        try:
            bus = kde._spawn(
                ["dbus-daemon", "--session", "--nofork", "--print-address=1"], capture=True
            )
            assert bus.stdout is not None
            env["DBUS_SESSION_BUS_ADDRESS"] = bus.stdout.readline().decode().strip()
            kde._spawn(["pipewire"])
            kde._spawn(["wireplumber"])
            kwin = folder / "kwin_wayland"
            shutil.copyfile(shutil.which("kwin_wayland") or "/usr/bin/kwin_wayland", kwin)
            kwin.chmod(0o755)  # a plain copy: without the file capability
            kde._spawn([
                str(kwin), "--virtual", "--width", "1920", "--height", "1080",
                "--socket", "wayland-0", "--no-lockscreen",
            ])  # fmt: skip
            kde.wait(lambda: (folder / "wayland-0").exists(), "kwin's Wayland socket", timeout_s)
            env["WAYLAND_DISPLAY"] = "wayland-0"
            kde._spawn([str(kde_portal())])
            kde._spawn([str(PORTAL)])
            kde.wait(kde._portal_ready, "xdg-desktop-portal", timeout_s)
        except BaseException:
            kde.stop()
            raise
        return kde

    def _spawn(self, cmd: list[str], *, capture: bool = False) -> subprocess.Popen[bytes]:
        log = open(self.runtime / f"{Path(cmd[0]).name}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            cmd, env=self.env, stdout=subprocess.PIPE if capture else log, stderr=log
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
        doc = self.runtime / "doc"
        if os.path.lexists(doc):
            for tool in ("fusermount3", "fusermount"):
                if shutil.which(tool):
                    subprocess.run([tool, "-uz", str(doc)], capture_output=True, timeout=10)
        shutil.rmtree(self.runtime, ignore_errors=True)
