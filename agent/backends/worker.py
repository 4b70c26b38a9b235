"""The local model worker: a child process that owns torch, the weights and the GPU.

Run as ``python -m agent.backends.worker``; it speaks length-prefixed frames over stdin/stdout
(no network port). This is the only module in the project that imports torch or transformers,
and it does so inside functions, so the parent (agent/backends/local.py) can import the framing
helpers below without pulling torch in.

Frame: 8-byte header (JSON length, blob length, big-endian u32) + UTF-8 JSON + raw bytes.

Parent -> worker
  {"type": "load", "model": ID_OR_FOLDER, "device": str|null, "dtype": str|null}
  {"type": "generate", "id": N, "messages": [...], "tools": [...], "thinking": bool,
   "sampling": {...}, "max_new_tokens": int}      blob = PNG bytes the messages point into
  {"type": "cancel", "id": N}                     handled by the reader thread at once
  {"type": "ping"} / {"type": "shutdown"}
  A message part is {"type": "text", "text": ...}, {"type": "image", "path": FILE}
  or {"type": "image", "blob": [offset, length]}.

Worker -> parent
  {"type": "progress", "stage": str, "fraction": float|null}
  {"type": "ready", "info": {...}}
  {"type": "delta", "id": N, "kind": "reasoning"|"content", "text": str}
  {"type": "result", "id": N, "content", "reasoning", "finish_reason", "prompt_tokens",
   "completion_tokens", "first_token_s", "total_s", "prefill_s", "decode_s",
   "cached_tokens" (prompt tokens resumed from the kept state of the previous prompt)}
  {"type": "error", "id": N|null, "message": one line, "fatal": bool}
  {"type": "pong"}
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import queue
import re
import signal
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Literal

PROTOCOL_VERSION = 1
WORKER_MODULE = "agent.backends.worker"

_HEADER = struct.Struct(">II")
# A frame carries at most a handful of screenshots; anything larger is a corrupted stream.
_MAX_PART = 1 << 30

# Model-card sampling for Qwen 3.5 vision-language use (notes/qwen35.md).
SAMPLING_THINKING: dict[str, float | int] = {
    "temperature": 0.6,
    "top_p": 0.95,
    "top_k": 20,
    "presence_penalty": 0.0,
    "repetition_penalty": 1.0,
}
SAMPLING_INSTRUCT: dict[str, float | int] = {
    "temperature": 0.7,
    "top_p": 0.8,
    "top_k": 20,
    "presence_penalty": 1.5,
    "repetition_penalty": 1.0,
}
SAMPLING_KEYS = frozenset(
    {
        "temperature",
        "top_p",
        "top_k",
        "presence_penalty",
        "repetition_penalty",
        "do_sample",
        "seed",
        "ignore_eos",
    }
)

# What a checkpoint needs on disk; skips .bin/.gguf/onnx duplicates some repos carry.
DOWNLOAD_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model", "*.py"]

Header = dict[str, Any]
Frame = tuple[Header, bytes]
Kind = Literal["reasoning", "content"]


# --------------------------------------------------------------------------- framing (stdlib)


def encode_frame(header: Mapping[str, Any], blob: bytes = b"") -> bytes:
    """One frame as bytes."""
    data = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return _HEADER.pack(len(data), len(blob)) + data + blob


def _read_exact(stream: IO[bytes], n: int) -> bytes | None:
    chunks: list[bytes] = []
    left = n
    while left:
        chunk = stream.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(stream: IO[bytes]) -> Frame | None:
    """The next frame, or None at end of stream (or on a stream that is not ours)."""
    head = _read_exact(stream, _HEADER.size)
    if head is None:
        return None
    json_len, blob_len = _HEADER.unpack(head)
    if json_len > _MAX_PART or blob_len > _MAX_PART:
        return None
    data = _read_exact(stream, json_len)
    blob = _read_exact(stream, blob_len) if blob_len else b""
    if data is None or blob is None:
        return None
    header = json.loads(data.decode("utf-8"))
    if not isinstance(header, dict):
        return None
    return header, blob


class FrameWriter:
    """Writes whole frames to a binary stream; safe to share between threads."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, header: Mapping[str, Any], blob: bytes = b"") -> None:
        """Write one frame and flush it."""
        data = encode_frame(header, blob)
        with self._lock:
            self._stream.write(data)
            self._stream.flush()


# ---------------------------------------------------------------------- thinking split (stdlib)

