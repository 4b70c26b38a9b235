"""A private X desktop for the agent: a nested server, a window manager and the apps it opens.

The agent captures and acts there only, so the user's pointer, keyboard and windows stay
theirs. `headless` is an Xvfb nobody sees; `window` is an Xephyr window on the user's display
that the user can watch. Everything started here runs in its own process group and is killed
on close(); each process also gets the kernel's parent-death signal, so a deskpilot killed
outright (SIGKILL, a crash) takes them along too.

The server admits only clients holding its cookie (MIT-MAGIC-COOKIE-1 in a 0700 folder): other
local users cannot watch or drive the agent's desktop. Apps started here get the cookie through
XAUTHORITY; deskpilot's own connections through a copy of the user's XAUTHORITY file with the
cookie added, set for the process while the desktop runs.
"""

from __future__ import annotations

import os
import secrets
import select
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "DEFAULT_SIZE",
    "DESKTOP_CHOICES",
    "DesktopError",
    "PrivateDesktop",
    "choose_mode",
    "desktop_display",
    "parse_size",
    "recorded",
]

# user: the user's own session; private: a window when there is a display to show it on,
# headless otherwise; headless and window choose explicitly.
DESKTOP_CHOICES = ("user", "private", "headless", "window")
DEFAULT_SIZE = (1920, 1080)
Mode = Literal["headless", "window"]
_SERVER_START_S = 20.0
_WM_START_S = 10.0
_APP_WINDOW_S = 15.0
_STOP_GRACE_S = 2.0
_PR_SET_PDEATHSIG = 1
_APT = "apt-get install -y --no-install-recommends"


class DesktopError(RuntimeError):
    """The private desktop could not be started (a missing program, a server that failed)."""


def parse_size(text: str) -> tuple[int, int]:
    """'1920x1080' as (1920, 1080); ValueError on anything else."""
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        raise ValueError(f"desktop size {text!r} is not WIDTHxHEIGHT, e.g. 1920x1080")
    w, h = int(width), int(height)
    if not (320 <= w <= 8192 and 200 <= h <= 8192):
        raise ValueError(f"desktop size {text!r} is out of range (320x200 to 8192x8192)")
    return w, h


def choose_mode(choice: str) -> Mode | None:
    """The desktop mode a --desktop choice means; None is the user's own session."""
    if choice == "user":
        return None
    if choice in ("headless", "window"):
        return choice  # type: ignore[return-value]
    if choice == "private":
        # A window the user can watch needs a display to put it on, and Xephyr.
        has_host = bool(os.environ.get("DISPLAY")) and shutil.which("Xephyr") is not None
        return "window" if has_host else "headless"
    raise ValueError(f"unknown desktop {choice!r}; choose from {', '.join(DESKTOP_CHOICES)}")


def recorded(choice: str, size: str, opened: Sequence[str]) -> dict[str, Any]:
    """run.json's `desktop` entry for a run on a private desktop (docs/recording.md)."""
    return {"desktop": {"choice": choice, "size": size, "open": list(opened)}}


