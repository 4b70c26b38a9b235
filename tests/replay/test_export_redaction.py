"""Exports are made from recordings, so a typed password or a marked secret never reaches them."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest

from agent.approval import auto_approve
from agent.backends.base import Completion
from agent.loop import LoopSettings, run_task
from agent.recording import Recorder
from agent.secrets import MARKER, Redactor
from tests.replay.conftest import FakeBackend, ShadedScreen, ShadingExecutor
from tests.replay.test_export import export
from tests.support.scripted_server import xml_call

PASSWORD = "hunter2-Xk9#pQ"
MARKED = "S3cr3t!pass<&>"  # also tests the HTML-escaped form


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A four-step run: the user's secret in the task, a password typed, then Enter."""
    screen = ShadedScreen()
    executor = ShadingExecutor(screen)
    backend = FakeBackend(
        [
            Completion(xml_call(action="type", text=MARKED), reasoning="Type the user's text."),
            Completion(xml_call(action="type", text=PASSWORD), reasoning="I type the password"),
            Completion(xml_call(action="key", keys=["enter"]), reasoning="Log in."),
            Completion(xml_call(action="terminate", status="success")),
        ]
    )
    settings = LoopSettings(max_steps=6, settle_min_s=0.0)
    task = f"sign in; the note is {MARKED}"
    info = {
        "task": task,
        "model": backend.model,
        "backend": backend.describe(),
        "approval": "auto",
        "monitor": {"index": 0, "left": 0, "top": 0, "width": 320, "height": 200},
        "settings": settings.to_json(),
    }
    recorder = Recorder(tmp_path_factory.mktemp("runs"), info, redactor=Redactor([MARKED]))
    result = run_task(
        task,
        backend=backend,
        screen=screen,
        executor=executor,
        decide=auto_approve,
        recorder=recorder,
        settings=settings,
    )
    assert result.outcome == "success" and result.steps == 4
    assert [getattr(a, "text", None) for a in executor.done[:2]] == [MARKED, PASSWORD]
    return recorder.dir


def forms(secret: str) -> list[bytes]:
    """The secret as any export could hold it: verbatim, JSON- or HTML-escaped."""
    texts = {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        html.escape(secret, quote=True),
        html.escape(json.dumps(secret, ensure_ascii=False)[1:-1], quote=True),
    }
    return [t.encode("utf-8") for t in texts]


@pytest.mark.parametrize("fmt", ["html", "gif"])
def test_an_export_holds_no_secret(run_dir: Path, fmt: str, tmp_path: Path) -> None:
    out = tmp_path / f"run.{fmt}"
    proc = export(run_dir, fmt, out)
    assert proc.returncode == 0, proc.stderr
    data = out.read_bytes()
    assert len(data) > 1000
    for secret in (PASSWORD, MARKED):
        for form in forms(secret):
            assert form not in data, (fmt, form)
    assert PASSWORD not in proc.stdout + proc.stderr
    if fmt == "html":
        page = data.decode("utf-8")
        assert page.count(MARKER) >= 6  # task, two typed texts, echoed in later prompts
        assert "Redacted: typed text: password field" in page
        assert "Redacted: task: password-like token" in page
        assert "Step 2: type(text=&quot;[REDACTED]&quot;)" in page
