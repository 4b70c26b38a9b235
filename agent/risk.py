"""Risk rules: each proposed action is safe, risky or blocked, with a reason, before it is shown.

The defaults cover what a person would want to confirm (destructive shell commands, chords that
close, quit, lock or switch sessions, Enter that runs a command typed into a terminal, clicks
the model itself says pay, delete, send or submit); users extend them, or list what is blocked,
in TOML (docs/reliability.md). Rules only read the action and the model's words: nothing here
executes or evaluates model text.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from actions.keys import KeyNameError, normalize_chord
from actions.types import (
    Action,
    DoubleClick,
    Key,
    LeftClick,
    LeftClickDrag,
    MiddleClick,
    RightClick,
    TripleClick,
    Type,
    action_arguments,
)

Level = Literal["safe", "risky", "blocked"]

CLICKS = (LeftClick, DoubleClick, TripleClick, RightClick, MiddleClick, LeftClickDrag)

# (name, pattern): typed text that changes or destroys the system when a shell runs it.
DEFAULT_RISKY_TEXT: tuple[tuple[str, str], ...] = (
    (
        "recursive or forced delete",
        r"\brm\s+(-\S*\s+)*-\S*[rRf]|\brm\s+(\S+\s+)*--(recursive|force)\b",
    ),
    ("privilege escalation", r"(^|[\s;&|(`])(sudo|doas|pkexec|su)(\s|$)"),
    (
        "filesystem format or partitioning",
        r"\b(mkfs(\.\w+)?|mkswap|fdisk|sfdisk|gdisk|parted|wipefs)\b",
    ),
    ("raw disk write (dd)", r"(^|[\s;&|])dd\s+[^\n]*\bof="),
    ("write to a block device", r">\s*/dev/(sd|nvme|hd|vd|mmcblk|disk)"),
    (
        "download piped to a shell",
        r"\b(curl|wget|fetch)\b[^\n|]*\|\s*(sudo\s+)?(env\s+)?\S*(ba|z|k|da|fi)?sh\b",
    ),
    (
        "shell running a download",
        r"\b(ba|z|da)?sh\s+(-c\s+)?[\"']?\$\((curl|wget)\b|\b(ba|z)?sh\s+<\(\s*(curl|wget)\b",
    ),
    (
        "shutdown, reboot or logout",
        r"\b(shutdown|reboot|poweroff|halt|logout|gnome-session-quit|loginctl\s+(terminate|kill)\S*)\b"
        r"|\binit\s+[06]\b|\bsystemctl\s+(poweroff|reboot|halt|suspend|hibernate|kexec)\b",
    ),
    ("disk format (Windows)", r"(^|[\s;&|])format(\.com)?\s+[a-z]:"),
    (
        "recursive delete (Windows)",
        r"\b(del|erase)\s+(/\S+\s+)*/[sq]\b|\b(rd|rmdir)\s+(/\S+\s+)*/s\b|\bremove-item\b[^\n]*-recurse",
    ),
    (
        "permission change on everything",
        r"\bch(mod|own|grp)\s+(-\S+\s+)*-\S*R\S*\s+\S+\s+/(\s|$)|\bchmod\s+(-\S+\s+)*0?777\s+/",
    ),
    ("fork bomb", r":\s*\(\s*\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;\s*:"),
    ("killing every process", r"\bkill\s+(-\S+\s+)*-1\b|\bkillall5?\b|\bpkill\s+(-\S+\s+)*-u\b"),
    ("secure erase", r"\b(shred|srm|wipe)\s+"),
    (
        "history-rewriting git command",
        r"\bgit\s+(push\s+[^\n]*(--force|-f\b)|reset\s+--hard|clean\s+-\S*[fdx])",
    ),
    (
        "destructive SQL",
        r"\b(drop\s+(table|database|schema)|truncate\s+table)\b|\bdelete\s+from\s+\w+\s*(;|$)",
    ),
    ("overwriting a system file", r"(^|[^>])>\s*/(etc|boot|usr|bin|sbin|lib)/"),
    ("account change", r"\b(passwd|useradd|userdel|usermod|visudo|chpasswd)\b"),
    ("crontab removal", r"\bcrontab\s+-r\b"),
)

# Chords that close, quit, lock, log out, or switch sessions or virtual terminals.
DEFAULT_RISKY_KEYS: tuple[str, ...] = (
    "alt+f4",
    "ctrl+q",
    "ctrl+shift+q",
    "ctrl+w",
    "ctrl+shift+w",
    "ctrl+alt+delete",
    "ctrl+shift+escape",
    "ctrl+alt+backspace",
    "ctrl+alt+l",
    "win+l",
    "win+q",
    "win+shift+q",
    "win+shift+e",
    "ctrl+alt+end",
    "alt+shift+q",
    *(f"ctrl+alt+f{i}" for i in range(1, 13)),
)

# Shells and terminal emulators, matched against a window's WM_CLASS (case-insensitive).
DEFAULT_TERMINALS: tuple[str, ...] = (
    "xterm",
    "uxterm",
    "rxvt",
    "urxvt",
    "gnome-terminal",
    "konsole",
    "xfce4-terminal",
    "mate-terminal",
    "lxterminal",
    "qterminal",
    "terminator",
    "tilix",
    "kitty",
    "alacritty",
    "wezterm",
    "foot",
    "st-256color",
    "terminology",
    "guake",
    "yakuake",
    "ptyxis",
    "blackbox",
    "cool-retro-term",
    "sakura",
    "termite",
    "ghostty",
    "warp",
    "hyper",
    "cmd.exe",
    "windowsterminal",
    "powershell",
)

# Words in the model's thinking that make a click consequential (paying, deleting, sending,
# submitting and their kin); stems, matched as whole words, case-insensitive.
DEFAULT_CLICK_WORDS: tuple[str, ...] = (
    "pay",
    "pays",
    "paying",
    "paid",
    "payment",
    "payments",
    "purchase",
    "purchasing",
    "buy",
    "buying",
    "checkout",
    "check out",
    "place order",
    "place the order",
    "order now",
    "delete",
    "deleting",
    "deletes",
    "remove",
    "removing",
    "erase",
    "trash",
    "discard",
    "send",
    "sending",
    "sends",
    "submit",
    "submitting",
    "submits",
    "transfer",
    "transferring",
    "donate",
    "subscribe",
    "unsubscribe",
    "uninstall",
    "publish",
    "wipe",
    "factory reset",
    "confirm",
)

# Chords that end a line in a terminal: Enter (alone or with shift/ctrl), Ctrl+M, Ctrl+J.
_LINE_ENDS = (frozenset({"ctrl", "m"}), frozenset({"ctrl", "j"}))
# Without window information, the model's own words say whether it typed into a terminal.
_TERMINAL_WORDS = re.compile(
    r"(?<!\w)(terminal|shell|command line|console|bash|prompt)(?!\w)", re.I
)
# Left and right modifiers count as the modifier ("ctrlleft+q" is ctrl+q).
_FOLD = {f"{m}{side}": m for m in ("ctrl", "shift", "alt", "win") for side in ("left", "right")}


class RiskConfigError(ValueError):
    """A risk rule file that cannot be used; the message names the key and what is wrong."""


@dataclass(frozen=True, slots=True)
class Risk:
    """How consequential an action is, why (one line), and which rule said so."""

    level: Level = "safe"
    reason: str = ""
    rule: str = ""

    def to_json(self) -> dict[str, str]:
        """As recorded in steps.jsonl."""
        return {"level": self.level, "reason": self.reason, "rule": self.rule}


SAFE = Risk()


@dataclass(frozen=True, slots=True)
class RiskContext:
    """What the rules know besides the action: the last executed action and where it went."""

    thinking: str = ""
    # The action executed just before this one (None at the start or after a non-execution).
    previous: Action | None = None
    # WM_CLASS (lower case) of the window that had focus when `previous` ran, if known.
    previous_window: str | None = None
    # WM_CLASS of the window that has focus now, if known.
    window: str | None = None


def _chord(keys: Iterable[str]) -> frozenset[str]:
    """A chord as a set of canonical names, with left/right modifiers folded ("ctrlleft": ctrl)."""
    return frozenset(_FOLD.get(key, key) for key in normalize_chord(keys))


def _compile(name: str, pattern: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.IGNORECASE | re.MULTILINE)
    except re.error as exc:
        raise RiskConfigError(
            f"{where}: pattern {name!r} is not a valid regular expression: {exc}"
        ) from None


def _words_pattern(words: Iterable[str]) -> re.Pattern[str] | None:
    """One whole-word, case-insensitive pattern for plain words and phrases (spaces flexible)."""
    alts = [r"\s+".join(re.escape(part) for part in w.split()) for w in words if w.strip()]
    if not alts:
        return None
    return re.compile(
        r"(?<!\w)(" + "|".join(sorted(alts, key=len, reverse=True)) + r")(?!\w)", re.I
    )


@dataclass(frozen=True)
class RiskRules:
    """The rules in force; `assess` says safe, risky or blocked for one action."""

    risky_text: tuple[tuple[str, re.Pattern[str]], ...] = ()
    risky_keys: frozenset[frozenset[str]] = frozenset()
    terminals: tuple[str, ...] = DEFAULT_TERMINALS
    enter_after_terminal_typing: bool = True
    click_words: re.Pattern[str] | None = None
    blocked_text: tuple[tuple[str, re.Pattern[str]], ...] = ()
    blocked_keys: frozenset[frozenset[str]] = frozenset()
    blocked_actions: frozenset[str] = frozenset()
    blocked_words: re.Pattern[str] | None = None
    # For run.json: where the rules came from and how many of each kind are in force.
    summary: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def default(cls) -> RiskRules:
        """The built-in rules, nothing blocked."""
        return cls.from_mapping({}, source="defaults")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "settings") -> RiskRules:
        """Rules from a parsed TOML table (the `[risk]` table or a whole risk file)."""
        table = (
            dict(data.get("risk", data)) if isinstance(data.get("risk"), Mapping) else dict(data)
        )
        known = {
            "use_defaults",
            "risky_text",
            "risky_keys",
            "risky_click_words",
            "terminals",
            "enter_after_terminal_typing",
            "blocked_text",
            "blocked_keys",
            "blocked_actions",
            "blocked_words",
        }
        unknown = sorted(set(table) - known)
        if unknown:
            raise RiskConfigError(
                f"{source}: unknown risk setting {unknown[0]!r}; known: {', '.join(sorted(known))}"
            )
        defaults = _flag(table, "use_defaults", True, source)
        texts = _named_patterns(table.get("risky_text", []), "risky_text", source)
        if defaults:
            texts = [(n, _compile(n, p, source)) for n, p in DEFAULT_RISKY_TEXT] + texts
        keys = _chords(table.get("risky_keys", []), "risky_keys", source)
        if defaults:
            keys |= {_chord([k]) for k in DEFAULT_RISKY_KEYS}
        words = _strings(table.get("risky_click_words", []), "risky_click_words", source)
        if defaults:
            words = list(DEFAULT_CLICK_WORDS) + words
        terminals = [t.lower() for t in _strings(table.get("terminals", []), "terminals", source)]
        if defaults:
            terminals = list(DEFAULT_TERMINALS) + terminals
        blocked_actions = set(_strings(table.get("blocked_actions", []), "blocked_actions", source))
        from actions.types import ACTION_TYPES

        bad = sorted(blocked_actions - set(ACTION_TYPES))
        if bad:
            raise RiskConfigError(
                f"{source}: blocked_actions: unknown action {bad[0]!r}; "
                f"known: {', '.join(sorted(ACTION_TYPES))}"
            )
        blocked_words = _strings(table.get("blocked_words", []), "blocked_words", source)
        return cls(
            risky_text=tuple(texts),
            risky_keys=frozenset(keys),
            terminals=tuple(dict.fromkeys(terminals)),
            enter_after_terminal_typing=_flag(table, "enter_after_terminal_typing", True, source),
            click_words=_words_pattern(words),
            blocked_text=tuple(
                _named_patterns(table.get("blocked_text", []), "blocked_text", source)
            ),
            blocked_keys=frozenset(_chords(table.get("blocked_keys", []), "blocked_keys", source)),
            blocked_actions=frozenset(blocked_actions),
            blocked_words=_words_pattern(blocked_words),
            summary={
                "source": source,
                "use_defaults": defaults,
                "risky_text": len(texts),
                "risky_keys": len(keys),
                "blocked_text": len(table.get("blocked_text", []) or []),
                "blocked_keys": len(table.get("blocked_keys", []) or []),
                "blocked_actions": sorted(blocked_actions),
                "blocked_words": len(blocked_words),
            },
        )

    @classmethod
    def load(cls, path: Path) -> RiskRules:
        """Rules from a TOML file; RiskConfigError says what is wrong with it."""
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise RiskConfigError(f"cannot read risk rules {path}: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise RiskConfigError(f"{path} is not valid TOML: {exc}") from None
        return cls.from_mapping(data, source=str(path))

    # -- assessment ---------------------------------------------------------------------------

    def is_terminal(self, wm_class: str | None) -> bool:
        """Whether a WM_CLASS names a terminal emulator."""
        if not wm_class:
            return False
        lower = wm_class.lower()
        if "terminal" in lower:  # gnome-terminal-server, xfce4-terminal, Terminal.app, ...
            return True
        names = re.split(r"[\s,]+", lower)
        return any(n == t or n.startswith(t + "-") for n in names for t in self.terminals)

    def assess(self, action: Action, context: RiskContext = RiskContext()) -> Risk:
        """Safe, risky or blocked; blocked beats risky; the first matching rule gives the reason."""
        blocked = self._blocked(action, context)
        if blocked is not None:
            return blocked
        return self._risky(action, context) or SAFE

    def _blocked(self, action: Action, context: RiskContext) -> Risk | None:
        name = str(action_arguments(action)["action"])
        if name in self.blocked_actions:
            return Risk(
                "blocked", f"{name} actions are blocked by your rules", f"blocked_actions:{name}"
            )
        if isinstance(action, Type):
            for rule, pattern in self.blocked_text:
                if pattern.search(action.text):
                    return Risk(
                        "blocked", f"typing matches blocked rule {rule!r}", f"blocked_text:{rule}"
                    )
        if isinstance(action, Key):
            chord = _safe_chord(action.keys)
            if chord is not None and chord in self.blocked_keys:
                combo = "+".join(_ordered(chord))
                return Risk(
                    "blocked",
                    f"the key combination {combo} is blocked by your rules",
                    f"blocked_keys:{combo}",
                )
        if self.blocked_words is not None and context.thinking:
            found = self.blocked_words.search(context.thinking)
            if found:
                word = found.group(0)
                return Risk(
                    "blocked",
                    f"the model's thinking mentions {word!r}, which your rules block",
                    f"blocked_words:{word.lower()}",
                )
        return None

    def _risky(self, action: Action, context: RiskContext) -> Risk | None:
        if isinstance(action, Type):
            for rule, pattern in self.risky_text:
                if pattern.search(action.text):
                    return Risk(
                        "risky",
                        f"typing a command that looks dangerous: {rule}",
                        f"risky_text:{rule}",
                    )
            if (
                self.enter_after_terminal_typing
                and _ends_line(action.text)
                and self.is_terminal(context.window)
            ):
                return Risk(
                    "risky",
                    "typing a line break into a terminal runs the command",
                    "terminal_enter",
                )
            return None
        if isinstance(action, Key):
            chord = _safe_chord(action.keys)
            if chord is None:
                return None
            if chord in self.risky_keys:
                combo = "+".join(_ordered(chord))
                return Risk(
                    "risky",
                    f"{combo} can close, quit, lock or switch the session",
                    f"risky_keys:{combo}",
                )
            if _is_enter(chord):
                if (
                    self.enter_after_terminal_typing
                    and isinstance(context.previous, Type)
                    and self._terminal_context(context)
                ):
                    return Risk(
                        "risky",
                        "Enter right after typing into a terminal runs the command",
                        "terminal_enter",
                    )
                return self._words(context, "pressing Enter")
            return None
        if isinstance(action, CLICKS):
            return self._words(context, "a click")
        return None

    def _terminal_context(self, context: RiskContext) -> bool:
        """Whether the last typing went to a terminal: WM_CLASS, else the model's words."""
        if context.previous_window is not None or context.window is not None:
            return self.is_terminal(context.previous_window) or self.is_terminal(context.window)
        return bool(_TERMINAL_WORDS.search(context.thinking))

    def _words(self, context: RiskContext, what: str) -> Risk | None:
        if self.click_words is None or not context.thinking:
            return None
        found = self.click_words.search(context.thinking)
        if not found:
            return None
        word = " ".join(found.group(0).lower().split())
        return Risk(
            "risky", f"{what} where the model's thinking mentions {word!r}", f"click_words:{word}"
        )


