import os
from pathlib import Path

import pytest

# Test modules take these as the fixtures below (tests import no other test module).
ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
DEMO = ROOT / "demo" / "help-centre"


def fail_in_ci_else_skip(missing: str) -> None:
    """A service a test needs is missing: in CI (CI=true) the test fails, since a skip there would hide that it
    never ran; elsewhere it is skipped, saying what installs it."""
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(missing, pytrace=False)
    pytest.skip(missing)


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


@pytest.fixture
def shop_index(write, tmp_path):
    """Two help-centre articles (returns, R; shipping, S) in a `HashEmbedder` index at tmp_path/ix."""
    from knowledge.index import KnowledgeIndex
    from knowledge.ingest import iter_documents
    from knowledge.testing import HashEmbedder

    write(
        "kb/returns.md",
        "---\nid: R\ntitle: Returns\nurl: https://x/R\n---\n"
        "You can return most items within 30 days of delivery. UK orders get a free return label.",
    )
    write("kb/shipping.md", "---\nid: S\ntitle: Shipping\nurl: https://x/S\n---\nStandard delivery costs 3.95 pounds.")
    index = KnowledgeIndex(tmp_path / "ix", HashEmbedder())
    index.ingest(iter_documents([str(tmp_path / "kb")]), 300, 50)
    return index


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


CHROMIUM = "/usr/bin/chromium"  # Debian's; `make setup` installs it
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium through Playwright, for the browser tests."""
    import shutil

    assert shutil.which("chromium") or Path(CHROMIUM).exists(), "install Debian's chromium (make setup does it)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def shots(repo_root) -> Path:
    """Where browser tests put their screenshots: .chatbot/screenshots/ (or $CHATBOT_SHOTS)."""
    folder = Path(os.environ.get("CHATBOT_SHOTS") or repo_root / ".chatbot" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL cluster for the session (tests/postgres_server.py); `.create_database(name)`
    returns the URL of a new empty database. Without PostgreSQL the test fails in CI (CI=true): a skip
    there would hide that the store never ran on it; elsewhere it is skipped with the command that fixes it."""
    from tests.postgres_server import TemporaryPostgres, find_bin_dir

    missing = None
    bin_dir = find_bin_dir()
    if bin_dir is None:
        missing = "PostgreSQL is not installed (no initdb/pg_ctl): run `sudo make system-deps` (Debian `postgresql`)"
    else:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            missing = "the PostgreSQL driver is missing: run `.venv/bin/pip install -e '.[dev]'` (psycopg)"
    if missing:
        fail_in_ci_else_skip(missing)
    server = TemporaryPostgres(bin_dir)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def new_database(request, tmp_path):
    """Make empty databases of one kind, SQLite and PostgreSQL in turn: `new_database("name")` -> a URL."""
    if request.param == "sqlite":
        return lambda name="db": f"sqlite:///{tmp_path}/{name}.sqlite"
    return request.getfixturevalue("postgres").create_database


@pytest.fixture
def db_url(new_database) -> str:
    """An empty database, SQLite and PostgreSQL in turn: its SQLAlchemy URL."""
    return new_database("db")


@pytest.fixture(scope="session")
def llm_server(tmp_path_factory):
    """A real llama.cpp OpenAI-compatible server with SmolLM2 for the session (tests/llama_server.py). Missing
    in CI (CI=true) it fails, elsewhere it is skipped with the command that installs it."""
    from tests.llama_server import LlamaServer, missing

    if why := missing():
        fail_in_ci_else_skip(why)
    server = LlamaServer(tmp_path_factory.mktemp("llama") / "server.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url():
    """A throwaway redis-server on a free loopback port for the session; its URL. Missing in CI (CI=true) it
    fails, elsewhere it is skipped with the command that installs it."""
    import shutil
    import socket
    import subprocess
    import time

    binary = shutil.which("redis-server")
    if binary is None:
        missing = "redis-server is not installed: run `sudo make system-deps` (Debian `redis-server`)"
        fail_in_ci_else_skip(missing)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    url = f"redis://127.0.0.1:{port}/0"
    try:
        for _ in range(100):
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)
