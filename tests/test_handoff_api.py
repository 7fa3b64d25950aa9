"""The live handoff over REST on stand-ins (hash embedder, scripted LLM) through Starlette's TestClient:
operators sign in by name, claim, reply, resolve and save help-centre answers; customers see who wrote."""

import base64

import pytest
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


def serve(tmp_path, handoff=None, server=None, webhook=None):
    """The app on stand-ins with the operator (admin), alex (agent, shown as "Alex") and sam (agent);
    returns (pipeline, TestClient). `handoff`, `server`: more config; `webhook`: a sender for the desk."""
    kb = tmp_path / "kb"
    kb.mkdir(exist_ok=True)
    (kb / "returns.md").write_text(
        "---\nid: R\ntitle: Returns\nurl: https://x/R\n---\nYou can return most items "
        "within 30 days of delivery. UK orders get a free return label."
    )
    embedder = HashEmbedder()
    index = KnowledgeIndex(tmp_path / "ix", embedder)
    index.ingest(iter_documents([str(kb)]), 300, 50)
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
            },
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


@pytest.fixture
def client(tmp_path, monkeypatch):
    monkeypatch.delenv("CHATBOT_OPERATOR_PASSWORD", raising=False)
    return serve(tmp_path)[1]


def handed_over(client) -> str:
    r = client.post("/api/chat", json={"message": "Can I pay with bitcoin?"})
    assert r.status_code == 200 and r.json()["handoff"]["needed"], r.text
    return r.json()["conversation_id"]


def test_operator_routes_need_credentials(client):
    cid = handed_over(client)
    for method, path, body in [
        ("get", "/api/handoffs", None),
        ("post", f"/api/conversations/{cid}/claim", None),
        ("post", f"/api/conversations/{cid}/reply", {"text": "hi"}),
        ("post", f"/api/conversations/{cid}/resolve", {"return_to_bot": True}),
        ("post", "/api/knowledge/faq", {"question": "q", "answer": "a"}),
        ("get", "/api/knowledge/gaps", None),
    ]:
        r = client.request(method, path, json=body)
        assert r.status_code == 401 and r.json() == {"error": "operator credentials required"}, path
    assert client.get("/api/handoffs", headers=basic("alex", "wrong")).status_code == 401
    assert client.get("/api/handoffs", headers=basic("nobody", ALEX)).status_code == 401
    assert client.get("/api/handoffs", headers=basic("operator", PASSWORD)).status_code == 200  # still an admin
    assert client.get("/api/handoffs", headers={"authorization": f"Bearer {PASSWORD}"}).status_code == 200
    assert client.get("/api/analytics", headers=basic("alex", ALEX)).status_code == 403  # an agent, not an admin
    assert client.get("/api/analytics", headers=basic("operator", PASSWORD)).status_code == 200


def test_a_person_claims_replies_and_resolves_and_the_customer_sees_it(client):
    cid = handed_over(client)
    alex = basic("alex", ALEX)
    queue = client.get("/api/handoffs", headers=alex).json()["handoffs"]
    assert [h["conversation_id"] for h in queue] == [cid] and queue[0]["state"] == "waiting"
    assert queue[0]["packet"]["questions"] == ["Can I pay with bitcoin?"] and queue[0]["packet"]["why"]
    assert queue[0]["waiting_s"] >= 0

    assert client.post(f"/api/conversations/{cid}/claim", headers=alex).json()["agent"] == "alex"
    assert client.post(f"/api/conversations/{cid}/claim", headers=basic("sam", SAM)).status_code == 409
    silent = client.post("/api/chat", json={"message": "Hello?", "conversation_id": cid}).json()
    assert silent["outcome"] == "with_agent" and silent["answer"] == "" and silent["conversation_id"] == cid
    r = client.post(f"/api/conversations/{cid}/reply", headers=alex, json={"text": "Hi, cards and PayPal only."})
    assert r.status_code == 200 and r.json()["message_id"] > 0
    assert (
        client.post(f"/api/conversations/{cid}/reply", headers=basic("sam", SAM), json={"text": "me too"}).status_code
        == 409
    )

    conv = client.get(f"/api/conversations/{cid}").json()
    agent = [m for m in conv["messages"] if m["role"] == "agent"]
    assert agent == [{**agent[0], "content": "Hi, cards and PayPal only.", "author": "Alex"}]
    assert any(m["role"] == "notice" and "Alex joined" in m["content"] for m in conv["messages"])
    assert conv["handoff_state"] == "agent"
    assert [m["role"] for m in conv["messages"]][:2] == ["customer", "assistant"]

    done = client.post(f"/api/conversations/{cid}/resolve", headers=alex, json={"return_to_bot": True}).json()
    assert done["handling_s"] >= 0 and done["human_cost_usd"] >= 0
    assert client.get("/api/handoffs", headers=alex).json()["handoffs"] == []
    assert client.get(f"/api/conversations/{cid}").json()["handoff_state"] == "bot"


