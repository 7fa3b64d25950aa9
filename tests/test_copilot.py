"""The person's copilot: a draft reply and a summary for a handed-over conversation, over REST on the handoff app's
stand-ins (the scripted LLM writes both), what the person did with the draft, and the shares in the analytics."""

import json
import sqlite3
import time

import pytest

from chatbot.copilot import used
from tests.handoff_app import ALEX, PASSWORD, basic, handed_over, serve

SCRIPTED = "You can pay for bitcoin orders by card or PayPal."  # what the handoff app's stand-in model writes
ADMIN = basic("operator", PASSWORD)


@pytest.fixture(autouse=True)
def _panel_password_from_the_config(monkeypatch):
    """The real app's session fixture sets $CHATBOT_OPERATOR_PASSWORD, which wins over the config's."""
    monkeypatch.delenv("CHATBOT_OPERATOR_PASSWORD", raising=False)


def test_what_a_person_did_with_a_draft_is_judged_by_edit_distance():
    assert used(None, "anything") == (None, None)
    assert used("Refunds take 5 days.", " Refunds take 5 days. ") == ("unchanged", 0)
    kind, distance = used("Refunds take 5 days.", "Refunds take 5 working days.")
    assert kind == "edited" and distance == 8
    assert used("Refunds take 5 days.", "Hello, I have cancelled your order for you now.")[0] == "discarded"


def test_a_claim_brings_the_draft_and_summary_and_the_reply_records_their_use(tmp_path):
    pipeline, client = serve(tmp_path)
    cid = handed_over(client)
    claim = client.post(f"/api/conversations/{cid}/claim", headers=basic("alex", ALEX))
    assert claim.status_code == 200, claim.text
    assert claim.json()["draft"] == SCRIPTED and claim.json()["summary"] == SCRIPTED
    entry = next(
        h for h in client.get("/api/handoffs", headers=ADMIN).json()["handoffs"] if h["conversation_id"] == cid
    )
    assert entry["draft"] == SCRIPTED and entry["summary"] == SCRIPTED
    seen = client.get(f"/api/conversations/{cid}").json()["messages"]
    assert all(SCRIPTED not in m["content"] for m in seen)  # a draft never reaches the customer by itself

    edited = SCRIPTED.replace("card or PayPal", "card, PayPal or Klarna")
    sent = client.post(
        f"/api/conversations/{cid}/reply", headers=basic("alex", ALEX), json={"text": edited, "draft_used": "edited"}
    )
    assert sent.status_code == 200, sent.text
    seen = client.get(f"/api/conversations/{cid}").json()["messages"]
    assert seen[-1]["role"] == "agent" and seen[-1]["content"] == edited  # what the customer sees: the edit
    with sqlite3.connect(tmp_path / "db.sqlite") as db:
        extra = json.loads(db.execute("SELECT extra FROM messages WHERE role = 'agent'").fetchone()[0])
    assert extra["draft"] == SCRIPTED and extra["draft_used"] == "edited" and extra["edit_distance"] > 0

    resolved = client.post(
        f"/api/conversations/{cid}/resolve", headers=basic("alex", ALEX), json={"return_to_bot": True}
    )
    assert resolved.status_code == 200, resolved.text
    copilot = client.get("/api/analytics", headers=ADMIN).json()["copilot"]
    assert copilot["replies_with_draft"] == 1 and copilot["edited_share"] == 1.0
    assert copilot["median_edit_distance"] == extra["edit_distance"]
    assert copilot["handling_s_p50_with_draft"] == pytest.approx(resolved.json()["handling_s"], abs=0.01)
    assert copilot["handling_s_p50_without_draft"] is None


def test_a_reply_without_draft_used_is_judged_and_a_bad_one_refused(tmp_path):
    _, client = serve(tmp_path)
    cid = handed_over(client)
    client.post(f"/api/conversations/{cid}/claim", headers=basic("alex", ALEX))
    bad = client.post(
        f"/api/conversations/{cid}/reply", headers=basic("alex", ALEX), json={"text": "hi", "draft_used": "maybe"}
    )
    assert bad.status_code == 400 and "draft_used" in bad.json()["error"]
    assert client.post(
        f"/api/conversations/{cid}/reply", headers=basic("alex", ALEX), json={"text": SCRIPTED}
    ).is_success
    assert client.get("/api/analytics", headers=ADMIN).json()["copilot"]["unchanged"] == 1


def test_the_queue_gets_the_draft_in_the_background_without_waiting(tmp_path):
    _, client = serve(tmp_path)
    cid = handed_over(client)
    deadline = time.time() + 10
    while True:  # written by the copilot's thread after the handoff: no claim asked for it
        entry = next(
            h for h in client.get("/api/handoffs", headers=ADMIN).json()["handoffs"] if h["conversation_id"] == cid
        )
        if entry["draft"] is not None or time.time() > deadline:
            break
        time.sleep(0.05)
    assert entry["draft"] == SCRIPTED and entry["summary"] == SCRIPTED


def test_without_the_copilot_the_queue_carries_no_draft(tmp_path):
    _, client = serve(tmp_path, handoff={"copilot": False})
    cid = handed_over(client)
    claim = client.post(f"/api/conversations/{cid}/claim", headers=basic("alex", ALEX)).json()
    assert claim["draft"] is None and claim["summary"] is None
