"""A conversation's records: its messages (redacted), the sources a reply cited, what each turn cost,
its handoffs and its ratings. A reply and everything about it are written in one transaction
(`record_reply`), so a crash never leaves half a turn; the customer's message is written on its
own first, before any model runs, so nothing they sent is lost. Knows nothing about who takes a
handed-over conversation (`chatbot.handoff`) nor about aggregates (`chatbot.records.stats`).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from chatbot.records.costs import STAGES, TurnCost, Usage
from chatbot.records.database import Database, now, text_value
from chatbot.records.outcomes import HANDOFF_OUTCOMES, Outcome
from chatbot.records.schema import (
    MAX_COMMENT_CHARS,
    MAX_MESSAGE_CHARS,
    conversations,
    feedback,
    handoffs,
    message_sources,
    messages,
    server_runs,
    usage,
)
from chatbot.records.types import Conversation, StoredMessage, StoredSource, StoreUnavailable
from core.errors import BadInput, NotFound


class Conversations:
    """Conversations and everything said and metered in them, over `db`."""

    def __init__(self, db: Database):
        self.db = db

    def new_conversation(self, channel: str = "cli") -> str:
        """Start a conversation on `channel` ("cli", "web", ...); returns its id (32 hex characters)."""
        conversation_id = uuid.uuid4().hex
        started = now()
        with self.db.begin() as c:
            c.execute(
                insert(conversations).values(
                    id=conversation_id,
                    created_at=started,
                    updated_at=started,
                    channel=channel,
                    handoff_needed=False,
                    prompt_tokens=0,
                    completion_tokens=0,
                    compute_s=0.0,
                    cost_usd=0.0,
                    api_shadow_cost_usd=0.0,
                )
            )
        return conversation_id

    def require_conversation(self, conversation_id: str) -> None:
        """Raise NotFound unless the conversation exists."""
        with self.db.read() as c:
            found = c.scalar(select(conversations.c.id).where(conversations.c.id == conversation_id))
        if found is None:
            raise NotFound(f"no conversation '{conversation_id}'; leave out --conversation to start a new one")

    def add_message(
        self,
        conversation_id: str,
        role: str,
        content: str,
        outcome: str | None = None,
        extra: dict | None = None,
        author: str | None = None,
        server_run: int | None = None,
    ) -> int:
        """Append a message (at most MAX_MESSAGE_CHARS); returns its id. `role`: "customer", "assistant",
        "agent" (a person's reply, `author` their user name) or "notice" (a person joined or left).
        Customer and agent words are redacted like any personal data; `author` defaults to the role.
        `server_run`: the server run (`chatbot.work_meter.ServerClock`) that is answering it."""
        with self.db.begin() as c:
            return self._insert_message(c, conversation_id, role, content, outcome, extra, author, server_run)

    def add_sources(self, message_id: int, sources: list[StoredSource]) -> None:
        """Record the passages a message cited, ranked from 1 in the order given."""
        with self.db.begin() as c:
            _insert_sources(c, message_id, sources)

    def add_usage(self, conversation_id: str, message_id: int, used: Usage, cost: TurnCost) -> None:
        """Meter a turn: its seconds per stage and what it was charged (USD, per stage when `cost` has them)."""
        with self.db.begin() as c:
            _insert_usage(c, conversation_id, message_id, used, cost)

    def add_handoff(self, conversation_id: str, message_id: int | None, reason: str) -> None:
        """Mark the conversation for a person; `reason` is a handing-over Outcome. The first reason stays.
        Only recorded: who takes it over is the desk's business (`chatbot.handoff.LiveDesk.hand_over`)."""
        with self.db.begin() as c:
            _insert_handoff(c, conversation_id, message_id, reason)

    def record_reply(
        self,
        conversation_id: str,
        answer: str,
        outcome: str,
        extra: dict | None,
        sources: list[StoredSource],
        used: Usage,
        cost: TurnCost,
        personal: bool = False,
    ) -> int:
        """The assistant's reply, its sources, its metering and (for a handing-over outcome) its handoff, in
        one transaction: all of them are stored or none. Returns the reply's id. `personal`: the reply repeats
        the customer's data (an action's result) and is redacted like their words."""
        answer = self.db.redact(answer) if personal else answer
        with self.db.begin() as c:
            message_id = self._insert_message(c, conversation_id, "assistant", answer, outcome, extra, None)
            _insert_sources(c, message_id, sources)
            _insert_usage(c, conversation_id, message_id, used, cost)
            if outcome in HANDOFF_OUTCOMES:
                _insert_handoff(c, conversation_id, message_id, outcome)
        return message_id

    def _insert_message(
        self,
        c: Connection,
        conversation_id: str,
        role: str,
        content: str,
        outcome: str | None,
        extra: dict | None,
        author: str | None,
        server_run: int | None = None,
    ) -> int:
        if len(content) > MAX_MESSAGE_CHARS:
            raise BadInput(f"message is longer than {MAX_MESSAGE_CHARS} characters")
        if role in ("customer", "agent"):
            content = self.db.redact(content)
        result = c.execute(
            insert(messages).values(
                conversation_id=conversation_id,
                role=role,
                content=text_value(content),
                created_at=now(),
                outcome=outcome,
                extra=json.dumps(self.db.redact_value(extra or {}), ensure_ascii=False),
                author=author or role,
                server_run_id=server_run,
            )
        )
        c.execute(update(conversations).where(conversations.c.id == conversation_id).values(updated_at=now()))
        return int(result.inserted_primary_key[0])  # type: ignore[index]  # an INSERT always has one

    def last_reply(self, conversation_id: str, before_message_id: int | None = None) -> tuple[int, str | None] | None:
        """The assistant's last reply in the conversation (before `before_message_id`): (id, outcome), or None."""
        query = select(messages.c.id, messages.c.outcome).where(
            messages.c.conversation_id == conversation_id, messages.c.role == "assistant"
        )
        if before_message_id is not None:
            query = query.where(messages.c.id < before_message_id)
        with self.db.read() as c:
            row = c.execute(query.order_by(messages.c.id.desc()).limit(1)).first()
        return (int(row.id), row.outcome) if row is not None else None

    def add_feedback(
        self, conversation_id: str, message_id: int | None, rating: int, comment: str | None = None
    ) -> None:
        """Record a thumbs-up (1) or thumbs-down (-1) on one assistant message of the conversation (or on
        the conversation), with an optional comment. One rating per message: a new one replaces the last."""
        if type(rating) is not int or rating not in (1, -1):
            raise BadInput("feedback rating must be 1 (thumbs up) or -1 (thumbs down)")
        if comment is not None and (not isinstance(comment, str) or len(comment) > MAX_COMMENT_CHARS):
            raise BadInput(f"a feedback comment must be text of at most {MAX_COMMENT_CHARS} characters")
        self.require_conversation(conversation_id)
        if message_id is not None:
            with self.db.read() as c:
                role = c.scalar(
                    select(messages.c.role).where(
                        messages.c.id == message_id, messages.c.conversation_id == conversation_id
                    )
                )
            if role != "assistant":
                raise NotFound(f"no reply {message_id} in conversation '{conversation_id}'")
        row = {"rating": rating, "comment": self.db.redact(comment), "created_at": now()}
        same = (feedback.c.conversation_id == conversation_id) & (
            feedback.c.message_id == message_id if message_id is not None else feedback.c.message_id.is_(None)
        )
        for _ in range(2):  # a rating racing another on the same message: the unique index wins, then update
            try:
                with self.db.begin(conflicts=True) as c:
                    if c.execute(update(feedback).where(same).values(**row)).rowcount == 0:
                        c.execute(
                            insert(feedback).values(conversation_id=conversation_id, message_id=message_id, **row)
                        )
                return
            except IntegrityError:
                continue
        raise StoreUnavailable("your rating could not be saved; please try again")

    def interrupted(self, live_since: datetime, unowned: bool = True) -> list[tuple[str, int]]:
        """(conversation, customer message) for each conversation whose last customer message got no reply
        and was not yet handed over for it, and whose server stopped mid-turn: its run (`server_runs`)
        stopped or has not been seen since `live_since`. A message no server run took (the CLI, older rows)
        counts only when `unowned` (at a server's start). The engine hands them over."""
        with self.db.read() as c:
            last_asked = (
                select(messages.c.conversation_id, func.max(messages.c.id).label("id"))
                .where(messages.c.role == "customer")
                .group_by(messages.c.conversation_id)
                .subquery()
            )
            rows = c.execute(
                select(messages.c.conversation_id, messages.c.id, messages.c.server_run_id)
                .join(last_asked, last_asked.c.id == messages.c.id)
                .join(conversations, conversations.c.id == messages.c.conversation_id)
            ).all()
            last_reply = dict(
                c.execute(
                    select(messages.c.conversation_id, func.max(messages.c.id))
                    .where(messages.c.role == "assistant")
                    .group_by(messages.c.conversation_id)
                ).all()
            )
            flagged = set(c.scalars(select(handoffs.c.message_id).where(handoffs.c.reason == Outcome.INTERRUPTED)))
            alive = set(
                c.scalars(
                    select(server_runs.c.id).where(
                        server_runs.c.stopped_at.is_(None), server_runs.c.seen_at >= live_since
                    )
                )
            )
        return [
            (cid, mid)
            for cid, mid, run in rows
            if mid > last_reply.get(cid, 0) and mid not in flagged and (unowned if run is None else run not in alive)
        ]

    def flag_interrupted(self, conversation_id: str, message_id: int) -> bool:
        """Hand the conversation over for `message_id`, reason `interrupted`; False when another server
        flagged it first (one handoff per message, however many replicas notice)."""
        try:
            with self.db.begin(conflicts=True) as c:
                _insert_handoff(c, conversation_id, message_id, Outcome.INTERRUPTED)
        except IntegrityError:
            return False
        return True

    def history(self, conversation_id: str, turns: int, before_message_id: int | None = None) -> list[tuple[str, str]]:
        """The last `turns` messages as (role, content), oldest first."""
        if turns <= 0:
            return []
        query = select(messages.c.role, messages.c.content).where(messages.c.conversation_id == conversation_id)
        if before_message_id is not None:
            query = query.where(messages.c.id < before_message_id)
        with self.db.read() as c:
            rows = c.execute(query.order_by(messages.c.id.desc()).limit(turns)).all()
        return [(r.role, r.content) for r in reversed(rows)]

    def conversation(self, conversation_id: str) -> Conversation:
        """The whole conversation with its messages and their sources; NotFound if there is none."""
        with self.db.read() as c:
            row = c.execute(select(conversations).where(conversations.c.id == conversation_id)).first()
            if row is None:
                raise NotFound(f"no conversation '{conversation_id}'")
            message_rows = c.execute(
                select(messages).where(messages.c.conversation_id == conversation_id).order_by(messages.c.id)
            ).all()
            source_rows = c.execute(
                select(message_sources)
                .join(messages, messages.c.id == message_sources.c.message_id)
                .where(messages.c.conversation_id == conversation_id)
                .order_by(message_sources.c.message_id, message_sources.c.rank)
            ).all()
            interrupted = set(
                c.scalars(
                    select(handoffs.c.message_id).where(
                        handoffs.c.conversation_id == conversation_id, handoffs.c.reason == Outcome.INTERRUPTED
                    )
                )
            )
        by_message: dict[int, list[StoredSource]] = {}
        for s in source_rows:
            by_message.setdefault(s.message_id, []).append(StoredSource(s.doc_id, s.title, s.url, s.score))
        return Conversation(
            id=row.id,
            created_at=row.created_at,
            channel=row.channel,
            handoff_needed=bool(row.handoff_needed),
            handoff_reason=row.handoff_reason,
            cost_usd=row.cost_usd,
            api_shadow_cost_usd=row.api_shadow_cost_usd,
            messages=tuple(
                StoredMessage(
                    m.id,
                    m.role,
                    m.content,
                    m.created_at,
                    m.outcome,
                    tuple(by_message.get(m.id, [])),
                    json.loads(m.extra or "{}"),
                    m.id in interrupted,
                    m.author,
                )
                for m in message_rows
            ),
            human_s=float(row.human_s or 0.0),
            human_cost_usd=float(row.human_cost_usd or 0.0),
        )


def _insert_sources(c: Connection, message_id: int, sources: list[StoredSource]) -> None:
    if sources:
        c.execute(
            insert(message_sources),
            [
                {
                    "message_id": message_id,
                    "rank": rank,
                    "doc_id": s.doc_id,
                    "title": text_value(s.title),
                    "url": text_value(s.url),
                    "score": s.score,
                }
                for rank, s in enumerate(sources, start=1)
            ],
        )


def _insert_usage(c: Connection, conversation_id: str, message_id: int, used: Usage, cost: TurnCost) -> None:
    c.execute(
        insert(usage).values(
            message_id=message_id,
            conversation_id=conversation_id,
            prompt_tokens=used.prompt_tokens,
            completion_tokens=used.completion_tokens,
            retrieval_s=used.retrieval_s,
            llm_s=used.llm_s,
            asr_s=used.asr_s,
            ocr_s=used.ocr_s,
            action_s=used.action_s,
            audio_s=used.audio_s,
            device=used.device,
            cost_usd=cost.cost_usd,
            api_shadow_cost_usd=cost.api_shadow_cost_usd,
            created_at=now(),
            **{f"{stage}_cost_usd": cost.stage_cost_usd(stage) for stage in STAGES},
        )
    )
    c.execute(
        update(conversations)
        .where(conversations.c.id == conversation_id)
        .values(
            prompt_tokens=conversations.c.prompt_tokens + used.prompt_tokens,
            completion_tokens=conversations.c.completion_tokens + used.completion_tokens,
            compute_s=conversations.c.compute_s + used.compute_s,
            cost_usd=conversations.c.cost_usd + cost.cost_usd,
            api_shadow_cost_usd=conversations.c.api_shadow_cost_usd + cost.api_shadow_cost_usd,
        )
    )


def _insert_handoff(c: Connection, conversation_id: str, message_id: int | None, reason: str) -> None:
    if reason not in HANDOFF_OUTCOMES:
        raise ValueError(f"unknown handoff reason {reason!r}; known: {sorted(HANDOFF_OUTCOMES)}")
    c.execute(
        insert(handoffs).values(conversation_id=conversation_id, message_id=message_id, reason=reason, created_at=now())
    )
    first = c.scalar(select(conversations.c.handoff_reason).where(conversations.c.id == conversation_id))
    c.execute(
        update(conversations)
        .where(conversations.c.id == conversation_id)
        .values(handoff_needed=True, handoff_reason=first or reason)
    )
