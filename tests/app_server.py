"""Launch the real app (real models) on a free loopback port for tests, and sign in to its panel in a browser."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from chatbot.builder import build_index, build_pipeline
from core.config import load_config
from knowledge.ingest import iter_documents
from ui.app import create_app, uvicorn_options

PASSWORD = "test-operator-password"
# what the demo shop's customers ask in the load tests (each one LLM reply on the demo help centre)
QUESTIONS = [
    "How long do I have to send something back?",
    "Do you ship to Canada?",
    "How much is UK delivery?",
    "Can I change my delivery address after ordering?",
    "My lamp arrived broken, what now?",
    "How do I reset my password?",
    "Which payment methods do you take?",
    "When will my refund arrive?",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningApp:
    def __init__(self, tmp, monkeypatch_env, docs):
        self.password = PASSWORD
        monkeypatch_env("CHATBOT_OPERATOR_PASSWORD", PASSWORD)
        overrides = {
            "index_dir": str(tmp / "index"),
            "db_url": f"sqlite:///{tmp}/app.db",
            "company_name": "Lumen & Oak",
            "server": {"uploads_dir": str(tmp / "uploads")},
        }
        self.config = load_config(None, overrides)
        build_index(self.config).ingest(
            iter_documents([str(docs)]), self.config.chunking.max_chars, self.config.chunking.overlap_chars
        )
        self.pipeline = build_pipeline(self.config, speech=True, vision=True)
        self.pipeline.warm_up()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(
                create_app(self.pipeline, self.config),
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                **uvicorn_options(self.config),
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 60
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("the app did not start within 60 s")
            time.sleep(0.1)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def sign_in(page, url: str, password: str) -> None:
    """Sign in to the operator panel at `url` as "operator" in a Playwright `page`; returns once it shows."""
    page.goto(url + "/operator/", wait_until="load")
    page.wait_for_selector("input[type=password]", timeout=60_000)
    page.fill("input[type=text]", "operator")
    page.fill("input[type=password]", password)
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Operator panel", timeout=60_000)
