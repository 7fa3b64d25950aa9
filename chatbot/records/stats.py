"""Read-only figures over the conversation records, for the report, the analytics, the knowledge gaps and
the eval scores (which it also records, one row per `chatbot eval` run). Rows come out as they are
stored; `chatbot.reporting` aggregates and prices them. Knows nothing of how they are shown.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Integer, func, insert, select

from chatbot.records.costs import STAGES
from chatbot.records.database import Database, now, utc
from chatbot.records.outcomes import Outcome
from chatbot.records.schema import conversations, eval_runs, feedback, handoffs, message_sources, messages, usage
from chatbot.records.types import (
    ConversationTrail,
    Activity,
    ConversationSummary,
    GapQuestion,
    HandoffEvent,
    Rating,
    TurnUsage,
    UnansweredQuestion,
)


class Stats:
    """Aggregates and rows for reporting, over `db`."""

    def __init__(self, db: Database):
        self.db = db

    def answers_citing(self, doc_id: str, since: datetime) -> int:
        """Replies that cited `doc_id` (answered, by the assistant) at or after `since`."""
        with self.db.read() as c:
            return int(
                c.scalar(
                    select(func.count(func.distinct(messages.c.id)))
                    .join(message_sources, message_sources.c.message_id == messages.c.id)
                    .where(
                        message_sources.c.doc_id == doc_id,
                        messages.c.created_at >= since,
                        messages.c.outcome == Outcome.ANSWERED,
                    )
                )
                or 0
            )

    def gap_questions(self) -> list[GapQuestion]:
        """Each customer message whose reply refused or handed over (`Outcome.unanswered` or a handoff), or
        whose suggestion the customer declined (the question, not their "no"), oldest first; the "Talk to a
        person" button's fixed text is left out."""
        wanted = [
            o
            for o in Outcome
            if (o.unanswered or o.hands_over)
            and o not in (Outcome.SUGGESTION_DECLINED, Outcome.ACTION_FAILED, Outcome.LLM_UNAVAILABLE)
        ]
        with self.db.read() as c:
            declined = set(c.scalars(select(feedback.c.message_id).where(feedback.c.rating == -1)))
        return [
            GapQuestion(q.conversation_id, q.id, q.content, str(reply.outcome), q.created_at)
            for q, reply in self._questions_replied([*wanted, Outcome.SUGGESTED])
            if "request_handoff" not in (q.extra or "") and (reply.outcome != Outcome.SUGGESTED or reply.id in declined)
        ]

    def suggestions(self) -> list[tuple[int, int | None, str, str]]:
        """Every suggestion offered: (message id, the customer's rating: 1 confirmed, -1 declined, None,
        the suggested document's id and title), oldest first."""
        with self.db.read() as c:
            rows = c.execute(
                select(messages.c.id, message_sources.c.doc_id, message_sources.c.title)
                .join(message_sources, message_sources.c.message_id == messages.c.id)
                .where(messages.c.outcome == Outcome.SUGGESTED, message_sources.c.rank == 1)
                .order_by(messages.c.id)
            ).all()
            rated = dict(c.execute(select(feedback.c.message_id, feedback.c.rating)).all())
        return [(r.id, rated.get(r.id), r.doc_id, r.title) for r in rows]

    def _questions_replied(self, outcomes: Sequence[Outcome]) -> list[tuple]:
        """(customer message row, reply row) for each reply whose outcome is one of `outcomes`, paired with the
        customer message before it in its conversation; in the order of the replies."""
        with self.db.read() as c:
            rows = c.execute(
                select(
                    messages.c.conversation_id,
                    messages.c.id,
                    messages.c.role,
                    messages.c.content,
                    messages.c.outcome,
                    messages.c.created_at,
                    messages.c.extra,
                )
                .where((messages.c.role == "customer") | messages.c.outcome.in_([o.value for o in outcomes]))
                .order_by(messages.c.id)
            ).all()
        pairs, last = [], {}
        for r in rows:
            if r.role == "customer":
                last[r.conversation_id] = r
            elif r.conversation_id in last:
                pairs.append((last.pop(r.conversation_id), r))
        return pairs

    def add_eval_run(self, model: str, questions: str, split: str, totals: dict) -> None:
        """Record the totals of one `chatbot eval` run."""
        with self.db.begin() as c:
            c.execute(
                insert(eval_runs).values(
                    created_at=now(), model=model, questions=questions, split=split, totals=json.dumps(totals)
                )
            )

    def latest_eval_runs(self, model: str) -> dict[str, dict]:
        """The newest eval totals of `model` for each split, e.g. {"dev": {...}, "heldout": {...}}."""
        with self.db.read() as c:
            rows = c.execute(
                select(eval_runs.c.split, eval_runs.c.questions, eval_runs.c.created_at, eval_runs.c.totals)
                .where(eval_runs.c.model == model)
                .order_by(eval_runs.c.id)
            ).all()
        return {
            r.split: {"questions": r.questions, "at": r.created_at.isoformat(), **json.loads(r.totals)} for r in rows
        }

    def totals(self) -> dict:
        """Raw aggregates for the report; `chatbot.reporting.report` turns them into figures."""
        with self.db.read() as c:
            conv = c.execute(
                select(
                    func.count(conversations.c.id),
                    func.coalesce(func.sum(conversations.c.cost_usd), 0.0),
                    func.coalesce(func.sum(conversations.c.api_shadow_cost_usd), 0.0),
                    func.coalesce(func.sum(func.cast(conversations.c.handoff_needed, Integer)), 0),
                    func.coalesce(func.sum(conversations.c.prompt_tokens), 0),
                    func.coalesce(func.sum(conversations.c.completion_tokens), 0),
                )
            ).one()
            message_count = c.scalar(select(func.count(messages.c.id)))
            customer_messages = c.scalar(select(func.count(messages.c.id)).where(messages.c.role == "customer"))
            reasons: dict = dict(
                c.execute(
                    select(conversations.c.handoff_reason, func.count())
                    .where(conversations.c.handoff_needed.is_(True))
                    .group_by(conversations.c.handoff_reason)
                ).all()
            )
            outcomes: dict = dict(
                c.execute(
                    select(messages.c.outcome, func.count())
                    .where(messages.c.role == "assistant")
                    .group_by(messages.c.outcome)
                ).all()
            )
            latencies = list(
                c.scalars(
                    select(usage.c.retrieval_s + usage.c.llm_s + usage.c.asr_s + usage.c.ocr_s + usage.c.action_s)
                )
            )
            ratings: dict = dict(c.execute(select(feedback.c.rating, func.count()).group_by(feedback.c.rating)).all())
        return {
            "conversations": conv[0],
            "cost_usd": float(conv[1]),
            "api_shadow_cost_usd": float(conv[2]),
            "handed_over": int(conv[3]),
            "prompt_tokens": int(conv[4]),
            "completion_tokens": int(conv[5]),
            "messages": int(message_count or 0),
            "customer_messages": int(customer_messages or 0),
            "handoff_reasons": {str(k): int(v) for k, v in reasons.items()},
            "outcomes": {str(k): int(v) for k, v in outcomes.items()},
            "turn_seconds": latencies,
            "ratings": {int(k): int(v) for k, v in ratings.items()},
        }

    def activity_since(self, since: datetime) -> Activity:
        """Conversations started, handoffs, ratings and metered turns at or after `since`."""
        with self.db.read() as c:
            convs = c.execute(select(conversations).where(conversations.c.created_at >= since)).all()
            reasons = c.execute(
                select(handoffs.c.conversation_id, handoffs.c.reason, handoffs.c.created_at)
                .where(handoffs.c.created_at >= since)
                .order_by(handoffs.c.id)
            ).all()
            ratings = c.execute(
                select(feedback.c.conversation_id, feedback.c.rating, feedback.c.created_at)
                .where(feedback.c.created_at >= since)
                .order_by(feedback.c.id)
            ).all()
            turns = c.execute(
                select(
                    usage.c.created_at,
                    usage.c.retrieval_s + usage.c.llm_s + usage.c.asr_s + usage.c.ocr_s + usage.c.action_s,
                ).where(usage.c.created_at >= since)
            ).all()
        return Activity(
            conversations=tuple(_summary(r) for r in convs),
            handoffs=tuple(HandoffEvent(r.conversation_id, r.reason, r.created_at) for r in reasons),
            ratings=tuple(Rating(r.conversation_id, int(r.rating), r.created_at) for r in ratings),
            turns=tuple((moment, float(seconds)) for moment, seconds in turns),
        )

    def conversation_list(self, limit: int = 100) -> list[ConversationSummary]:
        """The `limit` most recently updated conversations, newest first, with message counts and ratings."""
        with self.db.read() as c:
            convs = c.execute(select(conversations).order_by(conversations.c.updated_at.desc()).limit(limit)).all()
            ids = [r.id for r in convs]
            counts: dict = dict(
                c.execute(
                    select(messages.c.conversation_id, func.count())
                    .where(messages.c.conversation_id.in_(ids))
                    .group_by(messages.c.conversation_id)
                ).all()
            )
            votes = c.execute(
                select(feedback.c.conversation_id, feedback.c.rating)
                .where(feedback.c.conversation_id.in_(ids))
                .order_by(feedback.c.id)
            ).all()
        by_conversation: dict[str, list[int]] = {}
        for v in votes:
            by_conversation.setdefault(v.conversation_id, []).append(int(v.rating))
        return [
            _summary(r, message_count=int(counts.get(r.id, 0)), ratings=tuple(by_conversation.get(r.id, ())))
            for r in convs
        ]

    def unanswered_questions(self) -> list[UnansweredQuestion]:
        """Each assistant reply whose outcome is unanswered (`Outcome.unanswered`), with the customer message before it."""
        pairs = self._questions_replied([o for o in Outcome if o.unanswered])
        return sorted(
            (UnansweredQuestion(q.conversation_id, reply.id, q.content, Outcome(reply.outcome)) for q, reply in pairs),
            key=lambda u: (u.conversation_id, u.message_id),
        )

    def conversation_trails(self) -> list:
        """Every conversation's messages in order with their ratings, for counting resolutions
        (`chatbot.reporting.resolution`)."""
        with self.db.read() as c:
            flags = dict(c.execute(select(conversations.c.id, conversations.c.handoff_needed)).all())
            rows = c.execute(
                select(
                    messages.c.conversation_id,
                    messages.c.id,
                    messages.c.role,
                    messages.c.outcome,
                    messages.c.created_at,
                ).order_by(messages.c.id)
            ).all()
            rated = dict(
                c.execute(
                    select(feedback.c.message_id, feedback.c.rating).where(feedback.c.message_id.is_not(None))
                ).all()
            )
        trails: dict[str, list] = {cid: [] for cid in flags}
        for r in rows:
            trails.setdefault(r.conversation_id, []).append((r.role, r.outcome, r.created_at, rated.get(r.id)))
        return [ConversationTrail(cid, bool(flags.get(cid)), tuple(m)) for cid, m in trails.items()]

    def stage_usage(self, conversation_id: str) -> list[TurnUsage]:
        """The metered turns of one conversation, oldest first: seconds and USD charged per stage."""
        with self.db.read() as c:
            rows = c.execute(
                select(usage).where(usage.c.conversation_id == conversation_id).order_by(usage.c.message_id)
            ).all()
        return [_turn_usage(r) for r in rows]

    def conversation_starts(self) -> list[datetime]:
        """When each conversation started, oldest first."""
        with self.db.read() as c:
            rows = c.scalars(select(conversations.c.created_at).order_by(conversations.c.created_at)).all()
        return [utc(r) for r in rows]

    def generation_split(self) -> tuple[int, int, float]:
        """(replies that answered or suggested with no generation, replies the LLM wrote, their LLM seconds)."""
        with self.db.read() as c:
            rows = c.execute(
                select(messages.c.outcome, usage.c.llm_s).join(usage, usage.c.message_id == messages.c.id)
            ).all()
        quoted = sum(1 for r in rows if r.llm_s == 0 and r.outcome in (Outcome.ANSWERED, Outcome.SUGGESTED))
        written = [r.llm_s for r in rows if r.llm_s > 0]
        return quoted, len(written), float(sum(written))

    def draft_uses(self) -> list[tuple[str, str, int | None]]:
        """(conversation, what the person did with the copilot's draft, the edit distance) for each person's reply
        that was offered one, oldest first."""
        with self.db.read() as c:
            rows = c.execute(
                select(messages.c.conversation_id, messages.c.extra)
                .where(messages.c.role == "agent", messages.c.extra.like('%"draft_used"%'))
                .order_by(messages.c.id)
            ).all()
        found = [(r.conversation_id, json.loads(r.extra)) for r in rows if r.extra]
        return [(cid, e["draft_used"], e.get("edit_distance")) for cid, e in found if e.get("draft_used")]


