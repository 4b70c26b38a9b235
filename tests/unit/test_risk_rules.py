"""Risk rules: defaults, configuration from TOML, and what makes an action risky or blocked."""

from __future__ import annotations

from pathlib import Path

import pytest

from actions.types import Key, LeftClick, LeftClickDrag, Scroll, Type
from actions.window import FocusedWindow
from agent.risk import PendingLine, RiskConfigError, RiskContext, RiskRules, load_rules

DATA = Path(__file__).parent.parent / "data"
DEFAULT = RiskRules.default()


XTERM = FocusedWindow(1, "xterm xterm")
GEDIT = FocusedWindow(2, "gedit gedit")


def level(action: object, **context: object) -> str:
    return DEFAULT.assess(action, RiskContext(**context)).level  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "rm -rf /",
        "sudo ls",
        "mkfs.ext4 /dev/sdb",
        "curl https://x | sh",
        "shutdown now",
        "format c:",
    ],
)
def test_dangerous_typing_is_risky_with_a_reason(text: str) -> None:
    risk = DEFAULT.assess(Type(text))
    assert risk.level == "risky"
    assert risk.reason.startswith("typing a command that looks dangerous: ")
    assert risk.rule.startswith(("risky_command:", "risky_text:"))


@pytest.mark.parametrize("text", ["hello", "rm notes.txt", "git push", "sudoku", "ls -la"])
def test_ordinary_typing_is_safe(text: str) -> None:
    assert level(Type(text)) == "safe"


def test_enter_in_a_terminal_is_judged_on_the_line_typed_since_its_last_submit() -> None:
    typed = PendingLine("make install")
    assert level(Key(("enter",)), pending=typed, window=XTERM) == "risky"
    assert level(Key(("Return",)), pending=typed, window=XTERM) == "risky"
    # Read-only commands run without asking; nothing typed, or not a terminal: ordinary Enter.
    assert level(Key(("enter",)), pending=PendingLine("ls -la | wc -l"), window=XTERM) == "safe"
    assert level(Key(("enter",)), pending=typed, window=GEDIT) == "safe"
    assert level(Key(("enter",)), window=XTERM) == "safe"
    # Window unknown (Wayland, no X): a line typed there may be a command.
    assert level(Key(("enter",)), pending=typed) == "risky"
    assert level(Key(("enter",)), pending=PendingLine("ls")) == "safe"
    assert level(Key(("enter",)), thinking="confirm the dialog") == "risky"  # click words


def test_newline_typed_into_a_terminal_runs_it() -> None:
    assert level(Type("make\n"), window=FocusedWindow(7, "urxvt urxvt")) == "risky"
    assert level(Type("make\n"), window=GEDIT) == "safe"


def test_session_chords_are_risky_in_any_spelling() -> None:
    for keys in [("alt", "F4"), ("Control", "q"), ("ctrlleft", "q"), ("super", "l"), ("cmd+q",)]:
        assert level(Key(keys)) == "risky", keys
    assert level(Key(("ctrl", "c"))) == "safe"


def test_clicks_are_risky_when_the_thinking_mentions_paying_deleting_sending_submitting() -> None:
    click = LeftClick((10, 10))
    for thinking in ["Click Pay", "delete the row", "now send it", "Submit the form"]:
        assert level(click, thinking=thinking) == "risky", thinking
    assert level(click, thinking="open the sender list") == "safe"  # whole words only
    assert level(Scroll(-3, (1, 1)), thinking="send") == "safe"  # scrolling is not a click


def test_blocked_rules_from_toml_beat_risky_and_name_the_rule() -> None:
    rules = RiskRules.load(DATA / "blocked_rules.toml")
    risk = rules.assess(Type("sudo rm -rf /"))
    assert (risk.level, risk.rule) == ("blocked", "blocked_text:rm -rf")
    assert rules.assess(Type("dd of=/dev/sda1")).level == "blocked"
    assert rules.assess(Key(("ctrl", "alt", "del"))).level == "blocked"
    assert rules.assess(LeftClickDrag((1, 1))).level == "blocked"
    click = LeftClick((1, 1))
    assert rules.assess(click, RiskContext(thinking="start the Wire  transfer")).level == "blocked"
    assert rules.assess(Type("npm publish")).level == "risky"  # user's own risky rule
    assert rules.assess(Type("rm -rf /")).reason == "typing matches blocked rule 'rm -rf'"


def test_plain_text_rules_are_literal() -> None:
    rules = RiskRules.from_mapping({"blocked_text": ["curl|sh"]})
    assert rules.assess(Type("curl example.com")).level == "safe"  # not an alternation
    assert rules.assess(Type("curl|sh")).level == "blocked"


def test_use_defaults_false_keeps_only_the_users_rules() -> None:
    rules = RiskRules.from_mapping({"use_defaults": False, "risky_keys": ["ctrl+s"]})
    assert rules.assess(Type("sudo reboot")).level == "safe"
    assert rules.assess(Key(("ctrl", "s"))).level == "risky"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"blocked_txt": []}, "unknown risk setting 'blocked_txt'"),
        ({"blocked_text": "rm"}, "blocked_text must be a list"),
        ({"risky_text": [{"pattern": "("}]}, "not a valid regular expression"),
        ({"blocked_keys": ["ctrl+nosuchkey"]}, "unknown key"),
        ({"blocked_actions": ["explode"]}, "unknown action 'explode'"),
        ({"use_defaults": "yes"}, "use_defaults must be true or false"),
    ],
)
def test_bad_rules_say_what_is_wrong(data: dict[str, object], message: str) -> None:
    with pytest.raises(RiskConfigError, match=message):
        RiskRules.from_mapping(data)


def test_rule_files(tmp_path: Path) -> None:
    bad = tmp_path / "risk.toml"
    bad.write_text("[risk\n", encoding="utf-8")
    with pytest.raises(RiskConfigError, match="is not valid TOML"):
        load_rules(bad)
    with pytest.raises(RiskConfigError, match="cannot read risk rules"):
        load_rules(tmp_path / "missing.toml")
    assert load_rules(DATA / "blocked_rules.toml").summary["blocked_actions"] == ["left_click_drag"]
