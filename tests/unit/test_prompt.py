"""Prompt building: history window, and byte-identical prefixes from step to step."""

from __future__ import annotations

import json

from agent.backends.base import ChatMessage, ImagePart
from agent.prompt import OMITTED, HistoryEntry, PromptBuilder, tool_response
from agent.vision import smart_resize, visual_tokens


def img(n: int) -> ImagePart:
    return ImagePart(png=f"png-{n}".encode(), width=100, height=100)


def render(msgs: list[ChatMessage]) -> list[str]:
    """A byte-exact rendering of each message (images by identity)."""
    out = []
    for m in msgs:
        parts = [p if isinstance(p, str) else f"<img {p.png.decode()}>" for p in m.content]
        out.append(json.dumps([m.role, parts], ensure_ascii=False))
    return out


def test_first_step_has_system_task_and_screen() -> None:
    b = PromptBuilder("rename the files")
    msgs = b.messages([], img(0))
    assert [m.role for m in msgs] == ["system", "user"]
    assert "rename the files" in msgs[1].text()
    assert msgs[1].content[-1] == img(0)


def test_last_k_images_and_actions_as_text() -> None:
    b = PromptBuilder("t", history_images=3)
    history = [HistoryEntry(img(i), f"call {i}", f"result {i}") for i in range(6)]
    msgs = b.messages(history, img(6))
    images = [p for m in msgs for p in m.content if isinstance(p, ImagePart)]
    assert [p.png for p in images] == [b"png-4", b"png-5", b"png-6"]
    omitted = [p for m in msgs for p in m.content if p == OMITTED]
    assert len(omitted) == 4
    assistant = [m.text() for m in msgs if m.role == "assistant"]
    assert assistant == [f"call {i}" for i in range(6)]
    assert tool_response("result 5") in msgs[-1].text()


def test_prefix_is_byte_identical_between_steps() -> None:
    # Text kept in full here; test_tokens_window covers the summarised history's trims.
    b = PromptBuilder("t", history_images=3, history_text=100)
    history: list[HistoryEntry] = []
    previous: list[str] | None = None
    for step in range(12):
        now = render(b.messages(history, img(step)))
        if previous is not None:
            # Everything before the image that just fell out of the window is unchanged.
            dropped_at = 2 * max(0, step - 3) + 1
            keep = min(dropped_at, len(previous) - 1)
            assert now[:keep] == previous[:keep]
        previous = now
        history.append(HistoryEntry(img(step), f"call {step}", f"result {step}"))


def test_chunked_trimming_keeps_prefix_longer() -> None:
    b = PromptBuilder("t", history_images=3, image_chunk=4)
    kept = [b.first_image_kept(n) for n in range(1, 14)]
    assert kept == [0, 0, 0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8]
    # Never fewer than history_images screens are shown.
    assert all(n - k >= min(n, 3) for n, k in zip(range(1, 14), kept, strict=True))


def test_visual_tokens_match_qwen_processor() -> None:
    assert visual_tokens(1280, 720) == 880
    assert visual_tokens(1920, 1080) == 2040
    assert visual_tokens(3840, 2160) == 8160
    assert smart_resize(1920, 1080) == (1920, 1088)
    w, h = smart_resize(3840, 2160, max_pixels=1920 * 1080)
    assert w * h <= 1920 * 1080 and w % 32 == 0 and h % 32 == 0


def call_entry(n: int) -> HistoryEntry:
    """A step whose reply is one computer_use call, as the loop records it."""
    from actions.types import LeftClick
    from agent.protocol import format_tool_call

    action = LeftClick((float(n), 2.0))
    return HistoryEntry(img(n), format_tool_call(action), f"result {n}", f"left_click {n}")


def test_calls_go_in_qwens_native_shape() -> None:
    b = PromptBuilder("t", history_images=3)
    msgs = b.messages([call_entry(i) for i in range(2)], img(2))
    assert [m.role for m in msgs] == ["system", "user", "assistant", "tool", "assistant", "tool"]
    assistant, tool = msgs[2], msgs[3]
    assert assistant.content == () and len(assistant.tool_calls) == 1
    call = assistant.tool_calls[0]
    assert call.name == "computer_use" and call.id == "call_1" == tool.tool_call_id
    assert json.loads(call.arguments) == {"action": "left_click", "coordinate": [0.0, 2.0]}
    assert tool.content == ("result 0", "\nCurrent screen:\n", img(1))
    assert msgs[-1].content[-1] == img(2)


def test_the_legacy_shape_is_exactly_the_earlier_one() -> None:
    from agent.prompt import legacy_messages

    b = PromptBuilder("t", history_images=3)
    history = [call_entry(i) for i in range(5)]
    native = b.messages(history, img(5))
    old = legacy_messages(native)
    assert [m.role for m in old] == ["system", "user", *["assistant", "user"] * 5]
    for i, entry in enumerate(history):
        reply, result = old[2 + 2 * i], old[3 + 2 * i]
        assert reply.content == (entry.reply,) and not reply.tool_calls
        screen = img(i + 1) if i + 1 >= 3 else OMITTED
        if isinstance(screen, str):
            assert result.content == (tool_response(entry.result) + "\nCurrent screen:\n" + screen,)
        else:
            assert result.content == (tool_response(entry.result) + "\nCurrent screen:\n", screen)


def test_native_prefix_is_byte_identical_between_steps() -> None:
    b = PromptBuilder("t", history_images=3, history_text=100)
    history: list[HistoryEntry] = []
    previous: list[str] | None = None
    for step in range(10):
        now = [
            json.dumps([m.role, [str(p) for p in m.content], [str(c) for c in m.tool_calls]])
            for m in b.messages(history, img(step))
        ]
        if previous is not None:
            dropped_at = 2 * max(0, step - 3) + 1
            keep = min(dropped_at, len(previous) - 1)
            assert now[:keep] == previous[:keep]
        previous = now
        history.append(call_entry(step))
