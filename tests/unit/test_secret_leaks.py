"""Secrets encoded or typed in pieces: no byte of a run folder, export or crash log spells them."""

from __future__ import annotations

import html
import json
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import main
from actions.types import Key, LeftClick, Type, describe
from agent.approval import auto_approve
from agent.backends.openai_compat import API_KEY_ENV, OpenAIBackend
from agent.loop import LoopSettings, RunResult, run_task
from agent.protocol import format_tool_call
from agent.recording import Recorder, read_run, run_info, typing_of
from agent.secrets import MARKER, Redactor
from tests.support.fakes import MONITOR
from tests.support.fakes import FakeScreen as Screen
from tests.support.fakes import RecordingExecutor as Executor
from tests.support.scripted_server import Reply, ScriptedServer, structured_call, xml_call

ROOT = Path(__file__).resolve().parents[2]
SECRET = "Tr0ub4dor&3x"
API_KEY = "sk-leak-test-5a4b3c2d1e0f9988"


def encodings(secret: str) -> set[str]:
    """The secret as any file could hold it: verbatim and in every encoding the tests use."""
    forms = {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        "".join(f"\\u{ord(c):04x}" for c in secret),
        "".join(f"\\x{ord(c):02x}" for c in secret),
        "".join(f"&#{ord(c)};" for c in secret),
        "".join(f"&#x{ord(c):x};" for c in secret),
        html.escape(secret, quote=True),
        urllib.parse.quote(secret, safe=""),
        "".join(f"%{b:02X}" for b in secret.encode()),
        repr(secret)[1:-1],
    }
    return forms | {json.dumps(f)[1:-1] for f in forms}  # each once more inside a JSON string


def leaks(folder: Path, secret: str) -> list[str]:
    """Every file under folder holding the secret in any encoding (grep of the bytes)."""
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        found += [f"{path.name}: {f!r}" for f in encodings(secret) if f.encode() in data]
    return found


# --------------------------------------------------------------------------- decoding


@pytest.mark.parametrize(
    "text",
    [
        '{"text": "\\u0054r0ub4dor\\u00263x"}',  # JSON \u escapes
        '{"text": "\\\\u0054r0ub4dor&3x"}',  # JSON in a JSON string
        "\\x54r0ub4dor\\x263x",  # \xNN
        "\\124r0ub4dor&3x",  # octal
        "\\N{LATIN CAPITAL LETTER T}r0ub4dor&3x",  # named escape
        "Tr0ub4dor&amp;3x",  # HTML named entity
        "&#84;r0ub4dor&#38;3x",  # HTML decimal
        "&#x54;r0ub4dor&#x26;3x",  # HTML hex
        "Tr0ub4dor%263x",  # percent-encoded
        "%54%72%30%75%62%34%64%6F%72%26%33%78",  # every byte
        "Tr0ub4dor\\u0026amp;3x",  # an entity written with a JSON escape
        "unknown action 'Tr0ub4dor&3x'",  # a parse error quoting it
    ],
)
def test_encoded_forms_are_decoded_then_redacted(text: str) -> None:
    r = Redactor([SECRET])
    out = r.redact_text(text)
    assert MARKER in out
    assert not any(f in out for f in encodings(SECRET)), out


def test_surrogate_pairs_and_utf8_percent_runs() -> None:
    secret = "pä🙂ss-9X"
    r = Redactor([secret])
    as_json = json.dumps({"text": secret})  # \u00e4 and \ud83d\ude42
    assert "\\ud83d\\ude42" in as_json
    assert r.redact_text(as_json) == f'{{"text": "{MARKER}"}}'
    assert r.redact_text("q=" + urllib.parse.quote(secret) + "&x=1") == f"q={MARKER}&x=1"


def test_only_the_encoded_span_goes() -> None:
    r = Redactor([SECRET])
    assert r.redact_text('keep {"a": "\\u0054r0ub4dor&3x", "b": 2} this') == (
        f'keep {{"a": "{MARKER}", "b": 2}} this'
    )
    assert r.redact_text("50% of &lt;text&gt; stays \\n as is") == (
        "50% of &lt;text&gt; stays \\n as is"
    )


# --------------------------------------------------------------------------- the typed stream


