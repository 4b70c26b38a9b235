"""One agent step through the worker process vs the same generate() in-process.

Reports the worker's start-to-ready time and the median step time both ways; the ratio
(worker / in-process) is the price of the process boundary, target <= 1.1.
Default: tiny random Qwen 3.5 checkpoints (dense and MoE) built offline; --model for real ones.
Usage: python -m bench.bench_worker [--model ID_OR_FOLDER] [--runs 7] [--max-new-tokens 32]
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._report import bench_parser, report_head, write_report

TARGET_RATIO = 1.1
ROOT = Path(__file__).resolve().parents[1]


def screenshot_png(width: int, height: int) -> bytes:
    """A desktop-like screenshot rendered with PIL."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), (236, 236, 236))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, width, 28), fill=(40, 60, 120))
    draw.text((10, 8), "Save file", fill="white")
    draw.rectangle((40, 120, width - 40, 150), outline="black", fill="white")
    draw.rectangle((width - 140, height - 80, width - 40, height - 44), fill=(200, 220, 255))
    draw.text((width - 102, height - 68), "OK", fill="black")
    out = io.BytesIO()
    img.save(out, "PNG", compress_level=1)
    return out.getvalue()


def tiny_models(root: Path) -> dict[str, Path]:
    """The tiny dense and MoE checkpoints the worker tests use."""
    from tests.support import tiny_qwen35

    return {v: tiny_qwen35.build(root / v, v) for v in ("dense", "moe")}


def summary(values: list[float]) -> dict[str, float]:
    """Median, min and max, in seconds."""
    return {
        "median": round(statistics.median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
    }


def bench_one(
    label: str, model: str, args: argparse.Namespace, png: bytes, width: int, height: int
) -> dict[str, Any]:
    """Start-to-ready, then N interleaved steps through the worker and in-process."""
    from agent.backends.base import ChatMessage, ImagePart
    from agent.backends.local import LocalBackend
    from agent.backends.worker.engine import Engine

    messages = [
        ChatMessage("system", ("You operate a desktop computer. Answer with one tool call.",)),
        ChatMessage(
            "user", ("Task: save the file.\nCurrent screen:", ImagePart(png, width, height))
        ),
    ]
    tools: list[dict[str, object]] = [
        {
            "type": "function",
            "function": {
                "name": "computer_use",
                "description": "Mouse and keyboard; coordinates 0-1000.",
                "parameters": {
                    "type": "object",
                    "properties": {"action": {"type": "string"}},
                    "required": ["action"],
                },
            },
        }
    ]
    # Greedy with EOS ignored: both sides generate exactly the same number of tokens.
    backend = LocalBackend(
        model,
        device=args.device,
        dtype=args.dtype,
        thinking=False,
        max_new_tokens=args.max_new_tokens,
        sampling={"do_sample": False, "ignore_eos": True},
    )
    try:
        started = time.perf_counter()
        backend.start()
        start_to_ready = time.perf_counter() - started
        described = backend.describe().get("worker")
        worker_info: dict[str, Any] = dict(described) if isinstance(described, dict) else {}

        engine = Engine()
        engine.load(model, args.device, args.dtype)
        header, blob = backend.request(messages, tools)

        backend.complete(messages, tools)  # one more warm step each side
        engine.run(header, blob)
        via_worker: list[float] = []
        in_process: list[float] = []
        last: Any = None
        for _ in range(args.runs):
            t = time.perf_counter()
            last = backend.complete(messages, tools)
            via_worker.append(time.perf_counter() - t)
            t = time.perf_counter()
            engine.run(header, blob)
            in_process.append(time.perf_counter() - t)
    finally:
        backend.close()
    ratio = statistics.median(via_worker) / statistics.median(in_process)
    return {
        "label": label,
        "model": model,
        "model_type": worker_info.get("model_type"),
        "device": worker_info.get("device"),
        "dtype": worker_info.get("dtype"),
        "start_to_ready_s": round(start_to_ready, 3),
        "worker_load_s": worker_info.get("load_s"),
        "prompt_tokens": last.prompt_tokens if last else None,
        "completion_tokens": last.completion_tokens if last else None,
        "worker_step_s": summary(via_worker),
        "in_process_step_s": summary(in_process),
        "ratio": round(ratio, 3),
        "within_target": ratio <= TARGET_RATIO,
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    """A plain-text table of the results."""
    head = (
        f"{'model':<10} {'ready s':>8} {'prompt':>7} {'new':>5} "
        f"{'worker ms':>10} {'in-proc ms':>11} {'ratio':>6}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['label']:<10} {r['start_to_ready_s']:>8.2f} {r['prompt_tokens']:>7} "
            f"{r['completion_tokens']:>5} {r['worker_step_s']['median'] * 1000:>10.1f} "
            f"{r['in_process_step_s']['median'] * 1000:>11.1f} {r['ratio']:>6.3f}"
        )
    print(f"(median of the runs; ratio = worker / in-process, target <= {TARGET_RATIO})")


def main(argv: list[str] | None = None) -> int:
    """Run the bench, print the table, write the JSON."""
    parser = bench_parser("bench_worker", __doc__)
    parser.add_argument("--model", help="a model id or folder (default: tiny dense + MoE)")
    parser.add_argument("--device", help="cuda, cuda:N, mps or cpu (default: auto)")
    parser.add_argument("--dtype", help="bfloat16, float16 or float32 (default: auto)")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--size", default="640x400", help="screenshot WIDTHxHEIGHT")
    args = parser.parse_args(argv)
    for name in ("torch", "transformers"):
        if importlib.util.find_spec(name) is None:
            print(f"bench_worker: skipped, {name} is not installed")
            return 0
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    width, height = (int(v) for v in args.size.lower().split("x"))
    png = screenshot_png(width, height)

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="deskpilot-bench-") as tmp:
        if args.model:
            models = {Path(args.model).name or args.model: args.model}
        else:
            models = {k: str(v) for k, v in tiny_models(Path(tmp)).items()}
        for label, model in models.items():
            rows.append(bench_one(label, model, args, png, width, height))

    import torch
    import transformers

    report = {
        **report_head(
            "worker",
            torch=torch.__version__,
            transformers=transformers.__version__,
            cuda=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            fla=importlib.util.find_spec("fla") is not None,
            causal_conv1d=importlib.util.find_spec("causal_conv1d") is not None,
        ),
        "runs": args.runs,
        "max_new_tokens": args.max_new_tokens,
        "screenshot": f"{width}x{height}",
        "target_ratio": TARGET_RATIO,
        "results": rows,
    }
    print_table(rows)
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
