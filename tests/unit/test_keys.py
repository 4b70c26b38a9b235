"""Key-name normalisation and chord splitting (actions.keys): pure functions, no display."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actions.keys import (
    MODIFIERS,
    X_KEYSYMS,
    KeyNameError,
    chord_text,
    is_modifier,
    normalize_chord,
    normalize_key,
    split_chord,
    split_plus,
)
from actions.screen import CoordinateSpace
from actions.types import Key


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (
            ["ctrl", "CTRL", "Ctrl", "control", "Control", "Control_L", "ctl", "LCtrl", "ctrl_l"],
            "ctrl",
        ),
        (["Control_R", "right ctrl", "RCtrl", "ctrlright"], "ctrlright"),
        (
            ["cmd", "command", "super", "Super", "win", "windows", "meta", "Super_L", "Meta_L"],
            "win",
        ),
        (["Super_R", "rwin"], "winright"),
        (["alt", "ALT", "option", "Alt_L", "opt"], "alt"),
        (["Alt_R", "AltGr"], "altright"),
        (["shift", "Shift", "Shift_L", "SHIFT"], "shift"),
        (["Shift_R"], "shiftright"),
        (["enter", "Enter", "return", "Return", "RETURN", "KP_Enter", "ret"], "enter"),
        (["esc", "Esc", "escape", "Escape", "ESCAPE"], "esc"),
        (["backspace", "BackSpace", "back_space", "Backspace", "back space"], "backspace"),
        (["del", "delete", "Delete", "DEL"], "delete"),
        (["tab", "Tab", "TAB"], "tab"),
        (["space", "Space", "spacebar", " "], "space"),
        (
            [
                "pgdn",
                "pagedown",
                "page_down",
                "Page_Down",
                "PageDown",
                "Next",
                "page down",
                "page-down",
            ],
            "pagedown",
        ),
        (["pgup", "pageup", "Page_Up", "PageUp", "Prior", "page up"], "pageup"),
        (["home", "Home", "HOME"], "home"),
        (["end", "End"], "end"),
        (["insert", "Insert", "ins"], "insert"),
        (["up", "Up", "arrowup", "ArrowUp", "UP", "up_arrow"], "up"),
        (["down", "Down", "ArrowDown", "arrow_down"], "down"),
        (["left", "Left", "ArrowLeft", "arrowleft"], "left"),
        (["right", "Right", "ArrowRight"], "right"),
        (
            ["printscreen", "print", "Print", "prtsc", "PrtSc", "PrintScreen", "print_screen"],
            "printscreen",
        ),
        (["capslock", "CapsLock", "Caps_Lock", "caps lock"], "capslock"),
        (["numlock", "Num_Lock", "NumLock"], "numlock"),
        (["menu", "Menu", "apps", "ContextMenu"], "apps"),
        (
            ["volumeup", "VolumeUp", "volume_up", "XF86AudioRaiseVolume", "AudioVolumeUp"],
            "volumeup",
        ),
        (["volumedown", "XF86AudioLowerVolume", "volume down"], "volumedown"),
        (["volumemute", "mute", "XF86AudioMute"], "volumemute"),
        (["KP_1", "num1", "numpad1"], "num1"),
        (["plus", "Plus"], "+"),
        (["minus"], "-"),
        (["less"], "<"),
        (["KeyA", "key_a"], "a"),
        (["Digit7"], "7"),
        (["\n", "\r"], "enter"),
        (["\t"], "tab"),
    ],
)
def test_spellings_map_to_one_name(names: list[str], expected: str) -> None:
    for name in names:
        assert normalize_key(name) == expected, name


@pytest.mark.parametrize("n", range(1, 25))
def test_function_keys(n: int) -> None:
    assert normalize_key(f"f{n}") == f"f{n}"
    assert normalize_key(f"F{n}") == f"f{n}"


@pytest.mark.parametrize(
    "char", ["a", "A", "z", "1", "+", "-", "<", ">", "é", "É", "ß", "你", "😀", "~"]
)
def test_single_characters_stay_as_they_are(char: str) -> None:
    assert normalize_key(char) == char


@pytest.mark.parametrize(
    "name", ["hyperdrive", "ctrlx", "f25", "f0", "", "  ", "\x07", "\x00", "fn", "enterr"]
)
def test_unknown_names_raise_a_clear_error(name: str) -> None:
    with pytest.raises(KeyNameError) as info:
        normalize_key(name)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    if name.strip():
        assert repr(name) in message
        assert "unknown key" in message


def test_every_canonical_name_is_its_own_normal_form_and_has_a_keysym() -> None:
    canonical = set(X_KEYSYMS)
    for name in canonical:
        assert normalize_key(name) == name or name in {
            "ctrlleft",
            "shiftleft",
            "altleft",
            "winleft",
        }
    assert MODIFIERS <= canonical
    assert is_modifier("ctrl") and is_modifier("winright") and not is_modifier("a")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ctrl+shift+t", ("ctrl", "shift", "t")),
        ("Ctrl+Shift+T", ("Ctrl", "Shift", "T")),
        ("ctrl + c", ("ctrl", "c")),
        ("ctrl-c", ("ctrl", "c")),
        ("ctrl-shift-esc", ("ctrl", "shift", "esc")),
        ("ctrl--", ("ctrl", "-")),
        ("ctrl++", ("ctrl", "+")),
        ("ctrl+shift++", ("ctrl", "shift", "+")),
        ("ctrl + +", ("ctrl", "+")),
        ("+", ("+",)),
        ("-", ("-",)),
        (" ", (" ",)),
        ("a", ("a",)),
        ("Return", ("Return",)),
        ("Page_Down", ("Page_Down",)),
        ("page-down", ("page-down",)),  # not modifiers before the hyphen: one name
        ("Page Down", ("Page Down",)),
        ("ctrl space", ("ctrl", "space")),
        ("alt+F4", ("alt", "F4")),
        ("super+-", ("super", "-")),
        ("shift+=", ("shift", "=")),
    ],
)
def test_split_chord(text: str, expected: tuple[str, ...]) -> None:
    assert split_chord(text) == expected


@pytest.mark.parametrize("text", ["", "ctrl+", "ctrl+shift+", "+a", "ctrl+ "])
def test_split_chord_rejects_broken_chords(text: str) -> None:
    with pytest.raises(KeyNameError):
        split_chord(text)


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (("ctrl", "c"), ("ctrl", "c")),
        (("ctrl+c",), ("ctrl", "c")),
        (("Ctrl+C",), ("ctrl", "c")),  # with ctrl held, C names the key
        (("CTRL", "SHIFT", "T"), ("ctrl", "shift", "t")),
        (("shift", "A"), ("shift", "A")),  # shift alone: the character stays
        (("A",), ("A",)),
        (("Control_L", "control"), ("ctrl",)),  # duplicates dropped
        (("cmd+space",), ("win", "space")),
        (("ctrl++",), ("ctrl", "+")),
        (("ctrl", "+"), ("ctrl", "+")),
        (("alt", "Tab"), ("alt", "tab")),
        (("ctrl", "é"), ("ctrl", "é")),
        (("ctrl", "É"), ("ctrl", "É")),  # only ASCII letters are lowered
        (("Return",), ("enter",)),
    ],
)
def test_normalize_chord(keys: tuple[str, ...], expected: tuple[str, ...]) -> None:
    assert normalize_chord(keys) == expected


def test_normalize_chord_needs_keys() -> None:
    with pytest.raises(KeyNameError):
        normalize_chord(())
    with pytest.raises(KeyNameError):
        normalize_chord(("ctrl", "warp9"))


def _printable(ch: str) -> bool:
    return unicodedata.category(ch) not in ("Cc", "Cs") and not ch.isspace()


@given(st.characters().filter(_printable))
def test_any_printable_character_is_a_key(ch: str) -> None:
    assert normalize_key(ch) == ch
    assert split_chord(ch) == (ch,)
    assert normalize_chord(["ctrl", ch])[0] == "ctrl"


@given(st.text(max_size=30))
def test_split_and_normalize_raise_only_key_name_errors(text: str) -> None:
    try:
        normalize_chord([text])
    except KeyNameError:
        pass


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ctrl+shift+t", ("ctrl", "shift", "t")),
        ("ctrl + c", ("ctrl", "c")),
        ("ctrl++", ("ctrl", "+")),
        ("ctrl + +", ("ctrl", "+")),
        ("ctrl+ +", ("ctrl", "+")),
        ("+++", ("+", "+")),
        (" + ", ("+",)),
        ("ctrl-c", ("ctrl-c",)),  # "+" only: the hyphen is split_chord's business
    ],
)
def test_split_plus(text: str, expected: tuple[str, ...]) -> None:
    assert split_plus(text) == expected
    assert chord_text(split_plus(text)).replace(" ", "") in text.replace(" ", "")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ctrl+", "key combination 'ctrl+' ends with '+'"),
        ("ctrl++c", "malformed key combination 'ctrl++c'"),
        ("a + + b", "malformed key combination 'a + + b'"),
        ("", "empty key name"),
    ],
)
def test_split_plus_errors_keep_the_text_apart(text: str, message: str) -> None:
    with pytest.raises(KeyNameError) as info:
        split_plus(text)
    assert str(info.value) == message
    # The protocol shows the chord its own way (quoted for the redactor), not in repr form.
    assert info.value.message(lambda v: f"<{v}>") == message.replace(f"'{text}'", f"<{text}>")


@given(st.text(alphabet="ac+- \t", max_size=12))
def test_the_protocol_and_the_executor_split_a_chord_the_same_way(text: str) -> None:
    from agent.protocol import ProtocolError, parse_arguments

    try:
        action = parse_arguments({"action": "key", "keys": text}, CoordinateSpace.relative())
    except ProtocolError:
        return
    # What the parser accepted, the executor's normalisation reads as the same chord.
    assert isinstance(action, Key)
    assert normalize_chord(action.keys) == normalize_chord([text])
