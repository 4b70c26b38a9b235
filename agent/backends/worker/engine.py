"""The torch engine: loads a checkpoint once, then turns one request into one answer.

Used by the worker process (serve.py) and in-process by tests and bench/. torch and
transformers are imported inside functions: a missing install becomes a load error message.
"""

from __future__ import annotations

import copy
import io
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from agent.backends.worker.hub import ModelNotFound, resolve_model
from agent.backends.worker.prefix_cache import PrefixCache
from agent.backends.worker.processor import build_processor, chat_turns
from agent.backends.worker.think_split import ThinkSplitter, split_reasoning
from agent.backends.worker_wire import SAMPLING_INSTRUCT, SAMPLING_THINKING, Kind, one_line


def pick_device(requested: str | None, torch: Any) -> str:
    """auto -> cuda, then mps, then cpu; anything else is taken as given."""
    want = (requested or "auto").strip().lower()
    if want != "auto":
        if want.startswith("cuda") and not torch.cuda.is_available():
            raise ModelNotFound(
                "--device cuda was asked for but this torch sees no CUDA GPU "
                f"(torch {torch.__version__}); use --device cpu or install a CUDA build of torch."
            )
        if want == "mps" and not torch.backends.mps.is_available():
            raise ModelNotFound("--device mps was asked for but MPS is not available here.")
        return want
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(requested: str | None, device: str, torch: Any) -> Any:
    """auto -> bfloat16 on GPUs (float16 where bf16 is missing), float32 on CPU."""
    want = (requested or "auto").strip().lower()
    names = {
        "bf16": "bfloat16",
        "bfloat16": "bfloat16",
        "fp16": "float16",
        "half": "float16",
        "float16": "float16",
        "fp32": "float32",
        "float": "float32",
        "float32": "float32",
    }
    if want != "auto":
        if want not in names:
            raise ModelNotFound(f"Unknown --dtype {requested!r}: use bfloat16, float16 or float32.")
        return getattr(torch, names[want])
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.bfloat16
    return torch.float32


def explain_load_error(exc: BaseException, model: str) -> str:
    """A one-line message for a failed load."""
    if isinstance(exc, ModelNotFound):
        return one_line(str(exc), 600)
    if isinstance(exc, ImportError):
        return one_line(
            "The local backend needs torch and transformers>=5.2 in the Python that runs the "
            f"worker ({sys.executable}): pip install 'deskpilot[local]' ({exc})."
        )
    text = str(exc)
    if "out of memory" in text.lower():
        return one_line(
            f"Not enough memory to load {model}: pick a smaller model (--model Qwen/Qwen3.5-0.8B), "
            "another --device, or serve it elsewhere with --endpoint URL."
        )
    if "does not recognize this architecture" in text:
        return one_line(
            "This transformers is too old for Qwen 3.5: pip install -U 'transformers>=5.2'."
        )
    return one_line(f"Could not load {model}: {type(exc).__name__}: {text}")


