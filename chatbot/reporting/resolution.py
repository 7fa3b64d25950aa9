"""Resolution counted the way the market bills it (Intercom Fin, Zendesk), per conversation:

- `confirmed`: the customer said the last answer or suggestion answered their question (they replied
  yes, or rated it up);
- `assumed`: after the assistant's last answer or suggestion the customer neither asked for a person
  nor wrote again within the window (`[analytics] resolution_window_h`, 24 h);
- `handed_over`: a person was called (whatever happened after);
- `pending`: answered or suggested less than the window ago, with no word since: not counted yet;
- `unresolved`: the rest (refused, asked to clarify and left, wrote again and got no answer).

A conversation that reopens (the customer writes after the reply that resolved it) is judged by its
new last reply. Knows nothing of prices or of how the figures are shown.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chatbot.records.outcomes import Outcome
from chatbot.records.stats import Stats
from chatbot.records.types import ConversationTrail

RESOLVING = frozenset({Outcome.ANSWERED, Outcome.SUGGESTED, Outcome.ACTION_DONE})  # replies that may resolve it
STATES = ("confirmed", "assumed", "handed_over", "pending", "unresolved")


def state(trail: ConversationTrail, window: timedelta, now: datetime) -> str:
    """One of `STATES` for the conversation at `now`."""
    if trail.handed_over:
        return "handed_over"
    replies = [(i, m) for i, m in enumerate(trail.messages) if m[0] == "assistant"]
    if not replies:
        return "unresolved"
    position, (_, outcome, at, rating) = replies[-1]
    if outcome == Outcome.CONFIRMED or (outcome in RESOLVING and rating == 1):
        return "confirmed"
    wrote_since = any(m[0] == "customer" for m in trail.messages[position + 1 :])
    if outcome not in RESOLVING or wrote_since:
        return "unresolved"
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    return "assumed" if now - at >= window else "pending"


def resolution(stats: Stats, window_h: float = 24.0, now: datetime | None = None) -> dict:
    """How many conversations are in each of `STATES`, the window, and the resolved share
    ((confirmed + assumed) of conversations judged: all but pending)."""
    now = now or datetime.now(UTC)
    counts = dict.fromkeys(STATES, 0)
    for trail in stats.conversation_trails():
        counts[state(trail, timedelta(hours=window_h), now)] += 1
    judged = sum(counts.values()) - counts["pending"]
    resolved = counts["confirmed"] + counts["assumed"]
    return {**counts, "resolved": resolved, "window_h": window_h, "rate": resolved / judged if judged else None}


def suggestion_figures(stats: Stats, top: int = 5) -> dict:
    """Suggestions offered, the shares confirmed and declined, and the most-declined help-centre documents:
    the help centre's weakest sections."""
    offered = stats.suggestions()
    confirmed = sum(rating == 1 for _, rating, _, _ in offered)
    declined = [(doc_id, title) for _, rating, doc_id, title in offered if rating == -1]
    counts: dict[tuple[str, str], int] = {}
    for key in declined:
        counts[key] = counts.get(key, 0) + 1
    worst = sorted(counts.items(), key=lambda item: (-item[1], item[0][0]))[:top]
    return {
        "offered": len(offered),
        "confirmed": confirmed,
        "declined": len(declined),
        "confirmed_share": confirmed / len(offered) if offered else None,
        "declined_share": len(declined) / len(offered) if offered else None,
        "most_declined": [{"doc_id": d, "title": t, "declined": n} for (d, t), n in worst],
    }
