"""A minimal Wayland client in pure Python: the wire format and the few protocols deskpilot uses.

The globals a compositor offers; each output's logical geometry and scale (wl_output,
xdg-output); frames through wlr-screencopy into shared memory; a virtual pointer
(wlr-virtual-pointer) and keyboard (zwp-virtual-keyboard), offered by sway, Hyprland, river,
labwc; the seat keyboard's keymap. File descriptors travel as SCM_RIGHTS beside the bytes.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Handler",
    "ScreenCopy",
    "OutputInfo",
    "Reader",
    "VirtualPointer",
    "WaylandError",
    "WireClient",
    "socket_path",
]

_HEADER = struct.Struct("<II")
_DISPLAY_ID = 1
_READ_TIMEOUT_S = 5.0
_FD_SPACE = socket.CMSG_SPACE(16 * 4)  # room for the few descriptors one read may carry


class WaylandError(RuntimeError):
    """No Wayland socket, a refused connection, or a protocol error from the compositor."""


def socket_path(env: dict[str, str] | None = None) -> str:
    """The compositor's socket from WAYLAND_DISPLAY (a name in XDG_RUNTIME_DIR, or a path)."""
    env = dict(os.environ) if env is None else env
    name = env.get("WAYLAND_DISPLAY") or "wayland-0"
    if os.path.isabs(name):
        return name
    runtime = env.get("XDG_RUNTIME_DIR")
    if not runtime:
        raise WaylandError("XDG_RUNTIME_DIR is not set: cannot find the Wayland socket")
    return os.path.join(runtime, name)


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _string(text: str) -> bytes:
    raw = text.encode("utf-8") + b"\0"
    return struct.pack("<I", len(raw)) + _pad(raw)


def _fixed(value: float) -> int:
    """A wl_fixed_t (24.8 signed) as the 32-bit pattern the wire carries."""
    return int(round(value * 256.0)) & 0xFFFFFFFF


class Reader:
    """Reads the arguments of one event in order."""

    def __init__(self, payload: bytes) -> None:
        self.data = payload
        self.pos = 0

    def uint(self) -> int:
        (value,) = struct.unpack_from("<I", self.data, self.pos)
        self.pos += 4
        return int(value)

    def int(self) -> int:
        (value,) = struct.unpack_from("<i", self.data, self.pos)
        self.pos += 4
        return int(value)

    def string(self) -> str:
        length = self.uint()
        raw = self.data[self.pos : self.pos + length]
        self.pos += length + (-length % 4)
        return raw.rstrip(b"\0").decode("utf-8", "replace")


@dataclass
class OutputInfo:
    """One wl_output as the compositor describes it; logical values come from xdg-output."""

    global_name: int
    name: str = ""
    description: str = ""
    mode_width: int = 0
    mode_height: int = 0
    scale: int = 1
    transform: int = 0
    logical_x: int | None = None
    logical_y: int | None = None
    logical_width: int | None = None
    logical_height: int | None = None
    object_id: int = 0
    xdg_id: int = 0


Handler = Callable[[int, Reader], None]


