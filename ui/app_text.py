"""Messages in the app's words: run options by their labels, HTML bodies summarised (no Qt).

Backends and the session speak the command line's language ("pass --model", "--endpoint"),
which is right in a terminal; in the app the same option is a field with a label. Servers
that fail behind a proxy answer with whole HTML pages; one line about the page says enough.
"""

from __future__ import annotations

import html
import re

from agent.config import OPTIONS
from agent.textsafe import one_line

_FLAG = re.compile(r"--[a-z][a-z0-9-]*")
_HTML = re.compile(r"<(?:!doctype|html|head|body|title|h1|p|div|center|pre)\b", re.IGNORECASE)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_HEADING = re.compile(r"<h1[^>]*>(.*?)</h1>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
_HTML_SPAN = re.compile(r"<(!doctype|html)\b.*?(</html>|$)", re.IGNORECASE | re.DOTALL)


def _labels() -> dict[str, str]:
    """Each run option's CLI flag and the label the settings show for it."""
    return {opt.flag: opt.label for opt in OPTIONS.values()}


def without_flags(message: str) -> str:
    """Flags replaced by the setting they stand for: 'pass --model' -> 'set Model in Settings'."""
    labels = _labels()

    def label(flag: str) -> str:
        return labels.get(flag, "the matching option")

    message = re.sub(
        r"\b(?:pass|use|set) (--[a-z][a-z0-9-]*)",
        lambda m: f"set {label(m.group(1))} in Settings",
        message,
    )
    return _FLAG.sub(lambda m: f"the {label(m.group())} setting", message)


def summarise_html(message: str) -> str:
    """An HTML page inside a message becomes one line: its title or first heading."""
    if not _HTML.search(message):
        return message

    def page(match: re.Match[str]) -> str:
        body = match.group()
        found = _TITLE.search(body) or _HEADING.search(body)
        title = html.unescape(_TAG.sub("", found.group(1))).strip() if found else ""
        return f"an HTML page ({title})" if title else "an HTML page"

    summarised = _HTML_SPAN.sub(page, message)
    if _HTML.search(summarised):  # a fragment without <html>: drop the tags, keep the words
        summarised = html.unescape(_TAG.sub(" ", summarised))
    return summarised


def app_words(message: str, *, backend: str = "local", limit: int = 400) -> str:
    """A backend's or the session's message as the app shows it (one line)."""
    text = without_flags(summarise_html(message))
    if backend == "openai":
        # An endpoint is a server the user runs, not deskpilot's worker process.
        text = re.sub(r"\bRestart worker\b", "Reconnect", text)
        text = re.sub(r"\bthe worker\b", "the model server", text)
        text = re.sub(r"\bworker\b", "model server", text)
    return one_line(text, limit)