@pytest.mark.parametrize("n", [2, 3, 4, 5, len(SECRET)])
def test_a_secret_typed_in_n_pieces_is_spelled_and_each_piece_redacted(n: int) -> None:
    size = -(-len(SECRET) // n)
    pieces = [SECRET[i : i + size] for i in range(0, len(SECRET), size)]
    r = Redactor([SECRET])
    spelled = [r.typed(p, step=i, echoes=[f"type(text={p!r})"]) for i, p in enumerate(pieces)]
    # The whole secret is spelled at the last piece (a password-like prefix may be before).
    assert spelled[-1] or any(spelled)
    for i, piece in enumerate(pieces):
        if len(piece) >= 4:
            assert r.redact_text(f"x {piece} y") == f"x {MARKER} y"
        else:
            assert piece in r.pieces_of_step(i)
        assert r.redact_text(f"type(text={piece!r})") == MARKER  # its echo, wherever it is


def test_keys_typed_one_at_a_time_with_shift_and_backspace() -> None:
    secret = "Hunt3r!x"
    r = Redactor([secret])
    chords = [["shift", "h"], ["u"], ["n"], ["q"], ["BackSpace"], ["t"], ["3"], ["r"], ["!"]]
    chords += [["ctrl", "l"], ["x"]]  # a command chord types nothing
    typed = [typing_of({"action": "key", "keys": c}) for c in chords]
    assert [t[0] if t else None for t in typed] == list("Hunq\bt3r!") + [None, "x"]
    for step, t in enumerate(typed):
        if t is not None:
            r.typed(t[0], step=step, echoes=t[1])
    assert r.pieces_of_step(0) == {"H"} and r.pieces_of_step(10) == {"x"}
    assert r.redact_text('key(keys=["shift", "h"])') == MARKER


def test_a_secret_learnt_later_marks_pieces_typed_before() -> None:
    r = Redactor()
    r.typed("bluesky", step=0)
    r.typed("lantern", step=2)
    assert r.redact_text("bluesky") == "bluesky"
    version = r.version
    r.add("blueskylantern")
    assert r.version > version + 1  # the secret, then its pieces
    assert r.redact_text("bluesky and lantern") == f"{MARKER} and {MARKER}"
    assert r.pieces_of_step(0) == {"bluesky"}


def test_an_api_key_typed_in_pieces_is_found_without_being_told() -> None:
    key = "sk-proj-Ab3dE6gH9jK2mN5pQ8sT1vW4yZ7"
    r = Redactor()
    for i in range(0, len(key), 7):
        r.typed(key[i : i + 7], step=i)
    assert key in r and r.redact_text(key) == MARKER


def test_ordinary_typing_in_pieces_redacts_nothing() -> None:
    r = Redactor([SECRET])
    for step, piece in enumerate(["cd /tmp", "\n", "ls -la", "\n", "echo hello", "\n"]):
        assert not r.typed(piece, step=step)
    assert r.version == 1 and all(not r.pieces_of_step(s) for s in range(6))


# --------------------------------------------------------------------------- through the loop


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedServer]:
    monkeypatch.setenv(API_KEY_ENV, API_KEY)
    srv = ScriptedServer([], api_key=API_KEY)
    yield srv
    srv.close()


def run(server: ScriptedServer, tmp_path: Path, task: str) -> tuple[RunResult, Executor, Path]:
    backend = OpenAIBackend(server.url)
    settings = LoopSettings(max_steps=20, settle_min_s=0.0)
    info = run_info(
        task, backend=backend, approval="auto", monitor=MONITOR, settings=settings.to_json()
    )
    recorder = Recorder(tmp_path / "runs", info, redactor=Redactor([SECRET]))
    executor = Executor()
    result = run_task(
        task,
        backend=backend,
        screen=Screen(),
        executor=executor,
        decide=auto_approve,
        recorder=recorder,
        settings=settings,
    )
    backend.close()
    return result, executor, recorder.dir


def typed_texts(run_dir: Path) -> list[str]:
    """The text of every recorded type action, and what every recorded key chord types."""
    out = []
    for step in read_run(run_dir).steps:
        typed = typing_of(step.get("action"))
        if typed is not None:
            out.append(typed[0])
    return out


