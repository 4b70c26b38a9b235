"""An internal error's one line and crash.log never show the API key or a user's secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import main


def test_crash_log_and_line_redact_the_api_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = "sk-test-9f8e7d6c5b4a39281706"
    monkeypatch.setenv("DESKPILOT_API_KEY", key)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    def broken(args: Any) -> int:
        raise RuntimeError(f"server said: bad key {key} for user hunter2-secret")

    monkeypatch.setattr(main, "command_run", broken)
    code = main.main(["run", "x", "--secret", "hunter2-secret"])
    assert code == main.EXIT_FAILED
    err = capsys.readouterr().err
    assert key not in err and "hunter2-secret" not in err and "[REDACTED]" in err
    log = Path(err.rsplit("(details in ", 1)[1].rstrip(")\n"))
    text = log.read_text(encoding="utf-8")
    assert "RuntimeError" in text and key not in text and "hunter2-secret" not in text
