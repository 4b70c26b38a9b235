"""Model-written text made safe to show on a terminal or in a widget: nothing in it acts.

A hostile model (or a page it read) can write terminal controls (ESC, CSI, OSC 52 clipboard
writes, title sets, cursor moves that hide a line, 8-bit C1 controls), bidi overrides that
reverse how a command reads, and invisible characters that disguise text. `visible` turns each
such character into a visible escape, so the user sees that something was there and nothing
runs: code points below 0x100 as ``\\xNN`` (ESC is ``\\x1b``, CSI ``\\x9b``, CR ``\\r`` is
``\\x0d``), others as ``\\uXXXX`` or ``\\UXXXXXXXX``. Only newline and tab are kept (and not
even those on one line). Recordings keep the raw text; this is for display only.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["is_unsafe", "one_line", "quote", "visible"]

# Format-like characters that Unicode files as letters or marks but that draw nothing: Hangul
# fillers, the Khmer inherent vowels, the Mongolian vowel separator, the braille blank.
_INVISIBLE = frozenset("\u115f\u1160\u17b4\u17b5\u180e\u2800\u3164\uffa0")
# Cc: C0, DEL and C1 controls; Cf: bidi, zero-width, BOM, tags, soft hyphen, U+061C ...;
# Zl/Zp: U+2028/U+2029 (a line break the terminal may not draw); Cs: lone surrogates, which a
# POSIX-locale stream writes back as raw bytes (0x80-0xff, so C1 controls again).
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
# One variation selector after a visible character picks an emoji or glyph style; more of them,
# or the supplement (U+E0100-U+E01EF), can smuggle hidden data.
_TEXT_STYLE = frozenset("\ufe0e\ufe0f")
_ASCII_CONTROL = re.compile("[\x00-\x1f\x7f]")
_CUT_ESCAPE = re.compile(r"\\(?:x[0-9a-f]?|u[0-9a-f]{0,3}|U[0-9a-f]{0,7})?\Z")


def _is_selector(ch: str) -> bool:
    code = ord(ch)
    return 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF


def _unsafe(ch: str, before: str, keep: str) -> bool:
    """Whether ch must be escaped; `before` is the character shown just before it."""
    if ch in keep:
        return False
    if ch in _INVISIBLE or unicodedata.category(ch) in _UNSAFE_CATEGORIES:
        return True
    if _is_selector(ch):
        return ch not in _TEXT_STYLE or not before or _is_selector(before) or before in keep
    return False


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def visible(text: str, *, keep: str = "\n\t", before: str = "") -> str:
    """text with every control, escape-sequence introducer and invisible character escaped.

    `keep` lists the characters left as they are (newline and tab by default); `before` is the
    character shown just before text, for text that arrives in pieces (a stream).
    """
    if text.isascii():
        # The common case: only the ASCII controls can need escaping, found at C speed.
        return _ASCII_CONTROL.sub(
            lambda m: m.group() if m.group() in keep else _escape(m.group()), text
        )
    out: list[str] = []
    prev = before
    for ch in text:
        if _unsafe(ch, prev, keep):
            out.append(_escape(ch))
            prev = ""
        else:
            out.append(ch)
            prev = ch
    return "".join(out)


def is_unsafe(text: str, *, keep: str = "\n\t") -> bool:
    """Whether visible() would change text."""
    return visible(text, keep=keep) != text


def one_line(text: str, limit: int | None = None) -> str:
    """text made visible on one line: whitespace runs become one space, cut to `limit`."""
    # Escape first: str.split() would silently turn U+001C-U+001F, U+0085 and U+2028 to spaces.
    flat = " ".join(visible(text, keep="\t\n").split())
    if limit is None or len(flat) <= limit:
        return flat
    # An escape cut in half would read as something else: cut before it instead.
    return _CUT_ESCAPE.sub("", flat[: max(0, limit - 3)]) + "..."


def quote(value: str, limit: int = 40) -> str:
    """value in single quotes, verbatim (no repr escapes), cut to `limit` characters with "..."

    For messages that name untrusted text: the text stays as written, so a secret in it is
    recognised and redacted like anywhere else; displays pass the message through visible().
    """
    if len(value) > limit:
        value = value[: max(0, limit - 3)] + "..."
    return f"'{value}'"
