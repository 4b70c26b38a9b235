"""GNOME, KDE and other Wayland desktops through xdg-desktop-portal (RemoteDesktop + ScreenCast).

One portal session holds both: the permission dialog appears once; its restore token, kept in
the user's state folder, brings the session back without it next time. Frames come from the
session's PipeWire stream through GStreamer (`gst-launch-1.0 pipewiresrc`); input goes through
the RemoteDesktop Notify methods. Keys are sent as keysyms, which the compositor can only type
when the current keyboard layout has them: other characters are pasted through the clipboard
(actions/desktop/clipboard.py), or, with no clipboard tool, the text is refused whole before
anything is typed (docs/wayland.md).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from actions.desktop import BackendName, HotkeySupport
from actions.desktop.clipboard import WlClipboard
from actions.desktop.grabbed import GrabbedScreen
from actions.desktop.inputs import InputExecutor
from actions.desktop.wire import WaylandError, WireClient
from actions.keys import is_modifier
from actions.screen import (
    DisplayError,
    Monitor,
)
from actions.window import FocusedWindow
from actions.xtyping import char_keysym, key_keysym

_BUS = "org.freedesktop.portal.Desktop"
_PATH = "/org/freedesktop/portal/desktop"
_RD = "org.freedesktop.portal.RemoteDesktop"
_SC = "org.freedesktop.portal.ScreenCast"
_KEYBOARD, _POINTER = 1, 2
_MONITOR = 1
_PERSIST_UNTIL_REVOKED = 2
_RD_PERSIST_VERSION = 2
_CALL_TIMEOUT_S = 10.0
# How long the user has to answer the permission dialog.
ANSWER_TIMEOUT_S = 300.0
_GST_TIMEOUT_S = 10.0
NUDGE_AFTER_S = 0.6
_KEYBOARD_WAIT_S = 2.0
_BUTTONS = {"left": 0x110, "right": 0x111, "middle": 0x112}
GST_HINT = "apt-get install gstreamer1.0-tools gstreamer1.0-pipewire"


def restore_token_path() -> Path:
    """Where the portal's restore token is kept (the user's state folder)."""
    from platformdirs import user_state_dir

    return Path(user_state_dir("deskpilot")) / "portal-restore-token"


def load_token(path: Path) -> str | None:
    """The saved restore token, or None."""
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def save_token(path: Path, token: str) -> None:
    """Keep a restore token, readable by the user only; without it the dialog simply returns."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fp:
            fp.write(token + "\n")
    except OSError:
        pass  # the dialog appears again next time


def forget_token(path: Path) -> None:
    """Drop a token the desktop no longer honours."""
    try:
        path.unlink()
    except OSError:
        pass  # not there: nothing to forget


class Declined(DisplayError):
    """The person declined the desktop's sharing dialog, or took back the permission."""


