"""Totals across conversations: volume, handoffs, cost next to the API shadow price and human agents."""

from __future__ import annotations

from chatbot.records.costs import PriceSheet
from chatbot.records.store import Store


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def build_report(store: Store, prices: PriceSheet) -> dict:
    t = store.totals()
    n = t["conversations"]
    per = (lambda x: x / n) if n else (lambda x: 0.0)
    human_total = n * prices.human_agent_usd_per_conversation
    ratings = t["ratings"]
    rated = ratings.get(1, 0) + ratings.get(-1, 0)
    return {
        "conversations": n,
        "messages": t["messages"],
        "customer_messages": t["customer_messages"],
        "handoff_rate": per(t["handed_over"]),
        "handoffs": t["handed_over"],
        "handoff_reasons": t["handoff_reasons"],
        "outcomes": t["outcomes"],
        "tokens": {"prompt": t["prompt_tokens"], "completion": t["completion_tokens"]},
        "latency_s": {"p50": percentile(t["turn_seconds"], 0.5), "p95": percentile(t["turn_seconds"], 0.95)},
        "cost_usd": t["cost_usd"],
        "cost_per_conversation_usd": per(t["cost_usd"]),
        "api_model": prices.api_model,
        "api_shadow_cost_usd": t["api_shadow_cost_usd"],
        "api_shadow_cost_per_conversation_usd": per(t["api_shadow_cost_usd"]),
        "human_agent_cost_per_conversation_usd": prices.human_agent_usd_per_conversation,
        "human_agent_cost_usd": human_total,
        "savings_vs_api_usd": t["api_shadow_cost_usd"] - t["cost_usd"],
        # handed-over conversations still cost a human agent: count them on the assistant's side
        "cost_with_handoffs_usd": t["cost_usd"] + t["handed_over"] * prices.human_agent_usd_per_conversation,
        "savings_vs_human_usd": human_total - t["cost_usd"] - t["handed_over"] * prices.human_agent_usd_per_conversation,
        "csat": (ratings.get(1, 0) / rated) if rated else None,
        "feedback": {"up": ratings.get(1, 0), "down": ratings.get(-1, 0)},
    }