def _summary(row, message_count: int = 0, ratings: tuple[int, ...] = ()) -> ConversationSummary:
    return ConversationSummary(
        id=row.id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        channel=row.channel,
        handoff_needed=bool(row.handoff_needed),
        handoff_reason=row.handoff_reason,
        prompt_tokens=int(row.prompt_tokens),
        completion_tokens=int(row.completion_tokens),
        cost_usd=float(row.cost_usd),
        api_shadow_cost_usd=float(row.api_shadow_cost_usd),
        message_count=message_count,
        ratings=ratings,
    )


def _turn_usage(row) -> TurnUsage:
    seconds = {stage: float(getattr(row, f"{stage}_s")) for stage in STAGES}
    stored = {stage: getattr(row, f"{stage}_cost_usd") for stage in STAGES}
    recorded = all(value is not None for stage, value in stored.items() if stage != "action")  # action: m007
    if recorded:
        charged = {stage: float(value or 0.0) for stage, value in stored.items()}
    else:  # metered before m002_stage_costs: split the turn's cost by each stage's share of the seconds
        total = sum(seconds.values())
        charged = {stage: row.cost_usd * s / total if total else 0.0 for stage, s in seconds.items()}
    return TurnUsage(
        message_id=row.message_id,
        created_at=row.created_at,
        device=row.device,
        prompt_tokens=int(row.prompt_tokens),
        completion_tokens=int(row.completion_tokens),
        audio_s=float(row.audio_s),
        cost_usd=float(row.cost_usd),
        api_shadow_cost_usd=float(row.api_shadow_cost_usd),
        seconds=seconds,
        stage_cost_usd=charged,
        stage_costs_recorded=recorded,
    )
