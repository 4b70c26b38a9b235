"""Secrets in recordings: a Redactor for known secret strings and a detector for typed ones."""

from __future__ import annotations

import html.entities
import json
import math
import os
import re
import threading
import unicodedata
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MARKER",
    "MIN_SECRET_CHARS",
    "Redactor",
    "find_secrets",
    "looks_like_secret",
    "secrets_from_env",
]

# What a redacted secret becomes; no HTML-special character, so exports show it verbatim.
MARKER = "[REDACTED]"
# Shorter secrets would replace common fragments everywhere and shred the recording.
MIN_SECRET_CHARS = 4
# Truncations in this code base (describe, summaries, echoes) end a cut-off value with this.
_ELLIPSIS = "..."


class Redactor:
    """Replaces every known secret with MARKER, however it is encoded or split; thread-safe.

    Secrets shorter than MIN_SECRET_CHARS, or only whitespace, are ignored: replacing them
    would shred unrelated text. A secret cut off by a truncation ("abcd..." for "abcdefgh")
    is redacted too, and so is one written in escapes (JSON \\uXXXX and surrogate pairs,
    \\xNN, repr and octal escapes, HTML entities, percent-encoding, nested a few levels deep):
    text is decoded before matching and the encoded span is replaced. Text typed in pieces
    (`typed`) is kept as one stream; when the stream spells a secret, every piece that
    contributed is redacted too. `version` grows with each change so writers know to re-scrub.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.RLock()
        self._secrets: set[str] = set()
        self._forms: list[str] = []
        self._pattern: re.Pattern[str] | None = None
        # The typed stream: (character, piece number); pieces as (step, text, echoes).
        self._stream: list[tuple[str, int]] = []
        self._pieces: list[tuple[int, str, tuple[str, ...], tuple[str, ...]]] = []
        self._fed: set[tuple[int, str]] = set()
        self._spelled: set[int] = set()  # pieces found to be part of a secret
        self._step_pieces: dict[int, set[str]] = {}  # spelled pieces, hidden in their own step
        self.version = 0
        for secret in secrets:
            self.add(secret)

    def add(self, text: str) -> bool:
        """Remember a secret; False when it is ignored (too short, blank) or already known."""
        if len(text) < MIN_SECRET_CHARS or not text.strip():
            return False
        with self._lock:
            if text in self._secrets:
                return False
            self._secrets.add(text)
            self._add_forms(_forms(text))
            self._check_stream()
            return True

    def _add_forms(self, new: set[str]) -> None:
        forms = set(self._forms) | new
        # Longest first, so a secret containing another is replaced whole.
        self._forms = sorted(forms, key=lambda f: (-len(f), f))
        self._pattern = re.compile("|".join(re.escape(f) for f in self._forms))
        self.version += 1

    def __len__(self) -> int:
        return len(self._secrets)

    def __contains__(self, text: object) -> bool:
        return text in self._secrets

    def typed(
        self, text: str, *, step: int, echoes: Iterable[str] = (), names: Iterable[str] = ()
    ) -> bool:
        """Add text typed at `step` to the stream ("\\b" deletes); True when a secret is spelled.

        `echoes` are the ways the recording renders this typing (the action's description
        and tool call): they are redacted wherever they appear once the piece is part of a
        secret. `names` are other strings that give the piece away in its own step (the key
        names of a chord). Feeding the same text for the same step again does nothing.
        """
        with self._lock:
            if (step, text) in self._fed:
                return False
            self._fed.add((step, text))
            piece = len(self._pieces)
            self._pieces.append((step, text, tuple(echoes), tuple(names)))
            for ch in text:
                if ch == "\b":
                    if self._stream:
                        self._stream.pop()
                else:
                    self._stream.append((ch, piece))
            return self._check_stream()

    def pieces_of_step(self, step: int) -> frozenset[str]:
        """What gives away the pieces of a secret typed at `step` (hidden in that step)."""
        with self._lock:
            return frozenset(self._step_pieces.get(step, ()))

    def _check_stream(self) -> bool:
        """Mark the pieces of every secret the typed stream spells; True when any is new."""
        if len(self._pieces) < 2:
            return False
        stream = "".join(ch for ch, _ in self._stream)
        found = set(self._secrets)
        # Typed in pieces, a key escapes the per-action detector: judge the whole stream, by
        # the formats only (the token heuristics would fire on pieces that merely touch).
        found.update(s for s, why in find_secrets(stream) if why.startswith(_STREAM_REASONS))
        new: set[int] = set()
        spelled: set[str] = set()
        for secret in found:
            at = stream.find(secret)
            while at != -1:
                owners = {piece for _, piece in self._stream[at : at + len(secret)]}
                if len(owners) > 1:
                    new |= owners - self._spelled
                    spelled.add(secret)
                at = stream.find(secret, at + 1)
        if not new:
            return False
        forms: set[str] = set()
        for piece in sorted(new):
            self._spelled.add(piece)
            step, text, echoes, names = self._pieces[piece]
            if len(text) >= MIN_SECRET_CHARS and text.strip():
                self._secrets.add(text)
                forms |= _forms(text)
            self._step_pieces.setdefault(step, set()).update({text, *names} - {"", "\b"})
            forms |= {e for e in echoes if len(e) >= MIN_SECRET_CHARS}
        for secret in spelled - self._secrets:
            self._secrets.add(secret)
            forms |= _forms(secret)
        self._add_forms(forms)
        return True

    def redact_text(self, s: str) -> str:
        """s with every known secret, whole, cut off before "..." or encoded, as MARKER."""
        with self._lock:
            pattern, forms = self._pattern, self._forms
        if pattern is None:
            return s
        spans = _spans(s, pattern, forms)
        if _ENCODED.search(s):
            for layer in _decoded_layers(s):
                spans += [layer.source_span(a, b) for a, b in _spans(layer.text, pattern, forms)]
        return _replace(s, spans)

    def hides(self, s: str, pieces: Iterable[str]) -> bool:
        """Whether s holds one of `pieces`, as written or in any decoded form."""
        texts = [s] + ([layer.text for layer in _decoded_layers(s)] if _ENCODED.search(s) else [])
        return any(piece in text for piece in pieces for text in texts)

    def redact(self, obj: Any) -> Any:
        """A copy of obj (dicts, lists, tuples as lists) with every string redacted; keys kept."""
        if isinstance(obj, str):
            return self.redact_text(obj)
        if isinstance(obj, dict):
            return {k: self.redact(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self.redact(v) for v in obj]
        return obj


# Detector reasons that hold for text typed in pieces (see Redactor._check_stream).
_STREAM_REASONS = ("API key pattern", "private key", "password in a URL")


def _forms(secret: str) -> set[str]:
    """The secret as it may appear in text: verbatim, JSON-escaped, whitespace collapsed."""
    escaped = {json.dumps(secret, ensure_ascii=False)[1:-1], json.dumps(secret)[1:-1]}
    # Some encoders (Go's, format_tool_call for "<") also escape <, > and &, or the slash.
    for form in list(escaped):
        safe = form.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        escaped |= {safe, form.replace("/", "\\/"), safe.replace("/", "\\/")}
    # One-line messages collapse whitespace runs ("a  b\nc" is shown as "a b c").
    collapsed = " ".join(secret.split())
    extra = {collapsed} if len(collapsed) >= MIN_SECRET_CHARS else set()
    return {secret} | escaped | extra


def _spans(s: str, pattern: re.Pattern[str], forms: list[str]) -> list[tuple[int, int]]:
    """Where a secret form, or a secret prefix cut off just before "...", is in s."""
    spans = [m.span() for m in pattern.finditer(s)]
    if _ELLIPSIS in s:
        spans += _cut_off_spans(s, forms)
    return spans


def _replace(s: str, spans: list[tuple[int, int]]) -> str:
    """s with each span (overlapping ones merged) replaced by MARKER."""
    if not spans:
        return s
    out: list[str] = []
    done = 0
    end = -1
    for a, b in sorted(spans):
        if a < end:  # overlaps the span being replaced: extend it
            end = max(end, b)
            continue
        if end != -1:
            out.append(MARKER)
            done = end
        out.append(s[done:a])
        done, end = a, b
    out += [MARKER, s[end:]]
    return "".join(out)


def _cut_off_spans(s: str, forms: list[str]) -> list[tuple[int, int]]:
    """Secret prefixes that a truncation left just before "..."."""
    spans: list[tuple[int, int]] = []
    done = 0
    pos = s.find(_ELLIPSIS)
    while pos != -1:
        longest = 0
        for form in forms:
            for k in range(min(len(form) - 1, pos - done), MIN_SECRET_CHARS - 1, -1):
                if k <= longest:
                    break
                if form[k - 1] == s[pos - 1] and s.startswith(form[:k], pos - k):
                    longest = k
                    break
        if longest:
            spans.append((pos - longest, pos))
            done = pos
        pos = s.find(_ELLIPSIS, pos + len(_ELLIPSIS))
    return spans


# --------------------------------------------------------------------------- decoding

# One escaped character (or a run of percent-encoded bytes): JSON and Python escapes, HTML
# character references, URL encoding. Tried left to right, so "\\\\u0068" is an escaped
# backslash followed by text, as a JSON or Python reader would see it; the next layer decodes
# what that reveals.
_TOKEN = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
    r"|\\u\{[0-9a-fA-F]{1,6}\}"
    r"|\\u[0-9a-fA-F]{4}"
    r"|\\U[0-9a-fA-F]{8}"
    r"|\\x[0-9a-fA-F]{2}"
    r"|\\N\{[A-Za-z0-9 \-]{1,88}\}"
    r"|\\[0-7]{1,3}"
    r"|\\[\\/\"'abfnrtv`]"
    r"|&#[0-9]{1,7};?"
    r"|&#[xX][0-9a-fA-F]{1,6};?"
    r"|&[A-Za-z][A-Za-z0-9]{1,31};?"
    r"|(?:%[0-9a-fA-F]{2})+"
)
# Cheap test before decoding: nothing is encoded without one of these.
_ENCODED = re.compile(r"[\\&%]")
_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_MAX_LAYERS = 4  # JSON in a JSON string in a recorded field is three; one more for good measure


@dataclass(slots=True)
class _Layer:
    """Text decoded one level; each character's span in the level below, and that level."""

    text: str
    starts: array[int]  # machine integers: a list would cost ~70 bytes a character
    ends: array[int]
    below: _Layer | None

    def source_span(self, a: int, b: int) -> tuple[int, int]:
        """The span of the original text that decoded to text[a:b]."""
        layer: _Layer | None = self
        while layer is not None:
            a, b = layer.starts[a], layer.ends[b - 1]
            layer = layer.below
        return a, b


