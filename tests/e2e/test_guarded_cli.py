"""`run --approve guarded` with no terminal: risky actions on a real xterm are refused and told."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_run_cli import mp, only_run, run_cli, tool_response_of
from tests.support.scripted_server import Reply, ScriptedServer, xml_call


def test_guarded_refuses_risky_typing_and_enter_in_a_terminal(xterm: Any, tmp_path: Path) -> None:
    out = tmp_path / "typed.txt"
    term = xterm(f"cat > {out}", position=(200, 200), columns=60, rows=8)
    script = [
        Reply(xml_call(action="left_click", coordinate=mp(term.center())), reasoning="Focus it."),
        Reply(xml_call(action="type", text="sudo rm -rf /tmp/deskpilot-test"), reasoning="Clean."),
        Reply(xml_call(action="type", text="make safe"), reasoning="Type a command."),
        Reply(xml_call(action="key", keys=["Return"]), reasoning="Run it."),
        Reply(xml_call(action="key", keys=["ctrl", "d"]), reasoning="Flush the line."),
        Reply(xml_call(action="key", keys=["ctrl", "d"]), reasoning="End cat."),
        Reply(xml_call(action="terminate", status="success")),
    ]
    server = ScriptedServer(script)
    try:
        proc = run_cli(server, tmp_path / "runs", "--approve", "guarded", stdin="")
    finally:
        server.close()
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "risky actions will be refused" in proc.stderr
    assert "risky: typing a command that looks dangerous: recursive or forced delete" in proc.stderr

    assert term.wait_exit(timeout_s=20) == 0
    assert out.read_bytes() == b"make safe"  # neither the sudo line nor an Enter reached cat

    info, steps, _ = only_run(runs=tmp_path / "runs")
    assert info["approval"] == "guarded"
    levels = [s.get("risk", {}).get("level") for s in steps]
    assert levels[:6] == ["safe", "risky", "safe", "risky", "safe", "safe"]
    assert steps[1]["decision"]["by"] == "guarded" and steps[1]["execution"] is None
    assert steps[3]["risk"]["rule"] == "terminal_enter" and steps[3]["execution"] is None
    assert steps[2]["execution"]["ok"] is True
    # The model is told, in the next request, that nothing ran and why.
    assert "Refused, nothing was executed: risky" in tool_response_of(server.requests[2])
    assert (
        "Enter in a terminal runs a command that may change things: make is not on the read-only"
        in tool_response_of(server.requests[4])
    )


def test_a_plain_http_remote_endpoint_is_warned_about(xdisplay: str, tmp_path: Path) -> None:
    proc = run_cli(None, tmp_path / "runs", endpoint="http://deskpilot.invalid:8000/v1")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        "warning: deskpilot.invalid is neither loopback nor HTTPS: screenshots of your desktop "
        "travel unencrypted" in proc.stderr
    )
    quiet = run_cli(None, tmp_path / "runs", endpoint="https://deskpilot.invalid/v1")
    assert quiet.returncode == 2 and "warning" not in quiet.stderr


def test_attacks_on_the_guard_fail_on_a_real_shell(xterm: Any, tmp_path: Path) -> None:
    """Split commands submitted later, a blocked chord with an extra key, blocked text in pieces.

    One bash in one xterm; guarded mode with nobody at a terminal; the effects are checked on
    files (the folder the commands aim at, bash's own history of the lines it ran) and on the
    xterm itself (still open).
    """
    target = tmp_path / "target"
    target.mkdir()  # empty: `rmdir target` would remove it
    history = tmp_path / "history"
    rules = tmp_path / "risk.toml"
    rules.write_text('[risk]\nblocked_text = ["CANARY42"]\nblocked_keys = ["ctrl+d"]\n')
    term = xterm(
        f"cd {tmp_path} && HISTFILE={history} PROMPT_COMMAND='history -a' "
        "exec bash --norc --noprofile -i",
        position=(200, 200),
        columns=70,
        rows=10,
    )
    focus = Reply(xml_call(action="left_click", coordinate=mp(term.center())), reasoning="Focus.")

    def key(*keys: str) -> Reply:
        return Reply(xml_call(action="key", keys=list(keys)), reasoning="Press.")

    def type_(text: str) -> Reply:
        return Reply(xml_call(action="type", text=text), reasoning="Type.")

    script = [
        focus,
        # 1. Typed in pieces (each harmless), submitted later with other actions in between.
        type_("rmdir tar"),  # 1
        Reply(xml_call(action="wait", time=0.1), reasoning="Wait."),
        type_("get"),  # 3
        focus,
        key("ctrl", "Return"),  # 5: refused, the line is not read-only
        key("ctrl", "u"),
        type_("r"),  # 7
        type_("m -rf target"),  # 8: refused, dangerous with what the line holds
        key("Return"),  # 9: refused, "r" is not read-only
        key("ctrl", "u"),
        # 3. Blocked text split over two type actions: the second piece never runs.
        type_("echo CANA"),  # 11
        type_("RY42 >canary.txt"),  # 12: blocked
        key("KP_Enter"),  # 13: runs "echo CANA", read-only
        # 2. A blocked chord with an extra key, in another order: bash would exit on Ctrl+D.
        key("shift", "ctrl", "d"),  # 14: blocked
        key("d", "alt", "Control_R"),  # 15: blocked
        Reply(xml_call(action="terminate", status="success")),
    ]
    server = ScriptedServer(script)
    try:
        proc = run_cli(
            server, tmp_path / "runs", "--approve", "guarded", "--risk-rules", str(rules), stdin=""
        )
    finally:
        server.close()
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr

    assert target.is_dir()
    assert not (tmp_path / "canary.txt").exists()
    assert term.proc.poll() is None  # Ctrl+D never reached bash: the xterm is still open
    # bash writes each line it ran to its history before its next prompt; wait for it (bounded).
    deadline = time.monotonic() + 30
    while not history.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    # Only the read-only line ran.
    assert history.read_text(encoding="utf-8").splitlines() == ["echo CANA"]

    _, steps, _ = only_run(runs=tmp_path / "runs")
    levels = {i: steps[i]["risk"]["level"] for i in (1, 3, 5, 8, 9, 12, 13, 14, 15)}
    assert levels == {
        1: "safe",
        3: "safe",
        5: "risky",
        8: "risky",
        9: "risky",
        12: "blocked",
        13: "safe",
        14: "blocked",
        15: "blocked",
    }
    for i in (5, 8, 9, 12, 14, 15):
        assert steps[i]["execution"] is None, steps[i]
    assert steps[13]["execution"]["ok"] is True
    assert steps[5]["risk"]["reason"] == (
        "Enter in a terminal runs a command that may change things: "
        "rmdir is not on the read-only list"
    )
    assert steps[8]["risk"]["reason"] == (
        "typing a command that looks dangerous: recursive or forced delete"
    )


@pytest.mark.parametrize("mode", ["auto", "ask"])
def test_blocked_never_runs_in_auto_or_ask_mode_however_it_is_split_or_chorded(
    xterm: Any, tmp_path: Path, mode: str
) -> None:
    """Blocked text in pieces and blocked chords with extra keys, approved by policy or person."""
    history = tmp_path / "history"
    rules = tmp_path / "risk.toml"
    rules.write_text('[risk]\nblocked_text = ["CANARY42"]\nblocked_keys = ["ctrl+d"]\n')
    term = xterm(
        f"cd {tmp_path} && HISTFILE={history} PROMPT_COMMAND='history -a' "
        "exec bash --norc --noprofile -i",
        position=(200, 200),
        columns=70,
        rows=10,
    )

    def reply(**args: Any) -> Reply:
        return Reply(xml_call(**args), reasoning="Go on.")

    script = [
        reply(action="left_click", coordinate=mp(term.center())),
        reply(action="type", text="echo CANA"),
        reply(action="wait", time=0.1),
        reply(action="type", text="RY42 >canary.txt"),  # 3: blocked, never typed
        reply(action="key", keys=["KP_Enter"]),  # runs "echo CANA"
        reply(action="key", keys=["shift", "ctrl", "d"]),  # 5: blocked
        reply(action="key", keys=["d", "alt", "Control_R"]),  # 6: blocked
        reply(action="terminate", status="success"),
    ]
    server = ScriptedServer(script)
    try:
        # In ask mode a person approves everything they are asked (Enter for each).
        proc = run_cli(
            server, tmp_path / "runs", "--approve", mode, "--risk-rules", str(rules),
            stdin="\n" * 20,
        )  # fmt: skip
    finally:
        server.close()
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "canary.txt").exists()
    assert term.proc.poll() is None  # Ctrl+D never reached bash
    deadline = time.monotonic() + 30
    while not history.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert history.read_text(encoding="utf-8").splitlines() == ["echo CANA"]
    _, steps, _ = only_run(runs=tmp_path / "runs")
    for i in (3, 5, 6):
        assert steps[i]["risk"]["level"] == "blocked", steps[i]["risk"]
        assert steps[i]["decision"]["by"] == "rules" and steps[i]["execution"] is None
