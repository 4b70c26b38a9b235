"""The run configuration: every option of a run, its default, its validation and its words.

`RunConfig` is the one declaration. The command line's flags (`add_cli_options`), the app's
settings form (`OPTIONS`, by label), `settings.toml` (`from_mapping` / `to_mapping`), replay and
the MCP server are all derived from it: adding an option means one field here (and, in the app,
the form row is generated from its `Option`).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from dataclasses import Field, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from actions.private_desktop import DEFAULT_SIZE, DESKTOP_CHOICES
from agent.approval import APPROVAL_MODES, ApprovalMode

DEFAULT_LOCAL_MODEL = "Qwen/Qwen3.5-2B"
DEFAULT_ENDPOINT_HINT = "http://127.0.0.1:8000/v1"  # shown as an example, never used unasked
DEFAULT_API_KEY_ENV = "DESKPILOT_API_KEY"
DEFAULT_HOTKEY = "<ctrl>+<alt>+<shift>+x"  # the stop hotkey (pynput-style names)
BACKENDS = ("local", "openai")
BackendKind = Literal["local", "openai"]
DISPLAY_BACKENDS = ("auto", "x11", "wlroots", "portal")
# The options the model backend is built from (agent/session.py open_backend): a backend kept
# warm is reused while these stay the same, and a healing replay is given these flags.
BACKEND_OPTIONS = (
    "backend",
    "endpoint",
    "model",
    "device",
    "thinking",
    "max_tokens",
    "timeout",
    "api_key_env",
)
Group = Literal["model", "approval", "limits", "desktop", "recording"]


class ConfigError(ValueError):
    """A value an option does not accept; says so in the CLI's or the app's words."""

    def __init__(self, option: Option, problem: str) -> None:
        super().__init__(f"{option.flag}{_sep(problem)}{problem}")
        self.option = option
        self.problem = problem

    @property
    def for_app(self) -> str:
        """The message naming the option by its label, as the app's form shows it."""
        return f"{self.option.label}{_sep(self.problem)}{self.problem}"


def _sep(problem: str) -> str:
    return "" if problem.startswith(":") else " "


@dataclass(frozen=True, slots=True)
class Option:
    """How one RunConfig field appears: its flag, label, help, choices and limits."""

    name: str
    label: str
    help: str
    group: Group
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    metavar: str | None = None
    flag_name: str | None = None  # the CLI flag when it is not --<name with dashes>
    saved: bool = True  # written to settings.toml (secrets never are)
    repeatable: bool = False  # a tuple of strings: the flag may be given several times
    placeholder: str = ""  # what the app's empty field shows
    choice_labels: tuple[str, ...] = ()  # the app's words for each choice, in order
    zero: str = ""  # what 0 means, where it means something ("no limit", "the primary")

    @property
    def flag(self) -> str:
        """The command-line flag, e.g. --max-steps."""
        return "--" + (self.flag_name or self.name.replace("_", "-"))


def option(default: Any, label: str, help: str, group: Group, **kw: Any) -> Any:
    """A dataclass field carrying its Option (the name is filled in by RunConfig)."""
    return field(default=default, metadata={"label": label, "help": help, "group": group, **kw})


