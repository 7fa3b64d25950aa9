"""Suggest and confirm, and resolution counted as the market counts it: confirmed by the customer, or assumed
after a quiet window (the clock is moved, never slept), never when a person was called. Stand-ins (hash
embedder, scripted LLM) behind Starlette's TestClient."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from chatbot.answer.decision import AnswerModel
from chatbot.answer.quote import FEATURES
from chatbot.records.types import ConversationTrail
from chatbot.reporting.report import build_report
from chatbot.reporting.resolution import state
from tests.handoff_app import PASSWORD, basic, serve
from ui.app import create_app

ADMIN = basic("operator", PASSWORD)
REFUNDS = "How long do refunds take to reach my card?"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(hours=24)


def unsure_model() -> AnswerModel:
    """A decision that scores every window 0.5, under its 0.9 threshold: every reply is a suggestion."""
    n = len(FEATURES)
    return AnswerModel(FEATURES, (0.0,) * n, (1.0,) * n, (0.0,) * n, 0.0, "f", 0.9)


def suggesting(tmp_path, monkeypatch):
    monkeypatch.delenv("CHATBOT_OPERATOR_PASSWORD", raising=False)
    pipeline, _ = serve(tmp_path)
    (tmp_path / "kb" / "refunds.md").write_text(
        "---\nid: F\ntitle: Refunds\n---\nRefunds reach your card within five working days of the return."
    )
    pipeline.reindex([str(tmp_path / "kb")])
    pipeline.settings = replace(pipeline.settings, answer_model=unsure_model(), below_threshold="suggest")
    from core.config import load_config

    config = load_config(None, {"server": {"operator_password": PASSWORD}})
    return pipeline, TestClient(create_app(pipeline, config), raise_server_exceptions=False)


def trail(*messages, handed_over=False):
    return ConversationTrail("c", handed_over, tuple(messages))


def test_each_conversation_ends_in_one_state_as_the_market_counts_it():
    answered, suggested = ("assistant", "answered", T0, None), ("assistant", "suggested", T0, None)
    asked = ("customer", None, T0 - timedelta(seconds=5), None)
    assert state(trail(asked, answered), DAY, T0 + DAY) == "assumed"
    assert state(trail(asked, suggested), DAY, T0 + DAY - timedelta(seconds=1)) == "pending"
    assert state(trail(asked, ("assistant", "answered", T0, 1)), DAY, T0) == "confirmed"
    assert state(trail(asked, suggested, asked, ("assistant", "confirmed", T0, None)), DAY, T0) == "confirmed"
    assert state(trail(asked, answered, ("customer", None, T0, None)), DAY, T0 + 3 * DAY) == "unresolved"  # reopened
    assert state(trail(asked, answered, handed_over=True), DAY, T0 + 3 * DAY) == "handed_over"
    assert state(trail(asked, ("assistant", "off_topic", T0, None)), DAY, T0 + 3 * DAY) == "unresolved"
    assert state(trail(asked), DAY, T0 + 3 * DAY) == "unresolved"


def test_over_rest_a_suggestion_confirmed_counts_resolved_and_one_declined_opens_a_handoff(tmp_path, monkeypatch):
    pipeline, client = suggesting(tmp_path, monkeypatch)
    first = client.post("/api/chat", json={"message": REFUNDS}).json()
    assert first["outcome"] == "suggested" and first["suggestion"] is True and not first["handoff"]["needed"]
    assert "five working days" in first["answer"] and first["answer"].endswith("Did this answer your question?")
    yes = client.post("/api/chat", json={"message": "Yes, thank you", "conversation_id": first["conversation_id"]})
    assert yes.json()["outcome"] == "confirmed"
    second = client.post("/api/chat", json={"message": REFUNDS}).json()
    no = client.post("/api/chat", json={"message": "no", "conversation_id": second["conversation_id"]}).json()
    assert no["outcome"] == "suggestion_declined" and no["handoff"] == {"needed": True, "reason": "suggestion_declined"}
    third = client.post("/api/chat", json={"message": REFUNDS}).json()
    rated = client.post(
        "/api/feedback",
        json={"conversation_id": third["conversation_id"], "message_id": third["message_id"], "rating": -1},
    ).json()
    assert rated["ok"] and rated["reply"]["handoff"]["reason"] == "suggestion_declined"
    queue = client.get("/api/handoffs", headers=ADMIN).json()["handoffs"]
    assert sorted(h["conversation_id"] for h in queue) == sorted([second["conversation_id"], third["conversation_id"]])
    assert {h["reason"] for h in queue} == {"suggestion_declined"}
    resolution = client.get("/api/analytics", headers=ADMIN).json()["totals"]["resolution"]
    assert resolution["confirmed"] == 1 and resolution["handed_over"] == 2 and resolution["assumed"] == 0
    suggestions = client.get("/api/analytics", headers=ADMIN).json()["totals"]["suggestions"]
    assert (suggestions["offered"], suggestions["confirmed"], suggestions["declined"]) == (3, 1, 2)
    [worst] = suggestions["most_declined"]
    assert worst["declined"] == 2 and worst["doc_id"] == first["sources"][0]["doc_id"]
    examples = [e for t in client.get("/api/knowledge/gaps", headers=ADMIN).json()["topics"] for e in t["examples"]]
    assert REFUNDS.lower() in examples and "no" not in examples  # the declined question feeds the gaps, not "no"


def test_a_conversation_left_alone_past_the_window_is_an_assumed_resolution(tmp_path, monkeypatch):
    pipeline, client = suggesting(tmp_path, monkeypatch)
    asked = client.post("/api/chat", json={"message": REFUNDS}).json()
    now = datetime.now(UTC)
    before = build_report(pipeline.store, pipeline.prices, window_h=24, now=now + timedelta(hours=23))
    after = build_report(pipeline.store, pipeline.prices, window_h=24, now=now + timedelta(hours=25))
    assert before["resolution"]["pending"] == 1 and before["resolution"]["assumed"] == 0
    assert after["resolution"]["assumed"] == 1 and after["resolution"]["rate"] == 1.0
    assert after["cost_per_resolved_usd"] == after["cost_usd"]
    client.post("/api/chat", json={"message": "And for PayPal?", "conversation_id": asked["conversation_id"]})
    later = build_report(pipeline.store, pipeline.prices, window_h=24, now=now + timedelta(hours=49))
    assert later["resolution"]["assumed"] == 1  # judged by its new last reply, now past the window too


def test_the_chat_pages_yes_and_no_buttons_answer_a_suggestion(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from ui.chat import _Handlers

    pipeline, _ = suggesting(tmp_path, monkeypatch)
    on = _Handlers(pipeline)
    browser = SimpleNamespace(client=SimpleNamespace(host="127.0.0.1"))
    *_, shown = on.respond({"text": REFUNDS}, [], {}, [], browser)
    history, _, session, ids, _, _, buttons = shown
    assert buttons["visible"] is True and "Did this answer your question?" in history[-1]["content"]
    *_, confirmed = on.confirm(history, session, ids, browser)
    assert confirmed[6]["visible"] is False
    assert pipeline.conversation(session["conversation_id"]).messages[-1].outcome == "confirmed"

    *_, shown = on.respond({"text": REFUNDS}, [], {}, [], browser)
    history, _, session, ids, *_ = shown
    *_, hidden = on.decline(history, session, ids, browser)
    assert hidden["visible"] is False and pipeline.handoff_queue()[0].reason == "suggestion_declined"