@dataclass
class WireClient:
    """One connection to the compositor; call roundtrip() to receive the events so far."""

    path: str
    sock: socket.socket = field(init=False)
    globals: dict[int, tuple[str, int]] = field(default_factory=dict)
    _next_id: int = 2
    _handlers: dict[int, Handler] = field(default_factory=dict)
    _buffer: bytes = b""
    _done_callbacks: set[int] = field(default_factory=set)
    # File descriptors received (SCM_RIGHTS), in order; an event with an fd argument takes one.
    fds: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            self.sock.connect(self.path)
        except OSError as exc:
            self.sock.close()
            raise WaylandError(
                f"cannot connect to the Wayland compositor at {self.path}: {exc}"
            ) from exc
        self._handlers[_DISPLAY_ID] = self._on_display
        registry = self.new_id(self._on_registry)
        self.send(_DISPLAY_ID, 1, struct.pack("<I", registry))  # wl_display.get_registry
        self._registry = registry
        self.roundtrip()

    @classmethod
    def connect(cls, env: dict[str, str] | None = None) -> WireClient:
        """Connect to the compositor named by the environment and read its globals."""
        return cls(socket_path(env))

    def close(self) -> None:
        """Hang up; the compositor destroys every object of this client (a virtual pointer too)."""
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()
        try:
            self.sock.close()
        except OSError:
            pass

    # -- the wire -----------------------------------------------------------------------

    def new_id(self, handler: Handler | None = None) -> int:
        """A fresh client-side object id, with its event handler."""
        oid = self._next_id
        self._next_id += 1
        if handler is not None:
            self._handlers[oid] = handler
        return oid

    def add_handler(self, object_id: int, handler: Handler) -> None:
        """Handle the events of an object the compositor created (a new_id in an event)."""
        self._handlers[object_id] = handler

    def send(self, object_id: int, opcode: int, payload: bytes = b"") -> None:
        """Send one request."""
        size = _HEADER.size + len(payload)
        try:
            self.sock.sendall(_HEADER.pack(object_id, (size << 16) | opcode) + payload)
        except OSError as exc:
            raise WaylandError(f"the Wayland compositor hung up: {exc}") from exc

    def send_fd(self, object_id: int, opcode: int, payload: bytes, fd: int) -> None:
        """Send one request whose fd argument travels beside the bytes (SCM_RIGHTS)."""
        size = _HEADER.size + len(payload)
        data = _HEADER.pack(object_id, (size << 16) | opcode) + payload
        rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("<i", fd))]
        try:
            self.sock.sendmsg([data], rights)
        except OSError as exc:
            raise WaylandError(f"the Wayland compositor hung up: {exc}") from exc

    def roundtrip(self, timeout_s: float = _READ_TIMEOUT_S) -> None:
        """Send wl_display.sync and dispatch events until its callback is done."""
        callback = self.new_id()

        def done(_opcode: int, _r: Reader) -> None:
            self._done_callbacks.add(callback)

        self._handlers[callback] = done
        self.send(_DISPLAY_ID, 0, struct.pack("<I", callback))
        self.dispatch_until(lambda: callback in self._done_callbacks, timeout_s)
        self._done_callbacks.discard(callback)
        self._handlers.pop(callback, None)

    def dispatch_until(self, done: Callable[[], bool], timeout_s: float = _READ_TIMEOUT_S) -> None:
        """Read and dispatch events until done() holds."""
        deadline = time.monotonic() + timeout_s
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaylandError("the Wayland compositor did not answer in time")
            ready, _, _ = select.select([self.sock], [], [], left)
            if not ready:
                continue
            chunk, ancillary, _flags, _addr = self.sock.recvmsg(65536, _FD_SPACE)
            if not chunk:
                raise WaylandError("the Wayland compositor closed the connection")
            for level, kind, data in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    usable = len(data) - len(data) % 4
                    self.fds.extend(struct.unpack(f"<{usable // 4}i", data[:usable]))
            self._buffer += chunk
            self._dispatch()

    def _dispatch(self) -> None:
        while len(self._buffer) >= _HEADER.size:
            oid, word = _HEADER.unpack_from(self._buffer)
            size, opcode = word >> 16, word & 0xFFFF
            if size < _HEADER.size or len(self._buffer) < size:
                return
            payload = self._buffer[_HEADER.size : size]
            self._buffer = self._buffer[size:]
            handler = self._handlers.get(oid)
            if handler is not None:
                handler(opcode, Reader(payload))

    def _on_display(self, opcode: int, r: Reader) -> None:
        if opcode == 0:  # error(object, code, message): the connection is dead after this
            obj, code, message = r.uint(), r.uint(), r.string()
            raise WaylandError(f"Wayland protocol error on object {obj} (code {code}): {message}")

    def _on_registry(self, opcode: int, r: Reader) -> None:
        if opcode == 0:  # global(name, interface, version)
            name, interface, version = r.uint(), r.string(), r.uint()
            self.globals[name] = (interface, version)
        elif opcode == 1:  # global_remove(name)
            self.globals.pop(r.uint(), None)

    def has(self, interface: str) -> bool:
        """Whether the compositor offers a global of this interface."""
        return any(i == interface for i, _ in self.globals.values())

    def bind(self, interface: str, max_version: int, handler: Handler | None = None) -> int:
        """Bind the first global of an interface at min(offered, max_version); its object id."""
        for name, (iface, version) in sorted(self.globals.items()):
            if iface == interface:
                return self._bind(name, interface, min(version, max_version), handler)
        raise WaylandError(f"the compositor does not offer {interface}")

    def _bind(self, name: int, interface: str, version: int, handler: Handler | None) -> int:
        oid = self.new_id(handler)
        payload = struct.pack("<I", name) + _string(interface) + struct.pack("<II", version, oid)
        self.send(self._registry, 0, payload)
        return oid

    # -- outputs ------------------------------------------------------------------------

    def outputs(self) -> list[OutputInfo]:
        """Every output with its mode, scale, name and (through xdg-output) logical geometry."""
        found: list[OutputInfo] = []
        for name, (iface, version) in sorted(self.globals.items()):
            if iface != "wl_output":
                continue
            info = OutputInfo(global_name=name)
            info.object_id = self._bind(name, "wl_output", min(version, 4), _output_handler(info))
            found.append(info)
        self.roundtrip()
        if self.has("zxdg_output_manager_v1"):
            manager = self.bind("zxdg_output_manager_v1", 3)
            for info in found:
                info.xdg_id = self.new_id(_xdg_output_handler(info))
                self.send(manager, 1, struct.pack("<II", info.xdg_id, info.object_id))
            self.roundtrip()
        return found

    def keymap(self) -> str | None:
        """The XKB keymap (text v1) the compositor gives the default seat's keyboard, or None."""
        found: list[str] = []

        def on_keyboard(opcode: int, r: Reader) -> None:
            if opcode != 0:  # keymap(format, fd, size) is the only event that matters here
                return
            fmt, size = r.uint(), r.uint()
            fd = self.fds.pop(0)
            try:
                if fmt == 1:  # XKB_V1
                    with os.fdopen(os.dup(fd), "rb") as fp:
                        import mmap

                        with mmap.mmap(fp.fileno(), size, prot=mmap.PROT_READ) as mem:
                            found.append(mem[:size].rstrip(b"\0").decode("utf-8", "replace"))
            finally:
                os.close(fd)

        def on_seat(opcode: int, r: Reader) -> None:
            if opcode == 0 and r.uint() & 2:  # capabilities with a keyboard
                # Allocated only now: a client must use its new ids in increasing order.
                keyboard = self.new_id(on_keyboard)
                self.send(seat, 1, struct.pack("<I", keyboard))  # wl_seat.get_keyboard

        seat = self.bind("wl_seat", 1, on_seat)
        self.roundtrip()
        self.roundtrip()
        return found[0] if found else None

    # -- the virtual pointer ------------------------------------------------------------

    def create_virtual_pointer(self) -> int:
        """A zwlr_virtual_pointer_v1 on the default seat; its object id."""
        manager = self.bind("zwlr_virtual_pointer_manager_v1", 1)
        pointer = self.new_id()
        self.send(manager, 0, struct.pack("<II", 0, pointer))  # seat: null (the default)
        self.roundtrip()
        return pointer