def _decoded_layers(s: str) -> list[_Layer]:
    """s decoded again and again (at most _MAX_LAYERS times) while something decodes."""
    layers: list[_Layer] = []
    below: _Layer | None = None
    text = s
    for _ in range(_MAX_LAYERS):
        layer = _decode_once(text, below)
        if layer is None:
            break
        layers.append(layer)
        below, text = layer, layer.text
    return layers


def _decode_once(s: str, below: _Layer | None) -> _Layer | None:
    """s with every escape decoded, or None when nothing in it decodes."""
    out: list[str] = []
    starts: array[int] = array("q")
    ends: array[int] = array("q")
    done = 0
    changed = False
    for m in _TOKEN.finditer(s):
        chars = _decode_token(m.group())
        if chars is None:
            continue
        a = m.start()
        out.append(s[done:a])
        starts.extend(range(done, a))
        ends.extend(range(done + 1, a + 1))
        for ch, (x, y) in chars:
            out.append(ch)
            starts.append(a + x)
            ends.append(a + y)
        done = m.end()
        changed = True
    if not changed:
        return None
    out.append(s[done:])
    starts.extend(range(done, len(s)))
    ends.extend(range(done + 1, len(s) + 1))
    return _Layer("".join(out), starts, ends, below)


def _decode_token(token: str) -> list[tuple[str, tuple[int, int]]] | None:
    """The characters a token stands for, each with its span in the token; None: not a code."""
    whole = (0, len(token))
    try:
        if token[0] == "%":
            return _percent(token)
        if token[0] == "&":
            return _entity(token)
        kind = token[1]
        if kind == "u" and token[2] == "{":
            return [(chr(int(token[3:-1], 16)), whole)]
        if kind == "u" and len(token) == 12:  # a surrogate pair
            high, low = int(token[2:6], 16), int(token[8:12], 16)
            return [(chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)), whole)]
        if kind in "uUx":
            return [(chr(int(token[2:], 16)), whole)]
        if kind == "N":
            return [(unicodedata.lookup(token[3:-1]), whole)]
        if kind in "01234567":
            return [(chr(int(token[1:], 8)), whole)]
        return [(_SIMPLE.get(kind, kind), whole)]
    except (ValueError, KeyError, OverflowError):
        return None


