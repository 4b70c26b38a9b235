"""The one run configuration: flags, the app's form words, settings.toml and run.json agree."""

from __future__ import annotations

import argparse
import ast
from dataclasses import fields
from pathlib import Path

import pytest

from agent.config import (
    DEFAULT_LOCAL_MODEL,
    OPTIONS,
    ConfigError,
    RunConfig,
    add_cli_options,
    from_args,
)

ROOT = Path(__file__).resolve().parents[2]

# A value other than the default for every option, as given on the command line.
NON_DEFAULT = {
    "backend": ("openai", "openai"),
    "endpoint": ("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1"),
    "model": ("Qwen/Qwen3.5-9B", "Qwen/Qwen3.5-9B"),
    "device": ("cpu", "cpu"),
    "thinking": ("off", "off"),
    "max_tokens": ("512", 512),
    "timeout": ("30", 30.0),
    "retries": ("0", 0),
    "api_key_env": ("MY_KEY", "MY_KEY"),
    "example": ("/tmp/demo-run", "/tmp/demo-run"),
    "approve": ("guarded", "guarded"),
    "risk_rules": ("/tmp/r.toml", "/tmp/r.toml"),
    "break_at": ("2,5", "2,5"),
    "break_on": ("type", "type"),
    "secret": ("hunter2", ("hunter2",)),
    "secret_env": ("HOME", ("HOME",)),
    "max_steps": ("7", 7),
    "max_minutes": ("0", 0.0),
    "repeat_limit": ("4", 4),
    "history_images": ("2", 2),
    "max_pixels": ("1000000", 1000000),
    "coords": ("absolute", "absolute"),
    "monitor": ("2", 2),
    "display_backend": ("x11", "x11"),
    "desktop": ("headless", "headless"),
    "open": ("xterm", ("xterm",)),
    "desktop_size": ("1280x720", "1280x720"),
    "runs_dir": ("/tmp/runs", "/tmp/runs"),
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    add_cli_options(p)
    return p


def test_every_option_has_a_flag_a_label_and_a_test_value() -> None:
    assert set(NON_DEFAULT) == set(OPTIONS) == {f.name for f in fields(RunConfig)}
    for opt in OPTIONS.values():
        assert opt.label and opt.help and opt.flag.startswith("--")
        assert not opt.choice_labels or len(opt.choice_labels) == len(opt.choices)


@pytest.mark.parametrize("name", sorted(NON_DEFAULT))
def test_each_flag_sets_its_option_and_nothing_else(name: str) -> None:
    text, value = NON_DEFAULT[name]
    argv = [OPTIONS[name].flag, text]
    if name == "backend":
        argv += ["--endpoint", "http://127.0.0.1:9/v1"]  # openai needs one
    config = from_args(parser().parse_args(argv))
    assert getattr(config, name) == value
    changed = {
        f.name for f in fields(config) if getattr(config, f.name) != getattr(RunConfig(), f.name)
    }
    assert changed - {"endpoint", "backend"} <= {name}


def test_an_endpoint_alone_means_the_openai_backend() -> None:
    config = from_args(parser().parse_args(["--endpoint", "http://127.0.0.1:9/v1"]))
    assert config.backend == "openai" and config.model_id is None
    assert RunConfig().model_id == DEFAULT_LOCAL_MODEL


@pytest.mark.parametrize(
    ("argv", "cli", "app"),
    [
        (["--max-steps", "0"], "--max-steps must be at least 1", "Max steps must be at least 1"),
        (["--repeat-limit", "1"], "--repeat-limit must be at least 2", "Repeat limit must"),
        (["--history-images", "0"], "--history-images must be at least 1", "History images"),
        (["--retries", "11"], "--retries must be at most 10", "Retries must be at most 10"),
        (["--max-minutes", "nan"], "--max-minutes must be a finite number", "Max minutes"),
        (["--desktop-size", "huge"], "--desktop-size: desktop size 'huge'", "Desktop size:"),
        (["--break-on", "wiggle"], "--break-on: unknown action kind 'wiggle'", "Break on actions"),
        (["--break-at", "x"], "--break-at: breakpoint step 'x'", "Break at steps:"),
        (["--backend", "openai"], "--endpoint is needed for the openai backend", "Endpoint is"),
    ],
)
def test_bad_values_are_refused_in_the_words_of_each_front_end(
    argv: list[str], cli: str, app: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        from_args(parser().parse_args(argv))
    assert str(caught.value).startswith(cli)
    assert caught.value.for_app.startswith(app)


def test_settings_toml_round_trip_and_older_names() -> None:
    config = RunConfig(
        backend="openai",
        endpoint="http://127.0.0.1:9/v1",
        model="m",
        approve="auto",
        secret=("never saved",),
        open=("xterm -e 'a, b'",),
    )
    saved = config.to_mapping()
    assert "secret" not in saved
    loaded, ignored = RunConfig.from_mapping(saved)
    assert ignored == [] and loaded == config.with_values(secret=())
    older = {
        "approval": "step",
        "backend": "openai",
        "local_model": "/models/x",
        "endpoint_model": "Qwen/Qwen3.5-9B",
        "desktop_open": "xterm",
    }
    old, ignored = RunConfig.from_mapping(older)
    assert (old.approve, old.model, old.open, ignored) == ("ask", "Qwen/Qwen3.5-9B", ("xterm",), [])
    bad, ignored = RunConfig.from_mapping({"max_steps": "many", "approve": "yolo", "x": 1})
    assert bad == RunConfig() and len(ignored) == 2


def test_the_recorded_words_are_the_same_from_every_front_end() -> None:
    """run.json's config is RunConfig.recorded(): no secret and no front-end word in it."""
    recorded = RunConfig(secret=("hunter2",), secret_env=("HOME",)).recorded()
    assert recorded["approve"] == "ask"
    assert "hunter2" not in repr(recorded) and "secret_env" not in recorded


def test_the_default_model_id_is_declared_once() -> None:
    """Only agent/config.py spells the default model id as a value."""
    places = []
    for path in [ROOT / "main.py", *ROOT.glob("agent/**/*.py"), *ROOT.glob("ui/**/*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value == DEFAULT_LOCAL_MODEL:
                places.append(str(path.relative_to(ROOT)))
    assert places == ["agent/config.py"]
