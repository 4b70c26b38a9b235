"""Streamed model text split into thinking (reasoning) and the answer (content)."""

from __future__ import annotations

from agent.backends.worker_wire import Kind

_OPEN, _CLOSE = "<think>", "</think>"


def _partial_tag_len(text: str, tag: str) -> int:
    """How many trailing characters of text could start tag (kept back until the next piece)."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0


class ThinkSplitter:
    """Routes streamed text to reasoning or content at <think> / </think>, dropping the tags."""

    def __init__(self, thinking: bool) -> None:
        self.kind: Kind = "reasoning" if thinking else "content"
        self._pending = ""
        self._at_start = True

    def feed(self, text: str) -> list[tuple[Kind, str]]:
        """Split a streamed piece into (kind, text) runs."""
        out: list[tuple[Kind, str]] = []
        buf = self._pending + text
        self._pending = ""
        while buf:
            tag = _CLOSE if self.kind == "reasoning" else _OPEN
            at = buf.find(tag)
            if at >= 0:
                self._emit(out, buf[:at])
                buf = buf[at + len(tag) :]
                self.kind = "content" if self.kind == "reasoning" else "reasoning"
                self._at_start = True
                continue
            keep = _partial_tag_len(buf, tag)
            self._emit(out, buf[: len(buf) - keep])
            self._pending = buf[len(buf) - keep :]
            break
        return out

    def flush(self) -> list[tuple[Kind, str]]:
        """Whatever was held back at the end of the stream."""
        out: list[tuple[Kind, str]] = []
        self._emit(out, self._pending)
        self._pending = ""
        return out

    def _emit(self, out: list[tuple[Kind, str]], text: str) -> None:
        # The template puts "\n" after <think> and "\n\n" after </think>: not part of the text.
        if self._at_start:
            text = text.lstrip("\n")
        if text:
            self._at_start = False
            out.append((self.kind, text))


def split_reasoning(text: str, thinking: bool) -> tuple[str, str]:
    """A whole answer as (reasoning, content)."""
    splitter = ThinkSplitter(thinking)
    parts = splitter.feed(text) + splitter.flush()
    reasoning = "".join(t for k, t in parts if k == "reasoning")
    content = "".join(t for k, t in parts if k == "content")
    return reasoning.strip(), content.strip()
