"""Where a model's weights are: a folder given, the Hugging Face cache, or a download.

huggingface_hub is imported inside functions: it comes with the worker's extra (deskpilot[local]).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.backends.worker_wire import one_line

# What a checkpoint needs on disk; skips .bin/.gguf/onnx duplicates some repos carry.
DOWNLOAD_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model", "*.py"]


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