class Engine:
    """Loaded weights and processor; turns one request into one answer (used in-process too)."""

    def __init__(
        self,
        on_progress: Callable[[str, float | None], None] | None = None,
        prefix_cache: bool = True,
    ) -> None:
        self._on_progress = on_progress or (lambda stage, fraction: None)
        self.model: Any = None
        self.processor: Any = None
        self.info: dict[str, Any] = {}
        # Keeps the model's state over the last prompt (issue 16); None: prefill all each time.
        self.prefix: PrefixCache | None = PrefixCache() if prefix_cache else None

    def load(
        self,
        model: str,
        device: str | None = None,
        dtype: str | None = None,
        warmup: bool = True,
    ) -> dict[str, Any]:
        """Resolve, fetch if needed, load, and warm up; returns facts worth recording."""
        started = time.monotonic()
        self._on_progress("resolving", None)
        folder = resolve_model(model, self._on_progress)
        self._on_progress("importing torch", None)
        import torch
        import transformers
        from transformers import AutoModelForImageTextToText

        auto_model: Any = AutoModelForImageTextToText
        transformers.utils.logging.disable_progress_bar()
        dev = pick_device(device, torch)
        dt = pick_dtype(dtype, dev, torch)
        self._on_progress("loading processor", None)
        self.processor = build_processor(folder)
        self._on_progress("loading weights", None)
        kwargs: dict[str, Any] = {"dtype": dt}
        if dev == "cuda":
            # Spread over every visible GPU; a single GPU gets the whole model.
            kwargs["device_map"] = "auto"
        elif dev.startswith("cuda:"):
            kwargs["device_map"] = {"": dev}
        loaded = auto_model.from_pretrained(str(folder), **kwargs)
        if not dev.startswith("cuda"):
            loaded = loaded.to(dev)
        loaded.eval()
        self.model = loaded
        if warmup:
            # The first generate() pays one-off costs (allocator, kernel selection, the vision
            # tower): pay them here, not in the user's first step.
            self._on_progress("warming up", None)
            self._warm_up()
        config = loaded.config
        self.info = {
            "model": model,
            "folder": str(folder),
            "model_type": getattr(config, "model_type", None),
            "architecture": type(loaded).__name__,
            "parameters": int(sum(p.numel() for p in loaded.parameters())),
            "device": str(loaded.device) if dev != "cuda" else dev,
            "device_map": getattr(loaded, "hf_device_map", None),
            "dtype": str(dt).replace("torch.", ""),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "fla": _importable("fla"),
            "causal_conv1d": _importable("causal_conv1d"),
            "load_s": round(time.monotonic() - started, 3),
        }
        return self.info

    def _warm_up(self) -> None:
        from PIL import Image

        png = io.BytesIO()
        Image.new("RGB", (256, 256), (128, 128, 128)).save(png, "PNG")
        blob = png.getvalue()
        request = {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image", "blob": [0, len(blob)]},
                        {"type": "text", "text": "Hi"},
                    ],
                }
            ],
            "thinking": False,
            "max_new_tokens": 2,
            "sampling": {"do_sample": False},
        }
        self.run(request, blob)

    def _images(self, messages: Sequence[Mapping[str, Any]], blob: bytes) -> list[Any]:
        from PIL import Image

        images: list[Any] = []
        for message in messages:
            for part in message.get("content", ()):
                if part.get("type") != "image":
                    continue
                if part.get("path"):
                    with Image.open(part["path"]) as img:
                        images.append(img.convert("RGB"))
                else:
                    offset, length = part["blob"]
                    with Image.open(io.BytesIO(blob[offset : offset + length])) as img:
                        images.append(img.convert("RGB"))
        return images

    def prepare(self, request: Mapping[str, Any], blob: bytes = b"") -> Any:
        """Render the chat template and let the processor build every model input."""
        messages = request["messages"]
        chat = chat_turns(messages)
        prompt = self.processor.apply_chat_template(
            chat,
            tools=list(request.get("tools") or []) or None,
            add_generation_prompt=True,
            tokenize=False,
            enable_thinking=bool(request.get("thinking", False)),
        )
        images = self._images(messages, blob)
        inputs = self.processor(text=[prompt], images=images or None, return_tensors="pt")
        return inputs.to(self.model.device)

    def generate(
        self,
        inputs: Any,
        request: Mapping[str, Any],
        on_delta: Callable[[Kind, str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        started: float | None = None,
    ) -> dict[str, Any]:
        """Run generate() on prepared inputs, streaming text; returns the result fields."""
        import torch
        from transformers import LogitsProcessorList, StoppingCriteria, StoppingCriteriaList
        from transformers.generation.streamers import TextStreamer

        t0 = time.monotonic() if started is None else started
        thinking = bool(request.get("thinking", False))
        sampling = dict(SAMPLING_THINKING if thinking else SAMPLING_INSTRUCT)
        sampling.update(request.get("sampling") or {})
        max_new = int(request.get("max_new_tokens") or 1024)
        stop = should_stop or (lambda: False)
        tokenizer = self.processor.tokenizer
        prompt_len = int(inputs["input_ids"].shape[1])
        splitter = ThinkSplitter(thinking)
        first_token_at: list[float] = []
        send = on_delta or (lambda kind, text: None)

        class Streamer(TextStreamer):
            def put(self, value: Any) -> None:
                if not self.next_tokens_are_prompt and not first_token_at:
                    first_token_at.append(time.monotonic())
                super().put(value)

            def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
                pieces = splitter.feed(text) + (splitter.flush() if stream_end else [])
                for kind, piece in pieces:
                    send(kind, piece)

        class Stop(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                # On the ids' device: generate() ORs this with its own flags there.
                return torch.full(
                    (input_ids.shape[0],), stop(), dtype=torch.bool, device=input_ids.device
                )

        processors = LogitsProcessorList()
        presence = float(sampling.get("presence_penalty") or 0.0)
        if presence:
            processors.append(_presence_penalty(presence, prompt_len))

        config = copy.deepcopy(self.model.generation_config)
        do_sample = bool(sampling.get("do_sample", True))
        config.do_sample = do_sample
        config.max_new_tokens = max_new
        if do_sample:
            config.temperature = float(sampling["temperature"])
            config.top_p = float(sampling["top_p"])
            config.top_k = int(sampling["top_k"])
        else:
            # Neutral values: None would be refilled from the checkpoint's sampling defaults.
            config.temperature, config.top_p, config.top_k = 1.0, 1.0, 50
        config.repetition_penalty = float(sampling.get("repetition_penalty") or 1.0)
        if sampling.get("ignore_eos"):
            config.min_new_tokens = max_new
        if config.pad_token_id is None:
            config.pad_token_id = tokenizer.pad_token_id
        if config.eos_token_id is None:
            config.eos_token_id = tokenizer.eos_token_id
        if sampling.get("seed") is not None:
            torch.manual_seed(int(sampling["seed"]))

        prefill_from = time.monotonic()
        reused = 0
        given = dict(inputs)
        if self.prefix is not None and int(inputs["input_ids"].shape[0]) == 1:
            im_end = int(tokenizer.convert_tokens_to_ids("<|im_end|>"))
            try:
                with torch.inference_mode():
                    cache, reused = self.prefix.prefill(self.model, inputs, im_end)
            except BaseException:
                self.prefix.clear()  # a half-built state must never be resumed
                raise
            # The images are in the cache now: generate() sees token ids and positions only.
            given = {
                "input_ids": inputs["input_ids"],
                "attention_mask": inputs.get("attention_mask"),
                "cache": cache,
            }
        with torch.inference_mode():
            output = self.model.generate(
                **given,
                generation_config=config,
                streamer=Streamer(tokenizer, skip_prompt=True, skip_special_tokens=True),
                stopping_criteria=StoppingCriteriaList([Stop()]),
                logits_processor=processors,
            )
        generated = output[0, prompt_len:]
        count = int(generated.shape[0])
        text = tokenizer.decode(generated, skip_special_tokens=True)
        reasoning, content = split_reasoning(text, thinking)
        if stop():
            finish = "cancelled"
        elif count >= max_new:
            finish = "length"
        else:
            finish = "stop"
        return {
            "content": content,
            "reasoning": reasoning,
            "finish_reason": finish,
            "prompt_tokens": prompt_len,
            "completion_tokens": count,
            "first_token_s": round(first_token_at[0] - t0, 4) if first_token_at else None,
            "total_s": round(time.monotonic() - t0, 4),
            # Prefill = from the prepared inputs to the first token; decode = the rest.
            "prefill_s": round(first_token_at[0] - prefill_from, 4) if first_token_at else None,
            "decode_s": round(time.monotonic() - first_token_at[0], 4) if first_token_at else None,
            "cached_tokens": reused,
        }

    def run(
        self,
        request: Mapping[str, Any],
        blob: bytes = b"",
        on_delta: Callable[[Kind, str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> dict[str, Any]:
        """prepare() then generate(); timings start when the request arrives."""
        started = time.monotonic()
        inputs = self.prepare(request, blob)
        return self.generate(inputs, request, on_delta, should_stop, started)


def _presence_penalty(penalty: float, prompt_len: int) -> Any:
    """OpenAI-style presence penalty over generated tokens (transformers has none built in)."""
    import torch
    from transformers import LogitsProcessor

    class PresencePenalty(LogitsProcessor):
        def __call__(self, input_ids: Any, scores: Any) -> Any:
            generated = input_ids[:, prompt_len:]
            if generated.shape[1] == 0:
                return scores
            seen = torch.zeros_like(scores, dtype=torch.bool)
            seen.scatter_(1, generated.clamp(max=scores.shape[1] - 1), True)
            return scores - penalty * seen.to(scores.dtype)

    return PresencePenalty()


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def explain_generate_error(exc: BaseException) -> str:
    """A one-line message for a failed generation."""
    text = str(exc)
    if "out of memory" in text.lower():
        return one_line(
            "Out of memory while generating: use a smaller model or screenshot, "
            "or fewer max_new_tokens."
        )
    if isinstance(exc, FileNotFoundError | OSError) and getattr(exc, "filename", None):
        return one_line(f"Could not read the screenshot {exc.filename}: {exc.strerror or text}")
    return one_line(f"Generation failed: {type(exc).__name__}: {text}")
