"""Fixtures for the local worker tests: tiny random Qwen 3.5 checkpoints built offline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="module", autouse=True)
def hub_offline() -> Iterator[None]:
    """Everything here runs without the Hub, as CI does (workers inherit the setting)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield


@pytest.fixture(scope="session")
def tiny_qwen35(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folders of a tiny dense (qwen3_5) and MoE (qwen3_5_moe) checkpoint, built once."""
    from tests.support import tiny_qwen35 as builder

    root = tmp_path_factory.mktemp("tiny-qwen35")
    return {variant: builder.build(root / variant, variant) for variant in ("dense", "moe")}
