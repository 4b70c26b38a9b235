"""GNOME, KDE and other Wayland desktops: the xdg-desktop-portal path, not implemented yet.

ScreenCast (PipeWire frames) and RemoteDesktop (input) over D-Bus could not be tested on a
headless machine here (docs/wayland.md says what was tried); rather than ship a path that was
never seen working, opening this desktop fails with a one-line message saying what to do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NoReturn

from actions.screen import DisplayError


def desktop_label(env: Mapping[str, str]) -> str:
    """The desktop's own name (XDG_CURRENT_DESKTOP), or a generic one."""
    names = [n for n in env.get("XDG_CURRENT_DESKTOP", "").split(":") if n]
    return "/".join(names) if names else "this Wayland desktop"


def open_portal_desktop(env: Mapping[str, str]) -> NoReturn:
    """Always raises: the portal path (ScreenCast + RemoteDesktop) is not supported yet."""
    label = desktop_label(env)
    x11 = " or run deskpilot under XWayland with --display-backend x11 (it sees X apps only)"
    raise DisplayError(
        f"not supported yet on this desktop: {label} on Wayland needs the xdg-desktop-portal "
        "ScreenCast/RemoteDesktop path, which deskpilot does not have yet; log in to an X11 "
        f"session (e.g. 'GNOME on Xorg', 'Plasma (X11)'){x11 if env.get('DISPLAY') else ''}, "
        "or use a wlroots compositor (sway, Hyprland, labwc)"
    )
