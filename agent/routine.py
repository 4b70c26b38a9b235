"""Routines: a recording whose typed text has {NAME} parameters, filled in when it is replayed.

make_routine copies a recording (an agent's run or a person's demonstration) to a new folder,
replacing given text in every typed text with {NAME}, and lists the parameters in run.json
under "routine". The original is left unchanged. Replay fills the parameters back in
(fill_text) after bind_params has checked that every parameter, and only those, were given.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from agent.recording import new_run_id, now_iso

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# The fields of a step record that hold actions as arguments (the typed text lives there).
_ACTION_FIELDS = ("action", "to_run")
_NESTED_ACTIONS = {"decision": "edited_action", "execution": "action"}


class RoutineError(ValueError):
    """A routine cannot be made or filled in; the message says why in one line."""


def parse_params(pairs: Iterable[str]) -> dict[str, str]:
    """NAME=TEXT pairs as given on the command line, checked (name syntax, no repeats)."""
    params: dict[str, str] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep:
            raise RoutineError(f"--param {pair!r}: write NAME=TEXT")
        if not _NAME.fullmatch(name):
            raise RoutineError(
                f"--param {pair!r}: a name is letters, digits and _ (not starting with a digit)"
            )
        if name in params:
            raise RoutineError(f"--param {name} is given twice")
        params[name] = text
    return params


def placeholder(name: str) -> str:
    """How a parameter is written in typed text: {NAME}."""
    return "{" + name + "}"


def routine_params(info: Mapping[str, Any]) -> list[str]:
    """The parameter names a recording's run.json declares ([] when it is not a routine)."""
    routine = info.get("routine")
    params = routine.get("params") if isinstance(routine, dict) else None
    return [p for p in params if isinstance(p, str)] if isinstance(params, list) else []


def _replace_in_action(args: object, params: Mapping[str, str]) -> tuple[object, int]:
    """Action arguments with each TEXT in typed text replaced by {NAME}; and the count."""
    if not isinstance(args, dict) or args.get("action") != "type":
        return args, 0
    text = args.get("text")
    if not isinstance(text, str):
        return args, 0
    count = 0
    # Longest text first: "Jane Doe" is replaced before "Jane".
    for name, old in sorted(params.items(), key=lambda kv: -len(kv[1])):
        count += text.count(old)
        text = text.replace(old, placeholder(name))
    return {**args, "text": text}, count


def _replace_in_step(step: dict[str, Any], params: Mapping[str, str]) -> tuple[dict[str, Any], int]:
    """A step record with every typed text parameterised; and how many replacements."""
    out = dict(step)
    found = 0
    for key in _ACTION_FIELDS:
        out[key], n = _replace_in_action(out.get(key), params)
        found += n
    for key, inner in _NESTED_ACTIONS.items():
        part = out.get(key)
        if isinstance(part, dict):
            new, n = _replace_in_action(part.get(inner), params)
            out[key] = {**part, inner: new}
            found += n
    return out, found


def _typed_texts(step: dict[str, Any]) -> list[str]:
    """Every typed text in a step record's actions."""
    found = [step.get(key) for key in _ACTION_FIELDS]
    found += [
        part.get(inner)
        for key, inner in _NESTED_ACTIONS.items()
        if isinstance(part := step.get(key), dict)
    ]
    return [
        a["text"]
        for a in found
        if isinstance(a, dict) and a.get("action") == "type" and isinstance(a.get("text"), str)
    ]


def make_routine(run_dir: Path, out_dir: Path, params: Mapping[str, str]) -> dict[str, Any]:
    """Copy `run_dir` to `out_dir` with TEXT in typed text replaced by {NAME}; run.json's info.

    RoutineError when a TEXT is empty or never typed, when typed text already holds {NAME}
    (it could not be told from the parameter), or when the folders are wrong.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if not (run_dir / "run.json").is_file():
        raise RoutineError(f"{run_dir} is not a recording (no run.json)")
    if out_dir.exists():
        raise RoutineError(f"{out_dir} already exists; give a new folder")
    if not params:
        raise RoutineError("give at least one --param NAME=TEXT")
    for name, text in params.items():
        if not text:
            raise RoutineError(f"--param {name}: the text to replace is empty")
    info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    declared = routine_params(info)
    clash = sorted(set(declared) & set(params))
    if clash:
        raise RoutineError(f"the recording already has the parameter {clash[0]}")
    lines = (run_dir / "steps.jsonl").read_bytes().split(b"\n")
    new_lines: list[bytes] = []
    counts = dict.fromkeys(params, 0)
    for raw in lines:
        if not raw.strip():
            new_lines.append(raw)
            continue
        try:
            step = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            new_lines.append(raw)  # a torn last line stays as it was; readers skip it
            continue
        if not isinstance(step, dict):
            new_lines.append(raw)
            continue
        typed = _typed_texts(step)
        for name in params:
            if any(placeholder(name) in t for t in typed):
                raise RoutineError(
                    f"step {int(step.get('index', 0)) + 1} already contains {placeholder(name)}; "
                    "choose another parameter name"
                )
        for name, text in params.items():
            counts[name] += _replace_in_step(step, {name: text})[1]
        step, _ = _replace_in_step(step, params)
        new_lines.append(json.dumps(step, ensure_ascii=False, allow_nan=False).encode("utf-8"))
    missing = [name for name, n in counts.items() if n == 0]
    if missing:
        raise RoutineError(
            f"--param {missing[0]}: its text is not in any typed text of the recording"
        )
    try:
        shutil.copytree(run_dir, out_dir)
        (out_dir / "steps.jsonl").write_bytes(b"\n".join(new_lines))
        info["routine"] = {
            "params": [*declared, *params],
            "source_run": info.get("run_id"),
            "made_at": now_iso(),
        }
        info["run_id"] = out_dir.name or new_run_id()
        text = json.dumps(info, ensure_ascii=False, indent=2) + "\n"
        (out_dir / "run.json").write_text(text, encoding="utf-8")
    except OSError as exc:
        raise RoutineError(f"cannot write {out_dir}: {exc.strerror or exc}") from exc
    return info["routine"]


def bind_params(info: Mapping[str, Any], given: Mapping[str, str]) -> dict[str, str]:
    """The values to fill in: every declared parameter, and only those (RoutineError else)."""
    declared = routine_params(info)
    unknown = [name for name in given if name not in declared]
    if unknown:
        takes = ", ".join(declared) if declared else "none (it is not a routine)"
        raise RoutineError(f"unknown parameter {unknown[0]}; this recording takes: {takes}")
    missing = [name for name in declared if name not in given]
    if missing:
        listed = " ".join(f"--param {n}=..." for n in missing)
        raise RoutineError(f"the routine needs a value for each parameter: {listed}")
    return dict(given)


def fill_text(text: str, values: Mapping[str, str]) -> str:
    """Typed text with each {NAME} replaced by its value (in one pass: values stay literal)."""
    if not values:
        return text
    pattern = re.compile("|".join(re.escape(placeholder(n)) for n in values))
    return pattern.sub(lambda m: values[m.group(0)[1:-1]], text)
