"""The app's settings: one dataclass, stored as TOML in the user's config folder."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

ApprovalMode = Literal["step", "guarded", "auto"]
APPROVAL_MODES: tuple[ApprovalMode, ...] = ("step", "guarded", "auto")
DEFAULT_HOTKEY = "<ctrl>+<alt>+<shift>+x"


@dataclass
class AppSettings:
    """What the main window remembers between sessions; empty strings mean "default"."""

    task: str = ""
    backend: Literal["local", "openai"] = "local"
    local_model: str = "Qwen/Qwen3.5-2B"
    device: str = ""  # "" = the worker picks (cuda, mps, cpu)
    endpoint: str = "http://127.0.0.1:8000/v1"
    endpoint_model: str = ""  # "" = the first model the server lists
    monitor: int = 0  # 0 = the primary monitor
    approval: ApprovalMode = "step"
    max_steps: int = 30
    break_at: str = ""  # breakpoint steps, "2,5" (1-based); "" = none
    break_on: str = ""  # breakpoint action kinds, "left_click,type"; "" = none
    runs_dir: str = ""  # "" = platformdirs user_data_dir("deskpilot")/runs
    hotkey: str = DEFAULT_HOTKEY  # pynput GlobalHotKeys syntax

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AppSettings:
        """Settings from parsed TOML; unknown keys and values of the wrong type are ignored."""
        default = cls()
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in data and isinstance(data[f.name], type(getattr(default, f.name))):
                values[f.name] = data[f.name]
        settings = cls(**values)
        if settings.backend not in ("local", "openai"):
            settings.backend = "local"
        if settings.approval not in APPROVAL_MODES:
            settings.approval = "step"
        return settings


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
    """A TOML literal for the flat values AppSettings holds (str, int, float, bool)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
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
    """The settings as a flat TOML document."""
    lines = ["# deskpilot settings (written by the app)"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in asdict(settings).items()]
    return "\n".join(lines) + "\n"


def save_settings(settings: AppSettings, path: Path | None = None) -> Path:
    """Write the settings atomically; returns the path."""
    path = path or settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(dumps(settings), encoding="utf-8")
    tmp.replace(path)
    return path
