"""`run --approve guarded` with no terminal: risky actions on a real xterm are refused and told."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.test_run_cli import mp, only_run, run_cli, tool_response_of
from tests.support.scripted_server import Reply, ScriptedServer, xml_call


def test_guarded_refuses_risky_typing_and_enter_in_a_terminal(xterm: Any, tmp_path: Path) -> None:
    out = tmp_path / "typed.txt"
    term = xterm(f"cat > {out}", position=(200, 200), columns=60, rows=8)
    script = [
        Reply(xml_call(action="left_click", coordinate=mp(term.center())), reasoning="Focus it."),
        Reply(xml_call(action="type", text="sudo rm -rf /tmp/deskpilot-test"), reasoning="Clean."),
        Reply(xml_call(action="type", text="echo safe"), reasoning="Type a harmless command."),
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
    assert out.read_bytes() == b"echo safe"  # neither the sudo line nor an Enter reached cat

    info, steps, _ = only_run(runs=tmp_path / "runs")
    assert info["approval"] == "guarded"
    levels = [s.get("risk", {}).get("level") for s in steps]
    assert levels[:6] == ["safe", "risky", "safe", "risky", "safe", "safe"]
    assert steps[1]["decision"]["by"] == "guarded" and steps[1]["execution"] is None
    assert steps[3]["risk"]["rule"] == "terminal_enter" and steps[3]["execution"] is None
    assert steps[2]["execution"]["ok"] is True
    # The model is told, in the next request, that nothing ran and why.
    assert "Refused, nothing was executed: risky" in tool_response_of(server.requests[2])
    assert "Enter right after typing into a terminal" in tool_response_of(server.requests[4])


def test_a_plain_http_remote_endpoint_is_warned_about(xdisplay: str, tmp_path: Path) -> None:
    proc = run_cli(None, tmp_path / "runs", endpoint="http://deskpilot.invalid:8000/v1")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        "warning: deskpilot.invalid is neither loopback nor HTTPS: screenshots of your desktop "
        "travel unencrypted" in proc.stderr
    )
    quiet = run_cli(None, tmp_path / "runs", endpoint="https://deskpilot.invalid/v1")
    assert quiet.returncode == 2 and "warning" not in quiet.stderr