def _entity(token: str) -> list[tuple[str, tuple[int, int]]] | None:
    """An HTML character reference (numeric, or named as HTML5 knows them)."""
    whole = (0, len(token))
    body = token[1:].rstrip(";")
    if body.startswith(("#x", "#X")):
        return [(chr(int(body[2:], 16)), whole)]
    if body.startswith("#"):
        return [(chr(int(body[1:])), whole)]
    name = body + ";" if token.endswith(";") else body
    value = html.entities.html5.get(name)
    return None if value is None else [(value, whole)]


def _percent(token: str) -> list[tuple[str, tuple[int, int]]]:
    """A run of %XX bytes as UTF-8 (each character spanning its bytes), else as Latin-1."""
    data = bytes(int(token[i + 1 : i + 3], 16) for i in range(0, len(token), 3))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return [(chr(b), (3 * i, 3 * i + 3)) for i, b in enumerate(data)]
    out: list[tuple[str, tuple[int, int]]] = []
    at = 0
    for ch in text:
        n = len(ch.encode("utf-8"))
        out.append((ch, (3 * at, 3 * (at + n))))
        at += n
    return out


def secrets_from_env(names: Iterable[str]) -> list[str]:
    """The values of the named environment variables that are set and not empty."""
    return [value for name in names if (value := os.environ.get(name))]


