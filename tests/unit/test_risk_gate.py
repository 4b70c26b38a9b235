"""The loop gates actions by risk: corpora of risky actions and attacks, blocked rules, runaway.

Every row of tests/data/risk_corpus.jsonl and tests/data/risk_attacks.jsonl runs through the real
loop (model stood in by a scripted backend answering in Qwen 3.5's format); the executor records
what it is asked to do. A row is a list of steps (action, the window keys go to as [X id,
WM_CLASS] or null when unknown, thinking); its expectation is about the last step.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from actions.screen import CoordinateSpace
from actions.window import FocusedWindow
from agent.approval import Decision, policy
from agent.backends.base import BackendError, ChatMessage, Completion
from agent.loop import LoopSettings, RunResult, run_task
from agent.protocol import parse_arguments
from agent.recording import Recorder, read_run
from agent.risk import RiskRules
from tests.support.fakes import FakeScreen as Screen
from tests.support.fakes import Person, ScriptedBackend
from tests.support.fakes import RecordingExecutor as Executor
from tests.support.scripted_server import xml_call

DATA = Path(__file__).parent.parent / "data"
CORPUS = [json.loads(line) for line in (DATA / "risk_corpus.jsonl").read_text().splitlines()]
ATTACKS = [json.loads(line) for line in (DATA / "risk_attacks.jsonl").read_text().splitlines()]


class Backend(ScriptedBackend):
    """Answers from a list of (thinking, computer_use arguments); then terminates."""

    model = kind = "scripted"

    def __init__(self, script: list[tuple[str, dict[str, Any]]], fail: int = 0) -> None:
        super().__init__()
        self.script = list(script)
        self.fail = fail

    @property
    def served(self) -> int:
        """How many answers it gave: the step being proposed is served - 1."""
        return len(self.sent)

    @property
    def prompts(self) -> list[str]:
        """The text of every request answered."""
        return ["\n".join(m.text() for m in messages) for messages in self.sent]

    def answer(self, n: int, messages: Sequence[ChatMessage]) -> Completion:
        if self.fail:
            self.fail -= 1
            self.sent.pop()  # a failed request is not one answered
            raise BackendError("the endpoint answered HTTP 500", retryable=True)
        thinking, args = (
            self.script.pop(0)
            if self.script
            else ("done", {"action": "terminate", "status": "success"})
        )
        return Completion(f"{thinking}\n</think>\n\n{xml_call(**args)}")


def run(
    tmp_path: Path,
    script: list[tuple[str, dict[str, Any]]],
    decide: Any,
    *,
    rules: RiskRules | None = None,
    windows: list[FocusedWindow | None] | None = None,
    settings: LoopSettings | None = None,
    screen: Screen | None = None,
    backend: Backend | None = None,
    executor: Executor | None = None,
) -> tuple[RunResult, Executor, Backend]:
    backend = backend or Backend(script)
    executor = executor or Executor()
    where = list(windows or [None])

    def focus() -> FocusedWindow | None:
        """Where keys go during the step being proposed (every probe of that step agrees)."""
        served = backend.served if isinstance(backend, Backend) else 1
        return where[min(max(served - 1, 0), len(where) - 1)]

    result = run_task(
        "task",
        backend=backend,
        screen=screen or Screen(),
        executor=executor,
        decide=decide,
        recorder=Recorder(tmp_path / "runs", {"task": "task"}),
        settings=settings or LoopSettings(),
        rules=rules,
        focus=focus,
    )
    return result, executor, backend


def corpus_script(
    row: dict[str, Any],
) -> tuple[list[tuple[str, dict[str, Any]]], list[FocusedWindow | None]]:
    """The row's steps as the model's answers, with the window keys go to at each step."""
    script = [(step.get("thinking") or "ok", step["action"]) for step in row["steps"]]
    windows = [None if s["window"] is None else FocusedWindow(*s["window"]) for s in row["steps"]]
    return script, windows


def test_the_corpora_are_big_enough() -> None:
    assert sum(r["expect"] == "risky" for r in CORPUS) >= 100
    assert sum(r["expect"] == "safe" for r in CORPUS) >= 40
    assert sum(r["expect"] != "safe" for r in ATTACKS) >= 400
    for row in CORPUS + ATTACKS:  # every step is a valid action as a model would write it
        for step in row["steps"]:
            parse_arguments(step["action"], CoordinateSpace.relative())


def gate(tmp_path: Path, row: dict[str, Any], mode: str) -> tuple[bool, bool, dict[str, Any]]:
    """Run a row with a person approving everything: (last step asked, executed, its record)."""
    script, windows = corpus_script(row)
    rules = RiskRules.load(DATA / row["rules"]) if row.get("rules") else None
    person = Person("approve")
    result, _, _ = run(tmp_path, script, policy(mode, person), rules=rules, windows=windows)  # type: ignore[arg-type]
    last = len(script) - 1
    record = read_run(Path(str(result.run_dir))).steps[last]
    asked = any(r.step == last for r in person.requests)
    return asked, record["execution"] is not None, record


@pytest.mark.parametrize("name", ["corpus", "attacks"])
def test_guarded_mode_gates_every_risky_action_and_no_safe_one(tmp_path: Path, name: str) -> None:
    rows = CORPUS if name == "corpus" else ATTACKS
    tried: dict[str, int] = {}
    unapproved: dict[str, list[Any]] = {}
    over: list[Any] = []
    for n, row in enumerate(rows):
        asked, executed, record = gate(tmp_path / str(n), row, "guarded")
        kind = row.get("class", row["expect"])
        if row["expect"] == "safe":
            if asked or not executed:
                over.append(row["steps"])
            continue
        tried[kind] = tried.get(kind, 0) + 1
        if row["expect"] == "blocked":
            ok = record["risk"]["level"] == "blocked" and not asked and not executed
        else:
            ok = asked and record["risk"]["level"] == "risky"
        if not ok:
            unapproved.setdefault(kind, []).append(row["steps"])
    assert unapproved == {} and over == [], (tried, unapproved, over)


@pytest.mark.parametrize("mode", ["ask", "guarded", "auto"])
def test_blocked_text_split_over_actions_never_runs_in_any_mode(tmp_path: Path, mode: str) -> None:
    rows = [r for r in ATTACKS if r["expect"] == "blocked"]
    for n, row in enumerate(rows):
        asked, executed, record = gate(tmp_path / str(n), row, mode)
        assert record["risk"]["level"] == "blocked" and not executed and not asked, row


def test_risky_without_a_person_is_refused_recorded_and_told_to_the_model(tmp_path: Path) -> None:
    script = [("I clean up", {"action": "type", "text": "sudo rm -rf /tmp/x"})]
    result, executor, backend = run(tmp_path, script, policy("guarded", None))
    assert executor.done == [] and result.outcome == "success"
    rec = read_run(Path(str(result.run_dir)))
    first = rec.steps[0]
    assert first["risk"]["level"] == "risky"
    assert first["decision"]["kind"] == "reject" and first["decision"]["by"] == "guarded"
    assert "nobody is at a terminal" in first["result"]
    assert "Refused, nothing was executed" in backend.prompts[1]  # the model hears why


BLOCKED = [
    {"action": "type", "text": "rm -rf ~/"},
    {"action": "type", "text": "sudo apt update"},
    {"action": "type", "text": "SUDO -i"},
    {"action": "type", "text": "cat x > /dev/sda"},
    {"action": "type", "text": "ls /dev/nvme0n1p1"},
    {"action": "key", "keys": ["ctrl", "alt", "delete"]},
    {"action": "key", "keys": ["alt", "F4"]},
    {"action": "key", "keys": ["Alt+F4"]},
    {"action": "left_click_drag", "start_coordinate": [1, 1], "coordinate": [9, 9]},
    {"action": "left_click_drag", "coordinate": [9, 9]},
]


@pytest.mark.parametrize("mode", ["ask", "guarded", "auto"])
def test_blocked_actions_never_run_in_any_mode(tmp_path: Path, mode: str) -> None:
    rules = RiskRules.load(DATA / "blocked_rules.toml")
    person = Person("approve")  # even a person approving everything cannot run them
    script = [("go", args) for args in BLOCKED]
    script.append(("now the wire transfer", {"action": "left_click", "coordinate": [5, 5]}))
    result, executor, _ = run(tmp_path, script, policy(mode, person), rules=rules)  # type: ignore[arg-type]
    assert executor.done == []
    assert person.requests == []
    steps = read_run(Path(str(result.run_dir))).steps
    assert [s["risk"]["level"] for s in steps[:-1]] == ["blocked"] * (len(BLOCKED) + 1)
    assert all(
        s["decision"]
        == {"kind": "reject", "by": "rules", "note": s["risk"]["reason"], "edited_action": None}
        for s in steps[:-1]
    )
    assert all(s["result"].startswith("Blocked by the user's rules") for s in steps[:-1])


def test_an_edit_into_a_blocked_action_does_not_run(tmp_path: Path) -> None:
    rules = RiskRules.load(DATA / "blocked_rules.toml")
    edited = parse_arguments({"action": "type", "text": "sudo reboot"}, CoordinateSpace.relative())
    result, executor, _ = run(
        tmp_path,
        [("typing", {"action": "type", "text": "hello"})],
        lambda r: Decision("edit", action=edited),
        rules=rules,
    )
    assert executor.done == []
    assert read_run(Path(str(result.run_dir))).steps[0]["risk"]["level"] == "blocked"


def test_the_same_action_on_an_unchanged_screen_pauses_and_asks(tmp_path: Path) -> None:
    click = {"action": "left_click", "coordinate": [500, 500]}
    person = Person("approve")
    result, executor, _ = run(
        tmp_path, [("click", click)] * 6, policy("auto", person), screen=Screen(still=True)
    )
    # Asked at the 3rd identical click, then counting starts again: the 5th asks again.
    assert [r.step for r in person.requests] == [2, 4]
    assert all("3 times in a row" in str(r.attention) for r in person.requests)
    assert len(executor.done) == 6 and result.outcome == "success"
    steps = read_run(Path(str(result.run_dir))).steps
    assert steps[2]["runaway"]["repeats"] == 3


def test_runaway_without_a_person_stops_the_run(tmp_path: Path) -> None:
    click = {"action": "left_click", "coordinate": [500, 500]}
    result, executor, _ = run(
        tmp_path, [("click", click)] * 6, policy("auto", None), screen=Screen(still=True)
    )
    assert result.outcome == "stopped" and "3 times in a row" in result.message
    assert len(executor.done) == 2


def test_a_changing_screen_is_not_a_runaway(tmp_path: Path) -> None:
    click = {"action": "left_click", "coordinate": [500, 500]}
    person = Person("approve")
    result, executor, _ = run(tmp_path, [("click", click)] * 6, policy("auto", person))
    assert person.requests == [] and len(executor.done) == 6


def test_wall_time_cap_ends_the_run(tmp_path: Path) -> None:
    click = {"action": "left_click", "coordinate": [500, 500]}

    class Slow(Backend):
        def complete(self, *args: Any, **kwargs: Any) -> Completion:
            time.sleep(0.05)
            return super().complete(*args, **kwargs)

    settings = LoopSettings(max_minutes=0.08 / 60)
    result, executor, _ = run(
        tmp_path, [], policy("auto", None), settings=settings, backend=Slow([("c", click)] * 20)
    )
    assert result.outcome == "max_time" and "time limit" in result.message
    assert 1 <= len(executor.done) < 20


def test_retryable_backend_errors_are_retried_and_recorded(tmp_path: Path) -> None:
    settings = LoopSettings(retry_delays_s=(0.01, 0.01))
    click = {"action": "left_click", "coordinate": [500, 500]}
    result, executor, _ = run(
        tmp_path,
        [],
        policy("auto", None),
        settings=settings,
        backend=Backend([("c", click)], fail=2),
    )
    assert result.outcome == "success" and len(executor.done) == 1
    first = read_run(Path(str(result.run_dir))).steps[0]
    assert [e["retryable"] for e in first["backend_errors"]] == [True, True]


def test_after_retries_recover_decides(tmp_path: Path) -> None:
    settings = LoopSettings(retry_delays_s=(0.01,))
    click = {"action": "left_click", "coordinate": [500, 500]}
    asked: list[str] = []

    def recover(exc: BackendError) -> bool:
        asked.append(str(exc))
        return len(asked) < 2  # retry once, then give up

    backend = Backend([("c", click)], fail=10)
    result = run_task(
        "task",
        backend=backend,
        screen=Screen(),
        executor=Executor(),
        decide=policy("auto", None),
        recorder=Recorder(tmp_path / "runs", {"task": "task"}),
        settings=settings,
        recover=recover,
    )
    assert len(asked) == 2 and result.outcome == "error"
    assert "HTTP 500" in result.message
    steps = read_run(Path(str(result.run_dir))).steps
    assert len(steps) == 1 and len(steps[0]["backend_errors"]) == 4
