"""Conversation storage through SQLAlchemy Core: SQLite by default, any SQLAlchemy URL works.

Tables: conversations, messages, message_sources, handoffs, feedback, usage, and
schema_migrations, which records the named migrations applied (`m001_initial`, ...). A new
migration is a new function appended to MIGRATIONS; applied ones never change.
Knows nothing about retrieval or models: it stores what the pipeline hands it.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    Boolean, Column, DateTime, Float, ForeignKey, Integer, MetaData, String, Table, Text,
    create_engine, func, insert, inspect, select, update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, OperationalError

from chatbot.records.costs import TurnCost, Usage
from core.errors import BadInput, ChatbotError, NotFound

metadata = MetaData()

schema_migrations = Table(
    "schema_migrations", metadata,
    Column("name", String(100), primary_key=True),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)
conversations = Table(
    "conversations", metadata,
    Column("id", String(32), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("channel", String(20), nullable=False, default="cli"),
    Column("handoff_needed", Boolean, nullable=False, default=False),
    Column("handoff_reason", String(40)),
    Column("prompt_tokens", Integer, nullable=False, default=0),
    Column("completion_tokens", Integer, nullable=False, default=0),
    Column("compute_s", Float, nullable=False, default=0.0),
    Column("cost_usd", Float, nullable=False, default=0.0),
    Column("api_shadow_cost_usd", Float, nullable=False, default=0.0),
)
messages = Table(
    "messages", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("conversation_id", String(32), ForeignKey("conversations.id"), nullable=False, index=True),
    Column("role", String(12), nullable=False),  # "customer" or "assistant"
    Column("content", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("outcome", String(40)),  # assistant only: answered, off_topic, no_knowledge, ...
    Column("extra", Text),  # JSON: grounding figures, OCR text, transcript details
)
message_sources = Table(
    "message_sources", metadata,
    Column("message_id", Integer, ForeignKey("messages.id"), primary_key=True),
    Column("rank", Integer, primary_key=True),
    Column("doc_id", String(300), nullable=False),
    Column("title", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("score", Float, nullable=False),
)
handoffs = Table(
    "handoffs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("conversation_id", String(32), ForeignKey("conversations.id"), nullable=False, index=True),
    Column("message_id", Integer, ForeignKey("messages.id")),
    Column("reason", String(40), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
feedback = Table(
    "feedback", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("conversation_id", String(32), ForeignKey("conversations.id"), nullable=False, index=True),
    Column("message_id", Integer, ForeignKey("messages.id")),
    Column("rating", Integer, nullable=False),  # +1 thumbs up, -1 thumbs down
    Column("comment", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
usage = Table(
    "usage", metadata,
    Column("message_id", Integer, ForeignKey("messages.id"), primary_key=True),
    Column("conversation_id", String(32), ForeignKey("conversations.id"), nullable=False, index=True),
    Column("prompt_tokens", Integer, nullable=False),
    Column("completion_tokens", Integer, nullable=False),
    Column("retrieval_s", Float, nullable=False),
    Column("llm_s", Float, nullable=False),
    Column("asr_s", Float, nullable=False),
    Column("ocr_s", Float, nullable=False),
    Column("audio_s", Float, nullable=False),
    Column("device", String(10), nullable=False),
    Column("cost_usd", Float, nullable=False),
    Column("api_shadow_cost_usd", Float, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


def m001_initial(connection: Connection) -> None:
    for table in (conversations, messages, message_sources, handoffs, feedback, usage):
        table.create(connection, checkfirst=True)


MIGRATIONS: list[Callable[[Connection], None]] = [m001_initial]

HANDOFF_REASONS = ("no_knowledge", "unsupported_answer", "customer_request")
MAX_MESSAGE_CHARS = 20_000


@dataclass(frozen=True)
class StoredSource:
    doc_id: str
    title: str
    url: str
    score: float


@dataclass(frozen=True)
class StoredMessage:
    id: int
    role: str
    content: str
    created_at: datetime
    outcome: str | None
    sources: tuple[StoredSource, ...]
    extra: dict


@dataclass(frozen=True)
class Conversation:
    id: str
    created_at: datetime
    channel: str
    handoff_needed: bool
    handoff_reason: str | None
    cost_usd: float
    api_shadow_cost_usd: float
    messages: tuple[StoredMessage, ...]


def _now() -> datetime:
    return datetime.now(UTC)


class Store:
    def __init__(self, url: str):
        self.url = url
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                self._engine = self._connect()
        return self._engine

    def _connect(self) -> Engine:
        if self.url.startswith("sqlite:///") and not self.url.startswith("sqlite:///:memory:"):
            Path(self.url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
        try:
            engine = create_engine(self.url)
            with engine.begin() as connection:
                self._migrate(connection)
        except ArgumentError:
            raise BadInput(f"'{self.url}' is not a database URL; use e.g. sqlite:///chatbot.db") from None
        except (OperationalError, ModuleNotFoundError) as exc:
            raise ChatbotError(f"cannot open the database {self.url}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}") from None
        return engine

    @staticmethod
    def _migrate(connection: Connection) -> None:
        schema_migrations.create(connection, checkfirst=True)
        applied = set(connection.scalars(select(schema_migrations.c.name)))
        for migration in MIGRATIONS:
            if migration.__name__ not in applied:
                migration(connection)
                connection.execute(insert(schema_migrations).values(name=migration.__name__, applied_at=_now()))

    def applied_migrations(self) -> list[str]:
        with self.engine.connect() as c:
            return list(c.scalars(select(schema_migrations.c.name).order_by(schema_migrations.c.name)))

    def tables(self) -> list[str]:
        return sorted(inspect(self.engine).get_table_names())

    # ---- writes --------------------------------------------------------------------------
    def new_conversation(self, channel: str = "cli") -> str:
        conversation_id = uuid.uuid4().hex
        now = _now()
        with self.engine.begin() as c:
            c.execute(insert(conversations).values(
                id=conversation_id, created_at=now, updated_at=now, channel=channel, handoff_needed=False,
                prompt_tokens=0, completion_tokens=0, compute_s=0.0, cost_usd=0.0, api_shadow_cost_usd=0.0,
            ))
        return conversation_id

    def require_conversation(self, conversation_id: str) -> None:
        with self.engine.connect() as c:
            found = c.scalar(select(conversations.c.id).where(conversations.c.id == conversation_id))
        if found is None:
            raise NotFound(f"no conversation '{conversation_id}'; leave out --conversation to start a new one")

    def add_message(self, conversation_id: str, role: str, content: str, outcome: str | None = None,
                    extra: dict | None = None) -> int:
        if len(content) > MAX_MESSAGE_CHARS:
            raise BadInput(f"message is longer than {MAX_MESSAGE_CHARS} characters")
        with self.engine.begin() as c:
            result = c.execute(insert(messages).values(
                conversation_id=conversation_id, role=role, content=content, created_at=_now(),
                outcome=outcome, extra=json.dumps(extra or {}, ensure_ascii=False),
            ))
            c.execute(update(conversations).where(conversations.c.id == conversation_id).values(updated_at=_now()))
            return int(result.inserted_primary_key[0])

    def add_sources(self, message_id: int, sources: list[StoredSource]) -> None:
        if not sources:
            return
        with self.engine.begin() as c:
            c.execute(insert(message_sources), [
                {"message_id": message_id, "rank": rank, "doc_id": s.doc_id, "title": s.title, "url": s.url, "score": s.score}
                for rank, s in enumerate(sources, start=1)
            ])

    def add_usage(self, conversation_id: str, message_id: int, used: Usage, cost: TurnCost) -> None:
        with self.engine.begin() as c:
            c.execute(insert(usage).values(
                message_id=message_id, conversation_id=conversation_id,
                prompt_tokens=used.prompt_tokens, completion_tokens=used.completion_tokens,
                retrieval_s=used.retrieval_s, llm_s=used.llm_s, asr_s=used.asr_s, ocr_s=used.ocr_s,
                audio_s=used.audio_s, device=used.device, cost_usd=cost.cost_usd,
                api_shadow_cost_usd=cost.api_shadow_cost_usd, created_at=_now(),
            ))
            c.execute(update(conversations).where(conversations.c.id == conversation_id).values(
                prompt_tokens=conversations.c.prompt_tokens + used.prompt_tokens,
                completion_tokens=conversations.c.completion_tokens + used.completion_tokens,
                compute_s=conversations.c.compute_s + used.compute_s,
                cost_usd=conversations.c.cost_usd + cost.cost_usd,
                api_shadow_cost_usd=conversations.c.api_shadow_cost_usd + cost.api_shadow_cost_usd,
            ))

    def add_handoff(self, conversation_id: str, message_id: int | None, reason: str) -> None:
        if reason not in HANDOFF_REASONS:
            raise ValueError(f"unknown handoff reason {reason!r}; known: {HANDOFF_REASONS}")
        with self.engine.begin() as c:
            c.execute(insert(handoffs).values(conversation_id=conversation_id, message_id=message_id,
                                              reason=reason, created_at=_now()))
            first = c.scalar(select(conversations.c.handoff_reason).where(conversations.c.id == conversation_id))
            c.execute(update(conversations).where(conversations.c.id == conversation_id).values(
                handoff_needed=True, handoff_reason=first or reason))

    def add_feedback(self, conversation_id: str, message_id: int | None, rating: int, comment: str | None = None) -> None:
        if rating not in (1, -1):
            raise BadInput("feedback rating must be 1 (thumbs up) or -1 (thumbs down)")
        self.require_conversation(conversation_id)
        with self.engine.begin() as c:
            c.execute(insert(feedback).values(conversation_id=conversation_id, message_id=message_id,
                                              rating=rating, comment=comment, created_at=_now()))

    # ---- reads ---------------------------------------------------------------------------
    def history(self, conversation_id: str, turns: int, before_message_id: int | None = None) -> list[tuple[str, str]]:
        """The last `turns` messages as (role, content), oldest first."""
        if turns <= 0:
            return []
        query = select(messages.c.role, messages.c.content).where(messages.c.conversation_id == conversation_id)
        if before_message_id is not None:
            query = query.where(messages.c.id < before_message_id)
        with self.engine.connect() as c:
            rows = c.execute(query.order_by(messages.c.id.desc()).limit(turns)).all()
        return [(r.role, r.content) for r in reversed(rows)]

    def conversation(self, conversation_id: str) -> Conversation:
        with self.engine.connect() as c:
            row = c.execute(select(conversations).where(conversations.c.id == conversation_id)).first()
            if row is None:
                raise NotFound(f"no conversation '{conversation_id}'")
            message_rows = c.execute(select(messages).where(messages.c.conversation_id == conversation_id)
                                     .order_by(messages.c.id)).all()
            source_rows = c.execute(select(message_sources).join(messages, messages.c.id == message_sources.c.message_id)
                                    .where(messages.c.conversation_id == conversation_id)
                                    .order_by(message_sources.c.message_id, message_sources.c.rank)).all()
        by_message: dict[int, list[StoredSource]] = {}
        for s in source_rows:
            by_message.setdefault(s.message_id, []).append(StoredSource(s.doc_id, s.title, s.url, s.score))
        return Conversation(
            id=row.id, created_at=row.created_at, channel=row.channel, handoff_needed=bool(row.handoff_needed),
            handoff_reason=row.handoff_reason, cost_usd=row.cost_usd, api_shadow_cost_usd=row.api_shadow_cost_usd,
            messages=tuple(
                StoredMessage(m.id, m.role, m.content, m.created_at, m.outcome,
                              tuple(by_message.get(m.id, [])), json.loads(m.extra or "{}"))
                for m in message_rows
            ),
        )

    def totals(self) -> dict:
        """Raw aggregates for the report; `chatbot.reporting.report` turns them into figures."""
        with self.engine.connect() as c:
            conv = c.execute(select(
                func.count(conversations.c.id), func.coalesce(func.sum(conversations.c.cost_usd), 0.0),
                func.coalesce(func.sum(conversations.c.api_shadow_cost_usd), 0.0),
                func.coalesce(func.sum(func.cast(conversations.c.handoff_needed, Integer)), 0),
                func.coalesce(func.sum(conversations.c.prompt_tokens), 0),
                func.coalesce(func.sum(conversations.c.completion_tokens), 0),
            )).one()
            message_count = c.scalar(select(func.count(messages.c.id)))
            customer_messages = c.scalar(select(func.count(messages.c.id)).where(messages.c.role == "customer"))
            reasons = dict(c.execute(select(conversations.c.handoff_reason, func.count())
                                     .where(conversations.c.handoff_needed.is_(True))
                                     .group_by(conversations.c.handoff_reason)).all())
            outcomes = dict(c.execute(select(messages.c.outcome, func.count()).where(messages.c.role == "assistant")
                                      .group_by(messages.c.outcome)).all())
            latencies = list(c.scalars(select(usage.c.retrieval_s + usage.c.llm_s + usage.c.asr_s + usage.c.ocr_s)))
            ratings = dict(c.execute(select(feedback.c.rating, func.count()).group_by(feedback.c.rating)).all())
        return {
            "conversations": conv[0], "cost_usd": float(conv[1]), "api_shadow_cost_usd": float(conv[2]),
            "handed_over": int(conv[3]), "prompt_tokens": int(conv[4]), "completion_tokens": int(conv[5]),
            "messages": int(message_count or 0), "customer_messages": int(customer_messages or 0),
            "handoff_reasons": {str(k): int(v) for k, v in reasons.items()},
            "outcomes": {str(k): int(v) for k, v in outcomes.items()},
            "turn_seconds": latencies, "ratings": {int(k): int(v) for k, v in ratings.items()},
        }