def _output_handler(info: OutputInfo) -> Handler:
    def handle(opcode: int, r: Reader) -> None:
        if opcode == 0:  # geometry(x, y, phys_w, phys_h, subpixel, make, model, transform)
            for _ in range(5):
                r.int()
            r.string()
            r.string()
            info.transform = r.int()
        elif opcode == 1:  # mode(flags, width, height, refresh)
            flags, width, height = r.uint(), r.int(), r.int()
            if flags & 1:  # the current mode
                info.mode_width, info.mode_height = width, height
        elif opcode == 3:
            info.scale = r.int()
        elif opcode == 4:
            info.name = r.string()
        elif opcode == 5:
            info.description = r.string()

    return handle


def _xdg_output_handler(info: OutputInfo) -> Handler:
    def handle(opcode: int, r: Reader) -> None:
        if opcode == 0:
            info.logical_x, info.logical_y = r.int(), r.int()
        elif opcode == 1:
            info.logical_width, info.logical_height = r.int(), r.int()
        elif opcode == 3 and not info.name:
            info.name = r.string()

    return handle


# wl_shm formats whose bytes are B,G,R,x and R,G,B,x in memory (little-endian ARGB/ABGR words).
_SHM_BGRX = {0, 1}  # ARGB8888, XRGB8888
_SHM_RGBX = {0x34324241, 0x34324258}  # ABGR8888, XBGR8888
_Y_INVERT = 1