class PortalSession:
    """One RemoteDesktop session with a ScreenCast source, over the session bus (jeepney)."""

    def __init__(self, token_file: Path, answer_timeout_s: float = ANSWER_TIMEOUT_S) -> None:
        from jeepney import DBusAddress
        from jeepney.io.blocking import open_dbus_connection

        try:
            self.conn = open_dbus_connection(bus="SESSION", enable_fds=True)
        except (OSError, KeyError) as exc:
            raise DisplayError(f"cannot reach the D-Bus session bus for the portal: {exc}") from exc
        self._portal = DBusAddress(_PATH, bus_name=_BUS)
        self._sender = self.conn.unique_name.lstrip(":").replace(".", "_")
        self._lock = threading.Lock()
        self._tokens = 0
        self.token_file = token_file
        self.closed_reason: str | None = None
        self._closed: Any = None
        versions = self._check_versions()
        # RemoteDesktop 2 (xdg-desktop-portal 1.18) remembers a permission; 1 asks every time.
        self.remembers = versions[_RD] >= _RD_PERSIST_VERSION
        self.session = self._create_session()
        self._closed = self._watch_closed()
        token = load_token(self.token_file) if self.remembers else None
        devices: dict[str, tuple[str, Any]] = {"types": ("u", _KEYBOARD | _POINTER)}
        if self.remembers:
            devices["persist_mode"] = ("u", _PERSIST_UNTIL_REVOKED)
        if token:
            devices["restore_token"] = ("s", token)
        self.restored = token is not None
        self._request(_RD, "SelectDevices", "oa{sv}", self.session, devices)
        sources = {"types": ("u", _MONITOR), "multiple": ("b", False)}
        self._request(_SC, "SelectSources", "oa{sv}", self.session, sources)
        try:
            results = self._request(
                _RD, "Start", "osa{sv}", self.session, "", {}, timeout_s=answer_timeout_s
            )
        except Declined:
            self.close()
            if token:
                forget_token(self.token_file)  # the portal forgets a permission that was taken back
                raise Declined(
                    "the desktop no longer lets deskpilot share the screen and control input "
                    "(the permission was revoked or declined): run again and choose Share (with "
                    "'Allow remote interaction' on) in the dialog"
                ) from None
            raise
        granted = int(results.get("devices", ("u", 0))[1])
        if granted & (_KEYBOARD | _POINTER) != _KEYBOARD | _POINTER:
            self.close()
            raise DisplayError(
                "the desktop shared the screen but not the keyboard and pointer: run again and "
                "turn on 'Allow remote interaction' in the dialog"
            )
        streams = results.get("streams", ("a(ua{sv})", []))[1]
        if not streams:
            self.close()
            raise DisplayError("the desktop shared no screen: run again and choose a monitor")
        node, props = streams[0]
        self.node = int(node)
        x, y = props.get("position", ("(ii)", (0, 0)))[1]
        w, h = props.get("size", ("(ii)", (0, 0)))[1]
        self.geometry = (int(x), int(y), int(w), int(h))
        if "restore_token" in results:
            save_token(self.token_file, str(results["restore_token"][1]))

    # -- D-Bus plumbing -----------------------------------------------------------------

    def _call(self, interface: str, method: str, signature: str, *args: Any) -> Any:
        from jeepney import new_method_call
        from jeepney.low_level import MessageType

        msg = new_method_call(self._portal.with_interface(interface), method, signature, args)
        with self._lock:
            reply = self.conn.send_and_get_reply(msg, timeout=_CALL_TIMEOUT_S)
        if self._closed is not None and self._closed.queue:
            self.check_open()  # the session ended while we waited: say that, not the error
        if reply.header.message_type == MessageType.error:
            name = reply.header.fields.get(4, "error")  # HeaderFields.error_name
            detail = reply.body[0] if reply.body else ""
            raise DisplayError(f"the portal refused {method}: {name}: {detail}")
        return reply.body

    def _check_versions(self) -> dict[str, int]:
        from jeepney import Properties

        versions: dict[str, int] = {}
        for interface, needed in ((_RD, 1), (_SC, 1)):
            props = Properties(self._portal.with_interface(interface))
            try:
                with self._lock:
                    reply = self.conn.send_and_get_reply(props.get("version"), timeout=5)
                version = int(reply.body[0][1])
            except Exception as exc:  # no portal service, or no such interface
                raise DisplayError(
                    f"the desktop offers no {interface.rsplit('.', 1)[1]} portal ({exc}); install "
                    "xdg-desktop-portal and your desktop's backend (xdg-desktop-portal-gnome/-kde)"
                ) from exc
            if version < needed:
                raise DisplayError(f"{interface} portal version {version} is too old")
            versions[interface] = version
        return versions

    def _request(
        self,
        interface: str,
        method: str,
        signature: str,
        *args: Any,
        timeout_s: float = _CALL_TIMEOUT_S,
    ) -> dict[str, Any]:
        """Call a method that answers through a Request object's Response signal."""
        from jeepney import MatchRule, message_bus
        from jeepney.io.blocking import Proxy

        self._tokens += 1
        token = f"deskpilot{os.getpid()}_{self._tokens}"
        path = f"{_PATH}/request/{self._sender}/{token}"
        rule = MatchRule(
            type="signal", interface="org.freedesktop.portal.Request", member="Response", path=path
        )
        Proxy(message_bus, self.conn).AddMatch(rule)
        options = dict(args[-1])
        options["handle_token"] = ("s", token)
        with self.conn.filter(rule) as queue:
            self._call(interface, method, signature, *args[:-1], options)
            try:
                signal = self.conn.recv_until_filtered(queue, timeout=timeout_s)
            except TimeoutError:
                raise DisplayError(
                    f"the desktop did not answer {method} within {timeout_s:g} s (was the "
                    "permission dialog left open?)"
                ) from None
        code, results = signal.body
        if code == 1:
            raise Declined(
                "screen sharing and remote control were declined in the desktop's dialog: run "
                "again and choose Share (with 'Allow remote interaction' on)"
            )
        if code != 0:
            raise DisplayError(f"the portal's {method} failed (response {code})")
        return dict(results)

    def _create_session(self) -> str:
        token = f"deskpilot{os.getpid()}"
        results = self._request(
            _RD, "CreateSession", "a{sv}", {"session_handle_token": ("s", token)}
        )
        return str(results["session_handle"][1])

    def _watch_closed(self) -> Any:
        from jeepney import MatchRule, message_bus
        from jeepney.io.blocking import Proxy

        rule = MatchRule(
            type="signal",
            interface="org.freedesktop.portal.Session",
            member="Closed",
            path=self.session,
        )
        Proxy(message_bus, self.conn).AddMatch(rule)
        return self.conn.filter(rule, bufsize=4)

    def check_open(self) -> None:
        """Fail with one line when the desktop has ended the session (permission revoked)."""
        if self.closed_reason is None and self._closed is not None and self._closed.queue:
            self.closed_reason = (
                "the desktop ended screen sharing and remote control (the permission was revoked "
                "or the session stopped): start the run again to ask for it anew"
            )
        if self.closed_reason is not None:
            raise DisplayError(self.closed_reason)

    # -- what the desktop uses ----------------------------------------------------------

    def notify(self, method: str, signature: str, *args: Any) -> None:
        """A RemoteDesktop Notify* call on this session."""
        self.check_open()
        self._call(_RD, method, "oa{sv}" + signature, self.session, {}, *args)

    def pipewire_fd(self) -> int:
        """A new connection to the PipeWire remote that carries this session's stream."""
        self.check_open()
        (handle,) = self._call(_SC, "OpenPipeWireRemote", "oa{sv}", self.session, {})
        return int(handle.to_raw_fd())

    def close(self) -> None:
        """End the portal session and hang up."""
        from jeepney import DBusAddress, new_method_call

        try:
            session = DBusAddress(
                self.session, bus_name=_BUS, interface="org.freedesktop.portal.Session"
            )
            with self._lock:
                self.conn.send(new_method_call(session, "Close"))
        except Exception:  # the bus or the session is already gone
            pass
        try:
            self.conn.close()
        except Exception:  # as above
            pass


