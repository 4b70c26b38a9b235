"""The app's settings: the task, the hotkey and the run configuration, stored as flat TOML."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.config import DEFAULT_HOTKEY, RunConfig


@dataclass
class AppSettings:
    """What the main window remembers between sessions: its own fields and the run options."""

    task: str = ""
    hotkey: str = DEFAULT_HOTKEY  # "<ctrl>+<alt>+<shift>+x" (pynput-style names)
    run: RunConfig = field(default_factory=RunConfig)
    # Lines about values in the file that were ignored (shown once in the status bar).
    ignored: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AppSettings:
        """Settings from parsed TOML; a bad run option keeps its default and is reported."""
        run, ignored = RunConfig.from_mapping(data)
        values: dict[str, str] = {}
        for name in ("task", "hotkey"):
            if isinstance(data.get(name), str):
                values[name] = data[name]
        return cls(**values, run=run, ignored=tuple(ignored))


def settings_path() -> Path:
    """platformdirs' user config folder for deskpilot, then settings.toml."""
    from platformdirs import user_config_dir

    return Path(user_config_dir("deskpilot")) / "settings.toml"


def load_settings(path: Path | None = None) -> AppSettings:
    """Read the settings; a missing or unreadable file gives the defaults."""
    path = path or settings_path()
    try:
        with path.open("rb") as fh:
            return AppSettings.from_dict(tomllib.load(fh))
    except (OSError, tomllib.TOMLDecodeError):
        return AppSettings()


def _toml_value(value: object) -> str:
    """A TOML literal for the flat values the settings hold (str, int, float, bool, lists)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value)
    out = []
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")  # TOML basic strings forbid raw control characters
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def dumps(settings: AppSettings) -> str:
    """The settings as a flat TOML document (secrets are never written)."""
    values: dict[str, Any] = {"task": settings.task, "hotkey": settings.hotkey}
    values.update(settings.run.to_mapping())
    lines = ["# deskpilot settings (written by the app; every run option of `deskpilot run`)"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def save_settings(settings: AppSettings, path: Path | None = None) -> Path:
    """Write the settings atomically; returns the path."""
    path = path or settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(dumps(settings), encoding="utf-8")
    tmp.replace(path)
    return path
