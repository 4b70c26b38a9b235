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
    hotkey: str = DEFAULT_HOTKEY  # "<ctrl>+<alt>+<shift>+x" (pynput-style names)
    max_minutes: float = 30.0  # the run's own time (waiting for you excluded); 0 = no limit
    repeat_limit: int = 3  # ask at the Nth identical action in a row on an unchanged screen
    risk_rules: str = ""  # "" = risk.toml in the config folder if present, else the defaults
    desktop: str = "user"  # user, private, headless or window (actions/private_desktop.py)
    desktop_open: str = ""  # one command started on a private desktop first; "" = none
    desktop_size: str = "1920x1080"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AppSettings:
        """Settings from parsed TOML; unknown keys and values of the wrong type are ignored."""
        default = cls()
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data:
                continue
            value, wanted = data[f.name], type(getattr(default, f.name))
            if wanted is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)  # TOML writes 30 for 30.0
            if isinstance(value, wanted) and not (wanted is not bool and isinstance(value, bool)):
                values[f.name] = value
        settings = cls(**values)
        if settings.backend not in ("local", "openai"):
            settings.backend = "local"
        if settings.approval not in APPROVAL_MODES:
            settings.approval = "step"
        if not 0 <= settings.max_minutes < float("inf"):
            settings.max_minutes = default.max_minutes
        from actions.private_desktop import DESKTOP_CHOICES

        if settings.desktop not in DESKTOP_CHOICES:
            settings.desktop = default.desktop
        if settings.repeat_limit < 2:  # 1 would pause every action; the CLI refuses it too
            settings.repeat_limit = default.repeat_limit
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
