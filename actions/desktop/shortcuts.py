"""A global stop shortcut on Wayland through xdg-desktop-portal's GlobalShortcuts portal.

Wayland gives no client a key grab; a desktop that implements the GlobalShortcuts portal
(KDE Plasma 5.27+, GNOME 48+, Hyprland) binds a shortcut for an app and signals `Activated`
when it is pressed; the desktop may let the person choose the keys. Where the portal lacks the
interface, start() fails with one line that says so (the app adds what to use instead).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from actions.hotkey import HotkeyError, parse_combo

_BUS = "org.freedesktop.portal.Desktop"
_PATH = "/org/freedesktop/portal/desktop"
_GS = "org.freedesktop.portal.GlobalShortcuts"
SHORTCUT_ID = "stop"
_TIMEOUT_S = 10.0
# How long the person has to answer a dialog that confirms or changes the shortcut.
BIND_TIMEOUT_S = 120.0
_POLL_S = 0.5
# X modifier masks (actions.hotkey) -> the modifier names of the XDG shortcuts specification.
_SPEC_MODIFIERS = ((1 << 2, "CTRL"), (1 << 3, "ALT"), (1 << 0, "SHIFT"), (1 << 6, "LOGO"))


def preferred_trigger(combo: str) -> str:
    """A pynput-style combination in the shortcuts specification's form: CTRL+ALT+SHIFT+x."""
    parsed = parse_combo(combo)
    names = [name for mask, name in _SPEC_MODIFIERS if parsed.modifiers & mask]
    return "+".join([*names, parsed.key])


def shortcuts_version(conn: Any) -> int:
    """The GlobalShortcuts portal's version; HotkeyError when the desktop has none."""
    from jeepney import DBusAddress, Properties
    from jeepney.low_level import MessageType

    props = Properties(DBusAddress(_PATH, bus_name=_BUS, interface=_GS))
    try:
        reply = conn.send_and_get_reply(props.get("version"), timeout=5)
    except TimeoutError:
        raise HotkeyError("xdg-desktop-portal did not answer") from None
    if reply.header.message_type == MessageType.error:
        name = str(reply.header.fields.get(4, ""))  # HeaderFields.error_name
        if name.endswith("ServiceUnknown"):
            raise HotkeyError("no xdg-desktop-portal is running")
        raise HotkeyError(
            "this desktop has no GlobalShortcuts portal (it came with KDE Plasma 5.27 and "
            "GNOME 48; wlroots desktops other than Hyprland lack it)"
        )
    return int(reply.body[0][1])


