"""Secrets in recordings: a Redactor for known secret strings and a detector for typed ones."""

from __future__ import annotations

import json
import math
import os
import re
import threading
from collections import Counter
from collections.abc import Iterable
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
    """Replaces every known secret (and its JSON-escaped forms) with MARKER; thread-safe.

    Secrets shorter than MIN_SECRET_CHARS, or only whitespace, are ignored: replacing them
    would shred unrelated text. A secret cut off by a truncation ("abcd..." for "abcdefgh")
    is redacted too. `version` grows with each new secret so writers know to re-scrub.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._forms: list[str] = []
        self._pattern: re.Pattern[str] | None = None
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
            forms = set(self._forms) | _forms(text)
            # Longest first, so a secret containing another is replaced whole.
            self._forms = sorted(forms, key=lambda f: (-len(f), f))
            self._pattern = re.compile("|".join(re.escape(f) for f in self._forms))
            self.version += 1
            return True

    def __len__(self) -> int:
        return len(self._secrets)

    def __contains__(self, text: object) -> bool:
        return text in self._secrets

    def redact_text(self, s: str) -> str:
        """s with every known secret, whole or cut off before "...", replaced by MARKER."""
        with self._lock:
            pattern, forms = self._pattern, self._forms
        if pattern is None:
            return s
        s = pattern.sub(MARKER, s)
        return _redact_cut_off(s, forms) if _ELLIPSIS in s else s

    def redact(self, obj: Any) -> Any:
        """A copy of obj (dicts, lists, tuples as lists) with every string redacted; keys kept."""
        if isinstance(obj, str):
            return self.redact_text(obj)
        if isinstance(obj, dict):
            return {k: self.redact(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self.redact(v) for v in obj]
        return obj


def _forms(secret: str) -> set[str]:
    """The secret as it may appear in text: verbatim and as JSON escapes it (model JSON output)."""
    escaped = {json.dumps(secret, ensure_ascii=False)[1:-1], json.dumps(secret)[1:-1]}
    # Some encoders (Go's, format_tool_call for "<") also escape <, > and &, or the slash.
    for form in list(escaped):
        safe = form.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        escaped |= {safe, form.replace("/", "\\/"), safe.replace("/", "\\/")}
    return {secret} | escaped


def _redact_cut_off(s: str, forms: list[str]) -> str:
    """Replace secret prefixes that a truncation left just before "..."."""
    out: list[str] = []
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
            out += [s[done : pos - longest], MARKER]
            done = pos
        pos = s.find(_ELLIPSIS, pos + len(_ELLIPSIS))
    out.append(s[done:])
    return "".join(out)


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