def _die_with_parent() -> None:
    """In the child, before exec: the kernel sends SIGTERM when deskpilot dies (Linux)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not glibc: close() still ends every process group


@dataclass
class PrivateDesktop:
    """A running private desktop; `display` (e.g. ":12") is where the agent captures and acts."""

    mode: Mode
    display: str
    width: int
    height: int
    window_manager: bool
    started_in_s: float
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    die_with_parent: bool = True
    auth: _Cookie | None = None

    @classmethod
    def start(
        cls,
        mode: Mode = "headless",
        size: tuple[int, int] = DEFAULT_SIZE,
        *,
        apps: Sequence[str] = (),
        window_manager: bool = True,
        die_with_parent: bool = True,
    ) -> PrivateDesktop:
        """Start the server, the window manager (openbox) and each app; DesktopError on failure.

        die_with_parent ties the processes to the calling thread's life (Linux's parent-death
        signal follows the thread that forked): start from a thread that outlives the run.
        """
        if not sys.platform.startswith("linux"):
            raise DesktopError("a private desktop needs Linux (an X server: Xvfb or Xephyr)")
        begin = time.monotonic()
        width, height = size
        auth = _Cookie()
        try:
            server, display = _start_server(mode, width, height, die_with_parent, auth)
        except BaseException:
            auth.remove()
            raise
        desktop = cls(
            mode, display, width, height, False, 0.0, [("server", server)], die_with_parent, auth
        )
        try:
            auth.admit(display)
            if window_manager:
                desktop.window_manager = desktop._start_window_manager()
            for command in apps:
                desktop.open(command)
        except BaseException:
            desktop.close()
            raise
        desktop.started_in_s = time.monotonic() - begin
        return desktop

    def env(self) -> dict[str, str]:
        """The environment of a program on the private desktop."""
        env = dict(os.environ)
        env["DISPLAY"] = self.display
        env.pop("WAYLAND_DISPLAY", None)  # toolkits would prefer the user's Wayland session
        if self.auth is not None:
            env["XAUTHORITY"] = self.auth.client_file
        return env

    def _spawn(self, name: str, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        """Start a program on the desktop in a process group of its own."""
        proc = subprocess.Popen(
            list(argv),
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent if self.die_with_parent else None,  # noqa: PLW1509
        )
        self.processes.append((name, proc))
        return proc

    def _start_window_manager(self) -> bool:
        """openbox, once it announces itself; False (and a bare desktop) when not installed."""
        openbox = shutil.which("openbox")
        if openbox is None:
            print(
                f"deskpilot: note: openbox is not installed ({_APT} openbox); the private "
                "desktop runs without a window manager",
                file=sys.stderr,
            )
            return False
        proc = self._spawn("openbox", [openbox, "--sm-disable"])
        with _XClient(self.display) as x:
            deadline = time.monotonic() + _WM_START_S
            while not x.window_manager_running():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise DesktopError("openbox did not start on the private desktop")
                time.sleep(0.02)
        return True

    def open(self, command: str) -> subprocess.Popen[bytes]:
        """Start an application (a command line, split like a shell) and wait for its window."""
        argv = shlex.split(command)
        if not argv:
            raise DesktopError("--open: empty command")
        if shutil.which(argv[0]) is None:
            raise DesktopError(f"--open {command!r}: {argv[0]!r} is not installed or not on PATH")
        with _XClient(self.display) as x:
            before = x.top_level_windows()
            proc = self._spawn(argv[0], argv)
            # The first screenshot should show the app: wait for a new top-level window.
            deadline = time.monotonic() + _APP_WINDOW_S
            while not (x.top_level_windows() - before):
                if proc.poll() is not None:
                    raise DesktopError(f"--open {command!r} exited with status {proc.returncode}")
                if time.monotonic() > deadline:
                    print(
                        f"deskpilot: note: {command!r} showed no window within "
                        f"{_APP_WINDOW_S:g} s; going on",
                        file=sys.stderr,
                    )
                    break
                time.sleep(0.05)
        return proc

    def pids(self) -> list[int]:
        """The process ids deskpilot started (each leads its own process group)."""
        return [proc.pid for _, proc in self.processes]

    def describe(self) -> str:
        """One line for the terminal: where, what, how fast."""
        what = "an Xephyr window" if self.mode == "window" else "headless"
        wm = "openbox" if self.window_manager else "no window manager"
        return (
            f"private desktop {self.display} ({what}, {self.width}x{self.height}, {wm}), "
            f"started in {self.started_in_s:.2f} s"
        )

    def close(self) -> None:
        """End the apps, then the window manager, then the server: each whole process group."""
        for _, proc in reversed(self.processes):
            _end_group(proc)
        self.processes.clear()
        if self.auth is not None:
            self.auth.remove()
            self.auth = None

    def __enter__(self) -> PrivateDesktop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _end_group(proc: subprocess.Popen[bytes]) -> None:
    """End a process, its group and its descendants: SIGTERM, then SIGKILL after a grace period.

    Descendants count because a terminal emulator runs its shell in a session of its own
    (outside the group); they are collected before anything is signalled, while they are
    still linked to their parents.
    """
    others = [pid for pid in _descendants(proc.pid) if _process_group(pid) != proc.pid]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        _signal_group(proc.pid, sig)
        for pid in others:
            _signal(pid, sig)
        try:
            proc.wait(timeout=_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            continue
        deadline = time.monotonic() + _STOP_GRACE_S
        while any(_running(pid) for pid in others) and time.monotonic() < deadline:
            time.sleep(0.01)
        if not any(_running(pid) for pid in others):
            break
    # Whatever is left in the group (the leader is gone) goes with SIGKILL.
    _signal_group(proc.pid, signal.SIGKILL)
    if proc.poll() is None:
        proc.wait(timeout=_STOP_GRACE_S)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone already (or a member changed its user)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name: state, ppid, pgrp, ...; None when gone."""
    try:
        text = open(f"/proc/{pid}/stat", encoding="ascii", errors="replace").read()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def _running(pid: int) -> bool:
    """Whether a process exists and has not exited (a zombie has)."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def _process_group(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[2]) if fields else None


def _descendants(root: int) -> list[int]:
    """Every live descendant of a process (Linux /proc), children before grandchildren."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None and fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    queue = [root]
    while queue:
        for child in children.get(queue.pop(0), []):
            found.append(child)
            queue.append(child)
    return found


