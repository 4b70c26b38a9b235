"""The portal's restore token: where it is kept, who may read it, and forgetting it."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from actions.desktop.portal import forget_token, load_token, restore_token_path, save_token


def test_the_token_lives_in_the_users_state_folder_readable_by_the_user_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    path = restore_token_path()
    assert path == tmp_path / "state" / "deskpilot" / "portal-restore-token"
    assert load_token(path) is None
    save_token(path, "3f0c-token")
    assert load_token(path) == "3f0c-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    save_token(path, "next")  # a new session's token replaces the old one
    assert load_token(path) == "next"
    forget_token(path)
    assert load_token(path) is None and not path.exists()
    forget_token(path)  # forgetting twice is not an error


def test_an_unwritable_state_folder_only_means_asking_again(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    path = blocked / "deskpilot" / "portal-restore-token"  # its parent cannot be made
    save_token(path, "token")
    assert load_token(path) is None