# --------------------------------------------------------------------------- detection

# Known key formats; each is a secret wherever it appears, whatever the context.
_KEY_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(rf"(?<![A-Za-z0-9_\-])(?:{body})(?![A-Za-z0-9_\-])"))
    for name, body in (
        ("Anthropic", r"sk-ant-[A-Za-z0-9_\-]{20,}"),
        ("OpenAI", r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}"),
        ("GitHub", r"gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,}"),
        ("GitLab", r"glpat-[A-Za-z0-9_\-]{20,}"),
        ("AWS", r"(?:AKIA|ASIA)[0-9A-Z]{16}"),
        ("Slack", r"xox[baprs]-[A-Za-z0-9\-]{10,}"),
        ("Google", r"AIza[0-9A-Za-z_\-]{35}"),
        ("Hugging Face", r"hf_[A-Za-z0-9]{30,}"),
        ("Stripe", r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"),
        ("JWT", r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"),
    )
)
# A PEM private key, with or without its end line (the typing may have been cut off).
_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"
    r"(?:.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|.*\Z)",
    re.DOTALL,
)
# A password in a URL's user info: scheme://user:password@host.
_URL_PASSWORD = re.compile(r"[a-z][a-z0-9+.\-]*://[^\s/:@]+:([^\s/@]+)@", re.IGNORECASE)

# The model's thinking talks about a secret.
_SECRET_WORDS = re.compile(
    r"\b(?:passwords?|passphrases?|passcodes?|pins?|pin codes?|secrets?|tokens?|api[ _-]?keys?|"
    r"credentials?|access keys?|private keys?|2fa|otp|one-time code)\b",
    re.IGNORECASE,
)
_PIN_WORDS = re.compile(r"\b(?:pins?|pin codes?|passcodes?|otp|2fa|one-time code)\b", re.I)
# The thinking says this very typing goes into a secret field.
_TYPING_A_SECRET = re.compile(
    r"\b(?:type|types|typing|enter|enters|entering|input|inputting|fill|fills|filling|paste|"
    r"pasting|write|writing|provide|providing|key in|put in)\b(?:\W+\w+){0,3}?\W+"
    r"(?:passwords?|passphrases?|passcodes?|pin|pin code|secret|api[ _-]?key|token)\b"
    r"|\b(?:password|passphrase|passcode|pin)\s+(?:field|box|input|prompt|entry)\b",
    re.IGNORECASE,
)
# When the thinking also talks about the user name, the text may be that instead.
_NAME_WORDS = re.compile(
    r"\b(?:user ?names?|e-?mails?|e-?mail address|login names?|account names?|user ?ids?|"
    r"login ids?|logins?)\b",
    re.IGNORECASE,
)

# Tokens that are ordinary typed text however random they look.
_URL = re.compile(r"^[a-z][a-z0-9+.\-]*://\S+$", re.IGNORECASE)
_EMAIL = re.compile(r"^[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+$")
_PATH = re.compile(r"^(?:~?/|\.{1,2}/|[A-Za-z]:[\\/]|\\\\)")
_SLASHED = re.compile(r"^[\w.\-~]+(?:/[\w.\-~]+)+/?$")
_NUMBER = re.compile(r"^[+\-]?[\d.,:/_\-]+[%]?$")
_FILE = re.compile(r"^[\w\-]+(?:\.[\w\-]+)*\.[A-Za-z][A-Za-z0-9]{0,4}$")
_DOMAIN = re.compile(r"^(?:[a-z0-9\-]+\.)+[a-z]{2,}$")
_FLAG = re.compile(r"^--?[A-Za-z][\w\-]*$")
_CALL = re.compile(r"^=?[\w.$]+\(.*\);?$")
_STRONG_SYMBOLS = frozenset("!@#$%^&*+=?~|;'\"`<>{}[]()\\,")


def _entropy(s: str) -> float:
    """Shannon entropy in bits per character."""
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


