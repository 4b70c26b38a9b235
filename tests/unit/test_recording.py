"""Recordings: written step by step, readable after a crash mid-line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.recording import FORMAT_VERSION, Recorder, read_run


def test_round_trip(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, {"task": "t", "model": "m", "backend": {"endpoint": "http://x/v1"}})
    shot = rec.save_screenshot(0, b"\x89PNG fake")
    rec.append_step(
        {"index": 0, "screenshot": shot, "raw_output": "héllo <tool_call>", "action": None}
    )
    rec.append_step({"index": 1, "screenshot": None, "parse_error": "no tool call"})
    rec.finish({"status": "success"})
    run = read_run(rec.dir)
    assert run.warnings == []
    assert run.info["task"] == "t" and run.info["outcome"] == {"status": "success"}
    assert run.info["steps"] == 2 and run.info["ended_at"]
    assert run.info["format_version"] == FORMAT_VERSION
    assert [s["index"] for s in run.steps] == [0, 1]
    assert run.steps[0]["raw_output"] == "héllo <tool_call>"
    assert (rec.dir / shot).read_bytes() == b"\x89PNG fake"
    assert not list(rec.dir.rglob(".*.tmp"))


def test_steps_are_on_disk_before_the_run_ends(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, {"task": "t"})
    rec.append_step({"index": 0})
    # Another reader (a crash, the replay viewer) sees the step at once.
    lines = (rec.dir / "steps.jsonl").read_text().splitlines()
    assert json.loads(lines[0]) == {"index": 0}
    run = read_run(rec.dir)
    assert len(run.steps) == 1
    assert any("did not finish" in w for w in run.warnings)


def test_torn_last_line_is_skipped_with_a_warning(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, {"task": "t"})
    rec.append_step({"index": 0, "x": 1})
    rec.append_step({"index": 1, "x": 2})
    with open(rec.dir / "steps.jsonl", "a") as f:
        f.write('{"index": 2, "x": ')  # the process died here
    run = read_run(rec.dir)
    assert [s["index"] for s in run.steps] == [0, 1]
    assert any("torn last line" in w for w in run.warnings)


def test_run_ids_are_unique(tmp_path: Path) -> None:
    dirs = {Recorder(tmp_path, {"task": str(i)}).dir for i in range(20)}
    assert len(dirs) == 20


# --------------------------------------------------------------------------- secrets


def leaks(run_dir: Path, secret: str) -> list[str]:
    """Where the secret (verbatim, JSON-escaped, or as a 12-character piece) is in the run dir."""
    forms = {secret, json.dumps(secret, ensure_ascii=False)[1:-1], json.dumps(secret)[1:-1]}
    pieces = {f[i : i + 12] for f in forms for i in range(max(1, len(f) - 11))}
    found = []
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for piece in pieces:
            # Each form also as it sits inside a JSON string in the file (escaped once more).
            for stored in (piece, json.dumps(piece, ensure_ascii=False)[1:-1]):
                if stored.encode("utf-8") in data:
                    found.append(f"{path.name}: {stored!r}")
    return found


PASSWORD = "hunter2-Xk9#pQ"


def step_record(index: int, **fields: object) -> dict[str, object]:
    return {"index": index, "thinking": "", "action": None, "decision": None, **fields}


def test_typed_password_is_redacted_everywhere_and_the_reason_recorded(tmp_path: Path) -> None:
    from agent.secrets import MARKER

    rec = Recorder(tmp_path, {"task": "log in"})
    # Before the password is typed the model already names it: this line is written as is...
    rec.append_step(step_record(0, thinking=f"Next I type the password {PASSWORD}."))
    assert leaks(rec.dir, PASSWORD) != []  # (the check finds what is there)
    typed = {"action": "type", "text": PASSWORD}
    rec.append_step(
        step_record(
            1,
            thinking="I type the password.",
            raw_output=f"<tool_call>{json.dumps(typed)}</tool_call>",
            tool_calls=[{"name": "computer_use", "arguments": json.dumps(typed)}],
            action=typed,
            decision={"kind": "approve", "edited_action": None},
            execution={"ok": True, "action": typed},
            result=f'Executed type(text="{PASSWORD[:9]}...").',  # cut off by a truncation
        )
    )
    rec.append_step(step_record(2, result=f"echo: {PASSWORD}", action={"action": "key"}))
    rec.finish({"status": "success", "message": f"typed {PASSWORD}", "answer": PASSWORD})
    # ...and re-scrubbed once the typing shows it is a password.
    assert leaks(rec.dir, PASSWORD) == []
    run = read_run(rec.dir)
    assert run.warnings == [] and [s["index"] for s in run.steps] == [0, 1, 2]
    step = run.steps[1]
    assert step["redacted"] == ["typed text: password field"]
    assert step["action"] == {"action": "type", "text": MARKER}
    assert step["execution"]["action"] == {"action": "type", "text": MARKER}
    assert MARKER in step["raw_output"] and MARKER in step["tool_calls"][0]["arguments"]
    assert step["result"] == f'Executed type(text="{MARKER}...").'
    assert run.steps[0]["thinking"] == f"Next I type the password {MARKER}."
    assert "redacted" not in run.steps[0] and "redacted" not in run.steps[2]
    assert run.info["outcome"]["answer"] == MARKER and run.info["steps"] == 3


def test_an_edited_action_with_a_key_is_redacted(tmp_path: Path) -> None:
    key = "ghp_" + "a1B2c3D4" * 5
    rec = Recorder(tmp_path, {"task": "t"})
    rec.append_step(
        step_record(
            0,
            action={"action": "type", "text": "placeholder"},
            decision={"kind": "edit", "edited_action": {"action": "type", "text": key}},
            execution={"ok": True, "action": {"action": "type", "text": key}},
        )
    )
    rec.finish({"status": "success"})
    assert leaks(rec.dir, key) == []
    assert read_run(rec.dir).steps[0]["redacted"] == ["typed text: API key pattern (GitHub)"]


def test_user_secrets_task_secrets_and_the_api_key_are_never_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.secrets import Redactor

    api_key = "sk-test-0123456789abcdefXYZ"
    monkeypatch.setenv("MY_ENDPOINT_KEY", api_key)
    info = {
        "task": "log in as bob with password S3cr3t!pass, PIN code 4821 99",
        "backend": {"kind": "openai", "api_key_env": "MY_ENDPOINT_KEY", "api_key_set": True},
    }
    rec = Recorder(tmp_path, info, redactor=Redactor(["bob-private-note"]))
    rec.append_step(step_record(0, error=f"server said: bad key {api_key}; bob-private-note"))
    rec.redactor.add("added-later-by-the-app")  # the app marks more text secret mid-run
    rec.append_step(step_record(1, thinking="S3cr3t!pass added-later-by-the-app"))
    rec.finish({"status": "success"})
    for secret in (api_key, "S3cr3t!pass", "bob-private-note", "added-later-by-the-app"):
        assert leaks(rec.dir, secret) == [], secret
    run = read_run(rec.dir)
    assert run.info["task"] == "log in as bob with password [REDACTED], PIN code 4821 99"
    assert run.info["redacted"] == ["task: password-like token"]
    assert run.info["backend"]["api_key_env"] == "MY_ENDPOINT_KEY"
    assert rec.info["task"] == info["task"]  # kept as given in memory


def test_recorded_prompts_rebuild_as_the_redacted_prompts(tmp_path: Path) -> None:
    from agent.backends.base import ChatMessage
    from agent.recording import encode_message, prompt_messages
    from agent.secrets import Redactor

    rec = Recorder(tmp_path, {"task": "t"})
    system, task = ChatMessage("system", ("sys",)), ChatMessage("user", ("log in",))
    call = ChatMessage("assistant", (f'{{"action": "type", "text": "{PASSWORD}"}}',))
    reply = ChatMessage("user", (f"Executed type({PASSWORD}).",))
    prompts = [
        [system, task],
        [system, task],
        [system, task, call, reply],
        [system, task, call, reply, call, reply],
    ]
    thinking = ["", "I type the password.", "", ""]
    actions = [None, {"action": "type", "text": PASSWORD}, None, None]
    for i, messages in enumerate(prompts):
        prompt = rec.prompt_record(messages)
        rec.append_step(
            step_record(i, prompt=prompt.to_json(), thinking=thinking[i], action=actions[i])
        )
    rec.finish({"status": "success"})
    assert leaks(rec.dir, PASSWORD) == []
    run = read_run(rec.dir)
    assert [s["prompt"]["same_as_previous"] for s in run.steps] == [0, 2, 2, 4]
    expected = Redactor([PASSWORD])
    for i, messages in enumerate(prompts):
        want = expected.redact([encode_message(m, rec.dir) for m in messages])
        assert prompt_messages(run, i) == want
