"""Text that keys cannot type, pasted through the Wayland clipboard and restored afterwards.

Used where a backend's keyboard cannot express a character (the portal path: characters the
current layout lacks; wlroots: the Unicode noncharacters). The text is offered on both the
clipboard and the primary selection (wl-copy), then Shift+Insert is pressed: GTK, Qt, browsers
and LibreOffice paste the clipboard on it, terminals (foot, xterm, kitty, alacritty) the primary
selection. The primary's offer serves one paste, so its end confirms a terminal's; a clipboard
paste cannot be told from a clipboard manager's read and is not confirmed. Both selections then
get back what they held before (one type, text preferred). docs/wayland.md says where this works.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

PASTE_KEYS = ("shift", "insert")
CLIPBOARD_HINT = "apt-get install wl-clipboard"
# How long a paste may take to be seen before the selections are restored anyway.
CONFIRM_WAIT_S = 1.0
_NAMES = {False: "clipboard", True: "primary selection"}
_TOOL_TIMEOUT_S = 5.0
_QUERY_TIMEOUT_S = 1.0
_OFFERS = 3
_SETTLE_S = 0.03
_TEXT_TYPES = ("text/plain;charset=utf-8", "UTF8_STRING", "text/plain")


@dataclass(frozen=True, slots=True)
class Saved:
    """What one selection held: its type and bytes, or nothing."""

    mime: str | None
    data: bytes


class PasteError(RuntimeError):
    """The pasted text was not taken, or the clipboard could not be set."""


class WlClipboard:
    """The clipboard and primary selection through wl-clipboard's wl-copy and wl-paste."""

    def __init__(self, env: Mapping[str, str], copy: str, paste: str) -> None:
        self._env = dict(env)
        self._copy = copy
        self._paste = paste
        self.early_reads = 0  # primary offers read before the paste keys (offered again)

    @classmethod
    def find(cls, env: Mapping[str, str]) -> WlClipboard | None:
        """wl-clipboard if installed, else None."""
        copy, paste = shutil.which("wl-copy"), shutil.which("wl-paste")
        return cls(env, copy, paste) if copy and paste else None

    def _run(self, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        """Run a wl-clipboard tool; one that hangs counts as failed."""
        try:
            return subprocess.run(
                args, input=data, env=self._env, capture_output=True,
                timeout=_QUERY_TIMEOUT_S, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            # kwin 5.27 sends no selection event for an empty clipboard: wl-paste waits for it.
            return subprocess.CompletedProcess(args, 124, b"", b"timed out")

    def save(self, primary: bool) -> Saved:
        """What a selection holds now (one type, text preferred), or Saved(None, b"")."""
        flag = ("--primary",) if primary else ()
        listed = self._run(self._paste, *flag, "--list-types")
        types = listed.stdout.decode("utf-8", "replace").split() if listed.returncode == 0 else []
        if not types:
            return Saved(None, b"")
        mime = next((t for t in _TEXT_TYPES if t in types), types[0])
        got = self._run(self._paste, *flag, "--no-newline", "--type", mime)
        return Saved(mime, got.stdout) if got.returncode == 0 else Saved(None, b"")

    def restore(self, saved: Saved, primary: bool) -> None:
        """Give a selection back what save() found (wl-copy serves it from the background)."""
        flag = ("--primary",) if primary else ()
        if saved.mime is None:
            self._run(self._copy, *flag, "--clear")
            return
        # Not captured: the wl-copy that forks to serve it keeps its output open.
        subprocess.run(
            (self._copy, *flag, "--type", saved.mime), input=saved.data, env=self._env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            timeout=_TOOL_TIMEOUT_S, check=False,
        )  # fmt: skip

    def paste(self, text: str, press: Callable[[], None]) -> bool:
        """Offer text on both selections, press() the paste keys, restore both selections.

        True: the primary selection's one paste was seen taken (terminals). False: not seen
        within CONFIRM_WAIT_S (a window that pastes the clipboard, which serves any number of
        pastes, some to clipboard managers; or no primary selection): offered until then.
        """
        saved = (self.save(False), self.save(True))
        offers: list[subprocess.Popen[bytes]] = []
        try:
            # Empty first, so that our type being listed means our wl-copy owns the selection.
            self._run(self._copy, "--clear")
            self._run(self._copy, "--primary", "--clear")
            # The clipboard's offer serves every paste: clipboard managers (mutter has one
            # built in) read a new selection at once. The primary's serves one, so its end
            # says that a window pasted it.
            clipboard = self._offer(text, ["--foreground"])
            offers.append(clipboard)
            self._wait_offered(clipboard, primary=False)
            primary = self._offer_primary(text, offers)
            unseen = primary is None or primary.poll() is not None
            press()
            deadline = time.monotonic() + CONFIRM_WAIT_S
            while time.monotonic() < deadline:
                if not unseen and primary is not None and primary.poll() is not None:
                    return primary.returncode == 0
                time.sleep(0.01)
            return False
        finally:
            for proc in offers:
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait(timeout=_TOOL_TIMEOUT_S)
                if proc.stderr is not None:
                    proc.stderr.close()
            self.restore(saved[0], primary=False)
            self.restore(saved[1], primary=True)

    def _offer_primary(
        self, text: str, offers: list[subprocess.Popen[bytes]]
    ) -> subprocess.Popen[bytes] | None:
        """An offer on the primary selection alive at this moment, or None (none to be had)."""
        primary = None
        for _ in range(_OFFERS):
            primary = self._offer(text, ["--primary", "--foreground", "--paste-once"])
            offers.append(primary)
            try:
                self._wait_offered(primary, primary=True)
            except PasteError:
                # kwin 5.27's data-control (version 1) has no primary selection.
                return None
            time.sleep(_SETTLE_S)
            if primary.poll() is None:
                break
            self.early_reads += 1  # something read it before the keys: offer it again
        return primary

    def _offer(self, text: str, flags: list[str]) -> subprocess.Popen[bytes]:
        """A wl-copy offering text with these flags."""
        cmd = [self._copy, *flags, "--type", "text/plain;charset=utf-8"]
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, env=self._env,
        )  # fmt: skip
        assert proc.stdin is not None
        proc.stdin.write(text.encode("utf-8"))
        proc.stdin.close()
        return proc

    def _wait_offered(self, offer: subprocess.Popen[bytes], *, primary: bool) -> None:
        """Wait until wl-copy owns the selection (it sets it a moment after it starts)."""
        flag = ("--primary",) if primary else ()
        deadline = time.monotonic() + _TOOL_TIMEOUT_S
        while time.monotonic() < deadline:
            if offer.poll() is not None:
                if offer.returncode == 0:
                    return  # it served its one paste already
                err = offer.stderr
                reason = err.read().decode("utf-8", "replace").strip() if err else ""
                raise PasteError(f"wl-copy could not set the {_NAMES[primary]}: {reason}")
            listed = self._run(self._paste, *flag, "--list-types")
            if listed.returncode == 0 and b"text/plain;charset=utf-8" in listed.stdout:
                return
            time.sleep(0.02)
        raise PasteError(f"wl-copy could not set the {_NAMES[primary]} in time")
