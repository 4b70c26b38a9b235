"""Bounded tokens: visual tokens per screenshot, and prompt tokens per step over a long run.

No display needed. Visual tokens follow Qwen 3.5's processor (smart_resize, 32x32 px a token,
checked against transformers in tests/unit/test_tokens_window.py); text is estimated at ~4
bytes a token (agent.prompt.estimate_prompt_tokens). The windowed history (default settings)
is compared with keeping every step's text. Also counts, step to step, how many messages of
the previous prompt are repeated byte for byte (a server's prefix cache reuses them).
Target: step 50 costs <= 1.1x step 5.
Usage: python -m bench.bench_tokens
"""

from __future__ import annotations

import time
from typing import Any

from bench._report import bench_parser, write_report

TARGET_RATIO = 1.1
SCREENS = ((1280, 720), (1920, 1080), (2560, 1440), (3840, 2160))
MAX_PIXELS = (None, 1920 * 1080, 1280 * 720)
STEPS = (1, 5, 10, 20, 50, 100)


def history(n: int, width: int, height: int) -> list[Any]:
    """n finished steps with realistic replies and results."""
    from agent.backends.base import ImagePart
    from agent.prompt import HistoryEntry

    out = []
    for i in range(n):
        reply = (
            "<tool_call>\n<function=computer_use>\n<parameter=action>\nleft_click\n</parameter>\n"
            f"<parameter=coordinate>\n[{100 + i % 800}, {200 + i % 700}]\n</parameter>\n"
            "</function>\n</tool_call>"
        )
        what = f"left_click(coordinate=[{100 + i % 800}, {200 + i % 700}])"
        out.append(
            HistoryEntry(ImagePart(b"%d" % i, width, height), reply, f"Executed {what}.", what)
        )
    return out


def prompt_tokens(builder: Any, steps: int, width: int, height: int) -> tuple[int, list[str]]:
    """Estimated prompt tokens of step `steps` (1-based) and its messages rendered."""
    from actions.screen import CoordinateSpace
    from agent.backends.base import ImagePart
    from agent.prompt import estimate_prompt_tokens
    from agent.protocol import tool_schema

    msgs = builder.messages(history(steps - 1, width, height), ImagePart(b"now", width, height))
    tools = [tool_schema(CoordinateSpace.relative())]
    rendered = [
        repr((m.role, [p if isinstance(p, str) else p.png for p in m.content])) for m in msgs
    ]
    return estimate_prompt_tokens(msgs, tools), rendered


def main(argv: list[str] | None = None) -> int:
    """Print the tables, write the JSON."""
    parser = bench_parser("bench_tokens", __doc__)
    args = parser.parse_args(argv)
    from agent.loop import LoopSettings
    from agent.prompt import PromptBuilder
    from agent.vision import model_image_size, visual_tokens

    print(f"{'screen':<10} " + " ".join(f"{'max ' + str(m or 'default'):>16}" for m in MAX_PIXELS))
    visual: dict[str, dict[str, int]] = {}
    for w, h in SCREENS:
        row = {}
        for m in MAX_PIXELS:
            mp = m or LoopSettings().max_pixels
            sw, sh = model_image_size(w, h, mp)
            row[str(m or "default")] = visual_tokens(sw, sh, max_pixels=mp)
        visual[f"{w}x{h}"] = row
        print(f"{w}x{h:<5} " + " ".join(f"{v:>16}" for v in row.values()))
    print("(visual tokens per screenshot)\n")

    s = LoopSettings()
    windowed = PromptBuilder(
        "rename the files in Downloads, then mail the list",
        history_images=s.history_images,
        image_chunk=s.image_chunk,
        history_text=s.history_text,
        text_chunk=s.text_chunk,
        summary_steps=s.summary_steps,
    )
    unbounded = PromptBuilder(
        "rename the files in Downloads, then mail the list", history_text=10**6
    )
    rows: list[dict[str, Any]] = []
    for w, h in ((1280, 720), (1920, 1080)):
        for label, builder in (("windowed", windowed), ("all text", unbounded)):
            counts = {n: prompt_tokens(builder, n, w, h)[0] for n in STEPS}
            rows.append(
                {
                    "screen": f"{w}x{h}",
                    "history": label,
                    "tokens": counts,
                    "ratio_50_5": round(counts[50] / counts[5], 3),
                }
            )
    head = f"{'screen':<10} {'history':<9} " + " ".join(f"{'step ' + str(n):>9}" for n in STEPS)
    print(head + f" {'50/5':>6}")
    print("-" * (len(head) + 7))
    for r in rows:
        print(
            f"{r['screen']:<10} {r['history']:<9} "
            + " ".join(f"{r['tokens'][n]:>9}" for n in STEPS)
            + f" {r['ratio_50_5']:>6.3f}"
        )
    print(
        f"(estimated prompt tokens per step, 3 screenshots kept; target 50/5 <= {TARGET_RATIO})\n"
    )

    # Prefix stability over 60 steps: how much of the previous request is repeated verbatim.
    reused: list[float] = []
    trims = 0
    _, previous = prompt_tokens(windowed, 1, 1920, 1080)
    for n in range(2, 61):
        _, current = prompt_tokens(windowed, n, 1920, 1080)
        same = next(
            (i for i, (a, b) in enumerate(zip(previous, current, strict=False)) if a != b),
            len(previous),
        )
        reused.append(same / len(previous))
        trims += windowed.text_window(n - 1) != windowed.text_window(n - 2)
        previous = current
    print(
        f"messages of the previous step repeated verbatim: median "
        f"{sorted(reused)[len(reused) // 2]:.0%}, min {min(reused):.0%}; "
        f"text window moved at {trims} of 59 steps"
    )
    ok = all(
        r["ratio_50_5"] <= TARGET_RATIO
        for r in rows
        if r["history"] == "windowed" and r["screen"] == "1920x1080"
    )
    report = {
        "bench": "tokens",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": LoopSettings().to_json(),
        "visual_tokens": visual,
        "prompt_tokens": rows,
        "prefix_reuse": {
            "median": sorted(reused)[len(reused) // 2],
            "min": min(reused),
            "text_trims": trims,
        },
        "target_ratio": TARGET_RATIO,
        "within_target": ok,
    }
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
