"""Bounded tokens: exact visual tokens, a flat prompt over 50 steps, stable prefixes."""

from __future__ import annotations

import json
import random

import pytest

from agent.backends.base import ChatMessage, ImagePart
from agent.prompt import (
    OMITTED,
    HistoryEntry,
    PromptBuilder,
    estimate_prompt_tokens,
)
from agent.vision import MAX_PIXELS, MIN_PIXELS, smart_resize, visual_tokens

SCREEN = (1920, 1080)


def img(n: int) -> ImagePart:
    return ImagePart(png=f"png-{n}".encode(), width=SCREEN[0], height=SCREEN[1])


def entry(n: int) -> HistoryEntry:
    """A realistic step: a Qwen XML call, and the usual result line."""
    reply = (
        "<tool_call>\n<function=computer_use>\n<parameter=action>\nleft_click\n</parameter>\n"
        f"<parameter=coordinate>\n[{100 + n}, {200 + n}]\n</parameter>\n</function>\n</tool_call>"
    )
    summary = f"left_click(coordinate=[{100 + n}, {200 + n}])"
    return HistoryEntry(img(n), reply, f"Executed {summary}.", summary)


def render(msgs: list[ChatMessage]) -> list[str]:
    """A byte-exact rendering of each message (images by identity)."""
    return [
        json.dumps(
            [m.role, [p if isinstance(p, str) else f"<img {p.png.decode()}>" for p in m.content]]
        )
        for m in msgs
    ]


def step_messages(builder: PromptBuilder, steps: int) -> list[ChatMessage]:
    """The messages of step number `steps` (1-based): steps - 1 finished steps before it."""
    history = [entry(i) for i in range(steps - 1)]
    return builder.messages(history, img(steps - 1))


def test_smart_resize_matches_transformers() -> None:
    qwen = pytest.importorskip("transformers.models.qwen2_vl.image_processing_pil_qwen2_vl")
    rng = random.Random(8)
    sizes = [(1280, 720), (1920, 1080), (2560, 1440), (3840, 2160), (5120, 2880), (100, 50)]
    sizes += [(rng.randint(40, 8000), rng.randint(40, 5000)) for _ in range(500)]
    for max_pixels in (MAX_PIXELS, 1920 * 1080, 1_003_520, 500_000):
        for w, h in sizes:
            if max(w, h) / min(w, h) > 200:
                continue
            th, tw = qwen.smart_resize(
                h, w, factor=32, min_pixels=MIN_PIXELS, max_pixels=max_pixels
            )
            assert smart_resize(w, h, max_pixels=max_pixels) == (tw, th), (w, h, max_pixels)


def test_visual_tokens_match_the_processor_grid() -> None:
    """The processor's own image_grid_thw, with Qwen 3.5's patch 16 and merge 2."""
    qwen = pytest.importorskip("transformers.models.qwen2_vl.image_processing_pil_qwen2_vl")
    from PIL import Image

    processor = qwen.Qwen2VLImageProcessorPil(
        patch_size=16,
        merge_size=2,
        temporal_patch_size=2,
        size={"shortest_edge": MIN_PIXELS, "longest_edge": 1920 * 1080},
    )
    for w, h in ((640, 400), (1000, 700), (1920, 1080), (2560, 1440), (333, 777)):
        out = processor(images=[Image.new("RGB", (w, h))], return_tensors="np")
        t, gh, gw = (int(v) for v in out["image_grid_thw"][0])
        assert visual_tokens(w, h, max_pixels=1920 * 1080) == t * gh * gw // 4, (w, h)
    assert visual_tokens(1920, 1080) == 2040
    assert visual_tokens(3840, 2160) == 8160


def test_prompt_tokens_stay_flat_over_50_steps() -> None:
    builder = PromptBuilder("rename the files in Downloads, then mail the list")
    tokens = {n: estimate_prompt_tokens(step_messages(builder, n)) for n in range(1, 51)}
    assert tokens[50] <= 1.1 * tokens[5], (tokens[5], tokens[50])
    # Flat from step 5 on, not just at the two ends.
    assert max(tokens[n] for n in range(5, 51)) <= 1.1 * tokens[5]
    # And bounded: steps 100 and 500 cost what step 50 does, within the chunk's swing.
    for n in (100, 500):
        assert estimate_prompt_tokens(step_messages(builder, n)) <= 1.1 * tokens[5]


def test_prefix_is_byte_identical_except_where_the_window_trims() -> None:
    builder = PromptBuilder("t", history_images=3, history_text=4, text_chunk=4)
    previous = render(step_messages(builder, 1))
    text_trims = 0
    for n in range(2, 60):
        current = render(step_messages(builder, n))
        same = 0
        for old, new in zip(previous, current, strict=False):
            if old != new:
                break
            same += 1
        if same < len(previous):
            old = previous[same]
            # Either one screenshot became the placeholder (images leave one at a time) ...
            image_trim = old.replace(f"<img png-{n - 4}>", OMITTED) == current[same]
            # ... or the text window moved by a whole chunk (at most once per text_chunk steps).
            if not image_trim:
                text_trims += 1
                assert builder.text_window(n - 1) != builder.text_window(n - 2), n
            else:
                assert previous[same + 1 :] == current[same + 1 : len(previous)], n
        previous = current
    assert text_trims <= (60 // 4) + 1


def test_old_steps_collapse_into_one_bounded_summary() -> None:
    builder = PromptBuilder("t", history_images=3, history_text=4, text_chunk=4, summary_steps=8)
    msgs = step_messages(builder, 50)
    summaries = [m.text() for m in msgs if m.text().startswith("Earlier steps, summarised:")]
    assert len(summaries) == 1
    lines = summaries[0].splitlines()[1:]
    assert lines[0].startswith("(steps 1-")
    assert 8 <= len(lines) - 1 <= 8 + 3
    assert all(len(line) <= 160 for line in lines)
    # The last history_text..history_text + chunk - 1 steps keep their full replies.
    full = [m for m in msgs if m.role == "assistant"]
    assert 4 <= len(full) <= 7


def test_estimate_counts_images_exactly_and_text_roughly() -> None:
    msgs = [ChatMessage("user", ("x" * 400, img(0)))]
    assert estimate_prompt_tokens(msgs) == 5 + 100 + 2040 + 2