def _start_server(
    mode: Mode, width: int, height: int, die_with_parent: bool, auth: _Cookie
) -> tuple[subprocess.Popen[bytes], str]:
    """Xvfb or Xephyr on a display number the server picks itself (-displayfd)."""
    if mode == "window":
        program = shutil.which("Xephyr")
        if program is None:
            raise DesktopError(f"--desktop window needs Xephyr: {_APT} xserver-xephyr")
        if not os.environ.get("DISPLAY"):
            raise DesktopError("--desktop window needs a display to show Xephyr on (DISPLAY)")
        extra = ["-screen", f"{width}x{height}", "-title", "deskpilot: the agent's desktop"]
        extra += ["-no-host-grab"]  # the user's keyboard and mouse are never grabbed
    else:
        program = shutil.which("Xvfb")
        if program is None:
            raise DesktopError(f"--desktop headless needs Xvfb: {_APT} xvfb")
        extra = ["-screen", "0", f"{width}x{height}x24"]
    read_fd, write_fd = os.pipe()
    # A file, not a pipe: nobody reads the server's chatter once it runs, and a full pipe
    # would block it.
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [
            program,
            "-displayfd",
            str(write_fd),
            *extra,
            "-auth",
            auth.server_file,
            "-nolisten",
            "tcp",
            "-noreset",
        ],
        pass_fds=(write_fd,),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
        preexec_fn=_die_with_parent if die_with_parent else None,  # noqa: PLW1509
    )
    os.close(write_fd)
    data = b""
    deadline = time.monotonic() + _SERVER_START_S
    try:
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or proc.poll() is not None:
                break
            ready, _, _ = select.select([read_fd], [], [], min(left, 0.2))
            if ready:
                chunk = os.read(read_fd, 64)
                if not chunk:
                    break
                data += chunk
    finally:
        os.close(read_fd)
    with log:
        if not data.strip().isdigit():
            _end_group(proc)
            log.seek(0)
            err = log.read().decode(errors="replace")[-1000:].strip()
            raise DesktopError(f"{os.path.basename(program)} did not start: {err}")
    return proc, f":{data.strip().decode()}"


_FAMILY_LOCAL = 256
_COOKIE = b"MIT-MAGIC-COOKIE-1"


def _xauth_entry(address: bytes, number: bytes, cookie: bytes) -> bytes:
    """One Xauthority record: family, address, display number, scheme, cookie."""
    parts = [address, number, _COOKIE, cookie]
    return struct.pack(">H", _FAMILY_LOCAL) + b"".join(
        struct.pack(">H", len(part)) + part for part in parts
    )


