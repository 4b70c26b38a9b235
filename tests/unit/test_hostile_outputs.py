"""Hostile model output through the real loop and a real HTTP endpoint: nothing ever executes.

tests/data/hostile_outputs.jsonl is a curated corpus (each row says why it is not exactly one
valid action); a hypothesis test then throws generated soup at the same loop.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actions.screen import CoordinateSpace
from agent.approval import auto_approve
from agent.backends.base import ChatMessage, Completion
from agent.backends.openai_compat import OpenAIBackend
from agent.loop import LoopSettings, run_task
from agent.recording import Recorder, read_run
from tests.support.fakes import FakeScreen as Screen
from tests.support.fakes import RecordingExecutor as Executor
from tests.support.fakes import ScriptedBackend
from tests.support.scripted_server import Reply, ScriptedServer, xml_call

DATA = Path(__file__).parent.parent / "data"
CORPUS = [json.loads(line) for line in (DATA / "hostile_outputs.jsonl").read_text().splitlines()]


def test_every_hostile_output_executes_nothing_is_recorded_and_told(tmp_path: Path) -> None:
    assert len(CORPUS) >= 50
    script: list[Any] = [
        Reply(row["content"], reasoning=row["reasoning"], tool_calls=row["tool_calls"])
        for row in CORPUS
    ]
    script.append(Reply(xml_call(action="terminate", status="failure")))
    server = ScriptedServer(script)
    executor = Executor()
    backend = OpenAIBackend(server.url, model=None, timeout_s=30)
    try:
        result = run_task(
            "task",
            backend=backend,
            screen=Screen(),
            executor=executor,
            decide=auto_approve,
            recorder=Recorder(tmp_path, {"task": "task"}),
            settings=LoopSettings(max_invalid=len(CORPUS) + 1, max_steps=len(CORPUS) + 1),
        )
    finally:
        backend.close()
        server.close()
    assert executor.done == []
    assert result.outcome == "failure"  # the run went on to the final, valid terminate
    steps = read_run(Path(str(result.run_dir))).steps
    assert len(steps) == len(CORPUS) + 1
    for row, step in zip(CORPUS, steps, strict=False):
        reason = step["parse_error"]
        assert step["action"] is None and step["execution"] is None, row["why"]
        assert isinstance(reason, str) and reason and "\n" not in reason, row["why"]
        assert step["result"] == f"Invalid output, nothing was executed: {reason}"
    # Each reason reached the model in the next request.
    for n, step in enumerate(steps[:-1]):
        sent = json.dumps(server.requests[n + 1]["messages"][-1], ensure_ascii=False)
        assert json.dumps(step["parse_error"], ensure_ascii=False)[1:-1] in sent


SOUP = st.lists(
    st.sampled_from(
        [
            "<tool_call>",
            "</tool_call>",
            "<function=computer_use>",
            "</function>",
            "<parameter=action>",
            "<parameter=coordinate>",
            "<parameter=text>",
            "</parameter>",
            "<think>",
            "</think>",
            "left_click",
            "type",
            "key",
            "[1, 2]",
            "[NaN, 1]",
            "\n",
            '{"name": "computer_use", "arguments": {"action": "left_click"}}',
            "rm -rf /",
        ]
    )
    | st.text(max_size=20),
    max_size=30,
).map("".join)


class _Replayer(ScriptedBackend):
    """A backend that answers whatever hypothesis gives it (no HTTP: thousands of examples)."""

    model = kind = "fuzz"

    def __init__(self) -> None:
        super().__init__()
        self.text = ""

    def answer(self, n: int, messages: Sequence[ChatMessage]) -> Completion:
        self.sent.clear()  # thousands of examples: keep no history
        return Completion(self.text)


def test_generated_soup_through_the_loop_runs_only_valid_actions(tmp_path: Path) -> None:
    from agent.backends.base import Completion
    from agent.protocol import parse_completion

    backend, executor = _Replayer(), Executor()
    counts = {"outputs": 0, "invalid": 0, "executed_from_invalid": 0}

    @settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
    @given(SOUP)
    def one(text: str) -> None:
        backend.text = text
        before = len(executor.done)
        run_task(
            "task",
            backend=backend,
            screen=Screen(),
            executor=executor,
            decide=auto_approve,
            recorder=Recorder(tmp_path, {"task": "task"}),
            settings=LoopSettings(max_steps=1),
        )
        valid = parse_completion(Completion(text), CoordinateSpace.relative()).action is not None
        counts["outputs"] += 1
        counts["invalid"] += not valid
        if not valid and len(executor.done) != before:
            counts["executed_from_invalid"] += 1

    one()
    assert counts["outputs"] >= 1000 and counts["invalid"] > 500
    assert counts["executed_from_invalid"] == 0, counts