@dataclass(frozen=True, slots=True)
class RunConfig:
    """Every option of a run; "" or 0 means "the default" where the help says so."""

    # -- the model
    backend: BackendKind = option(
        "local",
        "Backend",
        "local: the app's own worker; openai: an OpenAI-compatible endpoint (vLLM, SGLang, "
        "llama.cpp, ...); on the command line the default is openai when --endpoint is given",
        "model",
        choices=BACKENDS,
        choice_labels=("Local worker", "OpenAI-compatible endpoint"),
    )
    endpoint: str = option(
        "",
        "Endpoint",
        f"base URL of an OpenAI-compatible API, e.g. {DEFAULT_ENDPOINT_HINT}",
        "model",
        metavar="URL",
        placeholder=DEFAULT_ENDPOINT_HINT,
    )
    model: str = option(
        "",
        "Model",
        f"model name (endpoint: default the first it lists; local: a hub id or a folder, "
        f"default {DEFAULT_LOCAL_MODEL})",
        "model",
        placeholder=DEFAULT_LOCAL_MODEL,
    )
    device: str = option(
        "",
        "Device",
        "where the local worker runs the model (default: cuda, else mps, else cpu)",
        "model",
        choices=("", "cuda", "mps", "cpu"),
        choice_labels=("auto", "cuda", "mps", "cpu"),
    )
    thinking: str = option(
        "",
        "Thinking",
        "ask the model to think first (default: the model's own)",
        "model",
        choices=("", "on", "off"),
        choice_labels=("the model's default", "on", "off"),
    )
    max_tokens: int = option(
        0,
        "Max tokens",
        "bound on generated tokens per step (0: 4096; local without thinking 1024)",
        "model",
        minimum=0,
        zero="default",
    )
    timeout: float = option(
        120.0, "Timeout", "seconds to wait for the model (default 120)", "model", minimum=1
    )
    retries: int = option(
        2,
        "Retries",
        "send a request again this many times when the model backend fails in a way that "
        "may pass (down, HTTP 5xx, timeout, the worker died), after 1 s, 4 s, ... (default 2)",
        "model",
        minimum=0,
        maximum=10,
    )
    api_key_env: str = option(
        DEFAULT_API_KEY_ENV,
        "API key variable",
        "environment variable holding the endpoint's API key",
        "model",
        metavar="VAR",
    )
    example: str = option(
        "",
        "Example run",
        "show this recording (a demonstration or a run) to the model as an example",
        "model",
        metavar="RUN",
    )
    # -- approval and safety
    approve: ApprovalMode = option(
        "ask",
        "Approval",
        "ask for every action (default), only for risky ones (guarded; with nobody to ask "
        "they are refused), or run unattended (auto); blocked actions never run",
        "approval",
        choices=APPROVAL_MODES,
        choice_labels=(
            "ask: before every action",
            "guarded: ask only before risky actions",
            "auto: run unattended (Stop or the hotkey end it)",
        ),
    )
    risk_rules: str = option(
        "",
        "Risk rules",
        "risk rules file (default: risk.toml in the config folder if present; see "
        "docs/reliability.md)",
        "approval",
        metavar="TOML",
    )
    break_at: str = option(
        "",
        "Break at steps",
        "pause before these steps (1-based) and ask for each action until continue",
        "approval",
        metavar="N[,M...]",
    )
    break_on: str = option(
        "",
        "Break on actions",
        "pause before actions of these kinds (left_click, type, key, ...), then step",
        "approval",
        metavar="KIND[,KIND...]",
    )
    secret: tuple[str, ...] = option(
        (),
        "Secrets",
        "text to keep out of recordings and exports (repeatable; prefer --secret-env)",
        "approval",
        metavar="TEXT",
        saved=False,
        repeatable=True,
    )
    secret_env: tuple[str, ...] = option(
        (),
        "Secret variables",
        "environment variable whose value is secret (repeatable)",
        "approval",
        metavar="VAR",
        repeatable=True,
    )
    # -- limits
    max_steps: int = option(
        30, "Max steps", "stop after this many steps (default 30)", "limits", minimum=1
    )
    max_minutes: float = option(
        30.0,
        "Max minutes",
        "end the run after this many minutes of its own time, waiting for you excluded "
        "(default 30; 0: no limit)",
        "limits",
        minimum=0,
        zero="no limit",
    )
    repeat_limit: int = option(
        3,
        "Repeat limit",
        "pause (ask) at the Nth identical action in a row on an unchanged screen (default 3)",
        "limits",
        minimum=2,
    )
    history_images: int = option(
        3, "History images", "screenshots kept in the prompt (default 3)", "limits", minimum=1
    )
    max_pixels: int = option(
        0,
        "Max pixels",
        "downscale screenshots above this many pixels (0: the model's default)",
        "limits",
        minimum=0,
        zero="default",
    )
    coords: str = option(
        "relative",
        "Coordinates",
        "model coordinates: 0-1000 (relative, Qwen3.5) or resized-image pixels (absolute, "
        "Qwen2.5-VL)",
        "limits",
        choices=("relative", "absolute"),
    )
    # -- the desktop
    monitor: int = option(
        0,
        "Monitor",
        "monitor number as `deskpilot monitors` lists it (0: the primary)",
        "desktop",
        minimum=0,
        zero="primary",
    )
    display_backend: str = option(
        "auto",
        "Display backend",
        "how to see and drive the desktop (auto: from the session; see docs/wayland.md)",
        "desktop",
        choices=DISPLAY_BACKENDS,
    )
    desktop: str = option(
        "user",
        "Desktop",
        "user: your own session; private: a desktop of the agent's own, an Xephyr window you "
        "can watch when there is a display, else headless; headless: Xvfb; window: Xephyr",
        "desktop",
        choices=DESKTOP_CHOICES,
        choice_labels=(
            "mine: act on this session",
            "private: a desktop of its own (a window, or headless)",
            "headless: a private desktop nobody sees (watch it here)",
            "window: a private desktop in an Xephyr window",
        ),
    )
    open: tuple[str, ...] = option(
        (),
        "Open on it",
        "start this application on the private desktop first (repeatable)",
        "desktop",
        metavar="CMD",
        repeatable=True,
    )
    desktop_size: str = option(
        f"{DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]}",
        "Desktop size",
        "size of the private desktop",
        "desktop",
        metavar="WxH",
    )
    # -- recording
    runs_dir: str = option(
        "",
        "Runs folder",
        "where recordings go (default: deskpilot's folder in the user's data folder)",
        "recording",
        metavar="DIR",
    )

    # ------------------------------------------------------------------ checks

    def validated(self) -> RunConfig:
        """This configuration, or ConfigError naming the first bad option."""
        for f in fields(self):
            check(OPTIONS[f.name], getattr(self, f.name))
        if self.backend == "openai" and not self.endpoint.strip():
            raise ConfigError(OPTIONS["endpoint"], "is needed for the openai backend")
        return self

    # ------------------------------------------------------------------ derived values

    @property
    def model_id(self) -> str | None:
        """The model to ask for: the local default, or None for an endpoint's first model."""
        if self.model.strip():
            return self.model.strip()
        return DEFAULT_LOCAL_MODEL if self.backend == "local" else None

    @property
    def thinking_flag(self) -> bool | None:
        """on/off as a bool; None: the model's own default."""
        return None if not self.thinking else self.thinking == "on"

    @property
    def monitor_index(self) -> int | None:
        """The monitor number, None for the primary."""
        return self.monitor or None

    @property
    def retry_delays_s(self) -> tuple[float, ...]:
        """The waits before each retry: 1 s, 4 s, 16 s, ..."""
        return tuple(1.0 * 4**n for n in range(self.retries))

    def runs_path(self) -> Path:
        """The runs folder (the user's data folder unless set)."""
        if self.runs_dir.strip():
            return Path(self.runs_dir).expanduser()
        from platformdirs import user_data_dir

        return Path(user_data_dir("deskpilot")) / "runs"

    def risk_rules_path(self) -> Path | None:
        """The risk rules file given, None for the default lookup."""
        return Path(self.risk_rules).expanduser() if self.risk_rules.strip() else None

    def with_values(self, **values: Any) -> RunConfig:
        """A copy with some options changed (not validated)."""
        return replace(self, **values)

    # ------------------------------------------------------------------ settings.toml

    def to_mapping(self) -> dict[str, Any]:
        """The saved options as flat TOML values (secrets are never saved)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if not OPTIONS[f.name].saved:
                continue
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> tuple[RunConfig, list[str]]:
        """A configuration from settings.toml values, and a line for each value ignored.

        Unknown keys are ignored silently (they may be the app's own); a value of the wrong
        type or one the option refuses keeps that option's default and is reported.
        """
        data = _older_names(data)
        default = cls()
        values: dict[str, Any] = {}
        ignored: list[str] = []
        for f in fields(cls):
            if f.name not in data or not OPTIONS[f.name].saved:
                continue
            value = _coerce(data[f.name], getattr(default, f.name))
            if value is None:
                ignored.append(f"{f.name}: {data[f.name]!r} is not a valid value")
                continue
            try:
                check(OPTIONS[f.name], value)
            except ConfigError as exc:
                ignored.append(f"{f.name}: {exc.problem}")
                continue
            values[f.name] = value
        return cls(**values), ignored

    def recorded(self) -> dict[str, Any]:
        """The options as run.json records them (secrets and their variables left out)."""
        return {
            k: v for k, v in self.to_mapping().items() if k not in ("secret_env", "api_key_env")
        }


def check(opt: Option, value: Any) -> None:
    """ConfigError when `opt` does not accept `value`."""
    if opt.choices and value not in opt.choices:
        shown = ", ".join(c or '""' for c in opt.choices)
        raise ConfigError(opt, f"must be one of {shown} (not {value!r})")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ConfigError(opt, "must be a finite number")
        if opt.minimum is not None and value < opt.minimum:
            raise ConfigError(opt, f"must be at least {opt.minimum:g}")
        if opt.maximum is not None and value > opt.maximum:
            raise ConfigError(opt, f"must be at most {opt.maximum:g}")
    if opt.name == "desktop_size":
        from actions.private_desktop import parse_size

        try:
            parse_size(value)
        except ValueError as exc:
            raise ConfigError(opt, f": {exc}") from None
    if opt.name in ("break_at", "break_on"):
        from agent.approval import Breakpoints

        try:
            Breakpoints.parse(*((value, "") if opt.name == "break_at" else ("", value)))
        except ValueError as exc:
            raise ConfigError(opt, f": {exc}") from None


def _field_option(f: Field[Any]) -> Option:
    meta = dict(f.metadata)
    return Option(name=f.name, **meta)


OPTIONS: dict[str, Option] = {f.name: _field_option(f) for f in fields(RunConfig)}


def _older_names(data: Mapping[str, Any]) -> dict[str, Any]:
    """settings.toml as older versions of the app wrote it, in today's names."""
    out = dict(data)
    if out.get("approval") == "step":
        out["approval"] = "ask"  # the app's old word for ask
    if "approval" in out and "approve" not in out:
        out["approve"] = out.pop("approval")
    backend = out.get("backend", "local")
    older_model = out.pop("local_model" if backend == "openai" else "endpoint_model", None)
    del older_model  # the model of the backend not chosen is not kept
    for old in ("local_model", "endpoint_model"):
        if old in out and "model" not in out:
            model = out.pop(old)
            out["model"] = "" if model == DEFAULT_LOCAL_MODEL else model
    if "desktop_open" in out and "open" not in out:
        opened = out.pop("desktop_open")
        out["open"] = [opened] if isinstance(opened, str) and opened.strip() else []
    return out


def _coerce(value: Any, default: Any) -> Any:
    """value as the type of default, or None when it cannot be (TOML writes 30 for 30.0)."""
    if isinstance(default, bool):
        return value if isinstance(value, bool) else None
    if isinstance(default, float):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        return None
    if isinstance(default, int):
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if isinstance(default, tuple):
        if isinstance(value, str):
            return (value,) if value.strip() else ()
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return tuple(value)
        return None
    return value if isinstance(value, str) else None


# ---------------------------------------------------------------------- command line


def add_cli_options(parser: argparse.ArgumentParser, *, only: Sequence[str] | None = None) -> None:
    """One flag per option (or those in `only`), with its help; `from_args` reads them back."""
    default = RunConfig()
    for name, opt in OPTIONS.items():
        if only is not None and name not in only:
            continue
        kw: dict[str, Any] = {"dest": name, "help": opt.help}
        value = getattr(default, name)
        if opt.metavar:
            kw["metavar"] = opt.metavar
        if opt.repeatable:
            kw.update(action="append", default=[])
        else:
            # None: not given (so a later layer, e.g. a recording or a server's default, may
            # fill it); from_args puts the option's default in.
            kw["default"] = None
            if opt.choices:
                kw["choices"] = [c for c in opt.choices if c]
            elif isinstance(value, float):
                kw["type"] = float
            elif isinstance(value, int):
                kw["type"] = int
        parser.add_argument(opt.flag, **kw)


def from_args(args: argparse.Namespace, base: RunConfig | None = None) -> RunConfig:
    """The configuration the flags give over `base` (default: the defaults); validated.

    Without --backend, an --endpoint means the openai backend (the command line's shortcut).
    Raises ConfigError naming the flag.
    """
    config = base or RunConfig()
    values: dict[str, Any] = {}
    for name, opt in OPTIONS.items():
        if not hasattr(args, name):
            continue
        given = getattr(args, name)
        if opt.repeatable:
            if given:
                values[name] = tuple(given)
        elif given is not None:
            values[name] = str(given) if isinstance(given, Path) else given
    if "backend" not in values and values.get("endpoint"):
        values["backend"] = "openai"
    return replace(config, **values).validated()


def cli_args(config: RunConfig, only: Sequence[str]) -> list[str]:
    """The flags that give these options their values in `config` (defaults left out)."""
    default = RunConfig()
    out: list[str] = []
    for name in only:
        opt, value = OPTIONS[name], getattr(config, name)
        if value == getattr(default, name):
            continue
        for one in value if opt.repeatable else (value,):
            out += [opt.flag, str(one)]
    return out
