"""Settings: TOML round trip, defaults for a missing or broken file, wrong types ignored."""

from __future__ import annotations

import tomllib
from pathlib import Path

from agent.config import RunConfig
from ui.settings import AppSettings, dumps, load_settings, save_settings


def test_settings_round_trip(tmp_path: Path) -> None:
    settings = AppSettings(
        task='rename "a\\b" then mail it\n— héllo 你好\ttab',
        run=RunConfig(
            backend="openai",
            device="cpu",
            endpoint="http://127.0.0.1:8000/v1",
            model="Qwen/Qwen3.5-9B",
            monitor=2,
            approve="guarded",
            max_steps=12,
            runs_dir=str(tmp_path / "runs"),
            open=("xterm -e 'a, b'", "foot"),
        ),
        hotkey="<ctrl>+<alt>+<shift>+q",
    )
    path = save_settings(settings, tmp_path / "cfg" / "settings.toml")
    assert tomllib.loads(path.read_text(encoding="utf-8"))["task"] == settings.task
    assert load_settings(path) == settings


def test_missing_broken_and_wrong_types_give_defaults(tmp_path: Path) -> None:
    assert load_settings(tmp_path / "none.toml") == AppSettings()
    broken = tmp_path / "broken.toml"
    broken.write_text("task = \n", encoding="utf-8")
    assert load_settings(broken) == AppSettings()
    odd = tmp_path / "odd.toml"
    odd.write_text(
        'max_steps = "many"\napproval = "yolo"\nbackend = "openai"\nunknown = 1\n', "utf-8"
    )
    loaded = load_settings(odd)
    assert loaded.run.max_steps == 30 and loaded.run.approve == "ask"
    assert loaded.run.backend == "openai"
    assert len(loaded.ignored) == 2  # max_steps and approval, each said once in the app
    assert dumps(loaded).startswith("#")


def test_safety_settings_round_trip_and_bad_values(tmp_path: Path) -> None:
    settings = AppSettings(run=RunConfig(max_minutes=0.0, repeat_limit=5, risk_rules="~/risk.toml"))
    assert load_settings(save_settings(settings, tmp_path / "s.toml")) == settings
    odd = tmp_path / "odd.toml"
    odd.write_text("max_minutes = 45\nrepeat_limit = 1\nrisk_rules = 3\n", "utf-8")
    loaded = load_settings(odd)
    assert loaded.run.max_minutes == 45.0  # TOML's integer is fine for a float setting
    # 1 would pause every action
    assert loaded.run.repeat_limit == 3 and loaded.run.risk_rules == ""
    odd.write_text("max_minutes = -5.0\nrepeat_limit = true\n", "utf-8")
    assert (load_settings(odd).run.max_minutes, load_settings(odd).run.repeat_limit) == (30.0, 3)