# The caps GStreamer negotiated for the file it writes (printed by gst-launch-1.0 -v).
_CAPS = re.compile(
    rb"filesink0\.GstPad:sink: caps = [^\n]*?width=\(int\)(\d+), height=\(int\)(\d+)"
)


class PortalScreen(GrabbedScreen):
    """Frames of the session's PipeWire stream, one GStreamer run per capture.

    KDE's kwin sends a frame only when something on the screen changes: when none came within
    NUDGE_AFTER_S, the pointer is moved one pixel and back, which makes kwin draw one.
    """

    def __init__(self, session: PortalSession, monitor: Monitor, env: Mapping[str, str]) -> None:
        self.session = session
        self.monitor = monitor
        self._env = dict(env)
        gst = shutil.which("gst-launch-1.0")
        if gst is None:
            raise DisplayError(f"screen capture on this desktop needs GStreamer: run `{GST_HINT}`")
        self._gst = gst
        self.nudges = 0  # captures that needed the pointer nudged to get a frame

    def _run_gst(self, cmd: list[str], fd: int) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.Popen(
            cmd, pass_fds=(fd,), env=self._env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            try:
                out, err = proc.communicate(timeout=NUDGE_AFTER_S)
            except subprocess.TimeoutExpired:
                self.session.notify("NotifyPointerMotion", "dd", 1.0, 0.0)
                self.session.notify("NotifyPointerMotion", "dd", -1.0, 0.0)
                self.nudges += 1
                out, err = proc.communicate(timeout=_GST_TIMEOUT_S)
        except BaseException:
            proc.kill()
            proc.communicate()
            raise
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)

    def _grab(self) -> tuple[int, int, bytes]:
        fd = self.session.pipewire_fd()
        with tempfile.NamedTemporaryFile(prefix="deskpilot-frame-", suffix=".rgbx") as out:
            cmd = [
                self._gst, "-v", "pipewiresrc", f"fd={fd}", f"path={self.session.node}",
                "num-buffers=1", "always-copy=true", "!", "videoconvert", "!",
                "video/x-raw,format=RGBx", "!", "filesink", f"location={out.name}",
            ]  # fmt: skip
            try:
                done = self._run_gst(cmd, fd)
            except subprocess.TimeoutExpired as exc:
                raise DisplayError(
                    "screen capture failed: no frame from the portal's stream "
                    "(was sharing stopped?)"
                ) from exc
            finally:
                os.close(fd)
            found = _CAPS.search(done.stdout)
            data = Path(out.name).read_bytes()
        if done.returncode != 0 or found is None:
            reason = " ".join(done.stderr.decode("utf-8", "replace").split())[-300:]
            if "no element" in reason and "pipewiresrc" in reason:
                reason = f"GStreamer has no pipewiresrc: run `{GST_HINT}`"
            raise DisplayError(f"screen capture failed: {reason or 'gst-launch-1.0 failed'}")
        width, height = int(found.group(1)), int(found.group(2))
        if len(data) < width * height * 4:
            raise DisplayError("screen capture failed: a truncated frame")
        from PIL import Image

        # frombytes, not frombuffer: Pillow 13 maps an RGBX buffer as is, 4 bytes a pixel.
        rgb = Image.frombytes("RGB", (width, height), data, "raw", "RGBX").tobytes()
        return width, height, rgb


