"""Architecture: layers import downwards, Qt only in ui/, torch only in the worker, no eval."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QT = ("PySide6", "PyQt5", "PyQt6", "shiboken6")
TORCH = ("torch", "transformers", "accelerate", "safetensors")
# The worker process's package: the only code allowed to import torch (the app imports
# agent/backends/worker_wire.py to talk to it, which this rule keeps torch-free).
WORKER = ROOT / "agent" / "backends" / "worker"
# actions <- agent <- ui: each layer imports only the layers below it; main.py may import all.
LAYERS = {"actions": set(), "agent": {"actions"}, "ui": {"actions", "agent"}}
PROJECT = {*LAYERS, "main", "tests", "bench"}


# Parsing runs in a fresh interpreter: CPython 3.11's ast.parse can fail with "AST constructor
# recursion depth mismatch" once an earlier test in the process has hit a RecursionError.
_SCAN = """
import ast, json, sys
out = {}
for name in sys.argv[1:]:
    tree = ast.parse(open(name, encoding="utf-8").read())
    mods, calls = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            mods.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            calls.add(node.func.id)
    out[name] = {"imports": sorted(mods), "calls": sorted(calls)}
print(json.dumps(out))
"""


@functools.cache
def _scan(files: tuple[Path, ...]) -> dict[str, dict[str, list[str]]]:
    proc = subprocess.run(
        [sys.executable, "-c", _SCAN, *map(str, files)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def imported_modules(path: Path) -> set[str]:
    return set(_scan(ALL_FILES)[str(path)]["imports"])


def called_names(path: Path) -> set[str]:
    return set(_scan(ALL_FILES)[str(path)]["calls"])


def python_files(*dirs: str) -> list[Path]:
    files = [p for d in dirs for p in (ROOT / d).rglob("*.py")]
    assert files, "no files found: the layout changed"
    return files


ALL_FILES = tuple(
    sorted(p for d in ("agent", "actions", "ui") for p in (ROOT / d).rglob("*.py"))
) + (ROOT / "main.py",)


def test_layers_import_only_the_layers_below() -> None:
    offenders = [
        f"{p.relative_to(ROOT)} imports {sorted(bad)}"
        for layer, below in LAYERS.items()
        for p in python_files(layer)
        if (bad := imported_modules(p) & PROJECT - below - {layer})
    ]
    assert offenders == []


def test_main_imports_no_tests_or_bench() -> None:
    assert imported_modules(ROOT / "main.py") & {"tests", "bench"} == set()


def test_qt_only_in_ui() -> None:
    files = python_files("agent", "actions") + [ROOT / "main.py"]
    offenders = [str(p) for p in files if imported_modules(p) & set(QT)]
    assert offenders == []


def test_torch_only_in_the_worker() -> None:
    files = python_files("agent", "actions", "ui") + [ROOT / "main.py"]
    assert (WORKER / "__main__.py").is_file(), "the worker package moved: update WORKER"
    offenders = [
        str(p) for p in files if not p.is_relative_to(WORKER) and imported_modules(p) & set(TORCH)
    ]
    assert offenders == []


def test_no_eval_or_exec() -> None:
    for path in python_files("agent", "actions", "ui") + [ROOT / "main.py"]:
        assert not called_names(path) & {"eval", "exec", "compile"}, path


def test_cli_import_pulls_no_torch_or_qt() -> None:
    code = (
        "import sys, main, agent.loop, agent.backends.openai_compat, actions.executor;"
        f"bad=[m for m in sys.modules if m.split('.')[0] in {TORCH + QT!r}];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