class _Cookie:
    """The private server's cookie: the server's file, the apps' file, and deskpilot's own."""

    def __init__(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="deskpilot-desktop-")  # 0700
        self.cookie = secrets.token_bytes(16)
        self.host = socket.gethostname().encode()
        self.server_file = os.path.join(self.folder, "server")
        self.client_file = os.path.join(self.folder, "client")
        self._merged = os.path.join(self.folder, "merged")
        self._saved: tuple[str | None, str] | None = None
        # The server reads every cookie in its file, whatever the display number.
        self._write(self.server_file, _xauth_entry(self.host, b"", self.cookie))

    def admit(self, display: str) -> None:
        """Write the clients' files for the display; point this process's XAUTHORITY at both."""
        entry = _xauth_entry(self.host, display.lstrip(":").encode(), self.cookie)
        self._write(self.client_file, entry)
        previous = os.environ.get("XAUTHORITY")
        user_file = previous or os.path.expanduser("~/.Xauthority")
        try:
            with open(user_file, "rb") as fp:
                user_entries = fp.read()
        except OSError:
            user_entries = b""  # no file: the user's server needs no cookie
        # The user's entries first: their display keeps finding its own cookie.
        self._write(self._merged, user_entries + entry)
        self._saved = (previous, self._merged)
        os.environ["XAUTHORITY"] = self._merged

    def remove(self) -> None:
        """Give XAUTHORITY back (unless someone changed it since) and delete the files."""
        if self._saved is not None:
            previous, ours = self._saved
            if os.environ.get("XAUTHORITY") == ours:
                if previous is None:
                    os.environ.pop("XAUTHORITY", None)
                else:
                    os.environ["XAUTHORITY"] = previous
            self._saved = None
        shutil.rmtree(self.folder, ignore_errors=True)

    @staticmethod
    def _write(path: str, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fp:
            fp.write(data)


class _XClient:
    """A short-lived connection to the private desktop, for waiting on it."""

    def __init__(self, display: str) -> None:
        from Xlib import display as xdisplay

        self._dpy: Any = xdisplay.Display(display)
        self._root = self._dpy.screen().root

    def window_manager_running(self) -> bool:
        atom = self._dpy.intern_atom("_NET_SUPPORTING_WM_CHECK", only_if_exists=True)
        if not atom:
            return False
        prop = self._root.get_full_property(atom, 0)
        return prop is not None and len(prop.value) > 0

    def top_level_windows(self) -> set[int]:
        """Mapped children of the root (a window manager's frames, or bare windows)."""
        from Xlib import X

        found = set()
        for child in self._root.query_tree().children:
            try:
                attrs = child.get_attributes()
            except Exception:  # the window closed meanwhile
                continue
            if attrs.map_state == X.IsViewable and not attrs.override_redirect:
                found.add(int(child.id))
        return found

    def __enter__(self) -> _XClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._dpy.close()


@contextmanager
def desktop_display(
    choice: str, size: tuple[int, int] = DEFAULT_SIZE, apps: Sequence[str] = ()
) -> Iterator[str | None]:
    """The X display to act on for a --desktop choice (None: the user's), ended on exit.

    A SIGTERM while it runs ends the run like an error would (finally blocks run, the desktop
    closes), unless someone already handles SIGTERM.
    """
    mode = choose_mode(choice)
    if mode is None:
        if apps:
            raise DesktopError("--open needs a private desktop (--desktop private)")
        yield None
        return
    previous = signal.getsignal(signal.SIGTERM)
    own_handler = previous is signal.SIG_DFL and _main_thread()
    if own_handler:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        with PrivateDesktop.start(mode, size, apps=apps) as desktop:
            print(f"deskpilot: {desktop.describe()}; pids {desktop.pids()}", file=sys.stderr)
            yield desktop.display
    finally:
        if own_handler:
            signal.signal(signal.SIGTERM, previous)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM as SystemExit: the finally blocks (and the desktop's close) still run."""
    raise SystemExit(128 + signum)