def layout_keysyms(keymap: str) -> set[int]:
    """Every keysym an XKB keymap's symbols section puts on a key."""
    from Xlib import XK

    section = keymap.split("xkb_symbols", 1)[-1]
    found: set[int] = set()
    for group in re.findall(r"\[([^\]]*)\]", section):
        for name in group.split(","):
            name = name.strip()
            if not name:
                continue
            if re.fullmatch(r"0x[0-9a-fA-F]+", name):
                found.add(int(name, 16))
                continue
            if re.fullmatch(r"U[0-9a-fA-F]{4,6}", name):
                found.add(0x01000000 + int(name[1:], 16))
                continue
            keysym = int(XK.string_to_keysym(name))
            if keysym:
                found.add(keysym)
    return found


def keysym_typable(ch: str, keysyms: set[int]) -> bool:
    """Whether the layout has this character's keysym (Latin-1 or Unicode keysym)."""
    return char_keysym(ch) in keysyms


class PortalInput:
    """RemoteDesktop Notify calls: absolute motion on the shared stream, buttons, wheel, keysyms."""

    def __init__(self, session: PortalSession, monitor: Monitor, env: Mapping[str, str]) -> None:
        self.session = session
        self.monitor = monitor
        self._env = dict(env)
        self._held_buttons: set[str] = set()
        self._held_keys: list[int] = []
        self._keysyms: set[int] | None = None

    def _read_keymap(self) -> str | None:
        try:
            client = WireClient.connect(self._env)
            try:
                return client.keymap()
            finally:
                client.close()
        except WaylandError:
            return None

    def layout(self) -> set[int]:
        """The keysyms of the current layout, read once from the compositor's seat."""
        if self._keysyms is None:
            keymap = self._read_keymap()
            if keymap is None:
                # A seat whose only keyboard is the portal's virtual one (headless) has no
                # keyboard until its first key, and that first key was lost: tap Shift.
                shift = key_keysym("shift")
                self._key(shift, True)
                self._key(shift, False)
                deadline = time.monotonic() + _KEYBOARD_WAIT_S
                while keymap is None and time.monotonic() < deadline:
                    time.sleep(0.05)
                    keymap = self._read_keymap()
            self._keysyms = layout_keysyms(keymap) if keymap else set()
        return self._keysyms

    def move(self, x: int, y: int) -> None:
        """Absolute motion, in the stream's logical coordinates."""
        m = self.monitor
        self.session.notify(
            "NotifyPointerMotionAbsolute", "udd", self.session.node,
            float(x - m.left), float(y - m.top),
        )  # fmt: skip

    def button(self, button: str, pressed: bool) -> None:
        """Press or release a button."""
        self.session.notify("NotifyPointerButton", "iu", _BUTTONS[button], 1 if pressed else 0)
        (self._held_buttons.add if pressed else self._held_buttons.discard)(button)

    def wheel(self, clicks: int, *, horizontal: bool) -> None:
        """Discrete wheel steps (positive: down or right)."""
        self.session.notify("NotifyPointerAxisDiscrete", "ui", 1 if horizontal else 0, clicks)

    def _key(self, keysym: int, pressed: bool) -> None:
        self.session.notify("NotifyKeyboardKeysym", "iu", keysym, 1 if pressed else 0)
        if pressed:
            self._held_keys.append(keysym)
        elif keysym in self._held_keys:
            self._held_keys.remove(keysym)

    def chord(self, keys: tuple[str, ...]) -> None:
        """Press keysyms in order, release them in reverse."""
        syms = [key_keysym(k) for k in keys]
        layout = self.layout()
        missing = [k for k, s in zip(keys, syms, strict=True) if layout and s not in layout]
        if missing and not all(is_modifier(k) for k in missing):
            raise ValueError(
                f"cannot press {'+'.join(missing)}: the keyboard layout has no such key"
            )
        for s in syms:
            self._key(s, True)
        for s in reversed(syms):
            self._key(s, False)

    def check_text(self, strokes: list[str]) -> None:
        """Refuse to type without a layout to check the text against."""
        if not self.layout():
            raise ValueError(
                "cannot type on this desktop: the compositor gave no keyboard layout to check "
                "the text against; nothing was typed"
            )

    def to_paste(self, strokes: list[str]) -> tuple[set[str], str]:
        """The characters the current keyboard layout lacks (the portal types only keysyms)."""
        layout = self.layout()
        special = {"\n", "\t"}
        missing = {ch for ch in strokes if ch not in special and not keysym_typable(ch, layout)}
        return missing, "the keyboard layout lacks them and the portal types only keysyms"

    def type_strokes(self, strokes: list[str]) -> None:
        """Type characters the layout has, one keysym press and release each."""
        special = {"\n": key_keysym("enter"), "\t": key_keysym("tab")}
        for ch in strokes:
            keysym = special.get(ch) or char_keysym(ch)
            self._key(keysym, True)
            self._key(keysym, False)

    def release(self) -> list[str]:
        """Release the buttons and keys this input pressed and has not released."""
        released: list[str] = []
        for button in sorted(self._held_buttons):
            try:
                self.button(button, False)
                released.append(button)
            except Exception:  # the session is gone: nothing is held any more
                pass
        for keysym in reversed(list(self._held_keys)):
            try:
                self._key(keysym, False)
                released.append(f"keysym 0x{keysym:x}")
            except Exception:  # as above
                pass
        self._held_buttons.clear()
        self._held_keys.clear()
        return released

    def close(self) -> None:
        """Nothing of its own: the session is closed by the desktop."""


