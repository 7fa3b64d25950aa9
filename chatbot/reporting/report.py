"""Totals across conversations: volume, handoffs, cost next to the API shadow price and human agents."""

from __future__ import annotations

from dataclasses import asdict

from collections.abc import Sequence
from datetime import datetime

import numpy as np

from chatbot.records.costs import PriceSheet
from chatbot.records.store import Store
from chatbot.reporting.ownership import ownership
from chatbot.reporting.resolution import resolution, suggestion_figures


def percentile(values: Sequence[float], q: float) -> float | None:
    """The `q` quantile (0..1, e.g. 0.95 for p95) of `values` by linear interpolation between the
    closest ranks (numpy's default), or None for no values. The one percentile of the project:
    reports, analytics and the bench scripts all use it, so their p50/p95 agree."""
    if not 0 <= q <= 1:
        raise ValueError(f"percentile q must be between 0 and 1 (0.95 for p95), not {q}")
    if len(values) == 0:
        return None
    return float(np.percentile(np.asarray(values, dtype=np.float64), q * 100, method="linear"))


EVAL_FIGURES = (
    "resolution_rate",
    "correct_rate",
    "wrong_rate",
    "wrong_of_answered",
    "out_of_scope_refused",
    "questions",
)


def build_report(
    store: Store,
    prices: PriceSheet,
    model: str = "",
    window_h: float = 24.0,
    now: datetime | None = None,
    stored: Sequence[str] = (),
) -> dict:
    """Totals across conversations; with `model`, the serving model and its latest eval scores per split;
    resolutions as the market counts them (`chatbot.reporting.resolution`, window `window_h`, at `now`)."""
    t = store.stats.totals()
    n = t["conversations"]
    per = (lambda x: x / n) if n else (lambda x: 0.0)
    human_total = n * prices.human_agent_usd_per_conversation
    ratings = t["ratings"]
    rated = ratings.get(1, 0) + ratings.get(-1, 0)
    saved = prices.savings(n, t["handed_over"], t["cost_usd"], t["api_shadow_cost_usd"])
    evals = store.stats.latest_eval_runs(model) if model else {}
    resolved = resolution(store.stats, window_h, now)
    scores = {
        split: {
            **{k: run.get(k) for k in (*EVAL_FIGURES, "at")},
            "in_sample": bool(run.get("decision_fitted_to_these")),
        }
        for split, run in evals.items()
    }
    return {
        "serving_model": model or None,
        "eval": scores,  # split -> the latest `chatbot eval` figures of the serving model
        "conversations": n,
        "messages": t["messages"],
        "customer_messages": t["customer_messages"],
        "handoff_rate": per(t["handed_over"]),
        # confirmed, assumed, handed over, pending and unresolved conversations, and the resolved share
        "resolution": resolved,
        "suggestions": suggestion_figures(store.stats),  # offered, confirmed, declined, most declined
        # the whole bill of the period, per resolved conversation, beside the API, the vendor and people
        "ownership": ownership(store, prices, stored, window_h, now, resolved=resolved["resolved"]),
        # each action's runs in the company's systems: by status, success rate, share resolved, latency
        "actions": {f.action: {k: v for k, v in asdict(f).items() if k != "action"} for f in store.actions.figures()},
        "cost_per_resolved_usd": t["cost_usd"] / resolved["resolved"] if resolved["resolved"] else None,
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
        "savings_vs_api_usd": saved.vs_api_usd,
        # handed-over conversations still cost a human agent: count them on the assistant's side
        "cost_with_handoffs_usd": saved.cost_with_handoffs_usd,
        "savings_vs_human_usd": saved.vs_human_usd,
        "csat": (ratings.get(1, 0) / rated) if rated else None,
        "feedback": {"up": ratings.get(1, 0), "down": ratings.get(-1, 0)},
    }
