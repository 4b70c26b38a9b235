"""Settings: test the endpoint and choose among its models without the command line."""

from __future__ import annotations

from typing import Any

from agent.config import RunConfig
from tests.support.scripted_server import ScriptedServer
from ui.settings_dialog import SettingsDialog


def test_a_reachable_endpoint_lists_its_models_to_choose_from(qtbot: Any) -> None:
    server = ScriptedServer([])
    try:
        dialog = SettingsDialog([])
        qtbot.addWidget(dialog)
        dialog.form.load(RunConfig(backend="openai", endpoint=server.url))
        dialog.test_button.click()
        qtbot.waitUntil(lambda: dialog.models.isVisible() or "Connected" in dialog.note.text())
        assert dialog.note.text().startswith("Connected: the server serves 1 model(s)")
        assert dialog.models.isVisibleTo(dialog) and dialog.models.itemData(1) == server.model
        dialog.models.setCurrentIndex(1)
        dialog.models.activated.emit(1)
        assert dialog.form.value("model") == server.model
    finally:
        server.close()


def test_an_unreachable_endpoint_is_said_in_the_app_s_words(qtbot: Any) -> None:
    dialog = SettingsDialog([])
    qtbot.addWidget(dialog)
    dialog.form.load(RunConfig(backend="openai", endpoint="http://127.0.0.1:9/v1"))
    dialog.test_button.click()
    qtbot.waitUntil(lambda: dialog.test_button.isEnabled(), timeout=20000)
    note = dialog.note.text()
    assert "cannot reach http://127.0.0.1:9/v1" in note and "--endpoint" not in note
    assert not dialog.models.isVisibleTo(dialog)