_OPEN, _CLOSE = "<think>", "</think>"


def _partial_tag_len(text: str, tag: str) -> int:
    """How many trailing characters of text could start tag (kept back until the next piece)."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0


class ThinkSplitter:
    """Routes streamed text to reasoning or content at <think> / </think>, dropping the tags."""

    def __init__(self, thinking: bool) -> None:
        self.kind: Kind = "reasoning" if thinking else "content"
        self._pending = ""
        self._at_start = True

    def feed(self, text: str) -> list[tuple[Kind, str]]:
        """Split a streamed piece into (kind, text) runs."""
        out: list[tuple[Kind, str]] = []
        buf = self._pending + text
        self._pending = ""
        while buf:
            tag = _CLOSE if self.kind == "reasoning" else _OPEN
            at = buf.find(tag)
            if at >= 0:
                self._emit(out, buf[:at])
                buf = buf[at + len(tag) :]
                self.kind = "content" if self.kind == "reasoning" else "reasoning"
                self._at_start = True
                continue
            keep = _partial_tag_len(buf, tag)
            self._emit(out, buf[: len(buf) - keep])
            self._pending = buf[len(buf) - keep :]
            break
        return out

    def flush(self) -> list[tuple[Kind, str]]:
        """Whatever was held back at the end of the stream."""
        out: list[tuple[Kind, str]] = []
        self._emit(out, self._pending)
        self._pending = ""
        return out

    def _emit(self, out: list[tuple[Kind, str]], text: str) -> None:
        # The template puts "\n" after <think> and "\n\n" after </think>: not part of the text.
        if self._at_start:
            text = text.lstrip("\n")
        if text:
            self._at_start = False
            out.append((self.kind, text))


def split_reasoning(text: str, thinking: bool) -> tuple[str, str]:
    """A whole answer as (reasoning, content)."""
    splitter = ThinkSplitter(thinking)
    parts = splitter.feed(text) + splitter.flush()
    reasoning = "".join(t for k, t in parts if k == "reasoning")
    content = "".join(t for k, t in parts if k == "content")
    return reasoning.strip(), content.strip()


# --------------------------------------------------------------------------- messages (stdlib)


def one_line(text: str, limit: int = 300) -> str:
    """Collapse a message to one line a user can read."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def hf_cache_dir() -> str:
    """The Hugging Face hub cache folder in effect (HF_HUB_CACHE / HF_HOME aware)."""
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except ImportError:
        home = os.environ.get("HF_HOME") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
        )
        return os.environ.get("HF_HUB_CACHE") or os.path.join(home, "hub")


