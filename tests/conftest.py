import os
from pathlib import Path

import pytest

# Test modules take these as the fixtures below (tests import no other test module).
ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
DEMO = ROOT / "demo" / "help-centre"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository checkout (where `python -m chatbot` runs from and demo/ lives)."""
    return ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data sets beside the checkout (../shared/data)."""
    return SHARED


@pytest.fixture(scope="session")
def demo_docs() -> Path:
    """The demo help centre (Markdown articles)."""
    return DEMO


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """No test may reach a model hub: everything loads from local folders."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    """A tiny byte-level BPE chat tokenizer (finetune.testing.tiny_tokenizer) for tiny test models."""
    from finetune.testing import tiny_tokenizer

    return tiny_tokenizer(tmp_path_factory.mktemp("tokenizer"))


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
    """The real app (real models) on a loopback port, shared by the app and browser tests.

    `app.url` is its address, `app.password` the operator password, `app.pipeline` and `app.config` its parts.
    """
    from tests.app_server import RunningApp

    env = pytest.MonkeyPatch()
    running = RunningApp(tmp_path_factory.mktemp("app"), lambda k, v: env.setenv(k, v), DEMO)
    yield running
    running.stop()
    env.undo()