class PortalDesktop:
    """A desktop reached through xdg-desktop-portal: GNOME, KDE Plasma and others."""

    name: BackendName = "portal"

    def __init__(self, monitor: int | None, env: Mapping[str, str]) -> None:
        if monitor not in (None, 1):
            raise DisplayError(
                "on this desktop the monitor is chosen in the sharing dialog: leave out --monitor"
            )
        try:
            import jeepney  # noqa: F401
        except ImportError as exc:
            raise DisplayError(
                "the portal path needs the jeepney package: pip install jeepney"
            ) from exc
        self._env = dict(env)
        self.session = PortalSession(restore_token_path())
        x, y, w, h = self.session.geometry
        self._monitor = Monitor(1, x, y, w, h, 1.0, True)
        try:
            self.screen = PortalScreen(self.session, self._monitor, env)
        except DisplayError:
            self.session.close()
            raise
        inputs = PortalInput(self.session, self._monitor, env)
        inputs.layout()  # now, so that the first key the model sends is not the one lost
        self.executor = InputExecutor(inputs, clipboard=WlClipboard.find(env))
        # Decided when the app binds it (actions/desktop/shortcuts.py): present or not.
        self.hotkey = HotkeySupport(True, "the GlobalShortcuts portal, where the desktop has it")

    def monitors(self) -> list[Monitor]:
        """The one monitor shared in the dialog."""
        return [self.screen.monitor]

    def focused_window(self) -> FocusedWindow | None:
        """Unknown: the portal does not say which window has the keyboard."""
        return None

    def focused_area(self) -> tuple[int, int, int, int] | None:
        """Unknown here: the freshness check then watches the whole monitor for keys."""
        return None

    def close(self) -> None:
        """Release held input and end the portal session."""
        self.executor.release_all()
        self.session.close()


def open_portal_desktop(env: Mapping[str, str], monitor: int | None = None) -> PortalDesktop:
    """The portal desktop; DisplayError with one line when it cannot be had."""
    return PortalDesktop(monitor, env)