class PortalShortcut:
    """Binds one shortcut through the portal and calls back (on its own thread) when pressed."""

    def __init__(
        self, combo: str, callback: Callable[[], None], *, description: str = "Stop deskpilot"
    ) -> None:
        self.trigger = preferred_trigger(combo)  # HotkeyError for a malformed combination
        self.description = description
        self._callback = callback
        self._conn: Any = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._count = 0
        self.session: str | None = None
        self.version = 0
        self.bound_to: str | None = None  # what the desktop says the keys are

    def start(self, *, bind_timeout_s: float = BIND_TIMEOUT_S) -> None:
        """Bind the shortcut; HotkeyError (one line) when this desktop cannot have one."""
        try:
            from jeepney.io.blocking import open_dbus_connection
        except ImportError as exc:
            raise HotkeyError("the jeepney package is missing: pip install jeepney") from exc
        try:
            conn = open_dbus_connection(bus="SESSION")
        except (OSError, KeyError) as exc:
            raise HotkeyError(f"no D-Bus session bus ({exc})") from None
        self._conn = conn
        try:
            self.version = shortcuts_version(conn)
            created = self._request("CreateSession", "a{sv}", {
                "session_handle_token": ("s", f"deskpilot{os.getpid()}"),
            })  # fmt: skip
            self.session = str(created["session_handle"][1])
            self._activated = self._watch_activated()
            shortcut = {
                "description": ("s", self.description),
                "preferred_trigger": ("s", self.trigger),
            }
            bound = self._request(
                "BindShortcuts", "oa(sa{sv})sa{sv}", self.session,
                [(SHORTCUT_ID, shortcut)], "", {}, timeout_s=bind_timeout_s,
            )  # fmt: skip
        except BaseException:
            self.stop()
            raise
        for sid, info in bound.get("shortcuts", ("a(sa{sv})", []))[1]:
            if sid == SHORTCUT_ID:
                self.bound_to = str(dict(info).get("trigger_description", ("s", ""))[1]) or None
        self._thread = threading.Thread(target=self._listen, name="deskpilot-shortcut", daemon=True)
        self._thread.start()

    def _request(
        self, method: str, signature: str, *args: Any, timeout_s: float = _TIMEOUT_S
    ) -> dict[str, Any]:
        """Call a method that answers through a Request object's Response signal."""
        from jeepney import DBusAddress, MatchRule, message_bus, new_method_call
        from jeepney.io.blocking import Proxy
        from jeepney.low_level import MessageType

        conn = self._conn
        self._count += 1
        token = f"deskpilot{os.getpid()}_{self._count}"
        sender = conn.unique_name.lstrip(":").replace(".", "_")
        path = f"{_PATH}/request/{sender}/{token}"
        rule = MatchRule(
            type="signal", interface="org.freedesktop.portal.Request", member="Response", path=path
        )
        Proxy(message_bus, conn).AddMatch(rule)
        options = dict(args[-1])
        options["handle_token"] = ("s", token)
        address = DBusAddress(_PATH, bus_name=_BUS, interface=_GS)
        with conn.filter(rule) as queue:
            msg = new_method_call(address, method, signature, (*args[:-1], options))
            reply = conn.send_and_get_reply(msg, timeout=_TIMEOUT_S)
            if reply.header.message_type == MessageType.error:
                detail = reply.body[0] if reply.body else reply.header.fields.get(4, "")
                raise HotkeyError(f"the GlobalShortcuts portal refused {method}: {detail}")
            try:
                signal = conn.recv_until_filtered(queue, timeout=timeout_s)
            except TimeoutError:
                raise HotkeyError(
                    f"the desktop did not answer {method} within {timeout_s:g} s"
                ) from None
        code, results = signal.body
        if code == 1:
            raise HotkeyError("the stop shortcut was declined on this desktop")
        if code != 0:
            raise HotkeyError(f"the GlobalShortcuts portal's {method} failed (response {code})")
        return dict(results)

    def _watch_activated(self) -> Any:
        from jeepney import MatchRule, message_bus
        from jeepney.io.blocking import Proxy

        rule = MatchRule(type="signal", interface=_GS, member="Activated", path=_PATH)
        Proxy(message_bus, self._conn).AddMatch(rule)
        return self._conn.filter(rule, bufsize=16)

    def _listen(self) -> None:
        while not self._stopping.is_set():
            try:
                signal = self._conn.recv_until_filtered(self._activated, timeout=_POLL_S)
            except TimeoutError:
                continue
            except Exception:  # the bus went away: the shortcut is simply gone
                return
            session, shortcut_id = signal.body[0], signal.body[1]
            if session == self.session and shortcut_id == SHORTCUT_ID:
                self._callback()

    def stop(self) -> None:
        """End the portal session (the desktop unbinds the shortcut) and the listening thread."""
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=2.0)
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self.session is not None:
            from jeepney import DBusAddress, new_method_call

            try:
                address = DBusAddress(
                    self.session, bus_name=_BUS, interface="org.freedesktop.portal.Session"
                )
                conn.send(new_method_call(address, "Close"))
            except Exception:  # the bus or the session is already gone
                pass
        try:
            conn.close()
        except Exception:  # as above
            pass
