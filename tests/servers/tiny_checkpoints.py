"""Tiny Qwen 3.5 checkpoints for real servers: the real chat template, random or wired weights.

Both start from tests/support/tiny_qwen35.py and take Qwen 3.5's real chat template
(tests/data/Qwen3.5-4B.jinja). `random` keeps the random weights: it writes random text. `caller`
is wired to answer every request with one fixed computer_use call: every layer's output
projection is zero, so each position's logits depend on its own token alone, and the
unembedding chains the prompt's last token to `<tool_call>`, that to one added token holding the
call's body, that to `</tool_call>` and that to `<|im_end|>`. A server then returns the same
call at every step, so a whole run goes through the multi-step shape.
Usage: python tests/servers/tiny_checkpoints.py OUT_DIR random|caller
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "tests" / "data" / "Qwen3.5-4B.jinja"
# What the wired checkpoint answers: a click in the middle of the screen, as Qwen 3.5 writes it.
CALL_BODY = (
    "\n<function=computer_use>\n<parameter=action>\nleft_click\n</parameter>\n"
    "<parameter=coordinate>\n[500, 500]\n</parameter>\n</function>\n"
)
CALL = {"action": "left_click", "coordinate": [500, 500]}
# A logit margin that no sampling setting (temperature 0.7, top-k 20) overturns.
MARGIN = 100.0


def build_random(out: Path) -> Path:
    """The tiny random checkpoint with Qwen 3.5's real chat template."""
    sys.path.insert(0, str(ROOT))
    from tests.support.tiny_qwen35 import build

    build(out, "dense")
    shutil.copyfile(TEMPLATE, out / "chat_template.jinja")
    return out


def generation_prompt_ends(tokenizer: Any) -> set[int]:
    """The last token of the template's generation prompt, thinking on and off."""
    chat = [{"role": "user", "content": "x"}]
    ends: set[int] = set()
    for thinking in (True, False):
        text = tokenizer.apply_chat_template(
            chat, add_generation_prompt=True, tokenize=False, enable_thinking=thinking
        )
        ends.add(int(tokenizer.encode(text, add_special_tokens=False)[-1]))
    return ends


def build_caller(out: Path) -> Path:
    """The tiny checkpoint wired to answer every request with CALL."""
    import torch
    from tokenizers import AddedToken
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    build_random(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    tokenizer.add_tokens([AddedToken(CALL_BODY, special=False, normalized=False)])
    model = AutoModelForImageTextToText.from_pretrained(out)
    model.resize_token_embeddings(len(tokenizer))
    ids = tokenizer.convert_tokens_to_ids
    (body,) = tokenizer.encode(CALL_BODY, add_special_tokens=False)  # one added token
    # Each link of the chain is one axis of the hidden state: a token holding axis k is
    # followed by the token whose unembedding row is MARGIN on axis k.
    links = [
        (generation_prompt_ends(tokenizer), ids("<tool_call>")),
        ({ids("<tool_call>")}, body),
        ({body}, ids("</tool_call>")),
        ({ids("</tool_call>")}, ids("<|im_end|>")),
    ]
    language = model.model.language_model
    with torch.no_grad():
        for name, param in language.named_parameters():
            if name.endswith(("o_proj.weight", "out_proj.weight", "down_proj.weight")):
                param.zero_()  # no layer adds to the residual stream: logits see one token
        language.norm.weight.zero_()  # (1 + weight) scaling: exactly 1
        embed = model.get_input_embeddings().weight
        head = embed.detach().clone()
        head[:, : len(links)] = 0.0
        for axis, (tokens, following) in enumerate(links):
            for token in tokens:
                embed[token] = 0.0
                embed[token, axis] = 1.0
            head[following, axis] = MARGIN
    model.config.tie_word_embeddings = False
    model.config.text_config.tie_word_embeddings = False
    model.lm_head.weight = torch.nn.Parameter(head)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    shutil.copyfile(TEMPLATE, out / "chat_template.jinja")  # saved back as it was read
    return out


if __name__ == "__main__":
    kind = sys.argv[2] if len(sys.argv) > 2 else "random"
    builder = build_caller if kind == "caller" else build_random
    print(builder(Path(sys.argv[1])))
