"""Risk rules: each proposed action is safe, risky or blocked, with a reason, before it is shown.

The defaults cover what a person would want to confirm (destructive shell commands, chords that
close, quit, lock, switch sessions or power off, a line submitted to a terminal that may do more
than read, pastes into a terminal, clicks the model itself says pay, delete, send or submit);
users extend them, or list what is blocked, in TOML (docs/reliability.md). RiskGuard adds the
state the rules judge on: per window, the line typed since its last submit. Rules only read the
action, that line and the model's words: nothing here executes or evaluates model text.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from actions.keys import KeyNameError, chord_text, normalize_chord
from actions.types import ACTION_TYPES, Action, Key, MiddleClick, Type
from actions.window import FocusedWindow
from agent.commands import (
    DANGEROUS,
    DEFAULT_TERMINAL_ALLOW,
    dangerous,
    not_read_only,
    parse_allow,
    shown,
)
from agent.shell import parse

Level = Literal["safe", "risky", "blocked"]

# Actions that press a mouse button somewhere (their declaration names the button).
CLICKS = tuple(cls for cls in ACTION_TYPES.values() if cls.spec.button is not None)

# (name, pattern): typed text that is dangerous outside a POSIX shell (SQL, Windows shells) or
# that no parser needs to read; shell commands are judged on their parsed form (agent/commands.py).
# Both are matched against what was typed into the window since its last submit.
DEFAULT_RISKY_TEXT: tuple[tuple[str, str], ...] = (
    ("disk format (Windows)", r"(^|[\s;&|])format(\.com)?\s+[a-z]:"),
    (
        "recursive delete (Windows)",
        r"\b(del|erase)\s+(/\S+\s+)*/[sq]\b|\b(rd|rmdir)\s+(/\S+\s+)*/s\b|\bremove-item\b[^\n]*-recurse",
    ),
    ("fork bomb", r"(?<![\w:])([\w:]{1,64})\s*\(\s*\)\s*\{\s*\1\s*\|\s*\1\s*&\s*\}"),
    (
        "destructive SQL",
        r"\b(drop\s+(table|database|schema)|truncate\s+table)\b|\bdelete\s+from\s+\w+\s*(;|$)",
    ),
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
    # Power, session and magic SysRq keys: one press sleeps, powers off or logs out.
    "sleep",
    "poweroff",
    "suspend",
    "hibernate",
    "logoff",
    "standby",
    "eject",
    "alt+printscreen",
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

# Left and right modifiers count as the modifier ("ctrlleft+q" is ctrl+q).
_FOLD = {f"{m}{side}": m for m in ("ctrl", "shift", "alt", "win") for side in ("left", "right")}
# Chords a terminal (readline) treats as "run the line": any chord holding Enter, or holding
# one of these (Ctrl+M is Return, Ctrl+J line feed, Ctrl+O operate-and-get-next).
_SUBMITS = (
    frozenset({"enter"}),
    frozenset({"ctrl", "m"}),
    frozenset({"ctrl", "j"}),
    frozenset({"ctrl", "o"}),
)
# Chords that paste into a terminal (the pasted text may end in a newline and run at once).
_PASTES = (frozenset({"shift", "insert"}), frozenset({"ctrl", "shift", "v"}))
# Chords that clear a terminal's line (readline: unix-line-discard; SIGINT drops the line).
_CLEARS = (frozenset({"ctrl", "u"}), frozenset({"ctrl", "c"}))
# Chords that leave a terminal's line as it is (clear screen, scroll back, copy).
_LINE_NEUTRAL = frozenset(
    {
        frozenset({"ctrl", "l"}),
        frozenset({"shift", "pageup"}),
        frozenset({"shift", "pagedown"}),
        frozenset({"ctrl", "shift", "c"}),
    }
)
_MODIFIER_NAMES = frozenset({"ctrl", "shift", "alt", "win"})
# Keypad keys that type a character.
_KEYPAD = {f"num{i}": str(i) for i in range(10)} | {
    "add": "+",
    "subtract": "-",
    "multiply": "*",
    "divide": "/",
    "decimal": ".",
}
# What Shift makes of a key on a US layout (the executor's shift + key types these).
_SHIFTED = dict(zip("1234567890-=[]\\;',./`", '!@#$%^&*()_+{}|:"<>?~', strict=True))


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
# Longest line the guard follows character by character (then only its end is kept, unknown).
MAX_LINE = 4096
# How far back a lost cursor is assumed to reach when matching blocked text.
_REACH = 32
SEVERITY: dict[Level, int] = {"safe": 0, "risky": 1, "blocked": 2}


@dataclass(frozen=True, slots=True)
class PendingLine:
    """What was typed into one window since its last submit, as far as the guard can follow."""

    text: str = ""
    # Edited in ways the guard cannot follow (history, completion, cursor keys, a paste): the
    # line that a submit would run is unknown.
    unknown: bool = False


@dataclass(frozen=True, slots=True)
class RiskContext:
    """What the rules know besides the action: the model's words, where keys go, what is typed."""

    thinking: str = ""
    # The window the action's keys go to (None: unknown, e.g. Wayland or no X).
    window: FocusedWindow | None = None
    # The line typed into that window since its last submit.
    pending: PendingLine = PendingLine()


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
    # The built-in denylist of shell commands (agent/commands.py), judged on parsed lines.
    dangerous_commands: bool = False
    # Commands (or command + first words) a terminal may run without asking: they only read.
    terminal_allow: frozenset[tuple[str, ...]] = frozenset()
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
            "terminal_allow",
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
        bad = sorted(blocked_actions - set(ACTION_TYPES))
        if bad:
            raise RiskConfigError(
                f"{source}: blocked_actions: unknown action {bad[0]!r}; "
                f"known: {', '.join(sorted(ACTION_TYPES))}"
            )
        blocked_words = _strings(table.get("blocked_words", []), "blocked_words", source)
        allow = _strings(table.get("terminal_allow", []), "terminal_allow", source)
        if defaults:
            allow = list(DEFAULT_TERMINAL_ALLOW) + allow
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
            dangerous_commands=defaults,
            terminal_allow=parse_allow(allow),
            summary={
                "source": source,
                "use_defaults": defaults,
                "risky_text": len(texts),
                "dangerous_commands": len(DANGEROUS) if defaults else 0,
                "risky_keys": len(keys),
                "blocked_text": len(table.get("blocked_text", []) or []),
                "blocked_keys": len(table.get("blocked_keys", []) or []),
                "blocked_actions": sorted(blocked_actions),
                "blocked_words": len(blocked_words),
                "terminal_allow": len(allow),
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

    def terminal(self, window: FocusedWindow | None) -> bool | None:
        """Whether keys go to a terminal: True, False, or None when the window is unknown."""
        if window is None or window.wm_class is None:
            return None
        return self.is_terminal(window.wm_class)

    def assess(self, action: Action, context: RiskContext = RiskContext()) -> Risk:
        """Safe, risky or blocked; blocked beats risky; the first matching rule gives the reason."""
        blocked = self._blocked(action, context)
        if blocked is not None:
            return blocked
        return self._risky(action, context) or SAFE

    def after(self, action: Action, context: RiskContext) -> PendingLine:
        """The window's pending line once the action has run (RiskGuard keeps it)."""
        line = context.pending
        if isinstance(action, Type):
            for ch in action.text:
                line = _typed(line, ch)
            return line
        if not isinstance(action, Key):
            return line
        chord = _safe_chord(action.keys)
        if chord is None or chord <= _MODIFIER_NAMES:
            return line
        text = _new_text(action)
        if _submits(chord):
            # Keys pressed with Enter may land before or after it: the new line is unknown.
            return PendingLine(unknown=bool(text) or bool(_extra(chord)))
        if text:
            return PendingLine(line.text + text, line.unknown)
        if chord in (frozenset({"backspace"}), frozenset({"shift", "backspace"})):
            return line if line.unknown else PendingLine(line.text[:-1])
        terminal = self.terminal(context.window)
        if terminal and chord in _CLEARS:
            # Ctrl+C drops the line; Ctrl+U keeps what lies after a cursor the guard lost.
            return PendingLine() if chord == {"ctrl", "c"} or not line.unknown else line
        if terminal and chord in _LINE_NEUTRAL:
            return line
        return PendingLine(line.text, unknown=True)

    def _blocked(self, action: Action, context: RiskContext) -> Risk | None:
        name = action.name
        if name in self.blocked_actions:
            return Risk(
                "blocked", f"{name} actions are blocked by your rules", f"blocked_actions:{name}"
            )
        typed = _new_text(action)
        if typed:
            for rule, pattern in self.blocked_text:
                if any(_completes(pattern, line, typed) for line in _placements(context.pending)):
                    return Risk(
                        "blocked", f"typing matches blocked rule {rule!r}", f"blocked_text:{rule}"
                    )
        if isinstance(action, Key):
            chord = _safe_chord(action.keys)
            found = _contained(chord, self.blocked_keys)
            if found is not None:
                combo = chord_text(_ordered(found))
                return Risk(
                    "blocked",
                    f"the key combination {combo} is blocked by your rules",
                    f"blocked_keys:{combo}",
                )
        if self.blocked_words is not None and context.thinking:
            found_word = self.blocked_words.search(context.thinking)
            if found_word:
                word = found_word.group(0)
                return Risk(
                    "blocked",
                    f"the model's thinking mentions {word!r}, which your rules block",
                    f"blocked_words:{word.lower()}",
                )
        return None

    def _risky(self, action: Action, context: RiskContext) -> Risk | None:
        if isinstance(action, Key):
            chord = _safe_chord(action.keys)
            if chord is None:
                return None
            found = _contained(chord, self.risky_keys)
            if found is not None:
                combo = chord_text(_ordered(found))
                return Risk(
                    "risky",
                    f"{combo} can close, quit, lock or switch the session",
                    f"risky_keys:{combo}",
                )
            if _submits(chord):
                what = "Enter" if "enter" in chord else shown(chord_text(_ordered(chord)))
                # The line it runs may hold what the chord's other keys type, or is unknown.
                text = _new_text(action)
                pending = PendingLine(
                    context.pending.text + (text or ""),
                    context.pending.unknown or (text is None and bool(_extra(chord))),
                )
                submit = self._submit(pending, context.window, what)
                if submit is None and text:  # or they land after it
                    submit = self._submit(context.pending, context.window, what)
                if submit is not None:
                    return submit
                return self._words(context, "pressing Enter") if "enter" in chord else None
            terminal = self.terminal(context.window)
            pastes = _PASTES + ((frozenset({"ctrl", "v"}),) if terminal else ())
            if any(p <= chord for p in pastes) and terminal is not False:
                return Risk(
                    "risky",
                    "pasting into a terminal can run whatever the clipboard holds",
                    "terminal_paste",
                )
        if isinstance(action, MiddleClick):
            # It pastes the selection wherever it lands; in a terminal that can run it.
            return Risk(
                "risky",
                "a middle click pastes the selection, which a terminal can run",
                "middle_click_paste",
            )
        typed = _new_text(action)
        if typed:
            return self._typing(typed, context)
        if isinstance(action, CLICKS):
            return self._words(context, "a click")
        return None

    def _typing(self, typed: str, context: RiskContext) -> Risk | None:
        """Typed text, judged with what the window already holds: lines it submits, then content."""
        line = context.pending
        for ch in typed:
            if ch in "\r\n":
                submit = self._submit(line, context.window, "a line break")
                if submit is not None:
                    return submit
            line = _typed(line, ch)
        stream, start = context.pending.text + typed, len(context.pending.text)
        for rule, pattern in self.risky_text:
            if any(m.end() > start for m in pattern.finditer(stream)):
                return _dangerous_typing(rule, "risky_text")
        if self.dangerous_commands:
            reason = dangerous(parse(stream))
            if reason is not None:
                return _dangerous_typing(reason, "risky_command")
        return None

    def _submit(self, line: PendingLine, window: FocusedWindow | None, what: str) -> Risk | None:
        """Risky when a terminal (or what may be one) runs a line that may do more than read."""
        if not self.enter_after_terminal_typing:
            return None
        terminal = self.terminal(window)
        if terminal is False or (not line.text.strip() and not line.unknown):
            return None
        where = "a terminal" if terminal else "what may be a terminal"
        if line.unknown:
            return Risk(
                "risky",
                f"{what} in {where} runs a line the guard could not follow "
                "(history, completion, cursor keys or a paste)",
                "terminal_enter",
            )
        parsed = parse(line.text)
        reason = dangerous(parsed) if self.dangerous_commands else None
        if reason is not None:
            return Risk(
                "risky",
                f"{what} in {where} runs a command that looks dangerous: {reason}",
                f"terminal_enter:{reason}",
            )
        why = not_read_only(parsed, self.terminal_allow)
        if why is None:
            return None
        return Risk(
            "risky",
            f"{what} in {where} runs a command that may change things: {why}",
            "terminal_enter",
        )

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


class RiskGuard:
    """The rules plus state: per window, what was typed since its last submit (by X id)."""

    def __init__(self, rules: RiskRules) -> None:
        self.rules = rules
        self._lines: dict[object, PendingLine] = {}
        # A middle click pasted somewhere the guard cannot name: every window's line is unknown
        # until it is next submitted.
        self._fresh = PendingLine()

    def assess(self, action: Action, *, window: FocusedWindow | None, thinking: str = "") -> Risk:
        """The verdict on an action about to go to `window`, given what that window holds.

        Keys going to an unknown window may reach any of them: the worst verdict over every
        window's line counts.
        """
        verdict = self.rules.assess(action, self._context(window, thinking))
        if _window_key(window) is not None:
            return verdict
        for line in list(self._lines.values()):
            other = self.rules.assess(action, RiskContext(thinking, window, line))
            if SEVERITY[other.level] > SEVERITY[verdict.level]:
                verdict = other
        return verdict

    def executed(
        self, action: Action, *, window: FocusedWindow | None, complete: bool = True
    ) -> None:
        """Record that the action ran with keys going to `window` (`complete`: all of it ran)."""
        if isinstance(action, MiddleClick):
            self._lines = {k: PendingLine(v.text, unknown=True) for k, v in self._lines.items()}
            self._fresh = PendingLine(unknown=True)
            return
        if not isinstance(action, Type | Key):
            return
        key = _window_key(window)
        line = self.rules.after(action, self._context(window, ""))
        if key is None:
            # Keys that went to an unknown window may have reached any other one.
            text = _new_text(action) or ""
            self._lines = {
                k: PendingLine(v.text + text, unknown=True) for k, v in self._lines.items()
            }
        # Part of it may have reached the window: what the line holds is not known.
        self._lines[key] = line if complete else PendingLine(line.text, unknown=True)

    def lose_track(self) -> None:
        """Something the guard did not see typed (another run, a person): every line is unknown."""
        self._lines = {k: PendingLine(v.text, unknown=True) for k, v in self._lines.items()}
        self._fresh = PendingLine(unknown=True)

    def pending(self, window: FocusedWindow | None) -> PendingLine:
        """What the window holds since its last submit."""
        return self._lines.get(_window_key(window), self._fresh)

    def _context(self, window: FocusedWindow | None, thinking: str) -> RiskContext:
        return RiskContext(thinking=thinking, window=window, pending=self.pending(window))


def _window_key(window: FocusedWindow | None) -> object:
    """Windows by X id; by WM_CLASS where no id is known; one shared line when unknown."""
    if window is None or (window.id is None and window.wm_class is None):
        return None
    return window.id if window.id is not None else window.wm_class


def _typed(line: PendingLine, ch: str) -> PendingLine:
    """The line after one typed character (a newline submits it; a tab may complete it)."""
    if ch in "\r\n":
        return PendingLine()
    if ch == "\t":
        return PendingLine(line.text, unknown=True)
    if len(line.text) >= MAX_LINE:  # only the end is kept: what the whole line is, is not known
        return PendingLine(line.text[-MAX_LINE // 2 :] + ch, unknown=True)
    return PendingLine(line.text + ch, line.unknown)


def _placements(line: PendingLine) -> list[tuple[str, str]]:
    """Where new text may land in the line: (before, after) it.

    At the end of a line the guard followed; in a line it lost (cursor keys, Ctrl+H, Ctrl+W),
    anywhere in its last characters, with any of them deleted around the insertion point.
    """
    if not line.unknown:
        return [(line.text, "")]
    head, tail = line.text[:-_REACH], line.text[-_REACH:]
    return [
        (head + tail[:i], tail[j:]) for i in range(len(tail) + 1) for j in range(i, len(tail) + 1)
    ]


def _completes(pattern: re.Pattern[str], line: tuple[str, str], typed: str) -> bool:
    """Whether typing completes a match: one that ends inside the new text or after it."""
    before, after = line
    if after:  # an insertion: only the neighbourhood can have changed
        before, typed = before[-_REACH:], typed[:_REACH]
    stream = before + typed + after
    return any(m.end() > len(before) for m in pattern.finditer(stream))


def _new_text(action: Action) -> str | None:
    """The text an action types: a type action's text, or what a chord's keys type in order.

    None for a chord that also does something else (Ctrl, Alt or Super held, a named key).
    """
    if isinstance(action, Type):
        return action.text
    if not isinstance(action, Key):
        return None
    try:
        keys = [_FOLD.get(k, k) for k in normalize_chord(action.keys)]
    except KeyNameError:
        return None
    if set(keys) & {"ctrl", "alt", "win"}:
        return None
    shift = "shift" in keys
    out: list[str] = []
    for key in keys:
        if key in ("shift", "enter"):
            continue  # Enter submits: judged as a submit, not as text
        if key == "space":
            out.append(" ")
        elif key in _KEYPAD:
            out.append(_KEYPAD[key])
        elif len(key) == 1:
            out.append((key.upper() if key.isalpha() else _SHIFTED.get(key, key)) if shift else key)
        else:
            return None
    return "".join(out)


def _extra(chord: frozenset[str]) -> frozenset[str]:
    """A submit chord's keys besides modifiers and the submitting key itself."""
    submitting = {"enter"} | ({"m", "j", "o"} if "ctrl" in chord else set())
    return chord - _MODIFIER_NAMES - submitting


def _submits(chord: frozenset[str]) -> bool:
    """Whether a chord can make a terminal run its line (it holds Enter, Ctrl+M, Ctrl+J, Ctrl+O)."""
    return any(s <= chord for s in _SUBMITS)


def _contained(
    chord: frozenset[str] | None, chords: frozenset[frozenset[str]]
) -> frozenset[str] | None:
    """The first listed chord held within `chord` (extra keys do not hide it), or None."""
    if chord is None:
        return None
    for listed in sorted(chords, key=lambda c: (-len(c), sorted(c))):
        if listed <= chord:
            return listed
    return None


def _dangerous_typing(reason: str, kind: str) -> Risk:
    return Risk("risky", f"typing a command that looks dangerous: {reason}", f"{kind}:{reason}")


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