def hub_offline() -> bool:
    """Whether downloads are switched off (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE)."""
    try:
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            return True
    except ImportError:
        pass
    return any(
        os.environ.get(v, "").strip().lower() in {"1", "true", "yes", "on"}
        for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def fetch_hint(model: str) -> str:
    """The ways out when weights are missing, as one sentence."""
    return (
        f"fetch them with `hf download {model}` (or `huggingface-cli download {model}`), "
        "or pass --model /path/to/folder, or use a server with --endpoint URL"
    )


def missing_model_message(model: str, *, offline: bool, reason: str = "") -> str:
    """One line naming the model, the cache folder and the command that fetches it."""
    where = f"not in the Hugging Face cache ({hf_cache_dir()})"
    why = " and downloads are off (HF_HUB_OFFLINE=1)" if offline else ""
    if reason:
        why += f" and could not be downloaded ({one_line(reason, 120)})"
    return f"The weights of {model} are {where}{why}: {fetch_hint(model)}."


class ModelNotFound(Exception):
    """The weights cannot be found or fetched; the message is already user-facing."""


# ----------------------------------------------------------------------------- model resolution

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


def _has_weights(folder: Path) -> bool:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (OSError, ValueError, KeyError, TypeError):
            return False
        return all((folder / s).is_file() for s in shards)
    return (folder / "model.safetensors").is_file() or any(folder.glob("*.safetensors"))


class _DownloadProgress:
    """Turns huggingface_hub's byte progress bars into throttled progress events."""

    def __init__(self, emit: Callable[[str, float | None], None]) -> None:
        self._emit = emit
        self._last = 0.0

    def tqdm_class(self) -> type:
        """A tqdm subclass that reports instead of drawing."""
        from tqdm.auto import tqdm

        progress = self

        class _Reporter(tqdm):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                kwargs.pop("name", None)
                kwargs["file"] = io.StringIO()
                kwargs["disable"] = False
                super().__init__(*args, **kwargs)

            def update(self, n: float | None = 1) -> bool | None:
                shown = super().update(n)
                if self.unit == "B" and self.total:
                    progress.report(float(self.n) / float(self.total))
                return shown

        return _Reporter

    def report(self, fraction: float) -> None:
        """Send at most a few events per second."""
        now = time.monotonic()
        if now - self._last >= 0.25 or fraction >= 1.0:
            self._last = now
            self._emit("downloading", max(0.0, min(1.0, fraction)))


def resolve_model(model: str, emit: Callable[[str, float | None], None]) -> Path:
    """A local folder holding the checkpoint: the folder given, the HF cache, or a download."""
    expanded = Path(os.path.expanduser(model))
    if expanded.is_dir():
        if not (expanded / "config.json").is_file():
            raise ModelNotFound(f"{expanded} has no config.json: it is not a model folder.")
        return expanded
    if not _REPO_ID.match(model):
        raise ModelNotFound(
            f"No model folder at {expanded}, and {model!r} is not a Hugging Face model id "
            "(like Qwen/Qwen3.5-2B)."
        )
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (
            GatedRepoError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
        )
    except ImportError as exc:
        raise ModelNotFound(
            "The local backend needs huggingface_hub: pip install 'deskpilot[local]'."
        ) from exc

    offline = hub_offline()
    with contextlib.suppress(LocalEntryNotFoundError, OSError, ValueError):
        cached = Path(
            snapshot_download(model, local_files_only=True, allow_patterns=DOWNLOAD_PATTERNS)
        )
        if (cached / "config.json").is_file() and _has_weights(cached):
            return cached
    if offline:
        raise ModelNotFound(missing_model_message(model, offline=True))

    emit("downloading", 0.0)
    progress = _DownloadProgress(emit)
    try:
        folder = Path(
            snapshot_download(
                model, allow_patterns=DOWNLOAD_PATTERNS, tqdm_class=progress.tqdm_class()
            )
        )
    except GatedRepoError as exc:
        raise ModelNotFound(
            f"{model} is gated on the Hugging Face Hub: accept its licence on the model page "
            f"and log in (`hf auth login`), then {fetch_hint(model)}."
        ) from exc
    except RepositoryNotFoundError as exc:
        raise ModelNotFound(
            f"There is no model {model} on the Hugging Face Hub (check the name, e.g. "
            "Qwen/Qwen3.5-2B), or pass --model /path/to/folder."
        ) from exc
    except Exception as exc:  # network errors come in many types; all mean the same here
        raise ModelNotFound(
            missing_model_message(model, offline=False, reason=f"{type(exc).__name__}: {exc}")
        ) from exc
    if not _has_weights(folder):
        raise ModelNotFound(
            f"{model} was downloaded to {folder} but holds no .safetensors weights: "
            "pass --model /path/to/folder with a transformers checkpoint."
        )
    emit("downloading", 1.0)
    return folder


# ------------------------------------------------------------------------------ torch engine


def image_processor_kwargs(folder: Path) -> dict[str, Any]:
    """The image processor settings a checkpoint ships (processor or preprocessor config)."""
    kwargs: dict[str, Any] | None = None
    processor_config = folder / "processor_config.json"
    if processor_config.is_file():
        block = json.loads(processor_config.read_text()).get("image_processor")
        if isinstance(block, dict):
            kwargs = dict(block)
    preprocessor_config = folder / "preprocessor_config.json"
    if kwargs is None and preprocessor_config.is_file():
        kwargs = dict(json.loads(preprocessor_config.read_text()))
    if kwargs is None:
        # Qwen3-VL / Qwen3.5 defaults: 16 px patches, 2x2 merge, 64K..16M pixels.
        kwargs = {
            "size": {"shortest_edge": 65536, "longest_edge": 16777216},
            "patch_size": 16,
            "temporal_patch_size": 2,
            "merge_size": 2,
            "image_mean": [0.5, 0.5, 0.5],
            "image_std": [0.5, 0.5, 0.5],
        }
    for key in ("image_processor_type", "processor_class", "auto_map"):
        kwargs.pop(key, None)
    return {k: v for k, v in kwargs.items() if not k.startswith("_")}


def _chat_template(folder: Path, tokenizer: Any) -> str | None:
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, str) and template:
        return template
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text()
    as_json = folder / "chat_template.json"
    if as_json.is_file():
        value = json.loads(as_json.read_text()).get("chat_template")
        return value if isinstance(value, str) else None
    return None


