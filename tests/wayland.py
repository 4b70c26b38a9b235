"""Helpers for tests on a private headless sway: the compositor, foot terminals, the tree.

sway refuses to run as root, so as root it runs in a user namespace mapped to uid 1000; the
socket files still belong to root outside it, so the tests' own clients connect as usual.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WAYLAND_TOOLS = ("sway", "swaymsg", "foot", "wl-copy", "wl-paste")
APT_HINT = "apt-get install -y --no-install-recommends sway foot wl-clipboard fonts-dejavu-core"


def missing_tools() -> list[str]:
    """The Wayland test tools that are not installed."""
    return [t for t in WAYLAND_TOOLS if shutil.which(t) is None]


def skip_without_tools() -> None:
    """Skip the calling test module, naming what is missing and the command to install it."""
    import pytest

    missing = missing_tools()
    if missing:
        pytest.skip(
            f"{', '.join(missing)} not installed: run `{APT_HINT}`", allow_module_level=True
        )


@dataclass
class Sway:
    """A headless sway; `env` is what a client needs (WAYLAND_DISPLAY, SWAYSOCK, ...)."""

    proc: subprocess.Popen[bytes]
    runtime: tempfile.TemporaryDirectory[str]
    env: dict[str, str]
    log: Path
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @classmethod
    def start(cls, config: str, *, outputs: int = 1, timeout_s: float = 20.0) -> Sway:
        """Start sway with this config text; waits for its Wayland and IPC sockets."""
        runtime = tempfile.TemporaryDirectory(prefix="deskpilot-sway-")
        folder = Path(runtime.name)
        folder.chmod(0o700)
        conf = folder / "sway.conf"
        conf.write_text(config)
        log = folder / "sway.log"
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DISPLAY", "WAYLAND_DISPLAY", "SWAYSOCK", "XDG_CURRENT_DESKTOP")
        }
        env.update(
            XDG_RUNTIME_DIR=str(folder),
            WLR_BACKENDS="headless",
            WLR_RENDERER="pixman",
            WLR_LIBINPUT_NO_DEVICES="1",
            WLR_HEADLESS_OUTPUTS=str(outputs),
        )
        text = ""
        for prefix in _launchers():
            if prefix[:1] == ["setpriv"]:
                os.chown(folder, 65534, 65534)  # sway checks that it owns its runtime folder
            with open(log, "wb") as out:
                cmd = [*prefix, "sway", "-c", str(conf)]
                proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and proc.poll() is None:
                sockets = list(folder.glob("sway-ipc.*.sock"))
                displays = [p for p in folder.glob("wayland-*") if not p.name.endswith(".lock")]
                if sockets and displays:
                    env.update(
                        WAYLAND_DISPLAY=displays[0].name,
                        SWAYSOCK=str(sockets[0]),
                        XDG_SESSION_TYPE="wayland",
                    )
                    sway = cls(proc, runtime, env, log)
                    sway.wait(sway.outputs, "sway's outputs", timeout_s)
                    return sway
                time.sleep(0.05)
            text += f"{' '.join(cmd)}: " + log.read_text(errors="replace")[-1500:] + "\n"
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        runtime.cleanup()
        raise RuntimeError(f"sway did not start: {text}")

    def msg(self, *args: str) -> Any:
        """swaymsg with these arguments; its JSON answer."""
        done = subprocess.run(
            ["swaymsg", "-r", *args], env=self.env, capture_output=True, timeout=10, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"swaymsg {' '.join(args)}: {done.stdout!r} {done.stderr!r}")
        return json.loads(done.stdout or b"null")

    def outputs(self) -> list[dict[str, Any]]:
        """swaymsg -t get_outputs."""
        result: list[dict[str, Any]] = self.msg("-t", "get_outputs")
        return result

    def windows(self) -> list[dict[str, Any]]:
        """Every application window in the tree (pid, app_id, rect, focused)."""
        found: list[dict[str, Any]] = []

        def walk(node: dict[str, Any]) -> None:
            if node.get("pid"):
                found.append(node)
            for child in node.get("nodes", []) + node.get("floating_nodes", []):
                walk(child)

        walk(self.msg("-t", "get_tree"))
        return found

    def window_of(self, proc: subprocess.Popen[bytes]) -> dict[str, Any] | None:
        """The window of a process, if it has one."""
        return next((w for w in self.windows() if w["pid"] == proc.pid), None)

    def foot(self, command: str, *, app_id: str = "foot") -> subprocess.Popen[bytes]:
        """Start foot running a shell command; returns once its window is mapped."""
        proc = subprocess.Popen(
            ["foot", "--app-id", app_id, "sh", "-c", command],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.children.append(proc)
        self.wait(lambda: self.window_of(proc), f"foot window of {command!r}")
        return proc

    def wait(self, check: Any, what: str, timeout_s: float = 20.0) -> Any:
        """Poll check() until it returns something truthy."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def stop(self) -> None:
        """End the clients, then sway, and remove the runtime folder."""
        for child in self.children:
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.runtime.cleanup()


def _launchers() -> list[list[str]]:
    """How to start sway: as is, or, as root (which sway refuses), as another user."""
    if os.geteuid() != 0:
        return [[]]
    forced = os.environ.get("DESKPILOT_SWAY_LAUNCHER")  # to test the fallback on purpose
    launchers = [
        # A user namespace that maps us to uid 1000: files still belong to root outside.
        ["unshare", "--user", "--map-user=1000", "--map-group=1000", "--"],
        # Where user namespaces are not allowed (some CI containers): the user nobody.
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"],
    ]
    return [launch for launch in launchers if forced is None or launch[0] == forced]


def sway_session(config: str, *, outputs: int = 1) -> Iterator[Sway]:
    """A generator for a pytest fixture: a started sway, stopped afterwards."""
    sway = Sway.start(config, outputs=outputs)
    try:
        yield sway
    finally:
        sway.stop()
