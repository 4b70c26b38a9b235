"""wlroots compositors (sway, Hyprland, river, labwc): screencopy, a virtual pointer, wtype.

Frames: wlr-screencopy into shared memory through actions.desktop.wire, at the output's
physical resolution.
Pointer: wlr-virtual-pointer through actions.desktop.wire (any wlroots compositor, not only sway).
Keys and exact text: `wtype` (zwp-virtual-keyboard), which uploads a keymap made for the text
it types; one idle wtype keeps a virtual keyboard alive, since a seat without a keyboard lost
the first key of each new virtual keyboard in our tests. Outputs: wl_output + xdg-output.
Where keys go: the activated toplevel's app_id (wlr-foreign-toplevel-management).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import threading
import time
import unicodedata
from collections.abc import Mapping

from actions.desktop import BackendName, HotkeySupport
from actions.desktop.inputs import InputExecutor
from actions.desktop.wire import (
    Handler,
    OutputInfo,
    Reader,
    ScreenCopy,
    VirtualPointer,
    WaylandError,
    WireClient,
)
from actions.keys import X_KEYSYMS, is_modifier
from actions.screen import (
    SETTLE_INTERVAL_S,
    SETTLE_TOLERANCE_PX,
    DisplayError,
    Frame,
    Monitor,
    frame_difference,
)
from actions.xtyping import char_keysym

APT_HINT = "apt-get install -y --no-install-recommends wtype"
_REQUIRED_GLOBALS = {
    "zwlr_virtual_pointer_manager_v1": "a virtual pointer",
    "zwp_virtual_keyboard_manager_v1": "a virtual keyboard",
    "zwlr_screencopy_manager_v1": "screen capture (screencopy)",
}
_TOOL_TIMEOUT_S = 10.0
_KEEPER_MS = "86400000"
_KEYBOARD_WAIT_S = 2.0
_SEAT_KEYBOARD = 2  # one day: the idle keyboard lives as long as the desktop object
# wtype's modifier names for the canonical modifier keys (actions.keys).
_WTYPE_MODIFIERS = {
    "ctrl": "ctrl", "ctrlleft": "ctrl", "ctrlright": "ctrl",
    "shift": "shift", "shiftleft": "shift", "shiftright": "shift",
    "alt": "alt", "altleft": "alt", "altright": "alt",
    "win": "logo", "winleft": "logo", "winright": "logo",
}  # fmt: skip


def _need_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise DisplayError(f"wlroots desktop: `{name}` is not installed; run `{APT_HINT}`")
    return path


def monitors_from_outputs(outputs: list[OutputInfo]) -> list[Monitor]:
    """Monitors in logical coordinates (xdg-output), numbered from 1; primary is the one at 0,0."""
    result: list[Monitor] = []
    for i, o in enumerate(outputs, start=1):
        width = o.logical_width or (o.mode_width // max(o.scale, 1))
        height = o.logical_height or (o.mode_height // max(o.scale, 1))
        if width <= 0 or height <= 0:
            continue
        rotated = o.transform % 2 == 1  # 90 and 270 degrees swap the mode's sides
        physical = o.mode_height if rotated else o.mode_width
        scale = physical / width if physical else float(o.scale)
        result.append(Monitor(i, o.logical_x or 0, o.logical_y or 0, width, height, scale))
    origin = next((m for m in result if m.left == 0 and m.top == 0), result[0] if result else None)
    return [
        Monitor(m.index, m.left, m.top, m.width, m.height, m.scale, m is origin) for m in result
    ]


class WlrootsScreen:
    """Captures one output through wlr-screencopy over a connection of its own."""

    def __init__(self, monitor: Monitor, output_global: int, env: Mapping[str, str]) -> None:
        self.monitor = monitor
        self.output_global = output_global
        try:
            self._client = WireClient.connect(dict(env))
            self._copy = ScreenCopy(self._client)
        except WaylandError as exc:
            raise DisplayError(f"wlroots desktop: {exc}") from exc

    def _grab(self) -> tuple[int, int, bytes]:
        try:
            return self._copy.capture(self.output_global)
        except WaylandError as exc:
            raise DisplayError(f"screen capture failed: {exc}") from exc

    def close(self) -> None:
        """Hang up the capture connection."""
        self._client.close()

    def capture(self) -> Frame:
        """Grab the output; the scale is read off the captured size (HiDPI, fractional)."""
        width, height, rgb = self._grab()
        m = self.monitor
        scale = width / m.width if m.width else 1.0
        if abs(scale - m.scale) > 1e-6:
            m = Monitor(m.index, m.left, m.top, m.width, m.height, scale, m.primary)
            self.monitor = m
        return Frame(rgb, width, height, m, time.time())

    def wait_until_stable(
        self,
        *,
        min_s: float,
        max_s: float,
        cancel: threading.Event | None = None,
        interval_s: float = SETTLE_INTERVAL_S,
        tolerance_px: int = SETTLE_TOLERANCE_PX,
    ) -> float:
        """Wait until two grabs in a row differ in at most tolerance_px pixels (min_s..max_s)."""
        start = time.monotonic()
        previous = self._grab()[2]
        while True:
            elapsed = time.monotonic() - start
            if elapsed >= max_s:
                return elapsed
            pause = max(0.0, min(interval_s, max_s - elapsed))
            if cancel is not None:
                if cancel.wait(pause):
                    return time.monotonic() - start
            else:
                time.sleep(pause)
            current = self._grab()[2]
            still = frame_difference(previous, current, bytes_per_pixel=3) <= tolerance_px
            previous = current
            if still and time.monotonic() - start >= min_s:
                return time.monotonic() - start


def wtype_chord_args(keys: tuple[str, ...]) -> list[str]:
    """wtype arguments that press canonical keys together and release them in reverse order."""
    press: list[str] = []
    release: list[str] = []
    for key in keys:
        if is_modifier(key) and key in _WTYPE_MODIFIERS:
            press += ["-M", _WTYPE_MODIFIERS[key]]
            release = ["-m", _WTYPE_MODIFIERS[key], *release]
        else:
            name = _keysym_name(key)
            press += ["-P", name]
            release = ["-p", name, *release]
    return press + release


def _keysym_name(key: str) -> str:
    """The xkb keysym name wtype resolves for a canonical key or a single character."""
    if key in X_KEYSYMS:
        return X_KEYSYMS[key]
    if len(key) == 1:
        return f"0x{char_keysym(key):x}"
    raise ValueError(f"unknown key {key!r}")


def wtype_text_args(strokes: list[str]) -> list[str]:
    """wtype arguments that type strokes exactly (see xtyping.validate_text for strokes)."""
    args: list[str] = []
    run = ""

    def flush() -> None:
        nonlocal run
        if run:
            if run.startswith("-"):  # wtype would read it as an option
                args.extend(["-k", "minus"])
                run = run[1:]
            if run:
                args.extend(_split_leading_dashes(run))
        run = ""

    for ch in strokes:
        if ch in ("\n", "\t"):
            flush()
            args.extend(["-k", "Return" if ch == "\n" else "Tab"])
        else:
            run += ch
    flush()
    return args


def _split_leading_dashes(text: str) -> list[str]:
    out: list[str] = []
    while text.startswith("-"):
        out += ["-k", "minus"]
        text = text[1:]
    return out + ([text] if text else [])


def untypable(strokes: list[str]) -> list[str]:
    """Characters xkb has no keysym for (Unicode noncharacters); wtype would refuse them."""
    bad = []
    for ch in strokes:
        cp = ord(ch)
        if (cp & 0xFFFE) == 0xFFFE or 0xFDD0 <= cp <= 0xFDEF or unicodedata.category(ch) == "Cs":
            bad.append(f"U+{cp:04X}")
    return bad


class WlrootsInput:
    """A virtual pointer (wire protocol) and wtype's virtual keyboards."""

    def __init__(self, env: Mapping[str, str], layout: tuple[int, int, int, int]) -> None:
        self._env = dict(env)
        self._wtype = _need_tool("wtype")
        self.layout = layout
        self._client = WireClient.connect(self._env)
        self._pointer = VirtualPointer(self._client)
        self._keeper: subprocess.Popen[bytes] | None = None
        self._running: subprocess.Popen[bytes] | None = None
        self._buttons: set[str] = set()
        # Now rather than at the first key: apps bind the new keyboard while the model thinks.
        self._keep_keyboard()

    def _keep_keyboard(self) -> None:
        """Start the idle keyboard if it is not running, and wait until the seat has a keyboard."""
        if self._keeper is not None and self._keeper.poll() is None:
            return
        # The shell ends the idle wtype when our end of its stdin closes, so a deskpilot that
        # dies without close() leaves no virtual keyboard behind.
        self._keeper = subprocess.Popen(
            ["sh", "-c", f'"$0" -s {_KEEPER_MS} & read _; kill $! 2>/dev/null', self._wtype],
            env=self._env,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + _KEYBOARD_WAIT_S
        while time.monotonic() < deadline and self._keeper.poll() is None:
            probe = WireClient.connect(self._env)
            try:
                if probe.seat_capabilities() & _SEAT_KEYBOARD:
                    return
            finally:
                probe.close()
            time.sleep(0.02)

    def move(self, x: int, y: int) -> None:
        """Absolute motion in layout coordinates."""
        self._pointer.move(x, y, self.layout)
        self._pointer.flush()

    def button(self, button: str, pressed: bool) -> None:
        """Press or release a button; the compositor has handled it when this returns."""
        self._pointer.button(button, pressed)
        self._pointer.flush()
        (self._buttons.add if pressed else self._buttons.discard)(button)

    def wheel(self, clicks: int, *, horizontal: bool) -> None:
        """Wheel clicks (positive: down or right)."""
        self._pointer.wheel(clicks, horizontal=horizontal)
        self._pointer.flush()

    def chord(self, keys: tuple[str, ...]) -> None:
        """Press and release keys with one wtype."""
        self._run_wtype(wtype_chord_args(keys))

    def check_text(self, strokes: list[str]) -> None:
        """Refuse Unicode noncharacters: xkb has no keysym for them, and wtype would stop."""
        bad = untypable(strokes)
        if bad:
            raise ValueError(
                f"cannot type {', '.join(bad)}: no keysym exists for them; nothing was typed"
            )

    def type_strokes(self, strokes: list[str]) -> str | None:
        """Type the characters with one wtype whose keymap holds all of them."""
        self.check_text(strokes)
        self._run_wtype(wtype_text_args(strokes))
        return None

    def _run_wtype(self, args: list[str]) -> None:
        self._keep_keyboard()
        proc = subprocess.Popen(
            [self._wtype, *args],
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._running = proc
        try:
            _, err = proc.communicate(timeout=_TOOL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise RuntimeError("wtype did not finish in time") from None
        finally:
            self._running = None
        if proc.returncode != 0:
            reason = " ".join(err.decode("utf-8", "replace").split()) or f"exit {proc.returncode}"
            raise RuntimeError(f"wtype failed: {reason}")

    def release(self) -> list[str]:
        """Release the buttons; end a wtype in flight, which destroys its keyboard and its keys."""
        released: list[str] = []
        proc = self._running
        if proc is not None and proc.poll() is None:
            proc.kill()
            released.append("keyboard (typing ended)")
        for button in ("left", "middle", "right"):
            try:
                self._pointer.button(button, False)
                if button in self._buttons:
                    released.append(button)
            except WaylandError:
                pass  # the compositor is gone: nothing is held any more
        self._buttons.clear()
        try:
            self._pointer.flush()
        except WaylandError:
            pass
        return released

    def close(self) -> None:
        """End the idle keyboard and hang up (the compositor drops the virtual pointer)."""
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            if keeper.stdin is not None:
                keeper.stdin.close()  # the shell ends its wtype, then itself
            try:
                keeper.wait(timeout=2)
            except subprocess.TimeoutExpired:
                keeper.kill()
                keeper.wait()
        self._client.close()


def focused_app_id(env: Mapping[str, str]) -> str | None:
    """The activated toplevel's app_id (lower case) via wlr-foreign-toplevel-management."""
    client = WireClient.connect(dict(env))
    try:
        if not client.has("zwlr_foreign_toplevel_manager_v1"):
            return None
        toplevels: dict[int, dict[str, object]] = {}

        def on_manager(opcode: int, r: Reader) -> None:
            if opcode == 0:  # toplevel(new_id): a server-created object
                oid = r.uint()
                toplevels[oid] = {"app_id": None, "activated": False}
                client.add_handler(oid, _toplevel_handler(toplevels[oid]))

        client.bind("zwlr_foreign_toplevel_manager_v1", 3, on_manager)
        client.roundtrip()
        client.roundtrip()  # the toplevels' own events follow their announcement
        for info in toplevels.values():
            if info["activated"] and isinstance(info["app_id"], str):
                return info["app_id"].lower() or None
        return None
    finally:
        client.close()


def _toplevel_handler(info: dict[str, object]) -> Handler:
    def handle(opcode: int, r: Reader) -> None:
        if opcode == 1:  # app_id(string)
            info["app_id"] = r.string()
        elif opcode == 4:  # state(array of uint32)
            size = r.uint()
            raw = r.data[r.pos : r.pos + size]
            states = struct.unpack(f"<{size // 4}I", raw)
            info["activated"] = 2 in states

    return handle


class WlrootsDesktop:
    """A wlroots compositor's session."""

    name: BackendName = "wlroots"

    def __init__(self, monitor: int | None, env: Mapping[str, str]) -> None:
        self._env = dict(env)
        try:
            probe = WireClient.connect(self._env)
        except WaylandError as exc:
            raise DisplayError(str(exc)) from exc
        try:
            missing = [what for g, what in _REQUIRED_GLOBALS.items() if not probe.has(g)]
            if missing:
                raise DisplayError(
                    "this Wayland compositor does not offer " + ", ".join(missing)
                    + ": it is not a wlroots compositor; try --display-backend portal"
                )  # fmt: skip
            outputs = probe.outputs()
        finally:
            probe.close()
        self._outputs = outputs
        monitors = self.monitors()
        if not monitors:
            raise DisplayError("the compositor reports no outputs")
        if monitor is None:
            chosen = next((m for m in monitors if m.primary), monitors[0])
        else:
            found = [m for m in monitors if m.index == monitor]
            if not found:
                names = ", ".join(f"{m.index} ({m.width}x{m.height}{m.left:+d}{m.top:+d})"
                                  for m in monitors)  # fmt: skip
                raise DisplayError(f"no monitor {monitor}; available: {names}")
            chosen = found[0]
        self.screen = WlrootsScreen(chosen, outputs[chosen.index - 1].global_name, self._env)
        left = min(m.left for m in monitors)
        top = min(m.top for m in monitors)
        right = max(m.left + m.width for m in monitors)
        bottom = max(m.top + m.height for m in monitors)
        try:
            inputs = WlrootsInput(self._env, (left, top, right - left, bottom - top))
        except WaylandError as exc:
            raise DisplayError(f"wlroots desktop: {exc}") from exc
        self.executor = InputExecutor(inputs)
        self.hotkey = HotkeySupport(
            False,
            "wlroots compositors give no client a global shortcut: stop with the app's Stop "
            "button or Ctrl-C in the terminal",
        )

    def monitors(self) -> list[Monitor]:
        """The outputs in logical coordinates, with their scale."""
        return monitors_from_outputs(self._outputs)

    def focused_window(self) -> str | None:
        """The focused window's app_id, or None when the compositor does not say."""
        try:
            return focused_app_id(self._env)
        except (WaylandError, OSError, struct.error):
            return None

    def close(self) -> None:
        """Free the virtual input devices and the capture connection."""
        self.executor.close()
        self.screen.close()
