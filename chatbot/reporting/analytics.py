"""Operator analytics: per-day trends, per-conversation cost by stage, unanswered questions.

Reads the store's tables and aggregates in Python, so it works the same on SQLite and any other
SQLAlchemy database. A conversation is *resolved* when it was not handed over and got no
thumbs-down. Knows nothing about how the figures are drawn.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from chatbot.records.costs import PriceSheet
from chatbot.reporting.report import percentile
from chatbot.records.store import Store, conversations, feedback, handoffs, messages, usage

UNANSWERED = ("no_knowledge", "unsupported_answer", "off_topic")


def _day(moment: datetime) -> str:
    return moment.date().isoformat()


def daily(store: Store, prices: PriceSheet, days: int = 30) -> list[dict]:
    """One row per day with activity in the last `days` days, oldest first."""
    since = datetime.now(UTC) - timedelta(days=days)
    with store.engine.connect() as c:
        convs = c.execute(select(conversations.c.id, conversations.c.created_at, conversations.c.handoff_needed,
                                 conversations.c.cost_usd, conversations.c.api_shadow_cost_usd,
                                 conversations.c.prompt_tokens, conversations.c.completion_tokens)
                          .where(conversations.c.created_at >= since)).all()
        reasons = c.execute(select(handoffs.c.conversation_id, handoffs.c.reason, handoffs.c.created_at)
                            .where(handoffs.c.created_at >= since)).all()
        ratings = c.execute(select(feedback.c.conversation_id, feedback.c.rating, feedback.c.created_at)
                            .where(feedback.c.created_at >= since)).all()
        turns = c.execute(select(usage.c.created_at, usage.c.retrieval_s + usage.c.llm_s + usage.c.asr_s + usage.c.ocr_s)
                          .where(usage.c.created_at >= since)).all()
    thumbs_down = {r.conversation_id for r in ratings if r.rating < 0}
    by_day: dict[str, dict] = defaultdict(lambda: {"conversations": 0, "resolved": 0, "handed_over": 0,
                                                   "cost_usd": 0.0, "api_shadow_cost_usd": 0.0, "tokens": 0})
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
    human = prices.human_agent_usd_per_conversation
    for day in sorted(set(by_day) | set(latency_by_day)):
        row = by_day[day]
        n = row["conversations"]
        votes = ratings_by_day.get(day, [])
        out.append({
            "date": day, **row,
            "resolution_rate": row["resolved"] / n if n else None,
            "handoff_rate": row["handed_over"] / n if n else None,
            "handoff_reasons": dict(reasons_by_day.get(day, {})),
            "csat": sum(1 for v in votes if v > 0) / len(votes) if votes else None,
            "latency_p50_s": percentile(latency_by_day.get(day, []), 0.5),
            "latency_p95_s": percentile(latency_by_day.get(day, []), 0.95),
            "cost_per_conversation_usd": row["cost_usd"] / n if n else None,
            "cost_per_resolved_usd": row["cost_usd"] / row["resolved"] if row["resolved"] else None,
            "api_shadow_per_conversation_usd": row["api_shadow_cost_usd"] / n if n else None,
            "savings_vs_api_usd": row["api_shadow_cost_usd"] - row["cost_usd"],
            "savings_vs_human_usd": n * human - row["cost_usd"] - row["handed_over"] * human,
        })
    return out


def conversation_costs(store: Store, conversation_id: str, prices: PriceSheet) -> dict:
    """Seconds and self-hosted dollars per stage for one conversation, plus its totals."""
    with store.engine.connect() as c:
        rows = c.execute(select(usage).where(usage.c.conversation_id == conversation_id)).all()
    stages = {}
    for stage in ("retrieval", "llm", "asr", "ocr"):
        seconds = sum(getattr(r, f"{stage}_s") for r in rows)
        dollars = sum(getattr(r, f"{stage}_s") * prices.hardware_usd_per_hour.get(r.device, 0.0) / 3600
                      * prices.device_share for r in rows)
        stages[stage] = {"seconds": seconds, "cost_usd": dollars}
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
    """Customer questions most often followed by a handoff or a refusal."""
    with store.engine.connect() as c:
        rows = c.execute(select(messages.c.conversation_id, messages.c.id, messages.c.role, messages.c.content,
                                messages.c.outcome).order_by(messages.c.conversation_id, messages.c.id)).all()
    counts: Counter = Counter()
    outcomes: dict[str, Counter] = defaultdict(Counter)
    last_question: dict[str, str] = {}
    for r in rows:
        if r.role == "customer":
            last_question[r.conversation_id] = r.content
        elif r.outcome in UNANSWERED and r.conversation_id in last_question:
            question = " ".join(last_question[r.conversation_id].lower().split())
            counts[question] += 1
            outcomes[question][r.outcome] += 1
    return [{"question": q, "count": n, "outcomes": dict(outcomes[q])} for q, n in counts.most_common(limit)]


def list_conversations(store: Store, limit: int = 100) -> list[dict]:
    with store.engine.connect() as c:
        convs = c.execute(select(conversations).order_by(conversations.c.updated_at.desc()).limit(limit)).all()
        ids = [r.id for r in convs]
        counts = Counter(c.scalars(select(messages.c.conversation_id).where(messages.c.conversation_id.in_(ids))))
        votes = c.execute(select(feedback.c.conversation_id, feedback.c.rating).where(feedback.c.conversation_id.in_(ids))).all()
    score: dict[str, list[int]] = defaultdict(list)
    for v in votes:
        score[v.conversation_id].append(v.rating)
    return [{
        "id": r.id, "updated_at": r.updated_at.isoformat(timespec="seconds"), "channel": r.channel,
        "messages": counts.get(r.id, 0), "handoff_reason": r.handoff_reason or "",
        "feedback": f"+{score[r.id].count(1)} / -{score[r.id].count(-1)}" if score.get(r.id) else "",
        "cost_usd": r.cost_usd, "api_shadow_cost_usd": r.api_shadow_cost_usd,
    } for r in convs]
