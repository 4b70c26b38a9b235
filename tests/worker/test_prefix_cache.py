"""The local worker's prefix cache: greedy answers are the same with and without it (issue 16).

The agent's real prompts (agent/prompt.py: screenshots in the history, the oldest turning into
a placeholder, earlier steps collapsing into summaries) run through two in-process engines on
the tiny random Qwen 3.5 models, one resuming from its kept state, one prefilling everything.
"""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path
from typing import Any

import pytest

from agent.backends.base import ImagePart
from agent.backends.local import encode_messages
from agent.prompt import HistoryEntry, PromptBuilder
from agent.protocol import format_tool_call, tool_schema

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None,
    reason="torch/transformers are not installed (pip install torch==2.13.0 transformers)",
)

GREEDY = {"do_sample": False, "ignore_eos": True}


def screenshot(n: int, width: int = 320, height: int = 192) -> ImagePart:
    """A different small desktop picture for each step."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), (236, 236, 236))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, width, 20), fill=(40, 60, 120))
    draw.rectangle(
        (20 + 13 * n % 200, 60, 90 + 13 * n % 200, 100), fill=(200, 90 + 20 * n % 160, 40)
    )
    draw.text((10, 4), f"step {n}", fill="white")
    out = io.BytesIO()
    img.save(out, "PNG")
    return ImagePart(out.getvalue(), width, height)


def requests(steps: int, builder: PromptBuilder) -> list[tuple[dict[str, Any], bytes]]:
    """Each step's worker request, as the loop and the local backend would send it."""
    from actions.screen import CoordinateSpace
    from actions.types import LeftClick

    tools = [tool_schema(CoordinateSpace.relative())]
    history: list[HistoryEntry] = []
    out = []
    for n in range(steps):
        image = screenshot(n)
        messages, blob = encode_messages(builder.messages(history, image))
        out.append(
            (
                {
                    "messages": messages,
                    "tools": tools,
                    "thinking": n % 2 == 1,
                    "max_new_tokens": 6,
                    "sampling": GREEDY,
                },
                blob,
            )
        )
        action = LeftClick((100.0 + n, 200.0))
        history.append(HistoryEntry(image, format_tool_call(action), f"Executed step {n}."))
    return out


def engine(folder: Path, prefix_cache: bool) -> Any:
    from agent.backends.worker.engine import Engine

    e = Engine(prefix_cache=prefix_cache)
    e.load(str(folder), "cpu", "float32", warmup=False)
    return e


@pytest.mark.parametrize(("variant", "steps"), [("dense", 7), ("moe", 4)])
def test_greedy_answers_are_identical_with_and_without_the_cache(
    tiny_qwen35: dict[str, Path], variant: str, steps: int
) -> None:
    # Two images shown, text window of 2 steps in chunks of 2: over 7 steps the prefix changes
    # where an old screenshot becomes a placeholder and where steps collapse into summaries.
    builder = PromptBuilder(
        "open the file menu", history_images=2, history_text=2, text_chunk=2, summary_steps=2
    )
    cached, plain = engine(tiny_qwen35[variant], True), engine(tiny_qwen35[variant], False)
    reused = []
    for request, blob in requests(steps, builder):
        a = cached.run(request, blob)
        b = plain.run(request, blob)
        assert (a["content"], a["reasoning"]) == (b["content"], b["reasoning"])
        assert a["prompt_tokens"] == b["prompt_tokens"]
        assert a["completion_tokens"] == b["completion_tokens"] == 6
        assert b["cached_tokens"] == 0
        reused.append((a["cached_tokens"], a["prompt_tokens"]))
    assert reused[0][0] == 0
    # Every later step resumes from the kept state, images in it included.
    assert all(0 < n < total for n, total in reused[1:]), reused


def test_tokens_match_a_full_prefill_token_by_token(tiny_qwen35: dict[str, Path]) -> None:
    """The same request twice, and a request whose prefix changed: still the plain answer."""
    builder = PromptBuilder("type hello", history_images=3)
    steps = requests(4, builder)
    cached, plain = engine(tiny_qwen35["dense"], True), engine(tiny_qwen35["dense"], False)
    for request, blob in [steps[0], steps[2], steps[2], steps[1], steps[3]]:
        request = {**request, "max_new_tokens": 12}
        assert cached.run(request, blob)["content"] == plain.run(request, blob)["content"]


def test_the_cache_is_invalidated_where_the_prefix_changes(tiny_qwen35: dict[str, Path]) -> None:
    from agent.backends.worker.prefix_cache import PrefixCache

    builder = PromptBuilder("t", history_images=1)
    cached = engine(tiny_qwen35["dense"], True)
    assert isinstance(cached.prefix, PrefixCache)
    steps = requests(3, builder)
    cached.run(*steps[0])
    first_ids = cached.prefix.ids.clone()
    second = cached.run(*steps[1])
    # history_images=1: step 2 shows the first screen as a placeholder, so the first image's
    # tokens are gone and the state resumes before them (after the system prompt).
    assert 0 < second["cached_tokens"] < int(first_ids.shape[0])
    image_id = cached.model.config.image_token_id
    assert not bool((first_ids[: second["cached_tokens"]] == image_id).any())
    kept = cached.prefix.ids
    assert all(b <= int(kept.shape[0]) for b in cached.prefix.snapshots)


def test_logits_match_a_full_prefill(tiny_qwen35: dict[str, Path]) -> None:
    """Resumed state + the generation prompt give the full prefill's next-token logits."""
    import torch

    e = engine(tiny_qwen35["dense"], True)
    im_end = int(e.processor.tokenizer.convert_tokens_to_ids("<|im_end|>"))
    builder = PromptBuilder("t", history_images=2)
    for request, blob in requests(4, builder):
        inputs = e.prepare(request, blob)
        ids = inputs["input_ids"]
        with torch.inference_mode():
            full = e.model(**inputs).logits[0, -1]
            cache, reused = e.prefix.prefill(e.model, inputs, im_end)
            n, length = cache.get_seq_length(), int(ids.shape[1])
            text = torch.arange(n, length).view(1, 1, -1)
            shifted = (text + e.model.model.rope_deltas).expand(3, 1, -1)
            rest = e.model(
                input_ids=ids[:, n:],
                cache=cache,
                position_ids=torch.cat([text, shifted]),
                use_cache=True,
            ).logits[0, -1]
        assert torch.allclose(full, rest, atol=1e-4, rtol=1e-3), (full - rest).abs().max()