def _ends_line(text: str) -> bool:
    """Whether typing this text presses Enter at some point (a newline anywhere runs a line)."""
    return "\n" in text or "\r" in text


def _is_enter(chord: frozenset[str]) -> bool:
    """Whether a chord ends a line (runs a command in a terminal)."""
    return ("enter" in chord and chord <= {"enter", "shift", "ctrl"}) or chord in _LINE_ENDS


def _safe_chord(keys: Iterable[str]) -> frozenset[str] | None:
    try:
        return _chord(keys)
    except KeyNameError:
        return None


def _ordered(chord: frozenset[str]) -> list[str]:
    """Modifiers first, in the usual order, then the key."""
    order = {"ctrl": 0, "alt": 1, "shift": 2, "win": 3}
    return sorted(chord, key=lambda k: (order.get(k, 9), k))


def _flag(table: Mapping[str, Any], key: str, default: bool, source: str) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise RiskConfigError(f"{source}: {key} must be true or false")
    return value


def _strings(value: Any, key: str, source: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RiskConfigError(f"{source}: {key} must be a list of strings")
    return [v for v in value if v.strip()]


def _named_patterns(value: Any, key: str, source: str) -> list[tuple[str, re.Pattern[str]]]:
    """Plain strings are literal text (case and spacing loose); {name, pattern} are regexes."""
    if not isinstance(value, list):
        raise RiskConfigError(f"{source}: {key} must be a list of strings or {{name, pattern}}")
    out = []
    for item in value:
        if isinstance(item, str):
            if not item.strip():
                continue
            # Literal: "curl|sh" must not mean "curl" or "sh"; any run of spaces matches any.
            literal = r"\s+".join(re.escape(part) for part in item.split())
            out.append((item, _compile(item, literal, f"{source}: {key}")))
        elif isinstance(item, Mapping) and isinstance(item.get("pattern"), str):
            pattern = item["pattern"]
            name = str(item.get("name") or pattern)
            out.append((name, _compile(name, pattern, f"{source}: {key}")))
        else:
            raise RiskConfigError(f"{source}: each {key} entry is a string or {{name, pattern}}")
    return out


def _chords(value: Any, key: str, source: str) -> set[frozenset[str]]:
    out = set()
    for text in _strings(value, key, source):
        try:
            out.add(_chord([text]))
        except KeyNameError as exc:
            raise RiskConfigError(f"{source}: {key}: {exc}") from None
    return out


def default_rules_path() -> Path:
    """Where the app and the runner look for the user's risk rules (risk.toml in the config)."""
    from platformdirs import user_config_dir

    return Path(user_config_dir("deskpilot")) / "risk.toml"


def load_rules(path: Path | None = None) -> RiskRules:
    """The user's rules: `path` (must exist), else risk.toml in the config folder, else defaults."""
    if path is not None:
        return RiskRules.load(path)
    default = default_rules_path()
    return RiskRules.load(default) if default.is_file() else RiskRules.default()