def _classes(s: str) -> tuple[bool, bool, bool, bool]:
    """Whether s has lower-case letters, upper-case letters, digits, other characters."""
    return (
        any(c.islower() for c in s),
        any(c.isupper() for c in s),
        any(c.isdigit() for c in s),
        any(not c.isalnum() for c in s),
    )


# Word-like pieces: a capitalised or lower-case word, an acronym, a number, a symbol run.
_SEGMENT = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+|[^A-Za-z\d]+")


def _segments(s: str) -> tuple[float, float]:
    """Pieces per character (high when random) and the mean letter-piece length (low then)."""
    pieces = _SEGMENT.findall(s)
    letters = [len(p) for p in pieces if p[0].isalpha()]
    mean_letters = sum(letters) / len(letters) if letters else 0.0
    return len(pieces) / len(s), mean_letters


def _ordinary(token: str) -> bool:
    """URLs, e-mail addresses, paths, numbers, file and domain names, flags, calls."""
    return any(
        p.match(token)
        for p in (_URL, _EMAIL, _PATH, _SLASHED, _NUMBER, _FILE, _DOMAIN, _FLAG, _CALL)
    )


def _token_reason(token: str, context: str, *, whole: bool) -> str | None:
    """Why one whitespace-free token is a secret, or None; `whole`: it is all that was typed."""
    if len(token) < MIN_SECRET_CHARS:
        return None
    secret_context = bool(_SECRET_WORDS.search(context))
    if (
        whole
        and secret_context
        and _TYPING_A_SECRET.search(context)
        and not _NAME_WORDS.search(context)
        and not _URL.match(token)
        and not _EMAIL.match(token)
    ):
        return "password field"
    if _ordinary(token):
        if secret_context and token.isdigit() and len(token) >= 6 and _PIN_WORDS.search(context):
            return "PIN"
        return None
    lower, upper, digit, other = _classes(token)
    letter = lower or upper
    n_classes = lower + upper + digit + other
    if n_classes == 4 and len(token) >= 8 and any(c in _STRONG_SYMBOLS for c in token):
        return "password-like token"
    # camelCase names, versions and target triples have long word pieces; random strings do not.
    pieces, word = _segments(token)
    if len(token) >= 12 and n_classes >= 3 and _entropy(token) >= 3.3:
        if pieces >= 0.5 and word <= 2.5:
            return "high-entropy token"
    if len(token) >= 20 and letter and digit and _entropy(token) >= 4.0:
        if pieces >= 0.3 and word <= 4.0:
            return "high-entropy token"
    if secret_context and letter and (digit or other):
        if (n_classes >= 3 and len(token) >= 6) or len(token) >= 8:
            return "password-like token"
    return None


def find_secrets(text: str, context: str = "") -> list[tuple[str, str]]:
    """The secrets in text, each with the reason; context is the model's thinking for the step.

    Known key formats and private keys count anywhere; a whole single-token text is judged as a
    candidate password; in longer text, each token (or the value of name=value) is.
    """
    found: list[tuple[str, str]] = []
    rest = text
    match = _PRIVATE_KEY.search(rest)
    if match:
        found.append((match.group(0).strip(), "private key"))
        rest = rest.replace(match.group(0), " ")
    for name, pattern in _KEY_PATTERNS:
        for key in pattern.findall(rest):
            found.append((key, f"API key pattern ({name})"))
        rest = pattern.sub(" ", rest)
    for password in _URL_PASSWORD.findall(rest):
        found.append((password, "password in a URL"))
    stripped = rest.strip()
    if stripped and not any(c.isspace() for c in stripped) and stripped == text.strip():
        reason = _token_reason(stripped, context, whole=True)
        if reason is not None:
            found.append((stripped, reason))
        return _long_enough(found)
    for token in rest.split():
        token = token.strip("\"'`,;()[]{}")
        if "=" in token and not token.startswith("="):
            token = token.split("=", 1)[1].strip("\"'`")
        reason = _token_reason(token, context, whole=False)
        if reason is not None:
            found.append((token, reason))
    return _long_enough(found)


def _long_enough(found: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(s, r) for s, r in found if len(s) >= MIN_SECRET_CHARS and s.strip()]


def looks_like_secret(text: str, context: str = "") -> str | None:
    """Why text is or holds a secret ("API key pattern (OpenAI)", "password field", ...), or None.

    context is the model's thinking for the step: a mention of a password, PIN, token, key or
    credential makes shorter password-like text count; typing "into the password field" makes
    any single token count.
    """
    found = find_secrets(text, context)
    return found[0][1] if found else None
