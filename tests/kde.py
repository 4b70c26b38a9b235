"""Helpers for tests on a private headless KDE Plasma session: kwin, PipeWire, the portals.

Everything runs on a private session bus in a private runtime folder: dbus-daemon, pipewire,
wireplumber, `kwin_wayland --virtual`, xdg-desktop-portal-kde and xdg-desktop-portal. Debian's
/usr/bin/kwin_wayland carries a file capability (cap_sys_resource) that a container may refuse
to execute ("Operation not permitted"); a copy without it runs the same.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.portal_session import PortalSession

LIBEXEC = Path("/usr/lib/x86_64-linux-gnu/libexec")
PORTAL = Path("/usr/libexec/xdg-desktop-portal")
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


class Kde(PortalSession):
    """A headless kwin with the KDE portal; `env` is what a client needs."""

    @classmethod
    def start(cls, timeout_s: float = 60.0) -> Kde:
        """Start the bus, PipeWire, kwin and the portals; returns once the portal answers."""
        kde = cls.prepare(
            "KDE",
            ("kde.portal",),
            KDE_FULL_SESSION="true",
            KDE_SESSION_VERSION="5",
            QT_QPA_PLATFORM="wayland",
        )
        for name in ("config", "data", "cache"):
            kde.env[f"XDG_{name.upper()}_HOME"] = str(kde.runtime / name)
        try:
            kde.start_bus_and_pipewire()
            kwin = kde.runtime / "kwin_wayland"
            shutil.copyfile(shutil.which("kwin_wayland") or "/usr/bin/kwin_wayland", kwin)
            kwin.chmod(0o755)  # a plain copy: without the file capability
            kde.spawn([
                str(kwin), "--virtual", "--width", "1920", "--height", "1080",
                "--socket", "wayland-0", "--no-lockscreen",
            ])  # fmt: skip
            socket = kde.runtime / "wayland-0"
            kde.wait(socket.exists, "kwin's Wayland socket", timeout_s)
            kde.env["WAYLAND_DISPLAY"] = "wayland-0"
            kde.spawn([str(kde_portal())])
            kde.spawn([str(PORTAL)])
            kde.wait(kde.portal_ready, "xdg-desktop-portal", timeout_s)
        except BaseException:
            kde.stop()
            raise
        return kde
