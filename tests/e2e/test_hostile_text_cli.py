"""`main.py run` with a model whose thinking, calls and answer are full of terminal escapes.

Nothing the model wrote reaches the terminal as a control: not through pipes (every byte of
stdout and stderr is checked) and not on a real xterm (its title stays what it was).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from agent.recording import read_run
from tests.support.scripted_server import Reply, ScriptedServer, xml_call
from tests.support.x11 import require_tool, stop_process, wait_for_window, wait_until, x_env

ROOT = Path(__file__).resolve().parents[2]

# Every family: CSI, OSC title and clipboard (BEL and ST ends), DCS, cursor moves and erases
# that would hide the real proposal line, a fake proposal after a carriage return, 8-bit C1,
# bidi overrides and isolates, zero-width characters, a lone surrogate.
HOSTILE = (
    "\x1b]2;PWNED-title\x07\x1b]0;PWNED-icon\x1b\\\x1b]52;c;cm0gLXJmIH4K\x07"
    "\x1b[2J\x1b[H\x1b[1A\x1b[2K\x1b7\x1b8\x1bP1$r0m\x1b\\\x1b[31mred\x1b[0m"
    "\r  proposes wait(time=1)\x9b2J\x9d2;PWNED-c1\x9c\x90q\x9c\x85\x8d"
    " \u202eevil\u202c \u2067iso\u2069 zero\u200bwidth\ufeff\u2028\u2029\x7f\x08\x07"
    "\n  risky: none (a fake line)\n"
)
BIDI_COMMAND = "echo safe #\u202e fr- mr\u202c"


def _bad_bytes(data: bytes) -> list[str]:
    """Controls and invisible or bidi characters left in terminal output (bytes as written)."""
    # A byte that is not UTF-8 decodes to U+DC80-U+DCFF: a raw C1 byte shows up as one.
    text = data.decode("utf-8", "surrogateescape")
    found = []
    for name, pattern in (
        ("ESC", "\x1b"),
        ("BEL/BS/DEL/CR/other C0", "[\x00-\x08\x0b-\x1f\x7f]"),
        ("C1", "[\x80-\x9f]"),
        ("raw byte", "[\udc80-\udcff]"),
        ("bidi / zero-width / separators", "[\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]"),
    ):
        if re.search(pattern, text):
            found.append(name)
    return found


def test_pipes_carry_no_control_from_the_model(xdisplay: str, tmp_path: Path) -> None:
    script = [
        Reply(xml_call(action="wait", time=0.01), reasoning=HOSTILE),
        Reply(xml_call(action="type", text=BIDI_COMMAND), reasoning=HOSTILE),
        # Invalid: the parse error quotes the action name, escapes and all.
        Reply(xml_call(action="\x1b]2;PWNED-err\x07\u202e", coordinate=[1, 2])),
        Reply(f"<think>\n{HOSTILE}\n</think>\n" + xml_call(action="answer", text=HOSTILE)),
    ]
    server = ScriptedServer(script)
    runs = tmp_path / "runs"
    cmd = [sys.executable, "main.py", "run", "look", "--endpoint", server.url]
    cmd += ["--runs-dir", str(runs), "--approve", "ask"]
    try:
        proc = subprocess.run(
            cmd,
            cwd=ROOT,
            env=x_env(xdisplay),
            input=b"\ns\n",  # approve the wait, skip the typing
            capture_output=True,
            timeout=120,
        )
    finally:
        server.close()
    out, err = proc.stdout, proc.stderr
    assert proc.returncode == 0, err.decode(errors="replace")
    assert _bad_bytes(out) == [] and _bad_bytes(err) == [], (_bad_bytes(out), _bad_bytes(err))
    text = err.decode()
    # The user sees that something was there, and where.
    for marker in ("\\x1b]2;PWNED-title", "\\x1b]52;c;", "\\x9b2J", "\\u202eevil", "\\u200b"):
        assert marker in text, marker
    assert "\\x1b]52;c;" in out.decode()  # the answer, on stdout
    # The real proposal is on a line of its own; the model's fake one sits behind the gutter.
    lines = text.splitlines()
    assert any(line.startswith("step 2: type(text=") and "\\u202e" in line for line in lines)
    assert not any(line.startswith("  proposes wait(time=1)") for line in lines)
    assert not any(line.startswith("  risky: none") for line in lines)
    assert any(line.startswith("  | ") and "risky: none" in line for line in lines)
    assert "invalid output, nothing executed: unknown action '\\x1b]2;PWNED-err" in text
    # The recording keeps what the model wrote: only the display is escaped.
    (run_dir,) = [d for d in runs.iterdir() if d.is_dir()]
    steps = read_run(run_dir).steps  # not splitlines(): U+2028 sits raw in a JSON line
    assert "\x1b]52;c;" in steps[0]["thinking"] and steps[1]["action"]["text"] == BIDI_COMMAND
    assert json.loads((run_dir / "run.json").read_text())["outcome"]["answer"] == HOSTILE


def test_a_real_xterm_keeps_its_title(xdisplay: str, tmp_path: Path) -> None:
    """Run inside an xterm that obeys title sequences: the model's never reach it."""
    script = [
        Reply(xml_call(action="wait", time=0.01), reasoning=HOSTILE),
        Reply(f"<think>\n{HOSTILE}\n</think>\n" + xml_call(action="answer", text=HOSTILE)),
    ]
    server = ScriptedServer(script)
    go, done = tmp_path / "go", tmp_path / "rc"
    run = (
        f"cd {ROOT} && {sys.executable} main.py run look --endpoint {server.url} "
        f"--runs-dir {tmp_path / 'runs'} --approve auto"
    )
    # The shell sets a title before and after the run: proof that this xterm obeys title
    # sequences, and (xterm reads its output in order) that all of the run's was read.
    command = (
        f"while [ ! -e {go} ]; do sleep 0.05; done; printf '\\033]2;before-run\\007'; {run}; "
        f"rc=$?; printf '\\033]2;after-run\\007'; echo $rc > {done}; sleep 60"
    )
    title = f"deskpilot hostile {os.getpid()}"
    env = x_env(xdisplay, LANG="C.UTF-8", LC_ALL="C.UTF-8")
    term = subprocess.Popen(
        [require_tool("xterm"), "-geometry", "100x30+50+50", "-T", title, "-u8"]
        + ["-xrm", "XTerm*allowTitleOps: true", "-e", "sh", "-c", command],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    spy: subprocess.Popen[str] | None = None
    try:
        window = wait_for_window(xdisplay, name=title, proc=term, timeout_s=30)
        # Every change of the window's title, as X reports it.
        spy = subprocess.Popen(
            [require_tool("xprop"), "-id", str(window), "-spy", "WM_NAME"],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        titles: list[str] = []
        assert spy.stdout is not None
        titles.append(spy.stdout.readline())  # the first report: xprop is listening
        go.touch()
        while "after-run" not in titles[-1]:
            line = spy.stdout.readline()
            assert line, "xprop ended"
            titles.append(line)
        wait_until(lambda: done.exists() and done.read_text().strip(), 60, "the exit status")
        assert done.read_text().strip() == "0"
        assert any("before-run" in t for t in titles), titles
        assert not any("PWNED" in t for t in titles), titles
    finally:
        if spy is not None:
            stop_process(spy)
        stop_process(term)
        server.close()