def check_run(run_dir: Path, tmp_path: Path) -> None:
    """The run folder and its HTML export hold the secret in no encoding, nor the API key."""
    assert leaks(run_dir, SECRET) == [] and leaks(run_dir, API_KEY) == []
    assert SECRET not in "".join(typed_texts(run_dir))  # the recorded pieces do not spell it
    out = tmp_path / "export" / "run.html"
    out.parent.mkdir()
    proc = subprocess.run(
        [sys.executable, "main.py", "export", str(run_dir), "--format", "html"]
        + ["--out", str(out), "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert proc.returncode == 0, proc.stderr
    assert leaks(out.parent, SECRET) == []


@pytest.mark.parametrize("n", [2, 3, 5])
def test_split_across_type_actions_with_clicks_between(
    server: ScriptedServer, tmp_path: Path, n: int
) -> None:
    size = -(-len(SECRET) // n)
    pieces = [SECRET[i : i + size] for i in range(0, len(SECRET), size)]
    for piece in pieces:
        server.script.append(Reply(xml_call(action="type", text=piece), reasoning="Next part."))
        server.script.append(Reply(xml_call(action="left_click", coordinate=[500, 300])))
    server.script.append(Reply(xml_call(action="terminate", status="success")))
    result, executor, run_dir = run(server, tmp_path, "log in")
    assert result.outcome == "success"
    assert [a.text for a in executor.done if isinstance(a, Type)] == pieces
    check_run(run_dir, tmp_path)
    # Each piece's echoes (the result line, the tool call in later prompts) are gone too.
    paths = [*run_dir.rglob("*"), tmp_path / "export" / "run.html"]
    files = [p.read_bytes() for p in paths if p.is_file()]
    for piece in pieces:
        for echo in (describe(Type(piece)), format_tool_call(Type(piece))):
            for form in (echo, json.dumps(echo, ensure_ascii=False)[1:-1], html.escape(echo)):
                assert not any(form.encode() in data for data in files), (piece, form)
    steps = read_run(run_dir).steps
    for step in steps[: 2 * len(pieces) : 2]:
        assert step["action"] == {"action": "type", "text": MARKER}, step
        assert "typed text: part of a secret typed in pieces" in step["redacted"]


def test_typed_one_key_at_a_time(server: ScriptedServer, tmp_path: Path) -> None:
    chords = [["shift", ch.lower()] if ch.isupper() else [ch] for ch in SECRET]
    for keys in chords:
        server.script.append(Reply(xml_call(action="key", keys=keys), reasoning="One key."))
    server.script.append(Reply(xml_call(action="terminate", status="success")))
    result, executor, run_dir = run(server, tmp_path, "log in")
    assert result.outcome == "success" and len(executor.done) == len(SECRET)
    check_run(run_dir, tmp_path)
    steps = read_run(run_dir).steps
    assert all(s["action"] == {"action": "key", "keys": [MARKER]} for s in steps[:-1])
    data = b"".join(p.read_bytes() for p in run_dir.rglob("*") if p.is_file())
    for keys in chords:
        echo = describe(Key(tuple(keys)))
        assert json.dumps(echo)[1:-1].encode() not in data and echo.encode() not in data


def test_json_escaped_in_raw_output_and_structured_arguments(
    server: ScriptedServer, tmp_path: Path
) -> None:
    escaped = "".join(f"\\u{ord(c):04x}" for c in SECRET[:4]) + SECRET[4:]
    content = (
        '<tool_call>\n{"name": "computer_use", "arguments": '
        f'{{"action": "type", "text": "{escaped}"}}}}\n</tool_call>'
    )
    server.script += [
        Reply(content, reasoning="Type it."),
        Reply("", tool_calls=structured_call(action="type", text=SECRET)),
        Reply(xml_call(action="terminate", status="success")),
    ]
    result, executor, run_dir = run(server, tmp_path, "log in")
    assert result.outcome == "success" and executor.done == [Type(SECRET), Type(SECRET)]
    check_run(run_dir, tmp_path)


def test_percent_and_entity_forms_in_thinking(server: ScriptedServer, tmp_path: Path) -> None:
    thinking = (
        f"The link has pw={urllib.parse.quote(SECRET, safe='')} and the page shows "
        f"{''.join(f'&#{ord(c)};' for c in SECRET)}."
    )
    server.script += [
        Reply(xml_call(action="left_click", coordinate=[1, 2]), reasoning=thinking),
        Reply(xml_call(action="terminate", status="success")),
    ]
    result, _, run_dir = run(server, tmp_path, "read the page")
    assert result.outcome == "success"
    check_run(run_dir, tmp_path)


def test_a_parse_error_and_the_next_prompt(server: ScriptedServer, tmp_path: Path) -> None:
    # Unknown action and key names are quoted by the parse error, which the next prompt
    # repeats; the structured call's arguments are echoed back too.
    server.script += [
        Reply(xml_call(action=SECRET, coordinate=[1, 2])),
        Reply(xml_call(action="key", keys=[SECRET])),
        Reply(xml_call(action="wait", time=0.01)),  # three invalid in a row would end the run
        Reply("", tool_calls=structured_call(action="type", text=SECRET, coordinate=[1, 2])),
        Reply(xml_call(action="terminate", status="success")),
    ]
    result, executor, run_dir = run(server, tmp_path, "log in")
    assert result.outcome == "success" and [a.name for a in executor.done] == ["wait"]
    steps = read_run(run_dir).steps
    assert [bool(s["parse_error"]) for s in steps] == [True, True, False, True, False]
    assert SECRET in json.dumps(server.requests[1]["messages"], ensure_ascii=False)
    check_run(run_dir, tmp_path)


def test_in_a_crash_log(
    server: ScriptedServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An internal error after a secret was typed in pieces: the log holds no piece of it."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "state"))
    pieces = ["Tr0ub", "4dor", "&3x"]

    def broken(args: Any) -> int:
        redactor = Redactor([*args.secret])
        args.run_redactor = redactor
        for step, piece in enumerate(pieces):
            typed = typing_of({"action": "type", "text": piece})
            assert typed is not None
            redactor.typed(piece, step=step, echoes=typed[1])
        escaped = json.dumps(SECRET)  # as a server's error body might quote it
        raise RuntimeError(f'typed type(text="&3x") after {pieces[:2]} then {escaped}')

    monkeypatch.setattr(main, "command_run", broken)
    code = main.main(["run", "x", "--secret", SECRET])
    assert code == main.EXIT_FAILED
    err = capsys.readouterr().err
    log = Path(err.rsplit("(details in ", 1)[1].rstrip(")\n"))
    text = log.read_text(encoding="utf-8") + err
    assert "RuntimeError" in text
    for secret in (SECRET, "Tr0ub", "4dor", 'type(text="&3x")'):
        assert not any(f in text for f in encodings(secret)), (secret, text)


def test_executed_pieces_reach_the_desktop_intact(server: ScriptedServer, tmp_path: Path) -> None:
    """Redaction is of the recording only: the model and the desktop get the real text."""
    server.script += [
        Reply(xml_call(action="type", text="Tr0ub4")),
        Reply(xml_call(action="type", text="dor&3x")),
        Reply(xml_call(action="key", keys=["enter"])),
        Reply(xml_call(action="terminate", status="success")),
    ]
    result, executor, run_dir = run(server, tmp_path, "log in")
    assert executor.done == [Type("Tr0ub4"), Type("dor&3x"), Key(("enter",))]
    assert "dor&3x" in json.dumps(server.requests[2]["messages"], ensure_ascii=False)
    assert result.outcome == "success"
    check_run(run_dir, tmp_path)
    assert not isinstance(executor.done[0], LeftClick)


def test_a_parse_error_quotes_a_tricky_secret_verbatim() -> None:
    """Quotes, backslashes and non-ASCII: repr would escape them past a literal match."""
    from actions.screen import CoordinateSpace
    from agent.backends.base import Completion
    from agent.protocol import parse_completion

    tricky = "pa'ss\\wö\u200brd"
    proposal = parse_completion(
        Completion(xml_call(action=tricky, coordinate=[1, 2])), CoordinateSpace.relative()
    )
    assert proposal.error is not None and tricky in proposal.error
    assert repr(tricky)[1:-1] not in proposal.error
    r = Redactor([tricky])
    assert tricky not in r.redact_text(proposal.error)
    # Messages written in repr form before this change are decoded and redacted too.
    assert r.redact_text(f"unknown action {tricky!r}") == f'unknown action "{MARKER}"'
