"""Model text shown on a terminal or in a widget: no control, escape or invisible character acts."""

from __future__ import annotations

import unicodedata

import pytest

from agent.textsafe import is_unsafe, one_line, quote, visible

ESC, BEL, ST = "\x1b", "\x07", "\x1b\\"

# (name, hostile text, a marker the shown text must contain): every family of terminal escape
# sequence, the C1 forms, and the Unicode tricks that make text read differently than it is.
CORPUS: list[tuple[str, str, str]] = [
    ("csi colour", f"{ESC}[31mred{ESC}[0m", "\\x1b[31m"),
    ("csi erase screen", f"{ESC}[2J{ESC}[H", "\\x1b[2J"),
    (
        "cursor up + erase line hides the real proposal",
        f"x{ESC}[1A{ESC}[2K  proposes wait",
        "\\x1b[1A",
    ),
    ("cursor save/restore", f"{ESC}7hidden{ESC}8", "\\x1b7"),
    ("carriage return overwrites the line", "rm -rf ~\r  proposes left_click", "\\x0d"),
    ("backspaces rub out text", "rm -rf ~" + "\b" * 8 + "ls", "\\x08"),
    ("osc 52 clipboard write (BEL)", f"{ESC}]52;c;cm0gLXJmIH4K{BEL}", "\\x1b]52;c;"),
    ("osc 52 clipboard write (ST)", f"{ESC}]52;c;cm0gLXJmIH4K{ST}", "\\x1b\\"),
    ("osc 0 window title", f"{ESC}]0;sudo: approved{BEL}", "\\x1b]0;"),
    ("osc 8 hyperlink", f"{ESC}]8;;http://evil/{ST}click{ESC}]8;;{ST}", "\\x1b]8;;"),
    ("dcs", f"{ESC}P1$r0m{ST}", "\\x1bP"),
    ("apc / pm / sos", f"{ESC}_apc{ST}{ESC}^pm{ST}{ESC}Xsos{ST}", "\\x1b_"),
    ("8-bit csi", "\x9b2J\x9b31m", "\\x9b2J"),
    ("8-bit osc 52", "\x9d52;c;cm0gLXJm\x9c", "\\x9d52"),
    ("8-bit dcs + st", "\x90q\x9c", "\\x90"),
    ("nel, ind, ri (C1 line moves)", "a\x85b\x84c\x8dd", "\\x85"),
    ("ss2 / ss3", "\x8ea\x8fb", "\\x8e"),
    ("utf-8 encoded C1 as a lone surrogate (surrogateescape)", "\udc9b2J", "\\udc9b"),
    ("keypad / charset switch", f"{ESC}={ESC}(0lqk{ESC}(B", "\\x1b(0"),
    ("shift out / in", "\x0ejunk\x0f", "\\x0e"),
    ("bell and NUL", "\x07\x00", "\\x07"),
    ("vertical tab and form feed", "a\x0bb\x0cc", "\\x0b"),
    ("DEL", "a\x7fb", "\\x7f"),
    ("file/group/record/unit separators", "a\x1cb\x1dc\x1ed\x1fe", "\\x1c"),
    ("RLO reverses a command", "ls # \u202efr- mr\u202c", "\\u202e"),
    ("LRO / LRE / RLE / PDF", "\u202da\u202ab\u202bc\u202c", "\\u202d"),
    ("isolates LRI RLI FSI PDI", "\u2066a\u2067b\u2068c\u2069", "\\u2067"),
    ("arabic letter mark", "a\u061cb", "\\u061c"),
    ("LRM / RLM", "a\u200eb\u200fc", "\\u200f"),
    ("zero-width space splits a word", "su\u200bdo", "\\u200b"),
    ("zero-width (non-)joiners", "r\u200cm\u200d", "\\u200c"),
    ("word joiner and invisible operators", "a\u2060b\u2062c", "\\u2060"),
    ("BOM / ZWNBSP", "\ufeffls", "\\ufeff"),
    ("line / paragraph separator", "one\u2028two\u2029three", "\\u2028"),
    ("soft hyphen", "pass\xadword", "\\xad"),
    ("Hangul filler", "a\u3164b\u115fc", "\\u3164"),
    ("Mongolian vowel separator", "a\u180eb", "\\u180e"),
    ("tag characters (ASCII smuggling)", "ok\U000e0072\U000e006d", "\\U000e0072"),
    ("variation selector run (data smuggling)", "x\ufe00\ufe01\ufe02", "\\ufe00"),
    ("variation selector supplement", "x\U000e0100", "\\U000e0100"),
    ("interlinear annotation", "\ufff9a\ufffab\ufffb", "\\ufff9"),
    ("deprecated format controls", "\u206aa\u206f", "\\u206a"),
]


def _unsafe_left(shown: str, keep: str) -> list[str]:
    """Characters in shown that still act: controls, format, separators, surrogates."""
    return [
        ch
        for ch in shown
        if ch not in keep and unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs")
    ]


@pytest.mark.parametrize(("name", "text", "marker"), CORPUS, ids=[c[0] for c in CORPUS])
def test_every_hostile_text_is_made_visible(name: str, text: str, marker: str) -> None:
    shown = visible(text)
    assert _unsafe_left(shown, "\n\t") == [], name
    assert "\x1b" not in shown and not any(0x80 <= ord(c) <= 0x9F for c in shown)
    assert marker in shown, (name, shown)  # the user sees that something was there
    line = one_line(text)
    assert _unsafe_left(line, "") == [] and "\n" not in line and marker in line
    assert is_unsafe(text)


def test_the_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 40


def test_every_code_point_comes_out_safe() -> None:
    """Exhaustive: no character of any plane survives visible() if it could act or hide."""
    everything = "".join(chr(c) for c in range(0x110000))
    assert _unsafe_left(visible(everything), "\n\t") == []
    assert _unsafe_left(one_line(everything), "") == []


def test_ordinary_text_is_unchanged() -> None:
    for text in (
        "hello world",
        "Click the OK button at (512, 288).\nThen type the name.\tDone.",
        "héllo wörld 你好 مرحبا שלום 🙂 ❤️ C:\\Users\\bob <b>bold</b> 50% &amp;",
        "ff\ufb01 \u00a0nbsp em\u2014dash",
    ):
        assert visible(text) == text and not is_unsafe(text)


def test_newline_and_tab_are_kept_only_where_asked() -> None:
    assert visible("a\nb\tc") == "a\nb\tc"
    assert visible("a\nb\tc", keep="") == "a\\x0ab\\x09c"
    assert one_line("a\n\n  b\tc") == "a b c"


def test_one_variation_selector_after_a_character_is_kept() -> None:
    assert visible("\u2764\ufe0f ok") == "\u2764\ufe0f ok"
    assert visible("\ufe0fstart") == "\\ufe0fstart"
    assert visible("\ufe0f", before="x") == "\ufe0f"  # a stream: the character came before


def test_one_line_cuts_and_never_leaves_half_an_escape() -> None:
    assert one_line("abcdefgh", 6) == "abc..."
    assert one_line("ab\x1bcdef", 6) == "ab..."  # not "ab\x1..."
    assert one_line("x" * 10, None) == "x" * 10


def test_quote_is_verbatim_not_repr() -> None:
    assert quote("it's a \\ path\n") == "'it's a \\ path\n'"
    assert quote("abcdefghij", 8) == "'abcde...'"
    assert repr("it's") != quote("it's")