def build_processor(folder: Path) -> Any:
    """Qwen3VLProcessor from the image processor and tokenizer alone: no torchvision needed."""
    from transformers import AutoTokenizer, Qwen2VLImageProcessorPil, Qwen3VLProcessor

    # AutoProcessor would look for the video processor (torchvision) or silently return only
    # the tokenizer; a subclass without a video_processor parameter avoids both.
    class ImageTextProcessor(Qwen3VLProcessor):
        def __init__(
            self,
            image_processor: Any = None,
            tokenizer: Any = None,
            chat_template: str | None = None,
            **kwargs: Any,
        ) -> None:
            super().__init__(
                image_processor, tokenizer, None, chat_template=chat_template, **kwargs
            )

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    image_processor = Qwen2VLImageProcessorPil(**image_processor_kwargs(folder))
    template = _chat_template(folder, tokenizer)
    if template is None:
        raise ModelNotFound(f"{folder} has no chat template (chat_template.jinja).")
    return ImageTextProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=template
    )


def chat_turns(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Request messages as the chat template reads them (images as placeholders, in order)."""
    chat: list[dict[str, Any]] = []
    for m in messages:
        turn: dict[str, Any] = {
            "role": m["role"],
            "content": [{"type": "image"} if p.get("type") == "image" else p for p in m["content"]],
        }
        # Qwen 3.5's multi-step shape: the checkpoint's template renders these itself.
        for key in ("tool_calls", "tool_call_id"):
            if m.get(key) is not None:
                turn[key] = m[key]
        chat.append(turn)
    return chat


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


# Linear-attention states kept at this many message ends of the last prompt (the newest ones):
# the prompt usually changes a few messages back (the oldest screenshot turning into a
# placeholder, three steps = six messages back), never further than the text window's chunk.
PREFIX_SNAPSHOTS = 16


class PrefixCache:
    """The model's state over the last prompt, kept so the next prompt prefills only what is new.

    Qwen 3.5 is hybrid. Its full-attention layers keep keys and values per token: those can be
    cut back to any length. Its Gated DeltaNet layers keep one recurrent state and a short conv
    window for the whole sequence so far: those cannot be cut back, so a copy is taken at every
    message end (`<|im_end|>`) while prefilling, and a later prompt resumes from the latest
    copy that lies inside its byte-identical prefix. Positions (M-RoPE with images) are computed
    over the whole prompt, so the resumed tokens get exactly the positions a full prefill gives.
    """

    def __init__(self, max_snapshots: int = PREFIX_SNAPSHOTS) -> None:
        self.max_snapshots = max_snapshots
        self.ids: Any = None  # 1-D token ids the kept state covers (up to its last message end)
        self.kv: list[tuple[Any, Any] | None] = []  # full-attention keys/values over self.ids
        self.snapshots: dict[int, list[Any]] = {}  # message end -> linear-attention states

    def clear(self) -> None:
        """Forget everything (another model, or a failed generation)."""
        self.ids, self.kv, self.snapshots = None, [], {}

    def reusable(self, ids: Any, limit: int) -> int:
        """How many leading tokens of ids the kept state covers (a message end, <= limit)."""
        if self.ids is None or not self.snapshots:
            return 0
        n = min(int(self.ids.shape[0]), int(ids.shape[0]))
        same = (self.ids[:n] == ids[:n]).int()
        common = n if bool(same.all()) else int(same.argmin())
        return max((b for b in self.snapshots if b <= min(common, limit)), default=0)

    def restore(self, model: Any, length: int) -> Any:
        """A fresh cache holding the state after the first `length` tokens of self.ids."""
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer, LinearAttentionCacheLayerMixin

        cache = DynamicCache(config=model.config)
        if length == 0:
            return cache
        states = self.snapshots[length]
        for i, layer in enumerate(cache.layers):
            cell: Any = layer  # transformers' own annotations are narrower than its code
            if isinstance(layer, LinearAttentionCacheLayerMixin) and states[i] is not None:
                conv, recurrent, kernel = states[i]
                cell.lazy_initialization(conv, recurrent, conv_kernel_size=kernel)
                cell.conv_states[0].copy_(conv)
                cell.recurrent_states[0].copy_(recurrent)
                cell.has_previous_state[0] = True
            kept = self.kv[i]
            if isinstance(layer, DynamicLayer) and kept is not None:
                keys, values = kept
                cell.lazy_initialization(keys, values)
                # Slices of the kept tensors: update() concatenates into new ones, never in place.
                cell.keys, cell.values = keys[..., :length, :], values[..., :length, :]
        return cache

    def snapshot(self, cache: Any, at: int) -> None:
        """Copy the linear-attention states after `at` tokens (a message end)."""
        from transformers.cache_utils import LinearAttentionCacheLayerMixin

        states: list[Any] = []
        layer: Any
        for layer in cache.layers:
            linear = isinstance(layer, LinearAttentionCacheLayerMixin)
            if linear and layer.conv_states[0] is not None:
                states.append(
                    (
                        layer.conv_states[0].clone(),
                        layer.recurrent_states[0].clone(),
                        layer.conv_kernel_size[0],
                    )
                )
            else:
                states.append(None)
        self.snapshots[at] = states
        for old in sorted(self.snapshots)[: -self.max_snapshots]:
            del self.snapshots[old]

    def keep(self, cache: Any, ids: Any, length: int) -> None:
        """Keep the keys/values over ids[:length] (the snapshots were taken while prefilling)."""
        from transformers.cache_utils import DynamicLayer

        self.ids = ids[:length].clone()
        # References, not copies: generate() grows keys/values by concatenation into new tensors.
        layers: list[Any] = list(cache.layers)
        self.kv = [
            (layer.keys, layer.values)
            if isinstance(layer, DynamicLayer) and layer.is_initialized
            else None
            for layer in layers
        ]

    def prefill(self, model: Any, inputs: Any, im_end_id: int) -> tuple[Any, int]:
        """Prefill the prompt up to its last message end, resuming from the kept state.

        Returns the cache to hand to generate() (which then prefills only the generation
        prompt) and how many tokens were reused. Sets the model's rope deltas so generate()
        continues with the right M-RoPE positions.
        """
        import torch

        ids = inputs["input_ids"]
        row = ids[0]
        length = int(row.shape[0])
        ends = [int(p) + 1 for p in (row == im_end_id).nonzero().flatten().tolist()]
        last = max((b for b in ends if b < length), default=0)
        reused = self.reusable(row, last)
        # Copies past the reused part describe another prompt's tokens: drop them.
        self.snapshots = {b: s for b, s in self.snapshots.items() if b <= reused}
        cache = self.restore(model, reused)
        core = model.model
        grid = inputs.get("image_grid_thw")
        types = inputs.get("mm_token_type_ids")
        mask = inputs.get("attention_mask")
        if grid is not None and types is not None:
            vision, deltas = core.get_rope_index(
                ids, mm_token_type_ids=types, image_grid_thw=grid, attention_mask=mask
            )
        else:
            vision = torch.arange(length, device=ids.device).view(1, 1, -1).expand(3, 1, -1)
            deltas = torch.zeros((1, 1), dtype=torch.long, device=ids.device)
        text = torch.arange(length, device=ids.device).view(1, 1, -1)
        positions = torch.cat([text, vision.to(text.dtype)], dim=0)  # text, t, h, w
        core.rope_deltas = deltas
        if last > reused:
            embeds = self._embed(model, inputs, reused, last)
            start = reused
            for end in [b for b in ends if reused < b <= last]:
                model.model.language_model(
                    inputs_embeds=embeds[:, start - reused : end - reused],
                    position_ids=positions[:, :, start:end],
                    cache=cache,
                    use_cache=True,
                )
                self.snapshot(cache, end)
                start = end
        self.keep(cache, row, last)
        return cache, reused

    def _embed(self, model: Any, inputs: Any, start: int, end: int) -> Any:
        """Input embeddings of tokens [start, end), with the features of the images among them."""
        import torch

        ids = inputs["input_ids"]
        core = model.model
        embeds = core.get_input_embeddings()(ids[:, start:end])
        grid = inputs.get("image_grid_thw")
        pixels = inputs.get("pixel_values")
        if grid is None or pixels is None:
            return embeds
        image_id = model.config.image_token_id
        is_image = ids[0] == image_id
        # Each image is one run of image tokens; merge**2 patches make one token.
        merge = model.config.vision_config.spatial_merge_size
        tokens = (grid.prod(dim=-1) // (merge * merge)).tolist()
        patches = grid.prod(dim=-1).tolist()
        starts = (is_image & ~torch.cat([is_image.new_zeros(1), is_image[:-1]])).nonzero()
        wanted: list[int] = []
        for n, first in enumerate(starts.flatten().tolist()):
            if start <= first < end:
                if first + tokens[n] > end:
                    raise ValueError("an image straddles a message end")
                wanted.append(n)
        if not wanted:
            return embeds
        offsets = [0]
        for p in patches:
            offsets.append(offsets[-1] + int(p))
        chunks = [pixels[offsets[n] : offsets[n + 1]] for n in wanted]
        features = core.get_image_features(
            torch.cat(chunks), grid[wanted], return_dict=True
        ).pooler_output
        image_embeds = torch.cat(list(features), dim=0).to(embeds.device, embeds.dtype)
        where = (ids[:, start:end] == image_id).unsqueeze(-1).expand_as(embeds)
        return embeds.masked_scatter(where, image_embeds)


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


# ------------------------------------------------------------------------------ process main


def _die_with_parent() -> None:
    """Linux: get SIGKILL when the parent goes away (stdin EOF covers the other platforms)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        import ctypes

        pr_set_pdeathsig = 1
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    parent = os.environ.get("DESKPILOT_WORKER_PARENT")
    # The parent may have died before prctl took effect.
    if parent and parent.isdigit() and os.getppid() != int(parent):
        os._exit(0)


def serve(inp: IO[bytes], out: IO[bytes]) -> None:
    """Answer frames until stdin closes; generation runs on this thread, reading on another."""
    writer = FrameWriter(out)
    jobs: queue.Queue[Frame] = queue.Queue()
    cancelled: set[int] = set()
    lock = threading.Lock()

    def read_loop() -> None:
        while True:
            try:
                frame = read_frame(inp)
            except (OSError, ValueError):
                frame = None
            if frame is None or frame[0].get("type") == "shutdown":
                # Parent gone or done: exit now, even mid-generation.
                os._exit(0)
            header, _ = frame
            if header.get("type") == "cancel":
                with lock:
                    cancelled.add(int(header.get("id", -1)))
            elif header.get("type") == "ping":
                writer.send({"type": "pong"})
            else:
                jobs.put(frame)

    threading.Thread(target=read_loop, name="worker-stdin", daemon=True).start()

    def progress(stage: str, fraction: float | None) -> None:
        writer.send({"type": "progress", "stage": stage, "fraction": fraction})

    engine = Engine(progress)
    while True:
        header, blob = jobs.get()
        kind = header.get("type")
        if kind == "load":
            model = str(header.get("model"))
            try:
                info = engine.load(
                    model, header.get("device"), header.get("dtype"), header.get("warmup", True)
                )
            except BaseException as exc:  # noqa: B036 - every failure becomes a message
                traceback.print_exc()
                writer.send(
                    {
                        "type": "error",
                        "id": None,
                        "fatal": True,
                        "message": explain_load_error(exc, model),
                    }
                )
                continue
            writer.send({"type": "ready", "info": info, "protocol": PROTOCOL_VERSION})
        elif kind == "generate":
            rid = int(header.get("id", -1))
            if engine.model is None:
                writer.send(
                    {
                        "type": "error",
                        "id": rid,
                        "fatal": False,
                        "message": "The local model is not loaded.",
                    }
                )
                continue

            def should_stop(rid: int = rid) -> bool:
                return rid in cancelled

            def on_delta(kind: Kind, text: str, rid: int = rid) -> None:
                writer.send({"type": "delta", "id": rid, "kind": kind, "text": text})

            try:
                result = engine.run(header, blob, on_delta, should_stop)
            except Exception as exc:
                traceback.print_exc()
                writer.send(
                    {
                        "type": "error",
                        "id": rid,
                        "fatal": False,
                        "message": explain_generate_error(exc),
                    }
                )
            else:
                writer.send({"type": "result", "id": rid, **result})
            with lock:
                cancelled.discard(rid)
        else:
            writer.send(
                {
                    "type": "error",
                    "id": header.get("id"),
                    "fatal": False,
                    "message": f"The worker does not know the request {kind!r}.",
                }
            )


def main() -> int:
    """Entry point of the worker process."""
    _die_with_parent()
    # Ctrl+C in the terminal is for the app; the app closes us through stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Keep the protocol on a private fd: anything a library prints goes to stderr instead.
    proto_out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    serve(sys.stdin.buffer, proto_out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
