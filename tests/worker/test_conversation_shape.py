"""The prompt of a multi-step run, rendered by Qwen 3.5's real chat template, is the trained shape.

tests/data/Qwen3.5-4B.jinja is a byte copy of the template (see tests/data/README.md); it is
rendered through a tokenizer in which <tool_call>, <think> and <tool_response> are ordinary
tokens, as in the real one (tests/support/tiny_qwen35.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from actions.screen import CoordinateSpace
from agent.approval import auto_approve
from agent.backends.base import ChatMessage, Completion
from agent.backends.local import encode_messages
from agent.backends.worker.processor import chat_turns
from agent.loop import LoopSettings, run_task
from agent.prompt import OMITTED, SYSTEM_PROMPT, legacy_messages
from agent.protocol import tool_schema
from agent.recording import Recorder, read_run
from tests.support.fakes import FakeScreen, RecordingExecutor, ScriptedBackend
from tests.support.scripted_server import xml_call

TEMPLATE = (Path(__file__).resolve().parents[1] / "data" / "Qwen3.5-4B.jinja").read_text()
TASK = "save the file"
CALLS: list[dict[str, Any]] = [
    {"action": "left_click", "coordinate": [100, 200]},
    {"action": "type", "text": "hello world"},
    {"action": "key", "keys": ["ctrl", "s"]},
    {"action": "scroll", "coordinate": [500, 500], "pixels": -3},
    {"action": "terminate", "status": "success"},
]
TOOLS = [tool_schema(CoordinateSpace.relative())]


class NativeBackend(ScriptedBackend):
    """Answers the scripted calls in order, in the native conversation."""

    model = "Qwen/Qwen3.5-4B"

    def answer(self, n: int, messages: Sequence[ChatMessage]) -> Completion:
        return Completion(xml_call(**CALLS[n]), finish_reason="stop", conversation="native")

    def describe(self) -> dict[str, object]:
        return {"kind": "scripted", "conversation": "native"}


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from tests.support.tiny_qwen35 import build_tokenizer

    return build_tokenizer()


def render(tokenizer: Any, chat: list[dict[str, Any]]) -> str:
    """The prompt text the template makes of a conversation (tools declared, as deskpilot does)."""
    text = tokenizer.apply_chat_template(
        chat,
        tools=TOOLS,
        chat_template=TEMPLATE,
        add_generation_prompt=True,
        tokenize=False,
        enable_thinking=False,
    )
    assert isinstance(text, str)
    return text


def five_step_run(tmp_path: Path) -> tuple[NativeBackend, list[str]]:
    """A 5-step run through the real loop; the backend and the results fed back."""
    backend = NativeBackend()
    recorder = Recorder(tmp_path, {"task": TASK})
    result = run_task(
        TASK,
        backend=backend,
        screen=FakeScreen(),
        executor=RecordingExecutor(),
        decide=auto_approve,
        recorder=recorder,
        settings=LoopSettings(max_steps=5, settle_min_s=0, settle_max_s=0),
    )
    assert result.outcome == "success" and len(backend.sent) == 5
    steps = read_run(recorder.dir).steps
    assert all(s["conversation"] == "native" for s in steps)
    assert read_run(recorder.dir).info["conversation"] == "native"
    return backend, [str(s["result"]) for s in steps]


def native_conversation(results: list[str]) -> list[dict[str, Any]]:
    """The 5th request as Qwen 3.5 was trained on it, written out by hand."""
    image: dict[str, Any] = {"type": "image"}

    def screen(i: int) -> dict[str, Any]:
        return image if i >= 2 else {"type": "text", "text": OMITTED}  # the last 3 screens

    chat: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {
            "role": "user",
            "content": [{"type": "text", "text": f"Task: {TASK}\n\nCurrent screen:\n"}, screen(0)],
        },
    ]
    for i, call in enumerate(CALLS[:4]):
        chat.append(
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"type": "function", "function": {"name": "computer_use", "arguments": call}}
                ],
            }
        )
        chat.append(
            {
                "role": "tool",
                "content": [
                    {"type": "text", "text": f"{results[i]}\nCurrent screen:\n"},
                    screen(i + 1),
                ],
            }
        )
    return chat


def test_a_five_step_prompt_renders_as_the_templates_native_shape(
    tokenizer: Any, tmp_path: Path
) -> None:
    backend, results = five_step_run(tmp_path)
    sent = chat_turns(encode_messages(backend.sent[4])[0])
    prompt = render(tokenizer, sent)
    assert prompt == render(tokenizer, native_conversation(results))

    # What that shape means to the template: one user query (the task), then four assistant
    # turns that keep their (empty) thinking, each answered inside one <tool_response>.
    assert prompt.count("<|im_start|>user\n") == 5
    assert prompt.count("<|im_start|>user\nTask: save the file") == 1
    assert prompt.count("<|im_start|>user\n<tool_response>\n") == 4
    assert prompt.count("<|im_start|>assistant\n<think>\n\n</think>\n\n<tool_call>\n") == 4
    assert "<parameter=coordinate>\n[100, 200]\n</parameter>" in prompt
    assert "<parameter=text>\nhello world\n</parameter>" in prompt
    assert "<parameter=pixels>\n-3\n</parameter>" in prompt
    assert prompt.count("<|vision_start|><|image_pad|><|vision_end|>") == 3
    assert f"{results[3]}\nCurrent screen:\n<|vision_start|>" in prompt
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")

    # The template's tags are ordinary tokens: they survive skip_special_tokens.
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    decoded = tokenizer.decode(ids, skip_special_tokens=True)
    for tag in ("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>"):
        assert decoded.count(tag) == prompt.count(tag) > 0, tag


def test_the_earlier_shape_makes_every_step_a_new_user_query(
    tokenizer: Any, tmp_path: Path
) -> None:
    backend, _ = five_step_run(tmp_path)
    old = render(tokenizer, chat_turns(encode_messages(legacy_messages(backend.sent[4]))[0]))
    # Each result + screenshot ends with "Current screen:" and an image, so the template takes
    # it for a new question: the last one becomes the query and no earlier turn keeps <think>.
    assert old.count("<|im_start|>assistant\n<think>") == 1  # the generation prompt only
    assert old.count("<|im_start|>assistant\n<tool_call>\n") == 4
    native = render(tokenizer, chat_turns(encode_messages(backend.sent[4])[0]))
    assert old != native


def test_the_openai_wire_format_renders_the_same(tokenizer: Any, tmp_path: Path) -> None:
    from agent.backends.openai_compat import OpenAIBackend

    backend, _ = five_step_run(tmp_path)
    client = OpenAIBackend("http://127.0.0.1:9/v1", "Qwen/Qwen3.5-4B")
    try:
        wire = client.to_openai(backend.sent[4], TOOLS)
    finally:
        client.close()
    assert [m["role"] for m in wire[2:4]] == ["assistant", "tool"]
    assert wire[3]["tool_call_id"] == wire[2]["tool_calls"][0]["id"] == "call_1"
    assert any(p["type"] == "image_url" for p in wire[-1]["content"])  # the screen in the tool turn
    # Servers hand the template the arguments as an object and each image as an image item.
    for m in wire:
        for call in m.get("tool_calls", []):
            call["function"]["arguments"] = json.loads(call["function"]["arguments"])
        if isinstance(m["content"], list):
            m["content"] = [
                {"type": "image"} if p["type"] == "image_url" else p for p in m["content"]
            ]
    sent = chat_turns(encode_messages(backend.sent[4])[0])
    assert render(tokenizer, wire) == render(tokenizer, sent)


def test_the_local_worker_renders_the_native_shape_with_the_checkpoints_template(
    tiny_qwen35: dict[str, Path], tmp_path: Path
) -> None:
    from agent.backends.worker.processor import build_processor

    backend, results = five_step_run(tmp_path)
    processor = build_processor(tiny_qwen35["dense"])
    sent = chat_turns(encode_messages(backend.sent[4])[0])
    prompt = processor.apply_chat_template(
        sent, tools=TOOLS, add_generation_prompt=True, tokenize=False, enable_thinking=False
    )
    # The checkpoint's own template (tests/support/tiny_qwen35.py) sees the trained shape too.
    assert prompt == processor.tokenizer.apply_chat_template(
        native_conversation(results),
        tools=TOOLS,
        add_generation_prompt=True,
        tokenize=False,
        enable_thinking=False,
    )
    assert prompt.count("<|im_start|>user\n<tool_response>\n") == 4
    assert prompt.count("<|im_start|>assistant\n<think>\n\n</think>\n\n<tool_call>\n") == 4
