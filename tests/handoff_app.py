"""The app on stand-ins for the live-handoff and safety tests: named operators (an admin, two agents), a small
help centre, a scripted LLM, a real webhook receiver on loopback. Imported by the test modules that need it."""

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fastapi.testclient import TestClient

from chatbot.testing import ScriptedChatModel, scripted_pipeline
from core.config import load_config
from knowledge.index import KnowledgeIndex
from knowledge.ingest import iter_documents
from knowledge.testing import HashEmbedder
from ui.app import create_app
from ui.guard import hash_password

PASSWORD = "s3cret-operator"
ALEX, SAM = "alex-password", "sam-password"


def basic(user: str, password: str) -> dict:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def returns_index(tmp_path) -> KnowledgeIndex:
    """A one-article help centre (returns: 30 days, a free UK label) in `tmp_path/kb`, indexed in `tmp_path/ix`
    with `HashEmbedder` at 300/50-character chunks."""
    kb = tmp_path / "kb"
    kb.mkdir(exist_ok=True)
    (kb / "returns.md").write_text(
        "---\nid: R\ntitle: Returns\nurl: https://x/R\n---\nYou can return most items "
        "within 30 days of delivery. UK orders get a free return label."
    )
    index = KnowledgeIndex(tmp_path / "ix", HashEmbedder())
    index.ingest(iter_documents([str(kb)]), 300, 50)
    return index


def serve(tmp_path, handoff=None, server=None, webhook=None, extra=None):
    """The app on stand-ins with the operator (admin), alex (agent, shown as "Alex") and sam (agent);
    returns (pipeline, TestClient). `handoff`, `server`: more config; `extra`: more top-level config
    sections (e.g. "actions"); `webhook`: a sender for the desk."""
    index = returns_index(tmp_path)
    config = load_config(
        None,
        {
            "company_name": "Lumen & Oak",
            "index_dir": str(tmp_path / "ix"),
            "db_url": f"sqlite:///{tmp_path}/db.sqlite",
            "chunking": {"max_chars": 300, "overlap_chars": 50},
            "server": {"operator_password": PASSWORD, "uploads_dir": str(tmp_path / "uploads"), **(server or {})},
            "handoff": {
                "faq_dir": str(tmp_path / "faq"),
                "agents": {
                    "alex": {"password": hash_password(ALEX, iterations=1000), "display_name": "Alex"},
                    "sam": {"password": hash_password(SAM, iterations=1000), "role": "agent"},
                },
                **(handoff or {}),
            },
            "grounding": {
                "min_retrieval_cosine": 0.2,
                "off_topic_cosine": -1.0,
                "direct_quote_cosine": 1.01,
                "evidence_answer_cosine": 1.01,
                "suggest_reader": "",  # stand-ins only: the real reader is tested in test_window_reader and e2e
            },
            **(extra or {}),
        },
    )
    pipeline = scripted_pipeline(
        config,
        index,
        ScriptedChatModel("You can pay for bitcoin orders by card or PayPal."),
        config.db_url,
        webhook=webhook,
    )
    return pipeline, TestClient(create_app(pipeline, config), raise_server_exceptions=False)


def handed_over(client) -> str:
    r = client.post("/api/chat", json={"message": "Can I pay with bitcoin?"})
    assert r.status_code == 200 and r.json()["handoff"]["needed"], r.text
    return r.json()["conversation_id"]


class Receiver:
    """A real local HTTP server that records webhook deliveries; `fail_first` answers 503 that many times."""

    def __init__(self, fail_first: int = 0, delay_s: float = 0.0):
        self.bodies: list[tuple[dict, bytes, dict]] = []
        self.fail_first = fail_first
        self.delay_s = delay_s
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.attempts += 1
                time.sleep(receiver.delay_s)
                if receiver.attempts <= receiver.fail_first:
                    self.send_response(503)
                    self.end_headers()
                    return
                receiver.bodies.append((json.loads(body), body, dict(self.headers)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[str]:
        return [b["event"] for b, _, _ in self.bodies]

    def close(self):
        self.server.shutdown()
