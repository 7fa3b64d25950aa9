from chatbot.records.costs import TurnCost, Usage
from chatbot.records.store import Store, StoredSource


def test_migrations_are_named_recorded_and_applied_once(tmp_path):
    url = f"sqlite:///{tmp_path}/db.sqlite"
    store = Store(url)
    assert store.applied_migrations() == ["m001_initial"]
    assert {"conversations", "messages", "message_sources", "handoffs", "feedback", "usage"} <= set(store.tables())
    conversation = store.new_conversation()
    assert Store(url).applied_migrations() == ["m001_initial"]  # reopening applies nothing again
    Store(url).require_conversation(conversation)


def test_a_turn_is_stored_with_sources_usage_handoff_and_feedback(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/db.sqlite")
    cid = store.new_conversation("web")
    store.add_message(cid, "customer", "where is my order?")
    mid = store.add_message(cid, "assistant", "Here. [1]", outcome="answered")
    store.add_sources(mid, [StoredSource("LO-1", "Track", "https://x", 0.5)])
    store.add_usage(cid, mid, Usage(prompt_tokens=10, completion_tokens=5, llm_s=1.0), TurnCost(0.001, 0.002))
    store.add_usage(cid, store.add_message(cid, "assistant", "again"), Usage(prompt_tokens=1), TurnCost(0.001, 0.0))
    store.add_handoff(cid, mid, "no_knowledge")
    store.add_handoff(cid, mid, "customer_request")
    store.add_feedback(cid, mid, -1, "not helpful")

    conversation = store.conversation(cid)
    assert [m.role for m in conversation.messages] == ["customer", "assistant", "assistant"]
    assert conversation.messages[1].sources[0].doc_id == "LO-1"
    assert conversation.handoff_needed and conversation.handoff_reason == "no_knowledge"  # the first reason
    assert round(conversation.cost_usd, 6) == 0.002 and round(conversation.api_shadow_cost_usd, 6) == 0.002
    totals = store.totals()
    assert totals["conversations"] == 1 and totals["messages"] == 3 and totals["ratings"] == {-1: 1}
    assert totals["handoff_reasons"] == {"no_knowledge": 1}
    assert store.history(cid, 2) == [("assistant", "Here. [1]"), ("assistant", "again")]
