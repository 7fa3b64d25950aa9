"""Operator analytics: per-day trends, per-conversation cost by stage, unanswered questions.

Gets plain rows from `Store` methods (the store owns the SQL) and aggregates them in Python.
A conversation is *resolved* when it was not handed over and got no thumbs-down. Cost per stage
is what was charged when the turn was metered, not a recomputation at today's prices (turns
metered before per-stage costs were stored have their cost split by seconds: see
`chatbot.records.store.TurnUsage`). Knows nothing about how the figures are drawn.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

from chatbot.records.costs import STAGES, PriceSheet
from chatbot.records.store import Store
from chatbot.reporting.report import percentile


def _day(moment: datetime) -> str:
    return moment.date().isoformat()


def daily(store: Store, prices: PriceSheet, days: int = 30) -> list[dict]:
    """One row per day with activity in the last `days` days, oldest first."""
    activity = store.stats.activity_since(datetime.now(UTC) - timedelta(days=days))
    convs, reasons, ratings, turns = activity.conversations, activity.handoffs, activity.ratings, activity.turns
    thumbs_down = {r.conversation_id for r in ratings if r.rating < 0}
    by_day: dict[str, dict] = defaultdict(
        lambda: {
            "conversations": 0,
            "resolved": 0,
            "handed_over": 0,
            "cost_usd": 0.0,
            "api_shadow_cost_usd": 0.0,
            "tokens": 0,
        }
    )
    for conv in convs:
        row = by_day[_day(conv.created_at)]
        row["conversations"] += 1
        row["handed_over"] += int(bool(conv.handoff_needed))
        row["resolved"] += int(not conv.handoff_needed and conv.id not in thumbs_down)
        row["cost_usd"] += conv.cost_usd
        row["api_shadow_cost_usd"] += conv.api_shadow_cost_usd
        row["tokens"] += conv.prompt_tokens + conv.completion_tokens
    reasons_by_day: dict[str, Counter] = defaultdict(Counter)
    first_reason: dict[str, tuple] = {}
    for h in sorted(reasons, key=lambda r: r.created_at):
        first_reason.setdefault(h.conversation_id, (h.reason, h.created_at))
    for reason, moment in first_reason.values():
        reasons_by_day[_day(moment)][reason] += 1
    ratings_by_day: dict[str, list[int]] = defaultdict(list)
    for r in ratings:
        ratings_by_day[_day(r.created_at)].append(r.rating)
    latency_by_day: dict[str, list[float]] = defaultdict(list)
    for moment, seconds in turns:
        latency_by_day[_day(moment)].append(seconds)

    out = []
    for day in sorted(set(by_day) | set(latency_by_day)):
        row = by_day[day]
        n = row["conversations"]
        votes = ratings_by_day.get(day, [])
        saved = prices.savings(n, row["handed_over"], row["cost_usd"], row["api_shadow_cost_usd"])
        out.append(
            {
                "date": day,
                **row,
                "resolution_rate": row["resolved"] / n if n else None,
                "handoff_rate": row["handed_over"] / n if n else None,
                "handoff_reasons": dict(reasons_by_day.get(day, {})),
                "csat": sum(1 for v in votes if v > 0) / len(votes) if votes else None,
                "latency_p50_s": percentile(latency_by_day.get(day, []), 0.5),
                "latency_p95_s": percentile(latency_by_day.get(day, []), 0.95),
                "cost_per_conversation_usd": row["cost_usd"] / n if n else None,
                "cost_per_resolved_usd": row["cost_usd"] / row["resolved"] if row["resolved"] else None,
                "api_shadow_per_conversation_usd": row["api_shadow_cost_usd"] / n if n else None,
                "savings_vs_api_usd": saved.vs_api_usd,
                "savings_vs_human_usd": saved.vs_human_usd,
            }
        )
    return out


def conversation_costs(store: Store, conversation_id: str, prices: PriceSheet | None = None) -> dict:
    """Seconds and self-hosted dollars per stage for one conversation, plus its totals.

    The dollars are those charged when each turn was metered; `prices` is no longer needed
    (kept so existing callers work).
    """
    rows = store.stats.stage_usage(conversation_id)
    stages = {
        stage: {"seconds": sum(r.seconds[stage] for r in rows), "cost_usd": sum(r.stage_cost_usd[stage] for r in rows)}
        for stage in STAGES
    }
    return {
        "stages": stages,
        "turns": len(rows),
        "prompt_tokens": sum(r.prompt_tokens for r in rows),
        "completion_tokens": sum(r.completion_tokens for r in rows),
        "audio_seconds": sum(r.audio_s for r in rows),
        "cost_usd": sum(r.cost_usd for r in rows),
        "api_shadow_cost_usd": sum(r.api_shadow_cost_usd for r in rows),
    }


def top_unanswered(store: Store, limit: int = 10) -> list[dict]:
    """Customer questions most often followed by a handoff or a refusal (`Outcome.unanswered`)."""
    counts: Counter = Counter()
    outcomes: dict[str, Counter] = defaultdict(Counter)
    for r in store.stats.unanswered_questions():
        question = " ".join(r.question.lower().split())
        counts[question] += 1
        outcomes[question][r.outcome.value] += 1
    return [{"question": q, "count": n, "outcomes": dict(outcomes[q])} for q, n in counts.most_common(limit)]


def list_conversations(store: Store, limit: int = 100) -> list[dict]:
    """The most recently updated conversations, newest first, as table rows for the operator."""
    return [
        {
            "id": r.id,
            "updated_at": r.updated_at.isoformat(timespec="seconds"),
            "channel": r.channel,
            "messages": r.message_count,
            "handoff_reason": r.handoff_reason or "",
            "feedback": f"+{r.ratings.count(1)} / -{r.ratings.count(-1)}" if r.ratings else "",
            "cost_usd": r.cost_usd,
            "api_shadow_cost_usd": r.api_shadow_cost_usd,
        }
        for r in store.stats.conversation_list(limit)
    ]