class ScreenCopy:
    """Captures outputs through wlr-screencopy into shared memory (no helper process)."""

    def __init__(self, client: WireClient) -> None:
        self.client = client
        offered = max(v for i, v in client.globals.values() if i == "zwlr_screencopy_manager_v1")
        self.version = min(offered, 3)
        self.manager = client.bind("zwlr_screencopy_manager_v1", 3)
        self.shm = client.bind("wl_shm", 1)
        self._outputs: dict[int, int] = {}

    def _output(self, global_name: int) -> int:
        if global_name not in self._outputs:
            version = min(self.client.globals[global_name][1], 4)
            self._outputs[global_name] = self.client._bind(global_name, "wl_output", version, None)
        return self._outputs[global_name]

    def capture(self, global_name: int) -> tuple[int, int, bytes]:
        """One frame of an output at its physical size, as width, height and RGB bytes."""
        import mmap

        from PIL import Image

        state: dict[str, Any] = {}

        def on_frame(opcode: int, r: Reader) -> None:
            if opcode == 0:  # buffer(format, width, height, stride): the shm offer
                state.setdefault("shm", (r.uint(), r.uint(), r.uint(), r.uint()))
            elif opcode == 1:
                state["flags"] = r.uint()
            elif opcode == 2:
                state["ready"] = True
            elif opcode == 3:
                state["failed"] = True
            elif opcode == 6:  # buffer_done (v3): every offer is in
                state["offers_done"] = True

        output = self._output(global_name)
        frame = self.client.new_id(on_frame)
        self.client.send(self.manager, 0, struct.pack("<IiI", frame, 0, output))
        offers = "offers_done" if self.version >= 3 else "shm"  # v1 and v2 have no buffer_done
        self.client.dispatch_until(lambda: offers in state or "failed" in state)
        if "shm" not in state:
            self.client.send(frame, 1)  # destroy
            raise WaylandError("the compositor offered no shared-memory buffer for the capture")
        fmt, width, height, stride = state["shm"]
        if fmt not in _SHM_BGRX | _SHM_RGBX:
            self.client.send(frame, 1)
            raise WaylandError(f"unsupported screencopy pixel format 0x{fmt:08x}")
        size = stride * height
        fd = os.memfd_create("deskpilot-screencopy", os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, size)
            pool = self.client.new_id()
            self.client.send_fd(self.shm, 0, struct.pack("<Ii", pool, size), fd)
            buffer = self.client.new_id()
            args = struct.pack("<IiiiiI", buffer, 0, width, height, stride, fmt)
            self.client.send(pool, 0, args)  # wl_shm_pool.create_buffer
            self.client.send(frame, 0, struct.pack("<I", buffer))  # copy
            self.client.dispatch_until(lambda: "ready" in state or "failed" in state)
            self.client.send(frame, 1)  # destroy
            self.client.send(buffer, 0)  # wl_buffer.destroy
            self.client.send(pool, 1)  # wl_shm_pool.destroy
            if "failed" in state:
                raise WaylandError("the compositor could not copy the output")
            with mmap.mmap(fd, size, prot=mmap.PROT_READ) as mem:
                raw = mem[:size]
        finally:
            os.close(fd)
        mode = "BGRX" if fmt in _SHM_BGRX else "RGBX"
        # frombytes, not frombuffer: Pillow 13 maps an RGBX buffer as is (4 bytes a pixel).
        image = Image.frombytes("RGB", (width, height), raw, "raw", mode, stride, 1)
        if state.get("flags", 0) & _Y_INVERT:
            image = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
        return width, height, image.tobytes()


# zwlr_virtual_pointer_v1 request opcodes and linux input codes.
VP_MOTION_ABSOLUTE, VP_BUTTON, VP_FRAME, VP_AXIS_SOURCE, VP_AXIS_DISCRETE = 1, 2, 4, 5, 7
BUTTONS = {"left": 0x110, "right": 0x111, "middle": 0x112}


class VirtualPointer:
    """Absolute motion, buttons and wheel clicks through wlr-virtual-pointer."""

    def __init__(self, client: WireClient) -> None:
        self.client = client
        self.id = client.create_virtual_pointer()
        self._start = time.monotonic()

    def _ms(self) -> int:
        return int((time.monotonic() - self._start) * 1000) & 0xFFFFFFFF

    def move(self, x: int, y: int, extent: tuple[int, int, int, int]) -> None:
        """Move to (x, y) in layout coordinates; extent is the layout's (left, top, w, h)."""
        left, top, width, height = extent
        px = min(max(x - left, 0), width - 1)
        py = min(max(y - top, 0), height - 1)
        args = struct.pack("<IIIII", self._ms(), px, py, width, height)
        self.client.send(self.id, VP_MOTION_ABSOLUTE, args)
        self.client.send(self.id, VP_FRAME)

    def button(self, button: str, pressed: bool) -> None:
        """Press or release a button by name (left, right, middle)."""
        args = struct.pack("<III", self._ms(), BUTTONS[button], 1 if pressed else 0)
        self.client.send(self.id, VP_BUTTON, args)
        self.client.send(self.id, VP_FRAME)

    def wheel(self, clicks: int, *, horizontal: bool) -> None:
        """Turn the wheel; positive clicks go down (vertical) or right (horizontal)."""
        axis = 1 if horizontal else 0
        step = 1 if clicks > 0 else -1
        for _ in range(abs(clicks)):
            self.client.send(self.id, VP_AXIS_SOURCE, struct.pack("<I", 0))  # wheel
            args = struct.pack("<IIIi", self._ms(), axis, _fixed(15.0 * step), step)
            self.client.send(self.id, VP_AXIS_DISCRETE, args)
            self.client.send(self.id, VP_FRAME)

    def flush(self) -> None:
        """Wait until the compositor has handled everything sent (and report its errors)."""
        self.client.roundtrip()