def test_bad_bodies_are_400_and_unknown_conversations_404(client):
    cid = handed_over(client)
    alex = basic("alex", ALEX)
    client.post(f"/api/conversations/{cid}/claim", headers=alex)
    for body in ({}, {"text": 5}, {"text": "x", "other": 1}, {"text": "   "}, {"text": "x" * 20_001}, [1], "text"):
        r = client.post(f"/api/conversations/{cid}/reply", headers=alex, json=body)
        assert r.status_code == 400 and set(r.json()) == {"error"}, (body, r.text)
    r = client.post(
        f"/api/conversations/{cid}/reply", headers={**alex, "content-type": "application/json"}, content=b"{not json"
    )
    assert r.status_code == 400
    for body in ({"return_to_bot": "yes"}, {"return_to_bot": 1}, {"return_to_bot": True, "x": 1}):
        r = client.post(f"/api/conversations/{cid}/resolve", headers=alex, json=body)
        assert r.status_code == 400 and set(r.json()) == {"error"}, (body, r.text)
    assert (
        "true or false"
        in client.post(f"/api/conversations/{cid}/resolve", headers=alex, json={"return_to_bot": "yes"}).json()["error"]
    )
    for body in (
        {"question": "q"},
        {"question": "", "answer": "a"},
        {"question": 1, "answer": "a"},
        {"question": "q", "answer": "a", "conversation_id": "../../etc"},
    ):
        r = client.post("/api/knowledge/faq", headers=alex, json=body)
        assert r.status_code == 400 and set(r.json()) == {"error"}, (body, r.text)
    assert client.post(f"/api/conversations/{'0' * 32}/claim", headers=alex).status_code == 404
    assert client.post("/api/conversations/bad%20id!/claim", headers=alex).status_code in (400, 404)
    assert client.post(f"/api/conversations/{'0' * 32}/resolve", headers=alex, json={}).status_code == 404


def test_a_saved_help_centre_answer_answers_the_next_customer_with_a_citation(client):
    cid = handed_over(client)
    alex = basic("alex", ALEX)
    client.post(f"/api/conversations/{cid}/claim", headers=alex)
    client.post(f"/api/conversations/{cid}/reply", headers=alex, json={"text": "Cards and PayPal only."})
    client.post(f"/api/conversations/{cid}/resolve", headers=alex, json={"return_to_bot": True})
    r = client.post(
        "/api/knowledge/faq",
        headers=alex,
        json={
            "question": "Can I pay with bitcoin?",
            "conversation_id": cid,
            "answer": "You can pay for bitcoin orders by card or PayPal. Bitcoin itself is not accepted.",
        },
    )
    assert r.status_code == 200 and r.json()["status"] == "pending", r.text  # an agent's answer waits for review
    doc_id = r.json()["doc_id"]
    r = client.post(f"/api/knowledge/faq/{doc_id}/approve", headers=basic("operator", PASSWORD))
    assert r.status_code == 200 and r.json()["status"] == "live", r.text
    later = client.post("/api/chat", json={"message": "Do you accept bitcoin for payment?"}).json()
    assert later["outcome"] == "answered" and [s["doc_id"] for s in later["sources"]] == [doc_id]
    topics = client.get("/api/knowledge/gaps", headers=alex).json()["topics"]
    assert topics and topics[0]["entries"][0]["doc_id"] == doc_id and topics[0]["entries"][0]["answered_since"] == 1
