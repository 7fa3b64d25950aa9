import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
DEMO = ROOT / "demo" / "help-centre"


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """No test may reach a model hub: everything loads from local folders."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def write(tmp_path):
    def _write(relative: str, text: str | bytes) -> Path:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return path
    return _write


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def app(tmp_path_factory):
    """The real app (real models) on a loopback port, shared by the app and browser tests."""
    from tests.app_server import RunningApp

    env = pytest.MonkeyPatch()
    running = RunningApp(tmp_path_factory.mktemp("app"), lambda k, v: env.setenv(k, v))
    yield running
    running.stop()
    env.undo()
