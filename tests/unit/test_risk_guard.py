"""The stateful guard, the shell reader and the command rules, on adversarial inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actions.screen import CoordinateSpace
from actions.types import Action, Key, LeftClick, MiddleClick, Type, Wait
from actions.window import FocusedWindow
from agent.approval import policy
from agent.commands import dangerous, not_read_only, parse_allow
from agent.protocol import ProtocolError, parse_arguments
from agent.recording import read_run
from agent.risk import RiskGuard, RiskRules
from agent.shell import parse
from tests.support.fakes import Person
from tests.unit.test_risk_gate import Backend, run

DATA = Path(__file__).parent.parent / "data"
XTERM = FocusedWindow(11, "xterm xterm")
XTERM2 = FocusedWindow(12, "xterm xterm")
GEDIT = FocusedWindow(21, "gedit gedit")
ALLOW = RiskRules.default().terminal_allow


def guard_after(
    *steps: tuple[Action, FocusedWindow | None], rules: RiskRules | None = None
) -> RiskGuard:
    guard = RiskGuard(rules or RiskRules.default())
    for action, window in steps:
        guard.executed(action, window=window)
    return guard


# -- the shell reader ----------------------------------------------------------------------------


def programs(line: str) -> list[str]:
    return [c.program for c in parse(line).commands]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("ls -la", ["ls"]),
        ("a; b && c || d & e | f |& g", ["a", "b", "c", "d", "e", "f", "g"]),
        ("a\nb", ["a", "b"]),
        ("echo $(rm x)", ["rm", "echo"]),
        ("echo `rm x`", ["rm", "echo"]),
        ("cat <(rm x) >(tee y)", ["rm", "tee", "cat"]),
        ("'r''m' x", ["rm"]),
        ('"r"m x', ["rm"]),
        ("r\\m x", ["rm"]),
        ("$'\\x72\\x6d' x", ["rm"]),
        ("/usr/bin/rm x", ["rm"]),
        ("X=1 Y=2 rm x", ["rm"]),
        ("sudo -u root -E env A=1 nice -n 3 rm x", ["sudo", "env", "nice", "rm"]),
        ("bash -c 'sh -c \"rm x\"'", ["bash", "sh", "rm"]),
        ("eval 'rm x'", ["eval", "rm"]),
        ("find . -exec rm {} \\; -execdir mv {} y +", ["find", "rm", "mv"]),
        ("xargs -n 1 -I{} rm {}", ["xargs", "rm"]),
        ("timeout -s KILL 5 stdbuf -o0 rm x", ["timeout", "stdbuf", "rm"]),
        ("if true; then rm x; fi", ["true", "rm"]),
        ("ls # ; rm x", ["ls"]),
        ("echo 'a;rm x'", ["echo"]),
    ],
)
def test_the_reader_finds_every_program_a_line_runs(line: str, expected: list[str]) -> None:
    assert programs(line) == expected


@pytest.mark.parametrize(
    "line",
    ["echo 'open", 'echo "open', "f() { ls; }", "echo !!", "cat <<EOF", "case x in a) ls;; esac",
     "bash -c \"$CMD\"", "echo ${x:-$(rm y)}", "eval \"$x\""],
)  # fmt: skip
def test_what_the_reader_cannot_follow_is_said(line: str) -> None:
    assert parse(line).unclear


@pytest.mark.parametrize("opening", ["$(", "<(", "`", "$((", "(", "bash -c '"])
def test_deep_nesting_is_unclear_not_a_crash(opening: str) -> None:
    parsed = parse(opening * 3000 + "rm -rf ~")
    assert not_read_only(parsed, ALLOW) is not None


def test_redirections_and_pipelines() -> None:
    (cmd,) = parse("ls 2>&1 >out.txt </dev/null").commands
    assert [(r.op, r.target.text, r.writes) for r in cmd.redirects] == [
        (">&", "1", False),
        (">", "out.txt", True),
        ("<", "/dev/null", False),
    ]
    last = parse("curl x | tee y | sudo bash").commands[-1]
    assert (last.program, last.via, last.upstream) == ("bash", ("sudo",), ("curl", "tee"))


# -- the command rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("rm -r -f x", "recursive or forced delete"),
        ("rm --rec x", "recursive or forced delete"),
        ("'/bin/rm' -R x", "recursive or forced delete"),
        ("echo $(rm -fr ~)", "recursive or forced delete"),
        ("find / -delete", "find deleting files"),
        ("doas sh", "privilege escalation"),
        ("mkfs.btrfs /dev/sdb", "filesystem format or partitioning"),
        ("dd bs=1M of=/dev/sda if=x", "raw disk write (dd)"),
        ("cat x | tee /dev/nvme0n1", "write to a block device"),
        ("wget -qO- x | env python3", "download piped to a shell"),
        ("source <(curl x)", "shell running a download"),
        ("systemctl --no-wall poweroff", "shutdown, reboot or logout"),
        ("chmod -vR 777 ~", "recursive or system-wide permission change"),
        ("kill -s KILL -1", "killing every process"),
        ("shred x", "secure erase"),
        ("git -C r push origin +main", "history-rewriting git command"),
        ("sed -i 1d /etc/passwd", "overwriting a system file"),
        ("echo x >> $HOME/.bashrc", "overwriting a system file"),
        ("> notes.txt", "truncating a file"),
        ("mv x /dev/null", "moving files into /dev/null"),
        ("usermod -aG sudo eve", "account change"),
        ("crontab -ir", "crontab removal"),
        ("perl -e 'unlink <*>'", "interpreter running destructive code"),
        ("python3 -c 'import os; os.system(\"id\")'", "interpreter running destructive code"),
    ],
)
def test_dangerous_commands_are_named_in_any_spelling(line: str, reason: str) -> None:
    assert dangerous(parse(line)) == reason


@pytest.mark.parametrize(
    "line",
    ["rm notes.txt", "git push origin main", "python3 -m venv .venv", "echo rm -rf /", "ls -R",
     "grep -r sudo .", "find . -name '*.py'", "dd-mm-yyyy", "kill 4242", "cat /etc/hosts"],
)  # fmt: skip
def test_ordinary_commands_are_not_dangerous(line: str) -> None:
    assert dangerous(parse(line)) is None


@pytest.mark.parametrize(
    "line",
    ["ls -la", "cat a | grep b | wc -l", "ls 2>/dev/null", "find . -name '*.py' -type f",
     "git status", "cd ~/x && ls", "echo 'a;b' \"$HOME\"", "/usr/bin/ls", "head -n 3 x; tail x",
     "sort -u x", "date +%F", "hostname -f", "env", ""],
)  # fmt: skip
def test_read_only_lines(line: str) -> None:
    assert not_read_only(parse(line), ALLOW) is None


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("ls > x", "it writes to x"),
        ("find . -delete", "find -delete"),
        ("find . -fprint x", "find -fprint"),
        ("find * -name x", "find with arguments that expand"),
        ("sort -uo x y", "sort writing a file"),
        ("./ls", "it runs ./ls"),
        ("/bin/../tmp/ls", "it runs /bin/../tmp/ls"),
        ("/usr/bin/x/ls", "it runs /usr/bin/x/ls"),
        ("hostname --file=x", "hostname setting the name"),
        ("~/bin/ls", "it runs ~/bin/ls"),
        ("date -s now", "date setting the clock"),
        ("hostname evil", "hostname setting the name"),
        ("env X=1 ls", "env running a command"),
        ("X=1", "it sets X"),
        ("PROMPT_COMMAND='rm -rf ~'", "it sets PROMPT_COMMAND"),
        ("nohup ls", "nohup is not on the read-only list"),
        ("$(echo ls)", "its program name is computed"),
        ("ls $(touch x)", "touch is not on the read-only list"),
        ("{ls,-la}", "its program name is computed"),
        ("git status; git stash", "git is not on the read-only list"),
        ("echo 'unclosed", "it has an unclosed quote"),
        ("[[ 1 -eq 'a[$(rm -rf ~)]' ]]", "its program name is computed"),
        ("test -v 'a[$(id)]'", "test is not on the read-only list"),
        ("printf -v PROMPT_COMMAND 'rm -rf ~'", "printf setting a variable"),
        ("tree -o ~/.bashrc", "tree is not on the read-only list"),
        ("file -C -m x", "file writing a compiled magic file"),
        ("ls \\", "it has a line that continues"),
        ("ls |", "it has a line that continues"),
        ("ls &&", "it has a line that continues"),
        ("$'\\e]0;x\\a\\u202e' a", "\\u001b]0;x\\u0007\\u202e is not on the read-only list"),
        ("ls > $'\\e[2J'", "it writes to \\u001b[2J"),
    ],
)
def test_lines_that_may_change_things_say_why(line: str, why: str) -> None:
    assert (not_read_only(parse(line), ALLOW) or "").startswith(why)


def test_the_allowlist_is_configurable() -> None:
    rules = RiskRules.from_mapping({"terminal_allow": ["make test", "pytest"]})
    make = Key(("Return",))
    assert rules.assess(make, _ctx("make test -j4")).level == "safe"
    assert rules.assess(make, _ctx("make install")).level == "risky"
    assert rules.assess(make, _ctx("pytest -q && ls")).level == "safe"
    bare = RiskRules.from_mapping({"use_defaults": False, "terminals": ["xterm"]})
    assert bare.assess(make, _ctx("ls")).level == "risky"  # no defaults: nothing is read-only
    assert parse_allow(["git  log", " "]) == frozenset({("git", "log")})
    assert rules.summary["terminal_allow"] == len(ALLOW_DEFAULT_ENTRIES) + 2


def _ctx(line: str) -> Any:
    from agent.risk import PendingLine, RiskContext

    return RiskContext(window=XTERM, pending=PendingLine(line))


ALLOW_DEFAULT_ENTRIES = __import__("agent.commands", fromlist=["x"]).DEFAULT_TERMINAL_ALLOW


# -- the guard's state -----------------------------------------------------------------------------


def test_a_line_typed_in_pieces_is_judged_whole_whatever_ran_in_between() -> None:
    guard = guard_after(
        (Type("touch /tm"), XTERM),
        (Wait(1.0), None),
        (LeftClick((5, 5)), None),
        (Type("hello"), GEDIT),  # another window's typing does not reach the xterm's line
        (Type("p/x"), XTERM),
    )
    assert guard.pending(XTERM).text == "touch /tmp/x"
    assert guard.pending(GEDIT).text == "hello"
    risk = guard.assess(Key(("ctrl", "alt", "Return")), window=XTERM)
    assert risk.level == "risky" and risk.rule == "terminal_enter"
    assert risk.reason == (
        "Enter in a terminal runs a command that may change things: "
        "touch is not on the read-only list"
    )
    # Keys going to gedit submit gedit's line, not the xterm's.
    assert guard.assess(Key(("Return",)), window=GEDIT).level == "safe"


def test_windows_are_told_apart_by_id_not_by_class() -> None:
    guard = guard_after((Type("touch x"), XTERM))
    assert guard.assess(Key(("Return",)), window=XTERM2).level == "safe"
    assert guard.assess(Key(("Return",)), window=XTERM).level == "risky"


def test_keys_that_type_backspace_and_clearing_edit_the_line() -> None:
    guard = guard_after(
        (Type("ls"), XTERM), (Key(("space",)), XTERM), (Key(("shift", "minus")), XTERM),
        (Key(("l",)), XTERM), (Key(("a",)), XTERM), (Key(("x",)), XTERM),
        (Key(("BackSpace",)), XTERM),
    )  # fmt: skip
    assert guard.pending(XTERM).text == "ls _la"
    assert guard.assess(Key(("Return",)), window=XTERM).level == "safe"
    for clear in (("ctrl", "u"), ("ctrl", "c")):
        cleared = guard_after((Type("touch x"), XTERM), (Key(clear), XTERM))
        assert cleared.pending(XTERM).text == ""
        # In an editor Ctrl+C copies and Ctrl+U does other things: the text stays.
        kept = guard_after((Type("touch x"), GEDIT), (Key(clear), GEDIT))
        assert kept.pending(GEDIT).text == "touch x"


def test_a_submit_resets_the_line_and_a_lost_cursor_makes_it_unknown() -> None:
    guard = guard_after((Type("touch x\nls"), XTERM))
    assert guard.pending(XTERM).text == "ls"
    lost = guard_after((Type("ls"), XTERM), (Key(("Left",)), XTERM), (Type("x"), XTERM))
    risk = lost.assess(Key(("Return",)), window=XTERM)
    assert risk.level == "risky" and "could not follow" in risk.reason
    partial = RiskGuard(RiskRules.default())
    partial.executed(Type("ls"), window=XTERM, complete=False)  # typing failed part way
    assert partial.assess(Key(("Return",)), window=XTERM).level == "risky"


def test_an_unknown_window_is_judged_as_a_terminal() -> None:
    guard = guard_after((Type("touch x"), None))
    risk = guard.assess(Key(("Return",)), window=None)
    assert risk.level == "risky" and "what may be a terminal" in risk.reason
    assert guard_after((Type("ls"), None)).assess(Key(("enter",)), window=None).level == "safe"
    unnamed = FocusedWindow(None, None)
    assert guard.assess(Key(("Return",)), window=unnamed).level == "risky"


def test_a_middle_click_makes_every_line_unknown() -> None:
    guard = guard_after((Type("ls"), XTERM), (MiddleClick((5, 5)), None))
    assert guard.assess(Key(("Return",)), window=XTERM).level == "risky"
    assert guard.assess(Key(("Return",)), window=XTERM2).level == "risky"  # not seen before
    guard.executed(Key(("Return",)), window=XTERM2)
    assert guard.assess(Key(("Return",)), window=XTERM2).level == "safe"


def test_chords_are_sets_for_risky_and_blocked_keys() -> None:
    rules = RiskRules.load(DATA / "blocked_rules.toml")
    for keys in [("shift", "alt", "F4"), ("F4", "Alt_R"), ("alt+f4", "x")]:
        risk = rules.assess(Key(keys))
        assert (risk.level, risk.rule) == ("blocked", "blocked_keys:alt+f4"), keys
    risk = RiskRules.default().assess(Key(("q", "shift", "Control_R", "a")))
    assert (risk.level, risk.rule) == ("risky", "risky_keys:ctrl+shift+q")


@pytest.mark.parametrize(
    "keys",
    [("XF86Sleep",), ("XF86PowerOff",), ("XF86LogOff",), ("XF86Suspend",), ("ctrl", "alt", "F3"),
     ("ctrl", "alt", "BackSpace"), ("alt", "SysRq", "b")],
)  # fmt: skip
def test_system_keys_are_risky(keys: tuple[str, ...]) -> None:
    assert RiskRules.default().assess(Key(keys)).level == "risky"


def test_blocked_text_split_over_actions_is_blocked_before_its_last_piece() -> None:
    rules = RiskRules.load(DATA / "blocked_rules.toml")
    guard = guard_after((Type("r"), XTERM), (Type("m -"), XTERM), rules=rules)
    risk = guard.assess(Type("rf ~"), window=XTERM)
    assert (risk.level, risk.rule) == ("blocked", "blocked_text:rm -rf")
    assert guard.assess(Key(("r",)), window=XTERM).level == "risky"  # "rm -r": not "rm -rf"
    # What was already typed does not block unrelated typing after it.
    later = guard_after((Type("su"), XTERM), (Key(("Return",)), XTERM), rules=rules)
    assert later.assess(Type("do"), window=XTERM).level == "safe"


def test_control_characters_in_typed_text_are_invalid_output() -> None:
    space = CoordinateSpace.relative()
    for text in ["ls\x1b[2J", "a\x07", "x\x7f", "\x03"]:
        with pytest.raises(ProtocolError, match="control character U\\+00"):
            parse_arguments({"action": "type", "text": text}, space)
    assert parse_arguments({"action": "type", "text": "a\tb\r\n"}, space) == Type("a\tb\r\n")


# -- the loop judges again just before it acts -----------------------------------------------------


def test_a_focus_change_after_the_decision_stops_an_approved_action(tmp_path: Path) -> None:
    """Proposed while gedit had focus (safe), about to run into an xterm (risky): refused."""
    script = [
        ("type", {"action": "type", "text": "touch x"}),
        ("run", {"action": "key", "keys": ["Return"]}),
    ]
    probes = iter([XTERM, XTERM, GEDIT, XTERM])  # proposal and execution probe per step
    backend = Backend(script)
    result = _run_with_focus(tmp_path, backend, lambda: next(probes), "guarded")
    steps = read_run(Path(str(result.run_dir))).steps
    assert steps[1]["execution"] is None
    assert steps[1]["risk"]["level"] == "risky" and steps[1]["decision"]["kind"] == "reject"
    assert "judged again before running" in steps[1]["result"]
    assert "judged again before running" in backend.prompts[2]  # the model is told


def test_auto_mode_still_runs_what_turned_risky_but_never_what_turned_blocked(
    tmp_path: Path,
) -> None:
    script = [
        ("type", {"action": "type", "text": "touch x"}),
        ("run", {"action": "key", "keys": ["Return"]}),
    ]
    probes = iter([XTERM, XTERM, GEDIT, XTERM])
    result = _run_with_focus(tmp_path / "a", Backend(script), lambda: next(probes), "auto")
    assert read_run(Path(str(result.run_dir))).steps[1]["execution"] is not None
    # "do" typed where nothing was typed is fine; into the window holding "su" it is blocked.
    rules = RiskRules.from_mapping({"blocked_text": ["sudo"]})
    script = [("a", {"action": "type", "text": "su"}), ("b", {"action": "type", "text": "do"})]
    blocked = iter([GEDIT, GEDIT, XTERM, GEDIT])
    result = _run_with_focus(tmp_path / "b", Backend(script), lambda: next(blocked), "auto", rules)
    second = read_run(Path(str(result.run_dir))).steps[1]
    assert second["execution"] is None and second["risk"]["level"] == "blocked"


def _run_with_focus(
    tmp_path: Path, backend: Backend, focus: Any, mode: str, rules: RiskRules | None = None
) -> Any:
    from agent.loop import LoopSettings, run_task
    from agent.recording import Recorder
    from tests.support.fakes import FakeScreen, RecordingExecutor

    return run_task(
        "task",
        backend=backend,
        screen=FakeScreen(),
        executor=RecordingExecutor(),
        decide=policy(mode, Person("reject")),  # type: ignore[arg-type]
        recorder=Recorder(tmp_path / "runs", {"task": "task"}),
        settings=LoopSettings(),
        rules=rules,
        focus=focus,
    )


def test_guarded_mode_through_the_loop_asks_for_a_split_destructive_command(tmp_path: Path) -> None:
    script = [
        ("type", {"action": "type", "text": "touch /tmp/"}),
        ("wait", {"action": "wait", "time": 1}),
        ("type", {"action": "type", "text": "pwned"}),
        ("run", {"action": "key", "keys": ["shift", "KP_Enter"]}),
    ]
    person = Person("reject")
    result, executor, _ = run(tmp_path, script, policy("guarded", person), windows=[XTERM])
    assert [r.step for r in person.requests] == [3]
    assert len(executor.done) == 3 and result.outcome == "success"


def test_keys_to_an_unknown_window_are_judged_against_every_window() -> None:
    rules = RiskRules.load(DATA / "blocked_rules.toml")
    guard = guard_after((Type("rm -r"), XTERM), rules=rules)
    # The probe failed for this piece: it may land in the xterm, so it is blocked.
    assert guard.assess(Type("f /"), window=None).level == "blocked"
    guard.executed(Type("ls"), window=None)
    assert guard.pending(XTERM).unknown  # the xterm may have received it


def test_keypad_keys_type_and_ctrl_v_pastes_in_a_terminal() -> None:
    rules = RiskRules.from_mapping({"blocked_text": ["4242"]})
    guard = guard_after((Type("42"), GEDIT), (Key(("num4",)), GEDIT), rules=rules)
    assert guard.assess(Key(("num2",)), window=GEDIT).level == "blocked"
    assert guard.assess(Key(("ctrl", "v")), window=XTERM).rule == "terminal_paste"
    assert guard.assess(Key(("ctrl", "v")), window=GEDIT).level == "safe"


@pytest.mark.parametrize(
    "edits",
    [
        [Type("sdo"), Key(("Left",)), Key(("Left",))],  # "u" lands between s and d
        [Type("sudx"), Key(("ctrl", "h"))],  # Ctrl+H deletes the x
        [Type("sudxy"), Key(("Left",)), Key(("ctrl", "h"))],  # "sud|y" after both
    ],
)
def test_blocked_text_is_caught_where_a_lost_cursor_may_put_it(edits: list[Action]) -> None:
    rules = RiskRules.from_mapping({"blocked_text": ["sudo"]})
    guard = guard_after(*[(a, XTERM) for a in edits], rules=rules)
    last = Type("u") if isinstance(edits[0], Type) and edits[0].text == "sdo" else Type("o")
    assert guard.assess(last, window=XTERM).level == "blocked"


def test_a_very_long_line_is_kept_by_its_end_and_becomes_unknown() -> None:
    guard = guard_after((Type("x" * 5000), GEDIT))
    line = guard.pending(GEDIT)
    assert line.unknown and len(line.text) <= 4096 and line.text.endswith("x")


SHELL_SOUP = [
    " ",
    "\t",
    "\n",
    ";",
    "&",
    "|",
    "(",
    ")",
    "<",
    ">",
    "'",
    '"',
    "\\",
    "$",
    "`",
    "{",
    "}",
    "[",
    "]",
    "#",
    "!",
    "=",
    "-",
    "~",
    "*",
    "$(",
    "<(",
    "${",
    "$((",
    "))",
    "2>&1",
    "<<",
    "rm",
    "-rf",
    "ls",
    "sudo",
    "bash",
    "-c",
    "find",
    "-exec",
    "xargs",
    "env",
    "-S",
    "eval",
    "a",
    "x=1",
    "$'\\x72'",
    "\\n",
    "--",
    "+",
]


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(st.text(max_size=80), st.lists(st.sampled_from(SHELL_SOUP), max_size=30).map("".join))
)
def test_any_text_is_read_without_error(line: str) -> None:
    """Model text reaches the reader: it must never raise, whatever the text."""
    parsed = parse(line)
    dangerous(parsed)
    not_read_only(parsed, ALLOW)
    guard = RiskGuard(RiskRules.default())
    for window in (XTERM, None):
        guard.assess(Type(line or "x"), window=window)
        guard.executed(Type(line or "x"), window=window)
        guard.assess(Key(("Return",)), window=window)
