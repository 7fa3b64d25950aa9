"""The live handoff over REST on stand-ins (hash embedder, scripted LLM) through Starlette's TestClient:
operators sign in by name, claim, reply, resolve and save help-centre answers; customers see who wrote."""

import pytest

from tests.handoff_app import ALEX, PASSWORD, SAM, basic, handed_over, serve


@pytest.fixture
def client(tmp_path, monkeypatch):
    monkeypatch.delenv("CHATBOT_OPERATOR_PASSWORD", raising=False)
    return serve(tmp_path)[1]


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
