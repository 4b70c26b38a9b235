"""End to end: `main.py run` drives real X apps from a scripted Qwen 3.5 server, and records it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from actions.screen import CoordinateSpace, Monitor, model_to_screen, screen_to_model
from agent.recording import read_steps
from tests.support.scripted_server import (
    Reply,
    ScriptedServer,
    json_call,
    structured_call,
    xml_call,
)

ROOT = Path(__file__).resolve().parents[2]
MONITOR = Monitor(1, 0, 0, 1920, 1080, primary=True)
REL = CoordinateSpace.relative()
TRICKY = "héllo wörld 你好 <>"


def mp(point: tuple[int, int]) -> list[float]:
    """A screen pixel as the model would name it (0-1000), rounded like a model would."""
    x, y = screen_to_model(point, REL, MONITOR)
    return [round(x, 1), round(y, 1)]


def run_cli(
    server: ScriptedServer | None,
    runs: Path,
    *extra: str,
    task: str = "do the thing",
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    endpoint: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    url = endpoint or (server.url if server else "http://127.0.0.1:9/v1")
    cmd = [sys.executable, "main.py", "run", task, "--endpoint", url, "--runs-dir", str(runs)]
    cmd += list(extra) or ["--approve", "auto"]
    return subprocess.run(
        cmd,
        cwd=ROOT,
        env=env or dict(os.environ),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def only_run(runs: Path) -> tuple[dict[str, Any], list[dict[str, Any]], Path]:
    dirs = [d for d in runs.iterdir() if d.is_dir()]
    assert len(dirs) == 1, dirs
    info = json.loads((dirs[0] / "run.json").read_text())
    steps, _ = read_steps(dirs[0] / "steps.jsonl")  # the last line of each step
    return info, steps, dirs[0]


def tool_response_of(request: dict[str, Any]) -> str:
    """The text of the last user message of a request (the tool response for the last step)."""
    content = request["messages"][-1]["content"]
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if p.get("type") == "text")


def test_a_run_drives_qt_and_xterm_in_all_three_formats(
    probe_app: Any, xterm: Any, tmp_path: Path
) -> None:
    app = probe_app((40, 40, 880, 700))
    out = tmp_path / "typed.txt"
    term = xterm(f"cat > {out}", position=(1000, 100), columns=60, rows=8)
    field = app.center("text_field")
    x, y, w, h = app.rect("canvas")
    a, b = (x + w // 4, y + h // 3), (x + 3 * w // 4, y + 2 * h // 3)
    canvas = app.center("canvas")
    script = [
        # XML in content with reasoning_content (vLLM --reasoning-parser without a tool parser).
        Reply(xml_call(action="left_click", coordinate=mp(field)), reasoning="Click the field."),
        # JSON in content, with <think> inline.
        Reply("<think>\nNow type.\n</think>\n\n" + json_call(action="type", text=TRICKY)),
        # Structured tool_calls (vLLM --tool-call-parser qwen3_coder).
        Reply("", tool_calls=structured_call(action="key", keys=["ctrl", "a"])),
        Reply(xml_call(action="scroll", coordinate=mp(canvas), pixels=-3)),
        Reply("", tool_calls=structured_call(action="hscroll", coordinate=mp(canvas), pixels=2)),
        Reply(xml_call(action="left_click_drag", start_coordinate=mp(a), coordinate=mp(b))),
        Reply(xml_call(action="right_click", coordinate=mp(canvas))),
        Reply(xml_call(action="left_click", coordinate=mp(term.center()))),
        Reply(json_call(action="type", text=TRICKY + "\n")),
        Reply("", tool_calls=structured_call(action="key", keys=["ctrl", "d"])),
        Reply("All done.\n" + xml_call(action="terminate", status="success")),
    ]
    server = ScriptedServer(script)
    try:
        proc = run_cli(server, tmp_path / "runs")
    finally:
        server.close()
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr

    # The effects in the apps.
    # The text field logs no presses, only keys and text; canvas presses come from the drag
    # (left, at its start) and the right click.
    presses = [e for e in app.events() if e["event"] == "press"]
    assert [p["button"] for p in presses] == ["left", "right"]
    assert abs(presses[0]["x"] - a[0]) <= 1 and abs(presses[0]["y"] - a[1]) <= 1
    assert abs(presses[1]["x"] - canvas[0]) <= 1 and abs(presses[1]["y"] - canvas[1]) <= 1
    fx, fy = model_to_screen(tuple(mp(field)), REL, MONITOR)  # type: ignore[arg-type]
    app.wait_text(TRICKY)
    keys = [e for e in app.events() if e["event"] == "key"]
    assert any(e.get("modifiers") and "ctrl" in str(e["modifiers"]).lower() for e in keys)
    wheels = [e for e in app.events() if e["event"] == "wheel"]
    assert [w["dy"] for w in wheels if w["dy"]] == [-120] * 3
    assert [w["dx"] for w in wheels if w["dx"]] == [-120] * 2  # rightward turns, as Qt reports
    drags = [e for e in app.events() if e["event"] == "drag"]
    assert len(drags) == 1
    assert abs(drags[0]["start"][0] - a[0]) <= 1 and abs(drags[0]["end"][1] - b[1]) <= 1
    assert term.wait_exit(timeout_s=20) == 0
    assert out.read_bytes() == (TRICKY + "\n").encode("utf-8")

    # What the server saw: tools, images, history as text, results fed back.
    assert len(server.requests) == len(script)
    first, last = server.requests[0], server.requests[-1]
    assert first["tools"][0]["function"]["name"] == "computer_use"
    assert first["stream"] is True
    images = [
        p
        for m in last["messages"]
        if isinstance(m["content"], list)
        for p in m["content"]
        if p.get("type") == "image_url"
    ]
    assert len(images) == 3  # the last K=3 screenshots
    assert images[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assistant = [m for m in last["messages"] if m["role"] == "assistant"]
    # The last steps in full (LoopSettings.history_text 4, moved in chunks of 4: steps 5-10),
    # as Qwen 3.5's tool_calls; the 4 before as one line each.
    assert (
        len(assistant) == 6 and "hscroll" in assistant[0]["tool_calls"][0]["function"]["arguments"]
    )
    summary = next(m["content"] for m in last["messages"] if "Earlier steps" in str(m["content"]))
    assert "1. left_click(coordinate=" in summary and "4. scroll(" in summary
    assert "Executed key" in tool_response_of(last)

    # The recording.
    info, steps, run_dir = only_run(tmp_path / "runs")
    assert info["outcome"]["status"] == "success" and info["ended_at"]
    assert info["task"] == "do the thing" and info["model"] == server.model
    assert "127.0.0.1" in info["backend"]["endpoint"]
    assert [s["index"] for s in steps] == list(range(len(script)))
    assert [s["action"]["action"] for s in steps] == [
        "left_click", "type", "key", "scroll", "hscroll", "left_click_drag", "right_click",
        "left_click", "type", "key", "terminate",
    ]  # fmt: skip
    assert steps[0]["thinking"] == "Click the field."
    assert steps[1]["thinking"].strip() == "Now type."
    assert steps[1]["action"]["text"] == TRICKY
    assert all(s["decision"]["kind"] == "approve" for s in steps)
    assert steps[0]["execution"]["ok"] and steps[0]["execution"]["points"] == [[fx, fy]]
    for s in steps:
        assert (run_dir / s["screenshot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert s["screen"]["captured_size"] == [1920, 1080]
        assert s["tokens"]["visual"] == 2040
        assert s["timings"]["model_s"] >= 0 and s["ended_at"]


def test_invalid_output_executes_nothing_and_is_fed_back(probe_app: Any, tmp_path: Path) -> None:
    app = probe_app((40, 40, 880, 700))
    field = mp(app.center("text_field"))
    bad = [
        xml_call(action="left_click", coordinate=[500, 1200]),  # outside 0-1000
        xml_call(action="left_click", coordinate=field) + xml_call(action="type", text="x"),
    ]
    script = [Reply(bad[0]), Reply(bad[1]), Reply(xml_call(action="answer", text="forty-two"))]
    server = ScriptedServer(script)
    try:
        proc = run_cli(server, tmp_path / "runs")
    finally:
        server.close()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "forty-two"
    time.sleep(0.3)
    assert [e for e in app.events() if e["event"] in ("press", "text")] == []
    assert "nothing was executed" in tool_response_of(server.requests[1])
    assert "1000" in tool_response_of(server.requests[1])
    assert "2 tool calls" in tool_response_of(server.requests[2])
    info, steps, _ = only_run(tmp_path / "runs")
    assert info["outcome"]["status"] == "answered" and info["outcome"]["answer"] == "forty-two"
    assert steps[0]["action"] is None and steps[0]["parse_error"]
    assert steps[0]["execution"] is None and steps[0]["raw_output"] == bad[0]
    assert steps[1]["action"] is None and steps[1]["execution"] is None
    assert proc.stderr.count("invalid output, nothing executed") == 2


def test_three_invalid_outputs_in_a_row_end_the_run(xdisplay: str, tmp_path: Path) -> None:
    script = [Reply("I think I should click somewhere."), Reply("<tool_call>{oops"), Reply("")]
    server = ScriptedServer(script)
    try:
        proc = run_cli(server, tmp_path / "runs")
    finally:
        server.close()
    assert proc.returncode == 1
    info, steps, _ = only_run(tmp_path / "runs")
    assert info["outcome"]["status"] == "invalid_output" and len(steps) == 3
    assert all(s["parse_error"] for s in steps)


def test_ask_mode_approve_edit_skip_reject_then_stop(probe_app: Any, tmp_path: Path) -> None:
    app = probe_app((40, 40, 880, 700))
    x, y, w, h = app.rect("canvas")
    p1, p2, p3 = (x + 100, y + 100), (x + 300, y + 200), (x + 500, y + 300)
    script = [
        Reply(xml_call(action="left_click", coordinate=mp(p1))),
        Reply(xml_call(action="left_click", coordinate=mp((x + 10, y + 10)))),
        Reply(xml_call(action="right_click", coordinate=mp(p3))),
        Reply(xml_call(action="double_click", coordinate=mp(p3))),
        Reply(xml_call(action="left_click", coordinate=mp(p3))),
    ]
    edit = json.dumps({"action": "left_click", "coordinate": mp(p2)})
    answers = f"\ne\n{edit}\ns\nr\nthat is the wrong button\nq\n"
    server = ScriptedServer(script)
    try:
        proc = run_cli(server, tmp_path / "runs", "--approve", "ask", stdin=answers)
    finally:
        server.close()
    assert proc.returncode == 1, proc.stderr
    time.sleep(0.3)
    presses = [e for e in app.events() if e["event"] == "press"]
    assert len(presses) == 2, presses  # the approved click and the edited one, nothing else
    assert abs(presses[0]["x"] - p1[0]) <= 1 and abs(presses[1]["x"] - p2[0]) <= 1
    assert "changed your action" in tool_response_of(server.requests[2])
    assert "skipped" in tool_response_of(server.requests[3])
    assert "that is the wrong button" in tool_response_of(server.requests[4])
    info, steps, _ = only_run(tmp_path / "runs")
    assert info["outcome"]["status"] == "stopped"
    assert [s["decision"]["kind"] for s in steps] == ["approve", "edit", "skip", "reject", "stop"]
    assert steps[1]["decision"]["edited_action"]["coordinate"] == mp(p2)
    assert steps[3]["decision"]["note"] == "that is the wrong button"
    assert all(s["execution"] is None for s in steps[2:])


def test_breakpoint_in_auto_mode_steps_until_continue(probe_app: Any, tmp_path: Path) -> None:
    app = probe_app((40, 40, 880, 700))
    x, y, w, h = app.rect("canvas")
    points = [(x + 60 + 80 * i, y + 100 + 40 * i) for i in range(5)]
    script = [
        Reply(xml_call(action="left_click", coordinate=mp(points[0]))),
        Reply(xml_call(action="left_click", coordinate=mp(points[1]))),
        Reply(xml_call(action="right_click", coordinate=mp(points[2]))),
        Reply(xml_call(action="left_click", coordinate=mp(points[3]))),
        Reply(xml_call(action="left_click", coordinate=mp(points[4]))),
        Reply(xml_call(action="terminate", status="success")),
    ]
    answers = "\ns\nc\n"  # step 2: Enter, step 3: skip, step 4: continue; then auto again
    server = ScriptedServer(script)
    try:
        proc = run_cli(
            server, tmp_path / "runs", "--approve", "auto", "--break-at", "2", stdin=answers
        )
    finally:
        server.close()
    assert proc.returncode == 0, proc.stderr
    assert "[breakpoint: step 2]" in proc.stderr and "[c] continue" in proc.stderr
    assert proc.stderr.count("[c] continue") == 3  # asked at steps 2, 3 and 4 only
    time.sleep(0.3)
    presses = [e for e in app.events() if e["event"] == "press"]
    # The skipped right click never ran; every other click ran once, in order.
    expected = [points[0], points[1], points[3], points[4]]
    assert len(presses) == len(expected), presses
    for press, (px, py) in zip(presses, expected, strict=True):
        assert abs(press["x"] - px) <= 1 and abs(press["y"] - py) <= 1
    info, steps, _ = only_run(tmp_path / "runs")
    assert info["outcome"]["status"] == "success"
    decisions = [s["decision"] for s in steps]
    assert [(d["kind"], d["by"], d.get("breakpoint")) for d in decisions] == [
        ("approve", "auto", None),
        ("approve", "user", "step 2"),
        ("skip", "user", "stepping"),
        ("approve", "user", "stepping"),
        ("approve", "auto", None),
        ("approve", "final", None),
    ]
    assert steps[2]["execution"] is None
    assert all(s["execution"]["ok"] for s in steps[:5] if s["index"] != 2)


def test_model_defaults_to_the_first_listed_and_api_key_is_sent(
    xdisplay: str, tmp_path: Path
) -> None:
    server = ScriptedServer(
        [Reply(xml_call(action="terminate", status="failure"))],
        model="served-model",
        api_key="s3cret",
    )
    env = dict(os.environ, DESKPILOT_API_KEY="s3cret")
    try:
        proc = run_cli(server, tmp_path / "runs", env=env)
    finally:
        server.close()
    assert proc.returncode == 1  # terminate with failure
    assert server.requests[0]["model"] == "served-model"
    info, _, run_dir = only_run(tmp_path / "runs")
    assert info["model"] == "served-model" and info["outcome"]["status"] == "failure"
    for path in run_dir.rglob("*.json*"):
        assert "s3cret" not in path.read_text()


def test_wrong_api_key_is_a_one_line_error(xdisplay: str, tmp_path: Path) -> None:
    server = ScriptedServer([], api_key="right")
    env = dict(os.environ, DESKPILOT_API_KEY="wrong")
    try:
        proc = run_cli(server, tmp_path / "runs", env=env)
    finally:
        server.close()
    assert proc.returncode == 2
    assert "DESKPILOT_API_KEY" in proc.stderr and "Traceback" not in proc.stderr
    assert "wrong" not in proc.stderr


def test_server_that_refuses_tools_gets_them_in_the_system_prompt(
    xdisplay: str, tmp_path: Path
) -> None:
    server = ScriptedServer([Reply(xml_call(action="terminate", status="success"))])
    server.reject_tools = True
    try:
        proc = run_cli(server, tmp_path / "runs")
    finally:
        server.close()
    assert proc.returncode == 0, proc.stderr
    request = server.requests[0]
    assert "tools" not in request
    system = request["messages"][0]["content"]
    assert "<tools>" in system and "computer_use" in system


def test_unreachable_endpoint_exits_2_with_one_line(xdisplay: str, tmp_path: Path) -> None:
    proc = run_cli(None, tmp_path / "runs", endpoint="http://127.0.0.1:9/v1")
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot reach http://127.0.0.1:9/v1" in lines[0], proc.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_no_display_exits_2_with_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    server = ScriptedServer([])
    try:
        proc = run_cli(server, tmp_path / "runs", env=env)
    finally:
        server.close()
    assert proc.returncode == 2
    assert "no display" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_server_failing_mid_run_keeps_completed_steps(probe_app: Any, tmp_path: Path) -> None:
    app = probe_app((40, 40, 880, 700))
    script = [Reply(xml_call(action="mouse_move", coordinate=mp(app.center("canvas")))),
              Reply(status=500), Reply(status=500)]  # the loop retries once  # fmt: skip
    server = ScriptedServer(script)
    try:
        proc = run_cli(server, tmp_path / "runs", "--approve", "auto", "--retries", "1")
    finally:
        server.close()
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "HTTP 500" in proc.stderr
    info, steps, _ = only_run(tmp_path / "runs")
    assert info["outcome"]["status"] == "error"
    assert steps[0]["action"]["action"] == "mouse_move" and steps[0]["execution"]["ok"]
    assert "HTTP 500" in steps[1]["error"]
    assert "retrying in 1 s" in proc.stderr
    assert [e["retryable"] for e in steps[1]["backend_errors"]] == [True, True]


@pytest.mark.parametrize(
    "bad",
    [
        ["--max-steps", "0"],
        ["--approve", "sometimes"],
        ["--approve", "auto", "--break-at", "0"],
        ["--approve", "auto", "--break-at", "two"],
        ["--approve", "auto", "--break-on", "left_click,wiggle"],
    ],
)
def test_bad_flags_exit_2(bad: list[str], tmp_path: Path) -> None:
    proc = run_cli(None, tmp_path / "runs", *bad)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    if any(flag.startswith("--break") for flag in bad):
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def _start_cli(server: ScriptedServer, runs: Path) -> subprocess.Popen[str]:
    cmd = [sys.executable, "main.py", "run", "t", "--endpoint", server.url, "--approve", "auto",
           "--runs-dir", str(runs)]  # fmt: skip
    return subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for_steps(runs: Path, n: int, timeout_s: float = 30) -> Path:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for d in runs.glob("*/steps.jsonl"):
            if len([s for s in read_steps(d)[0] if not s.get("interrupted")]) >= n:
                return d.parent
        time.sleep(0.05)
    raise AssertionError(f"{n} steps were not recorded in time")


def test_ctrl_c_mid_generation_stops_and_keeps_the_steps(xdisplay: str, tmp_path: Path) -> None:
    import signal

    from agent.recording import read_run

    move = xml_call(action="mouse_move", coordinate=[500, 500])
    server = ScriptedServer([Reply(move), Reply(move), Reply(move, delay_s=20)])
    proc = _start_cli(server, tmp_path / "runs")
    try:
        run_dir = _wait_for_steps(tmp_path / "runs", 2)
        time.sleep(0.5)  # the third request is being answered, slowly
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
        server.close()
    assert proc.returncode == 1 and "Traceback" not in err
    run = read_run(run_dir)
    assert run.info["outcome"]["status"] == "stopped"
    assert [s["index"] for s in run.steps] == [0, 1, 2]
    assert run.steps[2]["action"] is None and "interrupted" in run.steps[2]["error"]


def test_sigkill_mid_run_leaves_a_readable_recording(xdisplay: str, tmp_path: Path) -> None:
    from agent.recording import read_run

    # Different points: the same move on an unchanged screen would be a runaway pause.
    moves = [xml_call(action="mouse_move", coordinate=[400 + 10 * n, 400]) for n in range(4)]
    server = ScriptedServer([Reply(m) for m in moves[:3]] + [Reply(moves[3], delay_s=20)])
    proc = _start_cli(server, tmp_path / "runs")
    try:
        run_dir = _wait_for_steps(tmp_path / "runs", 3)
        proc.kill()
        proc.wait(timeout=10)
    finally:
        server.close()
    run = read_run(run_dir)
    assert [s["index"] for s in run.steps] == [0, 1, 2]
    assert all(s["execution"]["ok"] for s in run.steps)
    assert any("did not finish" in w for w in run.warnings)