# zwp_virtual_keyboard_v1 requests; modifier masks of the "complete" XKB compatibility map.
VK_KEYMAP, VK_KEY, VK_MODIFIERS = 0, 1, 2
MODIFIER_MASKS = {"shift": 1, "ctrl": 4, "alt": 8, "logo": 64}
_XKB_V1 = 1
_FIRST_KEYCODE = 9  # XKB keycode of evdev key 1: XKB keycodes are evdev codes plus 8


def keymap_text(keysyms: list[int]) -> str:
    """An XKB keymap that puts each keysym on a key of its own, in order, from keycode 9."""
    codes = "".join(f"<K{i}> = {_FIRST_KEYCODE + i};\n" for i in range(len(keysyms)))
    keys = "".join(f"key <K{i}> {{[ 0x{k:x} ]}};\n" for i, k in enumerate(keysyms))
    last = _FIRST_KEYCODE + max(len(keysyms) - 1, 0)
    return (
        'xkb_keymap {\nxkb_keycodes "deskpilot" {\nminimum = 8;\n'
        f"maximum = {max(last, 255)};\n{codes}}};\n"
        'xkb_types "deskpilot" { include "complete" };\n'
        'xkb_compatibility "deskpilot" { include "complete" };\n'
        f'xkb_symbols "deskpilot" {{\n{keys}}};\n}};\n'
    )


class VirtualKeyboard:
    """A zwp-virtual-keyboard whose keymap is made for the keys about to be typed."""

    def __init__(self, client: WireClient) -> None:
        self.client = client
        seat = client.bind("wl_seat", 1)
        manager = client.bind("zwp_virtual_keyboard_manager_v1", 1)
        self.id = client.new_id()
        client.send(manager, 0, struct.pack("<II", seat, self.id))
        self._keysyms: list[int] = []
        self._pressed: set[int] = set()
        self._start = time.monotonic()
        self.load([])  # a keyboard without a keymap is not a keyboard yet
        client.roundtrip()

    def _ms(self) -> int:
        return int((time.monotonic() - self._start) * 1000) & 0xFFFFFFFF

    def load(self, keysyms: list[int]) -> None:
        """Replace the keymap with one holding these keysyms (apps get it before the keys)."""
        import mmap

        unique = list(dict.fromkeys(keysyms))
        text = keymap_text(unique).encode("utf-8") + b"\0"
        fd = os.memfd_create("deskpilot-keymap", os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, len(text))
            with mmap.mmap(fd, len(text)) as mem:
                mem[:] = text
            self.client.send_fd(self.id, VK_KEYMAP, struct.pack("<II", _XKB_V1, len(text)), fd)
        finally:
            os.close(fd)
        self._keysyms = unique

    def key(self, keysym: int, pressed: bool) -> None:
        """Press or release the key that carries keysym in the current keymap."""
        code = self._keysyms.index(keysym) + _FIRST_KEYCODE - 8
        args = struct.pack("<III", self._ms(), code, 1 if pressed else 0)
        self.client.send(self.id, VK_KEY, args)
        (self._pressed.add if pressed else self._pressed.discard)(keysym)

    def modifiers(self, names: list[str]) -> None:
        """Hold exactly these modifiers (shift, ctrl, alt, logo)."""
        mask = 0
        for name in names:
            mask |= MODIFIER_MASKS[name]
        self.client.send(self.id, VK_MODIFIERS, struct.pack("<IIII", mask, 0, 0, 0))

    def release_all(self) -> int:
        """Release every key still down and every modifier; returns how many keys."""
        held = list(self._pressed)
        for keysym in held:
            self.key(keysym, False)
        self.modifiers([])
        return len(held)
