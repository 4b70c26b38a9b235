"""Key names: what models write ("Control_L", "cmd", "ArrowLeft", "ctrl+c") to pyautogui names."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from actions.errors import ArgumentError

__all__ = [
    "MODIFIERS",
    "X_KEYSYMS",
    "KeyNameError",
    "chord_text",
    "is_modifier",
    "normalize_chord",
    "normalize_key",
    "split_chord",
    "split_plus",
]


class KeyNameError(ArgumentError):
    """A key name that cannot be mapped to a key, or a chord that cannot be split."""


# Canonical (pyautogui) name -> X keysym name; the canonical set is exactly these keys plus
# single printable characters. xtyping resolves these keysyms in the live keymap.
X_KEYSYMS: dict[str, str] = {
    "ctrl": "Control_L",
    "ctrlleft": "Control_L",
    "ctrlright": "Control_R",
    "shift": "Shift_L",
    "shiftleft": "Shift_L",
    "shiftright": "Shift_R",
    "alt": "Alt_L",
    "altleft": "Alt_L",
    "altright": "Alt_R",
    "win": "Super_L",
    "winleft": "Super_L",
    "winright": "Super_R",
    "enter": "Return",
    "esc": "Escape",
    "backspace": "BackSpace",
    "delete": "Delete",
    "tab": "Tab",
    "space": "space",
    "pagedown": "Page_Down",
    "pageup": "Page_Up",
    "home": "Home",
    "end": "End",
    "insert": "Insert",
    "up": "Up",
    "down": "Down",
    "left": "Left",
    "right": "Right",
    "printscreen": "Print",
    "capslock": "Caps_Lock",
    "numlock": "Num_Lock",
    "scrolllock": "Scroll_Lock",
    "pause": "Pause",
    "apps": "Menu",
    "help": "Help",
    "select": "Select",
    "execute": "Execute",
    "clear": "Clear",
    "volumeup": "XF86AudioRaiseVolume",
    "volumedown": "XF86AudioLowerVolume",
    "volumemute": "XF86AudioMute",
    "playpause": "XF86AudioPlay",
    "nexttrack": "XF86AudioNext",
    "prevtrack": "XF86AudioPrev",
    "browserback": "XF86Back",
    "browserforward": "XF86Forward",
    "browserrefresh": "XF86Reload",
    "browserhome": "XF86HomePage",
    "browsersearch": "XF86Search",
    "browserstop": "XF86Stop",
    "browserfavorites": "XF86Favorites",
    "launchmail": "XF86Mail",
    "sleep": "XF86Sleep",
    "poweroff": "XF86PowerOff",
    "suspend": "XF86Suspend",
    "hibernate": "XF86Hibernate",
    "logoff": "XF86LogOff",
    "standby": "XF86Standby",
    "eject": "XF86Eject",
    "screensaver": "XF86ScreenSaver",
    "num0": "KP_0",
    "num1": "KP_1",
    "num2": "KP_2",
    "num3": "KP_3",
    "num4": "KP_4",
    "num5": "KP_5",
    "num6": "KP_6",
    "num7": "KP_7",
    "num8": "KP_8",
    "num9": "KP_9",
    "add": "KP_Add",
    "subtract": "KP_Subtract",
    "multiply": "KP_Multiply",
    "divide": "KP_Divide",
    "decimal": "KP_Decimal",
    "separator": "KP_Separator",
    **{f"f{i}": f"F{i}" for i in range(1, 25)},
}

# Modifier keys: held while the rest of a chord is pressed.
MODIFIERS: frozenset[str] = frozenset(
    {
        "ctrl",
        "ctrlleft",
        "ctrlright",
        "shift",
        "shiftleft",
        "shiftright",
        "alt",
        "altleft",
        "altright",
        "win",
        "winleft",
        "winright",
    }
)

# Spellings, compacted (lower case; "_", "-" and spaces removed), to canonical names. The
# left-hand X names (Control_L) map to the plain name: pyautogui's plain name is that key.
_ALIASES: dict[str, str] = {
    # modifiers
    "ctrl": "ctrl",
    "control": "ctrl",
    "ctl": "ctrl",
    "strg": "ctrl",
    "controll": "ctrl",
    "ctrll": "ctrl",
    "lctrl": "ctrl",
    "leftctrl": "ctrl",
    "leftcontrol": "ctrl",
    "ctrlleft": "ctrl",
    "controlleft": "ctrl",
    "controlr": "ctrlright",
    "ctrlr": "ctrlright",
    "rctrl": "ctrlright",
    "rightctrl": "ctrlright",
    "rightcontrol": "ctrlright",
    "ctrlright": "ctrlright",
    "controlright": "ctrlright",
    "shift": "shift",
    "shiftl": "shift",
    "lshift": "shift",
    "leftshift": "shift",
    "shiftleft": "shift",
    "shiftr": "shiftright",
    "rshift": "shiftright",
    "rightshift": "shiftright",
    "shiftright": "shiftright",
    "alt": "alt",
    "altl": "alt",
    "lalt": "alt",
    "leftalt": "alt",
    "altleft": "alt",
    "option": "alt",
    "opt": "alt",
    "optionleft": "alt",
    "altr": "altright",
    "ralt": "altright",
    "rightalt": "altright",
    "altright": "altright",
    "altgr": "altright",
    "optionright": "altright",
    "win": "win",
    "windows": "win",
    "super": "win",
    "superl": "win",
    "lsuper": "win",
    "leftsuper": "win",
    "winl": "win",
    "lwin": "win",
    "leftwin": "win",
    "winleft": "win",
    "superr": "winright",
    "rsuper": "winright",
    "rightsuper": "winright",
    "winr": "winright",
    "rwin": "winright",
    "rightwin": "winright",
    "winright": "winright",
    "cmd": "win",
    "command": "win",
    "meta": "win",
    "metal": "win",
    "metar": "winright",
    "os": "win",
    "hyper": "win",
    "hyperl": "win",
    # editing and navigation
    "enter": "enter",
    "return": "enter",
    "ret": "enter",
    "kpenter": "enter",
    "numpadenter": "enter",
    "esc": "esc",
    "escape": "esc",
    "backspace": "backspace",
    "bksp": "backspace",
    "bs": "backspace",
    "del": "delete",
    "delete": "delete",
    "kpdelete": "delete",
    "tab": "tab",
    "isolefttab": "tab",
    "space": "space",
    "spacebar": "space",
    "spc": "space",
    "pgdn": "pagedown",
    "pgdown": "pagedown",
    "pagedown": "pagedown",
    "pagedn": "pagedown",
    "next": "pagedown",
    "pgup": "pageup",
    "pageup": "pageup",
    "prior": "pageup",
    "home": "home",
    "end": "end",
    "ins": "insert",
    "insert": "insert",
    "up": "up",
    "down": "down",
    "left": "left",
    "right": "right",
    "arrowup": "up",
    "arrowdown": "down",
    "arrowleft": "left",
    "arrowright": "right",
    "uparrow": "up",
    "downarrow": "down",
    "leftarrow": "left",
    "rightarrow": "right",
    # system
    "printscreen": "printscreen",
    "print": "printscreen",
    "prtsc": "printscreen",
    "prtscr": "printscreen",
    "prntscrn": "printscreen",
    "printscrn": "printscreen",
    "sysrq": "printscreen",
    "capslock": "capslock",
    "caps": "capslock",
    "numlock": "numlock",
    "scrolllock": "scrolllock",
    "scrlk": "scrolllock",
    "pause": "pause",
    "break": "pause",
    "menu": "apps",
    "apps": "apps",
    "application": "apps",
    "contextmenu": "apps",
    "help": "help",
    "select": "select",
    "execute": "execute",
    "clear": "clear",
    # media and browser keys
    "volumeup": "volumeup",
    "volup": "volumeup",
    "audiovolumeup": "volumeup",
    "xf86audioraisevolume": "volumeup",
    "volumedown": "volumedown",
    "voldown": "volumedown",
    "audiovolumedown": "volumedown",
    "xf86audiolowervolume": "volumedown",
    "volumemute": "volumemute",
    "mute": "volumemute",
    "audiovolumemute": "volumemute",
    "xf86audiomute": "volumemute",
    "playpause": "playpause",
    "mediaplaypause": "playpause",
    "xf86audioplay": "playpause",
    "nexttrack": "nexttrack",
    "medianexttrack": "nexttrack",
    "xf86audionext": "nexttrack",
    "prevtrack": "prevtrack",
    "previoustrack": "prevtrack",
    "mediaprevioustrack": "prevtrack",
    "mediaprevtrack": "prevtrack",
    "xf86audioprev": "prevtrack",
    "browserback": "browserback",
    "xf86back": "browserback",
    "browserforward": "browserforward",
    "xf86forward": "browserforward",
    "browserrefresh": "browserrefresh",
    "xf86reload": "browserrefresh",
    "browserhome": "browserhome",
    "xf86homepage": "browserhome",
    "browsersearch": "browsersearch",
    "xf86search": "browsersearch",
    "browserstop": "browserstop",
    "xf86stop": "browserstop",
    "browserfavorites": "browserfavorites",
    "xf86favorites": "browserfavorites",
    "launchmail": "launchmail",
    "xf86mail": "launchmail",
    "sleep": "sleep",
    "xf86sleep": "sleep",
    # power and session keys (risky by default: agent/risk.py)
    "poweroff": "poweroff",
    "power": "poweroff",
    "xf86poweroff": "poweroff",
    "xf86powerdown": "poweroff",
    "suspend": "suspend",
    "xf86suspend": "suspend",
    "hibernate": "hibernate",
    "xf86hibernate": "hibernate",
    "logoff": "logoff",
    "logout": "logoff",
    "xf86logoff": "logoff",
    "standby": "standby",
    "xf86standby": "standby",
    "eject": "eject",
    "xf86eject": "eject",
    "screensaver": "screensaver",
    "xf86screensaver": "screensaver",
    # keypad
    "add": "add",
    "kpadd": "add",
    "subtract": "subtract",
    "kpsubtract": "subtract",
    "multiply": "multiply",
    "kpmultiply": "multiply",
    "divide": "divide",
    "kpdivide": "divide",
    "decimal": "decimal",
    "kpdecimal": "decimal",
    "separator": "separator",
    "kpseparator": "separator",
    # punctuation written as words (X keysym names and common English)
    "plus": "+",
    "minus": "-",
    "hyphen": "-",
    "dash": "-",
    "equal": "=",
    "equals": "=",
    "comma": ",",
    "period": ".",
    "dot": ".",
    "fullstop": ".",
    "slash": "/",
    "backslash": "\\",
    "semicolon": ";",
    "colon": ":",
    "apostrophe": "'",
    "quote": "'",
    "singlequote": "'",
    "quotedbl": '"',
    "doublequote": '"',
    "grave": "`",
    "backtick": "`",
    "backquote": "`",
    "tilde": "~",
    "asciitilde": "~",
    "exclam": "!",
    "exclamation": "!",
    "at": "@",
    "numbersign": "#",
    "hash": "#",
    "pound": "#",
    "dollar": "$",
    "percent": "%",
    "asciicircum": "^",
    "caret": "^",
    "ampersand": "&",
    "asterisk": "*",
    "star": "*",
    "parenleft": "(",
    "parenright": ")",
    "underscore": "_",
    "bracketleft": "[",
    "bracketright": "]",
    "braceleft": "{",
    "braceright": "}",
    "bar": "|",
    "pipe": "|",
    "less": "<",
    "lessthan": "<",
    "greater": ">",
    "greaterthan": ">",
    "question": "?",
    "questionmark": "?",
}
_ALIASES.update({f"f{i}": f"f{i}" for i in range(1, 25)})
_ALIASES.update({f"kp{i}": f"num{i}" for i in range(10)})
_ALIASES.update({f"num{i}": f"num{i}" for i in range(10)})
_ALIASES.update({f"numpad{i}": f"num{i}" for i in range(10)})

# Single characters that are really named keys.
_CHAR_KEYS = {
    " ": "space",
    "\t": "tab",
    "\n": "enter",
    "\r": "enter",
    "\x1b": "esc",
    "\b": "backspace",
}

# Non-shift modifiers: with one of these held, "C" in "Ctrl+C" names the key, not "shift+c".
_COMMAND_MODIFIERS = MODIFIERS - {"shift", "shiftleft", "shiftright"}


def normalize_key(name: str) -> str:
    """The pyautogui name of a key as a model wrote it; a single printable character stays as is."""
    if not isinstance(name, str):
        raise KeyNameError(f"key name must be a string, not {type(name).__name__}")
    if len(name) == 1:
        if name in _CHAR_KEYS:
            return _CHAR_KEYS[name]
        if unicodedata.category(name) in ("Cc", "Cs"):
            raise KeyNameError(f"unknown key {name!r}: a control character is not a key name")
        return name
    stripped = name.strip()
    if len(stripped) == 1:
        return normalize_key(stripped)
    compact = stripped.lower().replace("_", "").replace("-", "").replace(" ", "")
    canonical = _ALIASES.get(compact)
    if canonical is None and compact.startswith("key") and len(compact) > 3:
        # "KeyA"/"key_a" (DOM KeyboardEvent.code style) name the letter or digit key.
        rest = stripped[3:].lstrip("_- ")
        if len(rest) == 1 and rest.isalnum():
            return rest.lower()
    if canonical is None and compact.startswith("digit") and compact[5:].isdigit():
        if len(compact) == 6:
            return compact[5]
    if canonical is None:
        raise KeyNameError(
            f"unknown key {name!r}: use a single character or a key name such as "
            "ctrl, shift, alt, win, enter, esc, tab, backspace, delete, space, up, down, left, "
            "right, home, end, pageup, pagedown, insert, f1..f24, printscreen, capslock, apps"
        )
    return canonical


def is_modifier(key: str) -> bool:
    """Whether a canonical key name is a modifier (ctrl, shift, alt, win and their sides)."""
    return key in MODIFIERS


def split_chord(text: str) -> tuple[str, ...]:
    """Split "ctrl+shift+t" or "ctrl-c" into its key names; "+" alone and "ctrl++" name plus."""
    result: list[str] = []
    for part in split_plus(text):
        result.extend(_split_soft(part))
    return tuple(result)


def chord_text(keys: Iterable[str]) -> str:
    """A chord as one "ctrl+shift+t" string (what split_plus splits back)."""
    return "+".join(keys)


def split_plus(text: str) -> tuple[str, ...]:
    """Split a chord on "+" only (the one "+" splitter); "+" where a key belongs is plus itself.

    "ctrl++", "ctrl + +" and "+" name the plus key; "ctrl+" and "ctrl++c" are errors. A
    single character (a space included) or a blank name is returned as it is.
    """
    if not isinstance(text, str) or text == "":
        raise KeyNameError("empty key name")
    if len(text) == 1 or text.strip() == "":
        return (text,)
    text = text.strip()
    if len(text) == 1 or "+" not in text:
        return (text,)
    parts: list[str] = []
    i, n = 0, len(text)
    while i < n:
        # A key name starts here: skip spaces around separators ("ctrl + c").
        while i < n and text[i] == " ":
            i += 1
        if i >= n:
            break
        if text[i] == "+":
            parts.append("+")
            i += 1
        else:
            j = text.find("+", i)
            end = n if j < 0 else j
            parts.append(text[i:end].strip())
            i = end
        while i < n and text[i] == " ":
            i += 1
        if i < n:
            if text[i] != "+":
                raise KeyNameError("malformed key combination {}", text)
            i += 1
            if i >= n or text[i:].strip() == "":
                raise KeyNameError("key combination {} ends with '+'", text)
    return tuple(parts)


def _split_soft(part: str) -> list[str]:
    """Split on "-" or spaces only when every piece but the last is a modifier ("ctrl-c")."""
    if len(part) <= 1:
        return [part]
    for sep in ("-", " "):
        if sep not in part:
            continue
        if part.endswith(sep + sep) or (sep == "-" and part.endswith("--")):
            head, last = part[:-2], part[-1]
        elif part.endswith(sep):
            continue
        else:
            head, _, last = part.rpartition(sep)
        pieces = [p for p in head.split(sep) if p != ""]
        if pieces and all(_is_modifier_name(p) for p in pieces):
            return [*pieces, last]
    return [part]


def _is_modifier_name(name: str) -> bool:
    """Whether a raw name normalises to a modifier."""
    try:
        return normalize_key(name) in MODIFIERS
    except KeyNameError:
        return False


def normalize_chord(keys: Iterable[str]) -> tuple[str, ...]:
    """Canonical names of a chord; each element may itself be "ctrl+c". Duplicates are dropped.

    With ctrl, alt or win held, an upper-case ASCII letter names its key ("Ctrl+C" is ctrl+c,
    not ctrl+shift+c); on its own or with shift only, "A" stays the character A.
    """
    names: list[str] = []
    for raw in keys:
        for part in split_chord(raw):
            key = normalize_key(part)
            if key not in names:
                names.append(key)
    if not names:
        raise KeyNameError("no keys given")
    if any(k in _COMMAND_MODIFIERS for k in names):
        lowered: list[str] = []
        for k in names:
            low = k.lower() if len(k) == 1 and k.isascii() and k.isalpha() else k
            if low not in lowered:
                lowered.append(low)
        names = lowered
    return tuple(names)
