import pytest

from chatbot.reporting.analytics import conversation_costs, daily, list_conversations, top_unanswered
from chatbot.records.costs import Usage
from chatbot.records.store import Store
from chatbot.testing import price_sheet as sheet


@pytest.fixture
def store(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/a.db")
    prices = sheet(hardware_usd_per_hour={"cpu": 3.6, "cuda": 36.0})

    def turn(question, outcome, usage, conversation=None, handoff=None):
        cid = conversation or store.conversations.new_conversation("web")
        store.conversations.add_message(cid, "customer", question)
        mid = store.conversations.add_message(cid, "assistant", "reply", outcome=outcome)
        store.conversations.add_usage(cid, mid, usage, prices.price(usage))
        if handoff:
            store.conversations.add_handoff(cid, mid, handoff)
        return cid, mid

    resolved, _ = turn("Where is my order?", "answered", Usage(retrieval_s=0.5, llm_s=1.5, prompt_tokens=100))
    turn("Can I pay by cheque?", "no_knowledge", Usage(retrieval_s=1.0), handoff="no_knowledge")
    turn("can I pay by  CHEQUE?", "unsupported_answer", Usage(retrieval_s=1.0, llm_s=2.0), handoff="unsupported_answer")
    disliked, mid = turn("Track parcel", "answered", Usage(asr_s=1.0, llm_s=1.0, audio_s=4.0))
    store.conversations.add_feedback(disliked, mid, -1)
    store.conversations.add_feedback(resolved, None, 1)
    store.prices = prices
    store.resolved = resolved
    return store


def test_daily_trends_count_resolution_handoffs_csat_and_costs(store):
    [day] = daily(store, store.prices)
    assert day["conversations"] == 4 and day["handed_over"] == 2
    assert day["resolved"] == 1 and day["resolution_rate"] == 0.25  # thumbs-down is not resolved
    assert day["handoff_reasons"] == {"no_knowledge": 1, "unsupported_answer": 1}
    assert day["csat"] == 0.5
    assert day["cost_usd"] == pytest.approx((2.0 + 1.0 + 3.0 + 2.0) * 3.6 / 3600)
    assert day["cost_per_resolved_usd"] == pytest.approx(day["cost_usd"])
    assert day["api_shadow_per_conversation_usd"] == pytest.approx(day["api_shadow_cost_usd"] / 4)
    assert day["api_shadow_cost_usd"] > 0
    assert day["latency_p50_s"] == pytest.approx(2.0) and day["latency_p95_s"] > day["latency_p50_s"]
    assert day["savings_vs_human_usd"] == pytest.approx(4 * 4.0 - day["cost_usd"] - 2 * 4.0)


def test_cost_by_stage_for_one_conversation(store):
    costs = conversation_costs(store, store.resolved, store.prices)
    assert costs["stages"]["retrieval"]["seconds"] == 0.5 and costs["stages"]["llm"]["seconds"] == 1.5
    assert costs["stages"]["llm"]["cost_usd"] == pytest.approx(1.5 * 3.6 / 3600)
    assert costs["prompt_tokens"] == 100 and costs["api_shadow_cost_usd"] > 0


def test_cost_by_stage_is_what_was_charged_then_not_todays_price(store):
    dearer = sheet(hardware_usd_per_hour={"cpu": 36.0, "cuda": 360.0})
    costs = conversation_costs(store, store.resolved, dearer)
    assert costs["stages"]["llm"]["cost_usd"] == pytest.approx(1.5 * 3.6 / 3600)
    assert sum(s["cost_usd"] for s in costs["stages"].values()) == pytest.approx(costs["cost_usd"])


def test_top_unanswered_groups_the_same_question(store):
    top = top_unanswered(store)
    assert top[0] == {
        "question": "can i pay by cheque?",
        "count": 2,
        "outcomes": {"no_knowledge": 1, "unsupported_answer": 1},
    }


def test_conversation_list_shows_handoff_and_feedback(store):
    rows = {r["id"]: r for r in list_conversations(store)}
    assert len(rows) == 4 and rows[store.resolved]["feedback"] == "+1 / -0"
    assert sorted(r["handoff_reason"] for r in rows.values()) == ["", "", "no_knowledge", "unsupported_answer"]


def test_the_report_shows_the_serving_models_latest_eval_scores_per_split(tmp_path):
    from chatbot.reporting.report import build_report
    from chatbot.records.store import Store
    from chatbot.testing import price_sheet

    store = Store(f"sqlite:///{tmp_path}/eval.db")
    store.stats.add_eval_run(
        "small-llm", "q.jsonl", "dev", {"resolution_rate": 0.5, "correct_rate": 0.4, "questions": 10}
    )
    store.stats.add_eval_run(
        "small-llm",
        "q.jsonl",
        "dev",
        {"resolution_rate": 0.6, "correct_rate": 0.5, "questions": 10, "decision_fitted_to_these": True},
    )
    store.stats.add_eval_run("small-llm", "q.jsonl", "heldout", {"resolution_rate": 0.55, "questions": 5})
    store.stats.add_eval_run("other-llm", "q.jsonl", "dev", {"resolution_rate": 0.9, "questions": 10})
    report = build_report(store, price_sheet(), "small-llm")
    assert report["serving_model"] == "small-llm" and set(report["eval"]) == {"dev", "heldout"}
    assert report["eval"]["dev"]["resolution_rate"] == 0.6 and report["eval"]["dev"]["correct_rate"] == 0.5
    assert report["eval"]["heldout"]["correct_rate"] is None
    assert report["eval"]["dev"]["in_sample"] and not report["eval"]["heldout"]["in_sample"]
    from ui.operator_views import eval_lines

    assert "| dev (in-sample) |" in "\n".join(eval_lines(report)) and "| heldout |" in "\n".join(eval_lines(report))
    assert build_report(store, price_sheet())["eval"] == {}
