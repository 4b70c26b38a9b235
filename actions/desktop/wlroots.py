"""wlroots compositors (sway, Hyprland, river, labwc): screencopy, virtual pointer and keyboard.

Frames: wlr-screencopy into shared memory through actions.desktop.wire, at the output's
physical resolution.
Pointer: wlr-virtual-pointer through actions.desktop.wire (any wlroots compositor, not only sway).
Keys and exact text: zwp-virtual-keyboard through actions.desktop.wire, with a keymap made for
the keys about to be sent; the one keyboard lives as long as the desktop, since a seat without
a keyboard lost the first key of each new virtual keyboard in our tests.
Outputs: wl_output + xdg-output.
Where keys go: the activated toplevel's app_id (wlr-foreign-toplevel-management).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from actions.desktop import BackendName, HotkeySupport
from actions.desktop.clipboard import WlClipboard
from actions.desktop.grabbed import GrabbedScreen
from actions.desktop.inputs import InputExecutor
from actions.desktop.wire import (
    Handler,
    OutputInfo,
    Reader,
    ScreenCopy,
    VirtualKeyboard,
    VirtualPointer,
    WaylandError,
    WireClient,
)
from actions.keys import is_modifier
from actions.screen import (
    DisplayError,
    Monitor,
)
from actions.window import FocusedWindow
from actions.xtyping import char_keysym, key_keysym

_REQUIRED_GLOBALS = {
    "zwlr_virtual_pointer_manager_v1": "a virtual pointer",
    "zwp_virtual_keyboard_manager_v1": "a virtual keyboard",
    "zwlr_screencopy_manager_v1": "screen capture (screencopy)",
}
# The virtual keyboard's modifier for each canonical modifier key (actions.keys).
MODIFIER_NAMES = {
    "ctrl": "ctrl", "ctrlleft": "ctrl", "ctrlright": "ctrl",
    "shift": "shift", "shiftleft": "shift", "shiftright": "shift",
    "alt": "alt", "altleft": "alt", "altright": "alt",
    "win": "logo", "winleft": "logo", "winright": "logo",
}  # fmt: skip


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


class WlrootsScreen(GrabbedScreen):
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


def chord_keysyms(keys: tuple[str, ...]) -> list[tuple[int, str | None]]:
    """Each canonical key's keysym, with its modifier name (shift, ctrl, alt, logo) or None."""
    return [(key_keysym(k), MODIFIER_NAMES.get(k) if is_modifier(k) else None) for k in keys]


def stroke_keysyms(strokes: list[str]) -> list[int]:
    """The keysym of each stroke: "\\n" is Return, "\\t" is Tab, others their character's."""
    special = {"\n": key_keysym("enter"), "\t": key_keysym("tab")}
    return [special.get(ch) or char_keysym(ch) for ch in strokes]


def untypable(strokes: list[str]) -> list[str]:
    """Characters xkb has no keysym for (Unicode noncharacters), in order."""
    return [ch for ch in strokes if (ord(ch) & 0xFFFE) == 0xFFFE or 0xFDD0 <= ord(ch) <= 0xFDEF]


class WlrootsInput:
    """A virtual pointer and a virtual keyboard on one connection of their own."""

    def __init__(self, env: Mapping[str, str], layout: tuple[int, int, int, int]) -> None:
        self.layout = layout
        self._client = WireClient.connect(dict(env))
        self._pointer = VirtualPointer(self._client)
        # Created now and kept: apps bind the seat's keyboard while the model thinks, so the
        # first key is not lost, as it was for a keyboard made just before typing.
        self._keyboard = VirtualKeyboard(self._client)
        self._buttons: set[str] = set()

    def move(self, x: int, y: int) -> None:
        """Absolute motion in layout coordinates."""
        self._pointer.move(x, y, self.layout)
        self._client.roundtrip()

    def button(self, button: str, pressed: bool) -> None:
        """Press or release a button; the compositor has handled it when this returns."""
        self._pointer.button(button, pressed)
        self._client.roundtrip()
        (self._buttons.add if pressed else self._buttons.discard)(button)

    def wheel(self, clicks: int, *, horizontal: bool) -> None:
        """Wheel clicks (positive: down or right)."""
        self._pointer.wheel(clicks, horizontal=horizontal)
        self._client.roundtrip()

    def chord(self, keys: tuple[str, ...]) -> None:
        """Press the keys in order with their modifiers held, release them in reverse."""
        pairs = chord_keysyms(keys)
        kb = self._keyboard
        kb.load([sym for sym, _ in pairs])
        held: list[str] = []
        for sym, modifier in pairs:
            if modifier is not None:
                held.append(modifier)
                kb.modifiers(held)
            kb.key(sym, True)
        for sym, modifier in reversed(pairs):
            kb.key(sym, False)
            if modifier is not None:
                held.remove(modifier)
                kb.modifiers(held)
        self._client.roundtrip()

    def check_text(self, strokes: list[str]) -> None:
        """Nothing to refuse: keys type every character but the noncharacters, pasted instead."""

    def to_paste(self, strokes: list[str]) -> tuple[set[str], str]:
        """The Unicode noncharacters: xkb has no keysym for them."""
        return set(untypable(strokes)), "xkb has no keysym for Unicode noncharacters"

    def type_strokes(self, strokes: list[str]) -> None:
        """Type the characters through a keymap that holds all of them."""
        syms = stroke_keysyms(strokes)
        self._keyboard.load(syms)
        for sym in syms:
            self._keyboard.key(sym, True)
            self._keyboard.key(sym, False)
        self._client.roundtrip()

    def release(self) -> list[str]:
        """Release the buttons, the keys and the modifiers this input holds."""
        released: list[str] = []
        try:
            keys = self._keyboard.release_all()
            if keys:
                released.append(f"{keys} key(s)")
            for button in ("left", "middle", "right"):
                self._pointer.button(button, False)
                if button in self._buttons:
                    released.append(button)
            self._client.roundtrip()
        except WaylandError:
            pass  # the compositor is gone: nothing is held any more
        self._buttons.clear()
        return released

    def close(self) -> None:
        """Hang up: the compositor destroys the virtual pointer and keyboard."""
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
        self.executor = InputExecutor(inputs, clipboard=WlClipboard.find(self._env))
        self.hotkey = HotkeySupport(
            True,
            "the GlobalShortcuts portal where the compositor has one (Hyprland's); sway, river "
            "and labwc give no client a global shortcut: stop with the app's Stop button or "
            "Ctrl-C in the terminal",
        )

    def monitors(self) -> list[Monitor]:
        """The outputs in logical coordinates, with their scale."""
        return monitors_from_outputs(self._outputs)

    def focused_window(self) -> FocusedWindow | None:
        """The focused window's app_id (no id: windows are told apart by app), or None."""
        try:
            app_id = focused_app_id(self._env)
        except (WaylandError, OSError, struct.error):
            return None
        return None if app_id is None else FocusedWindow(None, app_id)

    def focused_area(self) -> tuple[int, int, int, int] | None:
        """Unknown here: the freshness check then watches the whole monitor for keys."""
        return None

    def close(self) -> None:
        """Free the virtual input devices and the capture connection."""
        self.executor.close()
        self.screen.close()
