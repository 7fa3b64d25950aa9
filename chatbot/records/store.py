"""Conversation storage through SQLAlchemy Core: SQLite by default; PostgreSQL works too.

Tables: conversations, messages, message_sources, handoffs, feedback, usage, eval_runs,
live_handoffs (a person takes over: queued, claimed, resolved, with measured handling time and
cost), faq_entries (help-centre answers operators saved: live, pending review or removed) and
faq_history (every save, edit, approval and removal), and schema_migrations, which records
the named migrations applied (`m001_initial`, ...). Every message records its `author`.

Migrations follow simonw/llm's llm/migrations.py: each is a function registered with
`@migration`, run once in order, and spells out its own DDL in portable SQL (TEXT/VARCHAR,
INTEGER, DOUBLE PRECISION, BOOLEAN, TIMESTAMP WITH TIME ZONE). A migration never reads the
`Table` objects below: those describe today's schema for building queries, so a migration
created from them would already hold tomorrow's columns and the next ALTER would fail. A new
migration is a new function at the end; applied ones never change.

The store owns its SQL: other modules call its methods and get plain values or frozen
dataclasses back, never the `Table` objects. Knows nothing about retrieval or models.

Personal data: what a customer wrote (messages, transcripts, screenshot text, feedback comments)
is redacted by `core.redact` before it is written: emails, phone numbers, card numbers, IBANs and
street addresses become placeholders such as `{{Card Number}}`; names are kept (a cue such as
"it's" often precedes a product's name). Assistant messages are kept as written: they are built
from help-centre sentences (a number must appear in a source to pass the grounding check), and the
help centre's own contact details must survive; their `extra` (the LLM's raw draft) is redacted.
The engine is given SQL parameters never in logs or errors (`hide_parameters`); a database that
fails mid-way raises `StoreUnavailable`, a `ChatbotError` safe to show.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    Boolean, Column, DateTime, Float, ForeignKey, Integer, MetaData, String, Table, Text,
    create_engine, func, insert, inspect, make_url, select, update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, DatabaseError, DBAPIError, IntegrityError

from chatbot.records.costs import STAGES, TurnCost, Usage
from chatbot.records.outcomes import HANDOFF_OUTCOMES, Outcome
from core.errors import BadInput, ChatbotError, NotFound
from core.redact import Redactor

log = logging.getLogger(__name__)

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
    Column("human_s", Float, nullable=False, default=0.0),  # m005: people's measured handling time, claim to resolve
    Column("human_cost_usd", Float, nullable=False, default=0.0),  # m005: that time priced per hour
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
    Column("author", String(100)),  # m005: "customer", "assistant" or the operator's user name; NULL on older rows
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
    # what each stage was charged when the turn was metered (m002); NULL on older rows
    Column("retrieval_cost_usd", Float),
    Column("llm_cost_usd", Float),
    Column("asr_cost_usd", Float),
    Column("ocr_cost_usd", Float),
)
eval_runs = Table(
    "eval_runs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("model", String(300), nullable=False),  # the LLM that served the run
    Column("questions", Text, nullable=False),  # the question file
    Column("split", String(20), nullable=False),  # dev, heldout or all
    Column("totals", Text, nullable=False),  # JSON: the `chatbot eval` totals
)
live_handoffs = Table(
    "live_handoffs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("conversation_id", String(32), ForeignKey("conversations.id"), nullable=False, index=True),
    Column("message_id", Integer, ForeignKey("messages.id")),  # the reply that handed over, if any
    Column("reason", String(40), nullable=False),  # a handing-over Outcome, or "reopened" / "operator"
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("agent", String(100)),  # who claimed it; NULL while it waits
    Column("claimed_at", DateTime(timezone=True)),
    Column("resolved_at", DateTime(timezone=True)),  # NULL while open
    Column("resolved_by", String(100)),
    Column("return_to_bot", Boolean),  # at resolve: the assistant answers again (else the conversation stays with people)
    Column("handling_s", Float),  # claim to resolve, seconds
    Column("human_cost_usd", Float),  # handling_s priced at `[prices] human_agent_usd_per_hour`
)
faq_entries = Table(
    "faq_entries", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("doc_id", String(300), nullable=False, unique=True),  # the knowledge-base document it became
    Column("question", Text, nullable=False),
    Column("answer", Text, nullable=False),
    Column("conversation_id", String(32), ForeignKey("conversations.id")),  # the conversation it was saved from
    Column("author", String(100), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("status", String(20), nullable=False),  # live (in the FAQ CSV and index), pending, removed
    Column("reviewed_by", String(100)),  # who approved (or removed) it; the author when it went live at once
    Column("reviewed_at", DateTime(timezone=True)),
)
faq_history = Table(
    "faq_history", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("doc_id", String(300), nullable=False, index=True),
    Column("action", String(20), nullable=False),  # saved, edited, approved, removed
    Column("actor", String(100), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("question", Text, nullable=False),  # the entry's text after the action
    Column("answer", Text, nullable=False),
    Column("status", String(20), nullable=False),  # the entry's status after the action
)

# ---- migrations: explicit DDL, never the Table objects above ------------------------------
MIGRATIONS: list[Callable[[Connection], None]] = []


def migration(function: Callable[[Connection], None]) -> Callable[[Connection], None]:
    """Register `function` as the next migration; it runs once, named by its function name."""
    MIGRATIONS.append(function)
    return function


def _execute(connection: Connection, *statements: str) -> None:
    for statement in statements:
        connection.exec_driver_sql(statement)


def _serial_key(connection: Connection) -> str:
    """An auto-numbered INTEGER primary key: the one piece of DDL that differs by database."""
    if connection.dialect.name == "sqlite":
        return "INTEGER PRIMARY KEY"  # an alias of the rowid, numbered by SQLite
    return "INTEGER GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"  # SQL standard, PostgreSQL 10+


@migration
def m001_initial(connection: Connection) -> None:
    """The schema of the first release: the same tables, columns and indexes it created."""
    serial = _serial_key(connection)
    _execute(
        connection,
        """CREATE TABLE conversations (
            id VARCHAR(32) NOT NULL PRIMARY KEY,
            created_at TIMESTAMP WITH TIME ZONE NOT NULL,
            updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
            channel VARCHAR(20) NOT NULL,
            handoff_needed BOOLEAN NOT NULL,
            handoff_reason VARCHAR(40),
            prompt_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            compute_s DOUBLE PRECISION NOT NULL,
            cost_usd DOUBLE PRECISION NOT NULL,
            api_shadow_cost_usd DOUBLE PRECISION NOT NULL
        )""",
        f"""CREATE TABLE messages (
            id {serial},
            conversation_id VARCHAR(32) NOT NULL REFERENCES conversations (id),
            role VARCHAR(12) NOT NULL,
            content TEXT NOT NULL,
            created_at TIMESTAMP WITH TIME ZONE NOT NULL,
            outcome VARCHAR(40),
            extra TEXT
        )""",
        "CREATE INDEX ix_messages_conversation_id ON messages (conversation_id)",
        """CREATE TABLE message_sources (
            message_id INTEGER NOT NULL REFERENCES messages (id),
            rank INTEGER NOT NULL,
            doc_id VARCHAR(300) NOT NULL,
            title TEXT NOT NULL,
            url TEXT NOT NULL,
            score DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (message_id, rank)
        )""",
        f"""CREATE TABLE handoffs (
            id {serial},
            conversation_id VARCHAR(32) NOT NULL REFERENCES conversations (id),
            message_id INTEGER REFERENCES messages (id),
            reason VARCHAR(40) NOT NULL,
            created_at TIMESTAMP WITH TIME ZONE NOT NULL
        )""",
        "CREATE INDEX ix_handoffs_conversation_id ON handoffs (conversation_id)",
        f"""CREATE TABLE feedback (
            id {serial},
            conversation_id VARCHAR(32) NOT NULL REFERENCES conversations (id),
            message_id INTEGER REFERENCES messages (id),
            rating INTEGER NOT NULL,
            comment TEXT,
            created_at TIMESTAMP WITH TIME ZONE NOT NULL
        )""",
        "CREATE INDEX ix_feedback_conversation_id ON feedback (conversation_id)",
        """CREATE TABLE usage (
            message_id INTEGER NOT NULL PRIMARY KEY REFERENCES messages (id),
            conversation_id VARCHAR(32) NOT NULL REFERENCES conversations (id),
            prompt_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            retrieval_s DOUBLE PRECISION NOT NULL,
            llm_s DOUBLE PRECISION NOT NULL,
            asr_s DOUBLE PRECISION NOT NULL,
            ocr_s DOUBLE PRECISION NOT NULL,
            audio_s DOUBLE PRECISION NOT NULL,
            device VARCHAR(10) NOT NULL,
            cost_usd DOUBLE PRECISION NOT NULL,
            api_shadow_cost_usd DOUBLE PRECISION NOT NULL,
            created_at TIMESTAMP WITH TIME ZONE NOT NULL
        )""",
        "CREATE INDEX ix_usage_conversation_id ON usage (conversation_id)",
    )


@migration
def m002_stage_costs(connection: Connection) -> None:
    """What each stage was charged at metering time; NULL on turns metered before this migration."""
    _execute(connection, *(f"ALTER TABLE usage ADD COLUMN {stage}_cost_usd DOUBLE PRECISION"
                           for stage in ("retrieval", "llm", "asr", "ocr")))


@migration
def m003_eval_runs(connection: Connection) -> None:
    """The totals of each `chatbot eval` run, so reports show how the serving model scores."""
    _execute(connection, f"""CREATE TABLE eval_runs (
            id {_serial_key(connection)},
            created_at TIMESTAMP WITH TIME ZONE NOT NULL,
            model VARCHAR(300) NOT NULL,
            questions TEXT NOT NULL,
            split VARCHAR(20) NOT NULL,
            totals TEXT NOT NULL
        )""")


@migration
def m004_one_rating_per_message(connection: Connection) -> None:
    """One rating per message (per conversation when no message is named): the newest one stays."""
    _execute(connection,
             """DELETE FROM feedback WHERE id NOT IN (SELECT MAX(id) FROM feedback
                GROUP BY conversation_id, COALESCE(message_id, 0))""",
             "CREATE UNIQUE INDEX ux_feedback_one_per_message ON feedback (conversation_id, COALESCE(message_id, 0))")


@migration
def m005_live_handoff(connection: Connection) -> None:
    """A person takes over: who wrote each message, the live handoffs (queued, claimed, resolved) with their
    measured handling time and cost, and the help-centre answers operators saved from them."""
    serial = _serial_key(connection)
    _execute(
        connection,
        "ALTER TABLE messages ADD COLUMN author VARCHAR(100)",
        "ALTER TABLE conversations ADD COLUMN human_s DOUBLE PRECISION NOT NULL DEFAULT 0",
        "ALTER TABLE conversations ADD COLUMN human_cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0",
        f"""CREATE TABLE live_handoffs (
            id {serial},
            conversation_id VARCHAR(32) NOT NULL REFERENCES conversations (id),
            message_id INTEGER REFERENCES messages (id),
            reason VARCHAR(40) NOT NULL,
            requested_at TIMESTAMP WITH TIME ZONE NOT NULL,
            agent VARCHAR(100),
            claimed_at TIMESTAMP WITH TIME ZONE,
            resolved_at TIMESTAMP WITH TIME ZONE,
            resolved_by VARCHAR(100),
            return_to_bot BOOLEAN,
            handling_s DOUBLE PRECISION,
            human_cost_usd DOUBLE PRECISION
        )""",
        "CREATE INDEX ix_live_handoffs_conversation_id ON live_handoffs (conversation_id)",
        f"""CREATE TABLE faq_entries (
            id {serial},
            doc_id VARCHAR(300) NOT NULL UNIQUE,
            question TEXT NOT NULL,
            answer TEXT NOT NULL,
            conversation_id VARCHAR(32) REFERENCES conversations (id),
            author VARCHAR(100) NOT NULL,
            created_at TIMESTAMP WITH TIME ZONE NOT NULL
        )""",
    )


@migration
def m006_faq_review(connection: Connection) -> None:
    """Help-centre answers are reviewed: a status (entries saved before went live at once), who approved
    them and when, and every save, edit, approval and removal kept as history."""
    serial = _serial_key(connection)
    _execute(
        connection,
        "ALTER TABLE faq_entries ADD COLUMN status VARCHAR(20) NOT NULL DEFAULT 'live'",
        "ALTER TABLE faq_entries ADD COLUMN reviewed_by VARCHAR(100)",
        "ALTER TABLE faq_entries ADD COLUMN reviewed_at TIMESTAMP WITH TIME ZONE",
        f"""CREATE TABLE faq_history (
            id {serial},
            doc_id VARCHAR(300) NOT NULL,
            action VARCHAR(20) NOT NULL,
            actor VARCHAR(100) NOT NULL,
            at TIMESTAMP WITH TIME ZONE NOT NULL,
            question TEXT NOT NULL,
            answer TEXT NOT NULL,
            status VARCHAR(20) NOT NULL
        )""",
        "CREATE INDEX ix_faq_history_doc_id ON faq_history (doc_id)",
        """INSERT INTO faq_history (doc_id, action, actor, at, question, answer, status)
           SELECT doc_id, 'saved', author, created_at, question, answer, 'live' FROM faq_entries""",
    )


MIGRATION_LOCK_KEY = 0x63686174  # PostgreSQL advisory lock held while migrating ("chat")
MAX_MESSAGE_CHARS = 20_000
MAX_COMMENT_CHARS = 2_000
STORED_PERSONAL_DATA = ("email", "phone", "card", "iban", "address")  # `core.redact` kinds replaced before writing


class StoreUnavailable(ChatbotError):
    """The database failed (read-only, full, locked, unreachable): nothing was lost that was not said."""


@dataclass(frozen=True)
class StoredSource:
    """A help-centre passage an answer cited, as stored beside the message."""
    doc_id: str
    title: str
    url: str
    score: float


@dataclass(frozen=True)
class StoredMessage:
    """One message of a conversation; `outcome` is set on assistant messages only."""
    id: int
    role: str
    content: str
    created_at: datetime
    outcome: str | None
    sources: tuple[StoredSource, ...]
    extra: dict
    interrupted: bool = False  # a customer message the server stopped before replying to (handed over)
    author: str | None = None  # "customer", "assistant", or the operator who wrote it (role "agent" / "notice")


@dataclass(frozen=True)
class Conversation:
    """A whole conversation with its messages, oldest first; costs in USD."""
    id: str
    created_at: datetime
    channel: str
    handoff_needed: bool
    handoff_reason: str | None
    cost_usd: float
    api_shadow_cost_usd: float
    messages: tuple[StoredMessage, ...]
    human_s: float = 0.0  # people's measured handling time (claim to resolve), seconds
    human_cost_usd: float = 0.0  # that time priced at `[prices] human_agent_usd_per_hour`


@dataclass(frozen=True)
class ConversationSummary:
    """One conversation's row without its messages; costs in USD, tokens summed over its turns."""
    id: str
    created_at: datetime
    updated_at: datetime
    channel: str
    handoff_needed: bool
    handoff_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    api_shadow_cost_usd: float
    message_count: int = 0  # filled by `Store.conversation_list`; 0 from `Store.activity_since`
    ratings: tuple[int, ...] = ()  # +1 / -1 votes, filled by `Store.conversation_list`


@dataclass(frozen=True)
class HandoffEvent:
    """A handoff as it happened: a conversation may have several, the first one counts."""
    conversation_id: str
    reason: str
    created_at: datetime


@dataclass(frozen=True)
class Rating:
    """A thumbs-up (+1) or thumbs-down (-1) on a conversation."""
    conversation_id: str
    rating: int
    created_at: datetime


@dataclass(frozen=True)
class Activity:
    """What happened since a moment: new conversations, handoffs, ratings, and metered turns."""
    conversations: tuple[ConversationSummary, ...]
    handoffs: tuple[HandoffEvent, ...]
    ratings: tuple[Rating, ...]
    turns: tuple[tuple[datetime, float], ...]  # (metered at, compute seconds of the turn)


@dataclass(frozen=True)
class UnansweredQuestion:
    """A customer message and the outcome of the assistant message that replied to it."""
    conversation_id: str
    message_id: int  # the assistant's reply
    question: str
    outcome: Outcome


@dataclass(frozen=True)
class TurnUsage:
    """One metered turn: seconds per stage and USD charged per stage when it was metered.

    Turns metered before `m002_stage_costs` have no stage costs stored: for them the turn's
    `cost_usd` is split across stages in proportion to their seconds (`stage_costs_recorded` False).
    """
    message_id: int
    created_at: datetime
    device: str
    prompt_tokens: int
    completion_tokens: int
    audio_s: float
    cost_usd: float
    api_shadow_cost_usd: float
    seconds: dict[str, float]  # by stage in STAGES
    stage_cost_usd: dict[str, float]  # by stage in STAGES
    stage_costs_recorded: bool


@dataclass(frozen=True)
class LiveHandoff:
    """A conversation handed to people: waiting (`agent` None), held by `agent`, or resolved."""
    id: int
    conversation_id: str
    message_id: int | None
    reason: str
    requested_at: datetime
    agent: str | None
    claimed_at: datetime | None
    resolved_at: datetime | None
    resolved_by: str | None
    return_to_bot: bool | None
    handling_s: float | None
    human_cost_usd: float | None



@dataclass(frozen=True)
class FaqEntry:
    """A help-centre answer an operator saved; `doc_id` is its document in the knowledge base once live."""
    id: int
    doc_id: str
    question: str
    answer: str
    conversation_id: str | None
    author: str  # who saved or last edited it
    created_at: datetime  # of the last save or edit
    status: str = "live"  # "live" (in the FAQ CSV and the index), "pending" (waits for review), "removed"
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None


@dataclass(frozen=True)
class FaqChange:
    """One step in a help-centre answer's history: who did what, when, and the text it left."""
    doc_id: str
    action: str  # "saved", "edited", "approved", "removed"
    actor: str
    at: datetime
    question: str
    answer: str
    status: str  # the entry's status after it


@dataclass(frozen=True)
class GapQuestion:
    """A customer question the assistant did not answer (refused or handed over), for the gap topics."""
    conversation_id: str
    message_id: int  # the customer's message
    question: str
    outcome: str
    created_at: datetime


class Conflict(ChatbotError):
    """The action clashes with another operator's (already claimed, not yours to resolve)."""


HandoffListener = Callable[[str, str, dict], None]  # (event, conversation_id, details)


def _now() -> datetime:
    return datetime.now(UTC)


class Store:
    """The conversation database at a SQLAlchemy URL, opened and migrated on first use."""

    def __init__(self, url: str, redactor: Redactor | None = None):
        self.url = url
        self.redactor = redactor or Redactor(kinds=STORED_PERSONAL_DATA)
        self._engine: Engine | None = None
        self._lock = threading.Lock()
        self._queue_lock = threading.Lock()  # one open live handoff per conversation (`open_live_handoff`)
        self._listeners: list[HandoffListener] = []

    def subscribe(self, listener: HandoffListener) -> None:
        """Call `listener(event, conversation_id, details)` after a live handoff is opened ("handoff"); a
        listener that fails is logged, never raised into the customer's turn."""
        self._listeners.append(listener)

    def _announce(self, event: str, conversation_id: str, details: dict) -> None:
        for listener in list(self._listeners):
            try:
                listener(event, conversation_id, details)
            except Exception:  # noqa: BLE001 - a notifier's bug must not fail the customer's turn
                log.exception("handoff listener failed on %s", event)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine; the first call opens the database and applies pending migrations."""
        with self._lock:
            if self._engine is None:
                self._engine = self._connect()
        return self._engine

    def _connect(self) -> Engine:
        try:
            if self.url.startswith("sqlite:///") and not self.url.startswith("sqlite:///:memory:"):
                Path(self.url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
            url = make_url(self.url)
            if url.drivername == "postgresql":  # psycopg 3 is the driver installed; SQLAlchemy 2.0 picks psycopg2
                url = url.set(drivername="postgresql+psycopg")
            # Sessions in UTC: PostgreSQL returns timestamps in the server's zone, so per-day figures
            # (chatbot.reporting.analytics) fell on that zone's days; SQLite hands back the UTC written.
            libpq = (url.get_backend_name() == "postgresql" and url.get_driver_name() in ("psycopg", "psycopg2")
                     and "options" not in url.query)  # a URL's own ?options= wins
            engine = create_engine(url, hide_parameters=True,  # no customer's words in logs or errors
                                   connect_args={"options": "-c timezone=UTC"} if libpq else {},
                                   # a server restarted (upgrade, failover) left dead pooled connections: each
                                   # failed one customer's turn; a ping on checkout replaces them (one round trip)
                                   pool_pre_ping=url.get_backend_name() != "sqlite")
            with engine.begin() as connection:
                self._migrate(connection)
        except ArgumentError:
            raise BadInput(f"'{self.url}' is not a database URL; use e.g. sqlite:///chatbot.db") from None
        except (DatabaseError, ModuleNotFoundError, OSError) as exc:  # corrupt, unreachable, no driver, no folder
            raise ChatbotError(f"cannot open the database {_shown(self.url)}: {_first_line(exc)}; "
                               "check the path, its permissions and the file (or --db)") from None
        return engine

    def check_writable(self) -> None:
        """Open the database and prove it takes writes (a row inserted, then rolled back); a
        `ChatbotError` that says what to fix otherwise. Servers call it at start."""
        engine = self.engine
        try:
            with engine.connect() as c:
                with c.begin() as transaction:
                    c.execute(insert(schema_migrations).values(name=f"write-check-{uuid.uuid4().hex}", applied_at=_now()))
                    transaction.rollback()
        except DBAPIError as exc:
            raise ChatbotError(f"the database {_shown(self.url)} cannot be written: {_first_line(exc)}; "
                               "check its permissions and free disk space") from None

    @contextmanager
    def _begin(self, conflicts: bool = False) -> Iterator[Connection]:
        """A transaction; a database failure becomes `StoreUnavailable` (logged without parameters).
        `conflicts`: let an `IntegrityError` through, for a caller that handles a race on a unique key."""
        try:
            with self.engine.begin() as c:
                yield c
        except DBAPIError as exc:
            if conflicts and isinstance(exc, IntegrityError):
                raise
            log.error("database failure: %s", _first_line(exc))
            raise StoreUnavailable("our conversation records are unavailable right now; "
                                   "please try again in a few minutes") from None

    _read = _begin  # reads go through the same door: a failing database is a `StoreUnavailable` too

    def _redact(self, text: str | None) -> str | None:
        return self.redactor.redact(_text(text), names=())[0] if text else text

    def redact_value(self, value):
        """Every string in `value` (text, or dicts, lists and tuples of them) redacted as stored messages are:
        a message's `extra` (transcript, OCR text, the LLM's draft), a webhook's payload."""
        if isinstance(value, str):
            return self._redact(value)
        if isinstance(value, dict):
            return {k: self.redact_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact_value(v) for v in value]
        return value

    @staticmethod
    def _migrate(connection: Connection) -> None:
        if connection.dialect.name == "postgresql":  # two first opens at once (server and CLI, two workers):
            # the second waits for the first's commit, then finds the migrations applied. Without it both
            # ran m001 and one failed (duplicate key in pg_type); PostgreSQL runs the DDL in this transaction.
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
        _execute(connection, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                             "name VARCHAR(100) NOT NULL PRIMARY KEY, applied_at TIMESTAMP WITH TIME ZONE NOT NULL)")
        applied = set(connection.scalars(select(schema_migrations.c.name)))
        if (connection.dialect.name == "sqlite" and {step.__name__ for step in MIGRATIONS} - applied
                and not connection.connection.dbapi_connection.in_transaction):
            # the same on SQLite, whose driver runs DDL outside a transaction ("table conversations already
            # exists"): take the write lock, then read again what the other opener applied meanwhile
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            applied = set(connection.scalars(select(schema_migrations.c.name)))
        for step in MIGRATIONS:
            if step.__name__ not in applied:
                step(connection)
                connection.execute(insert(schema_migrations).values(name=step.__name__, applied_at=_now()))

    def applied_migrations(self) -> list[str]:
        """Names of the migrations applied to this database, in name order."""
        with self._read() as c:
            return list(c.scalars(select(schema_migrations.c.name).order_by(schema_migrations.c.name)))

    def tables(self) -> list[str]:
        """Names of the tables in the database, sorted."""
        return sorted(inspect(self.engine).get_table_names())

    # ---- writes --------------------------------------------------------------------------
    def new_conversation(self, channel: str = "cli") -> str:
        """Start a conversation on `channel` ("cli", "web", ...); returns its id (32 hex characters)."""
        conversation_id = uuid.uuid4().hex
        now = _now()
        with self._begin() as c:
            c.execute(insert(conversations).values(
                id=conversation_id, created_at=now, updated_at=now, channel=channel, handoff_needed=False,
                prompt_tokens=0, completion_tokens=0, compute_s=0.0, cost_usd=0.0, api_shadow_cost_usd=0.0,
            ))
        return conversation_id

    def require_conversation(self, conversation_id: str) -> None:
        """Raise NotFound unless the conversation exists."""
        with self._read() as c:
            found = c.scalar(select(conversations.c.id).where(conversations.c.id == conversation_id))
        if found is None:
            raise NotFound(f"no conversation '{conversation_id}'; leave out --conversation to start a new one")

    def add_message(self, conversation_id: str, role: str, content: str, outcome: str | None = None,
                    extra: dict | None = None, author: str | None = None) -> int:
        """Append a message (at most MAX_MESSAGE_CHARS); returns its id. `role`: "customer", "assistant",
        "agent" (a person's reply, `author` their user name) or "notice" (a person joined or left).
        Customer and agent words are redacted like any personal data; `author` defaults to the role."""
        if len(content) > MAX_MESSAGE_CHARS:
            raise BadInput(f"message is longer than {MAX_MESSAGE_CHARS} characters")
        if role in ("customer", "agent"):
            content = self._redact(content)
        with self._begin() as c:
            result = c.execute(insert(messages).values(
                conversation_id=conversation_id, role=role, content=_text(content), created_at=_now(),
                outcome=outcome, extra=json.dumps(self.redact_value(extra or {}), ensure_ascii=False),
                author=author or role,
            ))
            c.execute(update(conversations).where(conversations.c.id == conversation_id).values(updated_at=_now()))
            return int(result.inserted_primary_key[0])

    def add_sources(self, message_id: int, sources: list[StoredSource]) -> None:
        """Record the passages a message cited, ranked from 1 in the order given."""
        if not sources:
            return
        with self._begin() as c:
            c.execute(insert(message_sources), [
                {"message_id": message_id, "rank": rank, "doc_id": s.doc_id, "title": _text(s.title), "url": _text(s.url),
                 "score": s.score}
                for rank, s in enumerate(sources, start=1)
            ])

    def add_usage(self, conversation_id: str, message_id: int, used: Usage, cost: TurnCost) -> None:
        """Meter a turn: its seconds per stage and what it was charged (USD, per stage when `cost` has them)."""
        with self._begin() as c:
            c.execute(insert(usage).values(
                message_id=message_id, conversation_id=conversation_id,
                prompt_tokens=used.prompt_tokens, completion_tokens=used.completion_tokens,
                retrieval_s=used.retrieval_s, llm_s=used.llm_s, asr_s=used.asr_s, ocr_s=used.ocr_s,
                audio_s=used.audio_s, device=used.device, cost_usd=cost.cost_usd,
                api_shadow_cost_usd=cost.api_shadow_cost_usd, created_at=_now(),
                **{f"{stage}_cost_usd": cost.stage_cost_usd(stage) for stage in STAGES},
            ))
            c.execute(update(conversations).where(conversations.c.id == conversation_id).values(
                prompt_tokens=conversations.c.prompt_tokens + used.prompt_tokens,
                completion_tokens=conversations.c.completion_tokens + used.completion_tokens,
                compute_s=conversations.c.compute_s + used.compute_s,
                cost_usd=conversations.c.cost_usd + cost.cost_usd,
                api_shadow_cost_usd=conversations.c.api_shadow_cost_usd + cost.api_shadow_cost_usd,
            ))

    def add_handoff(self, conversation_id: str, message_id: int | None, reason: str) -> None:
        """Mark the conversation for a person; `reason` is a handing-over Outcome. The first reason stays."""
        if reason not in HANDOFF_OUTCOMES:
            raise ValueError(f"unknown handoff reason {reason!r}; known: {sorted(HANDOFF_OUTCOMES)}")
        with self._begin() as c:
            c.execute(insert(handoffs).values(conversation_id=conversation_id, message_id=message_id,
                                              reason=reason, created_at=_now()))
            first = c.scalar(select(conversations.c.handoff_reason).where(conversations.c.id == conversation_id))
            c.execute(update(conversations).where(conversations.c.id == conversation_id).values(
                handoff_needed=True, handoff_reason=first or reason))
        if self.open_live_handoff(conversation_id, reason, message_id):
            self._announce("handoff", conversation_id, {"reason": str(reason), "message_id": message_id})

    # ---- live handoff: a person takes over (rules in chatbot.handoff) ---------------------------
    def open_live_handoff(self, conversation_id: str, reason: str, message_id: int | None = None) -> bool:
        """Put the conversation in the people's queue unless it is there already (waiting or claimed);
        True when it was added."""
        # Two callers at once (a turn handing over while an operator claims) opened two; one must wait for the
        # other: PostgreSQL locks the conversation's row until commit, SQLite ignores FOR UPDATE and takes the lock.
        with self._queue_lock, self._begin() as c:
            c.execute(select(conversations.c.id).where(conversations.c.id == conversation_id).with_for_update())
            if c.scalar(select(live_handoffs.c.id).where(live_handoffs.c.conversation_id == conversation_id,
                                                         live_handoffs.c.resolved_at.is_(None))) is not None:
                return False
            c.execute(insert(live_handoffs).values(conversation_id=conversation_id, message_id=message_id,
                                                   reason=str(reason), requested_at=_now()))
        return True

    def latest_live_handoff(self, conversation_id: str) -> LiveHandoff | None:
        """The conversation's newest live handoff (open or resolved), or None when it never had one."""
        with self._read() as c:
            row = c.execute(select(live_handoffs).where(live_handoffs.c.conversation_id == conversation_id)
                            .order_by(live_handoffs.c.id.desc()).limit(1)).first()
        return _live(row) if row is not None else None

    def open_live_handoffs(self) -> list[LiveHandoff]:
        """Every open live handoff (waiting or claimed), oldest request first."""
        with self._read() as c:
            rows = c.execute(select(live_handoffs).where(live_handoffs.c.resolved_at.is_(None))
                             .order_by(live_handoffs.c.requested_at, live_handoffs.c.id)).all()
        return [_live(r) for r in rows]

    def claim_live_handoff(self, conversation_id: str, agent: str) -> LiveHandoff:
        """`agent` takes the conversation; it joins the queue first if it was not there (reason "operator").
        `Conflict` when another person holds it; claiming one's own again changes nothing."""
        self.require_conversation(conversation_id)
        self.open_live_handoff(conversation_id, "operator")
        with self._begin() as c:
            c.execute(update(live_handoffs).where(
                live_handoffs.c.conversation_id == conversation_id, live_handoffs.c.resolved_at.is_(None),
                live_handoffs.c.agent.is_(None)).values(agent=agent, claimed_at=_now()))
        live = self.latest_live_handoff(conversation_id)
        if live is None or live.agent != agent:
            raise Conflict(f"{live.agent if live else 'someone'} already handles conversation '{conversation_id}'")
        return live

    def resolve_live_handoff(self, conversation_id: str, agent: str, return_to_bot: bool, usd_per_hour: float,
                             override: bool = False) -> LiveHandoff:
        """Close the open handoff: handling time from claim to now, priced at `usd_per_hour`, is added to the
        conversation. `Conflict` unless `agent` holds it (`override`: an admin may resolve anyone's);
        `NotFound` when nothing is open."""
        live = self.latest_live_handoff(conversation_id)
        if live is None or live.resolved_at is not None:
            raise NotFound(f"conversation '{conversation_id}' is not waiting for a person")
        if live.agent is None:
            raise Conflict(f"claim conversation '{conversation_id}' before resolving it")
        if live.agent != agent and not override:
            raise Conflict(f"{live.agent} handles conversation '{conversation_id}'; only they or an admin can resolve it")
        now = _now()
        claimed = live.claimed_at if live.claimed_at.tzinfo else live.claimed_at.replace(tzinfo=UTC)  # SQLite drops it
        handling_s = max(0.0, (now - claimed).total_seconds())
        cost = handling_s / 3600.0 * usd_per_hour
        with self._begin() as c:
            c.execute(update(live_handoffs).where(live_handoffs.c.id == live.id).values(
                resolved_at=now, resolved_by=agent, return_to_bot=bool(return_to_bot), handling_s=handling_s,
                human_cost_usd=cost))
            c.execute(update(conversations).where(conversations.c.id == conversation_id).values(
                human_s=conversations.c.human_s + handling_s,
                human_cost_usd=conversations.c.human_cost_usd + cost, updated_at=now))
        return self.latest_live_handoff(conversation_id)

    def human_totals(self) -> dict:
        """Resolved live handoffs: how many, their handling seconds and cost (USD); conversations handed over."""
        with self._read() as c:
            row = c.execute(select(func.count(live_handoffs.c.id), func.coalesce(func.sum(live_handoffs.c.handling_s), 0.0),
                                   func.coalesce(func.sum(live_handoffs.c.human_cost_usd), 0.0),
                                   func.count(func.distinct(live_handoffs.c.conversation_id)))
                            .where(live_handoffs.c.resolved_at.is_not(None))).one()
            waiting = c.scalar(select(func.count(live_handoffs.c.id)).where(live_handoffs.c.resolved_at.is_(None)))
        return {"handled": int(row[0]), "handling_s": float(row[1]), "human_cost_usd": float(row[2]),
                "conversations": int(row[3]), "open": int(waiting or 0)}

    def save_faq_entry(self, doc_id: str, question: str, answer: str, author: str, status: str,
                       conversation_id: str | None = None) -> FaqEntry:
        """Save or edit a help-centre answer (its text redacted like a person's reply) with `status`, and
        record the step in its history, in one transaction. A live save is reviewed by its author."""
        question, answer = self._redact(question), self._redact(answer)
        now = _now()
        with self._begin() as c:
            known = c.execute(select(faq_entries.c.id).where(faq_entries.c.doc_id == doc_id)).first() is not None
            values = {"question": question, "answer": answer, "author": author, "created_at": now, "status": status,
                      "reviewed_by": author if status == "live" else None, "reviewed_at": now if status == "live" else None}
            if conversation_id is not None or not known:
                values["conversation_id"] = conversation_id
            if known:
                c.execute(update(faq_entries).where(faq_entries.c.doc_id == doc_id).values(**values))
            else:
                c.execute(insert(faq_entries).values(doc_id=doc_id, **values))
            c.execute(insert(faq_history).values(doc_id=doc_id, action="edited" if known else "saved", actor=author,
                                                 at=now, question=question, answer=answer, status=status))
            row = c.execute(select(faq_entries).where(faq_entries.c.doc_id == doc_id)).one()
        return _faq(row)

    def review_faq_entry(self, doc_id: str, action: str, reviewer: str, status: str) -> FaqEntry:
        """Approve or remove a help-centre answer (`action`), leaving it `status`; kept in its history."""
        now = _now()
        with self._begin() as c:
            row = c.execute(select(faq_entries).where(faq_entries.c.doc_id == doc_id)).first()
            if row is None:
                raise NotFound(f"no help-centre answer '{doc_id}'; list them with GET /api/knowledge/faq")
            c.execute(update(faq_entries).where(faq_entries.c.doc_id == doc_id)
                      .values(status=status, reviewed_by=reviewer, reviewed_at=now))
            c.execute(insert(faq_history).values(doc_id=doc_id, action=action, actor=reviewer, at=now,
                                                 question=row.question, answer=row.answer, status=status))
            row = c.execute(select(faq_entries).where(faq_entries.c.doc_id == doc_id)).one()
        return _faq(row)

    def faq_entry(self, doc_id: str) -> FaqEntry:
        """One help-centre answer; `NotFound` when there is none with that id."""
        with self._read() as c:
            row = c.execute(select(faq_entries).where(faq_entries.c.doc_id == doc_id)).first()
        if row is None:
            raise NotFound(f"no help-centre answer '{doc_id}'; list them with GET /api/knowledge/faq")
        return _faq(row)

    def faq_changes(self, doc_id: str | None = None) -> list[FaqChange]:
        """The history of one help-centre answer (or of all), oldest first."""
        query = select(faq_history).order_by(faq_history.c.id)
        if doc_id is not None:
            query = query.where(faq_history.c.doc_id == doc_id)
        with self._read() as c:
            return [FaqChange(r.doc_id, r.action, r.actor, _utc(r.at), r.question, r.answer, r.status)
                    for r in c.execute(query).all()]

    def faq_entry_list(self) -> list[FaqEntry]:
        """The saved help-centre answers, oldest first."""
        with self._read() as c:
            return [_faq(r) for r in c.execute(select(faq_entries).order_by(faq_entries.c.id)).all()]

    def answers_citing(self, doc_id: str, since: datetime) -> int:
        """Replies that cited `doc_id` (answered, by the assistant) at or after `since`."""
        with self._read() as c:
            return int(c.scalar(select(func.count(func.distinct(messages.c.id)))
                                .join(message_sources, message_sources.c.message_id == messages.c.id)
                                .where(message_sources.c.doc_id == doc_id, messages.c.created_at >= since,
                                       messages.c.outcome == Outcome.ANSWERED)) or 0)

    def gap_questions(self) -> list[GapQuestion]:
        """Each customer message whose reply refused or handed over (`Outcome.unanswered` or a handoff),
        oldest first; the "Talk to a person" button's fixed text is left out."""
        wanted = [o for o in Outcome if o.unanswered or o.hands_over]
        return [GapQuestion(q.conversation_id, q.id, q.content, str(reply.outcome), q.created_at)
                for q, reply in self._questions_replied(wanted) if "request_handoff" not in (q.extra or "")]

    def _questions_replied(self, outcomes: Sequence[Outcome]) -> list[tuple]:
        """(customer message row, reply row) for each reply whose outcome is one of `outcomes`, paired with the
        customer message before it in its conversation; in the order of the replies."""
        with self._read() as c:
            rows = c.execute(select(messages.c.conversation_id, messages.c.id, messages.c.role, messages.c.content,
                                    messages.c.outcome, messages.c.created_at, messages.c.extra)
                             .where((messages.c.role == "customer")
                                    | messages.c.outcome.in_([o.value for o in outcomes]))
                             .order_by(messages.c.id)).all()
        pairs, last = [], {}
        for r in rows:
            if r.role == "customer":
                last[r.conversation_id] = r
            elif r.conversation_id in last:
                pairs.append((last.pop(r.conversation_id), r))
        return pairs

    def add_feedback(self, conversation_id: str, message_id: int | None, rating: int, comment: str | None = None) -> None:
        """Record a thumbs-up (1) or thumbs-down (-1) on one assistant message of the conversation (or on
        the conversation), with an optional comment. One rating per message: a new one replaces the last."""
        if type(rating) is not int or rating not in (1, -1):
            raise BadInput("feedback rating must be 1 (thumbs up) or -1 (thumbs down)")
        if comment is not None and (not isinstance(comment, str) or len(comment) > MAX_COMMENT_CHARS):
            raise BadInput(f"a feedback comment must be text of at most {MAX_COMMENT_CHARS} characters")
        self.require_conversation(conversation_id)
        if message_id is not None:
            with self._read() as c:
                role = c.scalar(select(messages.c.role).where(messages.c.id == message_id,
                                                              messages.c.conversation_id == conversation_id))
            if role != "assistant":
                raise NotFound(f"no reply {message_id} in conversation '{conversation_id}'")
        row = {"rating": rating, "comment": self._redact(comment), "created_at": _now()}
        same = (feedback.c.conversation_id == conversation_id) & (
            feedback.c.message_id == message_id if message_id is not None else feedback.c.message_id.is_(None))
        for _ in range(2):  # a rating racing another on the same message: the unique index wins, then update
            try:
                with self._begin(conflicts=True) as c:
                    if c.execute(update(feedback).where(same).values(**row)).rowcount == 0:
                        c.execute(insert(feedback).values(conversation_id=conversation_id, message_id=message_id, **row))
                return
            except IntegrityError:
                continue
        raise StoreUnavailable("your rating could not be saved; please try again")

    def hand_over_interrupted(self) -> list[str]:
        """Hand to a person, with reason `interrupted`, each conversation whose last customer message got
        no reply (the server stopped mid-turn). Run at start, before serving; returns their ids."""
        with self._read() as c:
            rows = c.execute(
                select(messages.c.conversation_id, func.max(messages.c.id))
                .join(conversations, conversations.c.id == messages.c.conversation_id)
                .where(messages.c.role == "customer")
                .group_by(messages.c.conversation_id)).all()
            last_reply = dict(c.execute(select(messages.c.conversation_id, func.max(messages.c.id))
                                        .where(messages.c.role == "assistant")
                                        .group_by(messages.c.conversation_id)).all())
            flagged = set(c.scalars(select(handoffs.c.message_id).where(handoffs.c.reason == Outcome.INTERRUPTED)))
        found = [(cid, mid) for cid, mid in rows if mid > last_reply.get(cid, 0) and mid not in flagged]
        for conversation_id, message_id in found:
            self.add_handoff(conversation_id, message_id, Outcome.INTERRUPTED)
        return [cid for cid, _ in found]

    # ---- reads ---------------------------------------------------------------------------
    def history(self, conversation_id: str, turns: int, before_message_id: int | None = None) -> list[tuple[str, str]]:
        """The last `turns` messages as (role, content), oldest first."""
        if turns <= 0:
            return []
        query = select(messages.c.role, messages.c.content).where(messages.c.conversation_id == conversation_id)
        if before_message_id is not None:
            query = query.where(messages.c.id < before_message_id)
        with self._read() as c:
            rows = c.execute(query.order_by(messages.c.id.desc()).limit(turns)).all()
        return [(r.role, r.content) for r in reversed(rows)]

    def conversation(self, conversation_id: str) -> Conversation:
        """The whole conversation with its messages and their sources; NotFound if there is none."""
        with self._read() as c:
            row = c.execute(select(conversations).where(conversations.c.id == conversation_id)).first()
            if row is None:
                raise NotFound(f"no conversation '{conversation_id}'")
            message_rows = c.execute(select(messages).where(messages.c.conversation_id == conversation_id)
                                     .order_by(messages.c.id)).all()
            source_rows = c.execute(select(message_sources).join(messages, messages.c.id == message_sources.c.message_id)
                                    .where(messages.c.conversation_id == conversation_id)
                                    .order_by(message_sources.c.message_id, message_sources.c.rank)).all()
            interrupted = set(c.scalars(select(handoffs.c.message_id).where(
                handoffs.c.conversation_id == conversation_id, handoffs.c.reason == Outcome.INTERRUPTED)))
        by_message: dict[int, list[StoredSource]] = {}
        for s in source_rows:
            by_message.setdefault(s.message_id, []).append(StoredSource(s.doc_id, s.title, s.url, s.score))
        return Conversation(
            id=row.id, created_at=row.created_at, channel=row.channel, handoff_needed=bool(row.handoff_needed),
            handoff_reason=row.handoff_reason, cost_usd=row.cost_usd, api_shadow_cost_usd=row.api_shadow_cost_usd,
            messages=tuple(
                StoredMessage(m.id, m.role, m.content, m.created_at, m.outcome,
                              tuple(by_message.get(m.id, [])), json.loads(m.extra or "{}"), m.id in interrupted,
                              m.author)
                for m in message_rows
            ),
            human_s=float(row.human_s or 0.0), human_cost_usd=float(row.human_cost_usd or 0.0),
        )

    def add_eval_run(self, model: str, questions: str, split: str, totals: dict) -> None:
        """Record the totals of one `chatbot eval` run."""
        with self._begin() as c:
            c.execute(insert(eval_runs).values(created_at=_now(), model=model, questions=questions, split=split,
                                               totals=json.dumps(totals)))

    def latest_eval_runs(self, model: str) -> dict[str, dict]:
        """The newest eval totals of `model` for each split, e.g. {"dev": {...}, "heldout": {...}}."""
        with self._read() as c:
            rows = c.execute(select(eval_runs.c.split, eval_runs.c.questions, eval_runs.c.created_at,
                                    eval_runs.c.totals).where(eval_runs.c.model == model)
                             .order_by(eval_runs.c.id)).all()
        return {r.split: {"questions": r.questions, "at": r.created_at.isoformat(), **json.loads(r.totals)}
                for r in rows}

    def totals(self) -> dict:
        """Raw aggregates for the report; `chatbot.reporting.report` turns them into figures."""
        with self._read() as c:
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

    # ---- reads for operator analytics: rows, aggregated by chatbot.reporting.analytics ---------
    def activity_since(self, since: datetime) -> Activity:
        """Conversations started, handoffs, ratings and metered turns at or after `since`."""
        with self._read() as c:
            convs = c.execute(select(conversations).where(conversations.c.created_at >= since)).all()
            reasons = c.execute(select(handoffs.c.conversation_id, handoffs.c.reason, handoffs.c.created_at)
                                .where(handoffs.c.created_at >= since).order_by(handoffs.c.id)).all()
            ratings = c.execute(select(feedback.c.conversation_id, feedback.c.rating, feedback.c.created_at)
                                .where(feedback.c.created_at >= since).order_by(feedback.c.id)).all()
            turns = c.execute(select(usage.c.created_at, usage.c.retrieval_s + usage.c.llm_s + usage.c.asr_s + usage.c.ocr_s)
                              .where(usage.c.created_at >= since)).all()
        return Activity(
            conversations=tuple(_summary(r) for r in convs),
            handoffs=tuple(HandoffEvent(r.conversation_id, r.reason, r.created_at) for r in reasons),
            ratings=tuple(Rating(r.conversation_id, int(r.rating), r.created_at) for r in ratings),
            turns=tuple((moment, float(seconds)) for moment, seconds in turns),
        )

    def conversation_list(self, limit: int = 100) -> list[ConversationSummary]:
        """The `limit` most recently updated conversations, newest first, with message counts and ratings."""
        with self._read() as c:
            convs = c.execute(select(conversations).order_by(conversations.c.updated_at.desc()).limit(limit)).all()
            ids = [r.id for r in convs]
            counts = dict(c.execute(select(messages.c.conversation_id, func.count()).where(messages.c.conversation_id.in_(ids))
                                    .group_by(messages.c.conversation_id)).all())
            votes = c.execute(select(feedback.c.conversation_id, feedback.c.rating)
                              .where(feedback.c.conversation_id.in_(ids)).order_by(feedback.c.id)).all()
        by_conversation: dict[str, list[int]] = {}
        for v in votes:
            by_conversation.setdefault(v.conversation_id, []).append(int(v.rating))
        return [_summary(r, message_count=int(counts.get(r.id, 0)), ratings=tuple(by_conversation.get(r.id, ())))
                for r in convs]

    def unanswered_questions(self) -> list[UnansweredQuestion]:
        """Each assistant reply whose outcome is unanswered (`Outcome.unanswered`), with the customer message before it."""
        pairs = self._questions_replied([o for o in Outcome if o.unanswered])
        return sorted((UnansweredQuestion(q.conversation_id, reply.id, q.content, Outcome(reply.outcome))
                       for q, reply in pairs), key=lambda u: (u.conversation_id, u.message_id))

    def stage_usage(self, conversation_id: str) -> list[TurnUsage]:
        """The metered turns of one conversation, oldest first: seconds and USD charged per stage."""
        with self._read() as c:
            rows = c.execute(select(usage).where(usage.c.conversation_id == conversation_id)
                             .order_by(usage.c.message_id)).all()
        return [_turn_usage(r) for r in rows]


def _shown(url: str) -> str:
    """`url` fit for a message: a PostgreSQL URL's password masked (postgresql://bot:***@host/db)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _text(value: str | None) -> str | None:
    """`value` without NUL characters: PostgreSQL's TEXT cannot hold them (a comment with one failed the
    write there while SQLite kept it), and they carry nothing a reader sees."""
    return value.replace("\x00", "") if value else value


def _first_line(exc: BaseException) -> str:
    """An error in one line, without the statement or its parameters."""
    inner = getattr(exc, "orig", None) or exc
    lines = str(inner).strip().splitlines()
    return f"{inner.__class__.__name__}: {lines[0] if lines else ''}".rstrip(": ")


def _summary(row, message_count: int = 0, ratings: tuple[int, ...] = ()) -> ConversationSummary:
    return ConversationSummary(
        id=row.id, created_at=row.created_at, updated_at=row.updated_at, channel=row.channel,
        handoff_needed=bool(row.handoff_needed), handoff_reason=row.handoff_reason,
        prompt_tokens=int(row.prompt_tokens), completion_tokens=int(row.completion_tokens),
        cost_usd=float(row.cost_usd), api_shadow_cost_usd=float(row.api_shadow_cost_usd),
        message_count=message_count, ratings=ratings,
    )


def _utc(moment: datetime | None) -> datetime | None:
    """SQLite hands timestamps back without their zone; they were written in UTC."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _live(row) -> LiveHandoff:
    return LiveHandoff(
        id=row.id, conversation_id=row.conversation_id, message_id=row.message_id, reason=row.reason,
        requested_at=_utc(row.requested_at), agent=row.agent, claimed_at=_utc(row.claimed_at),
        resolved_at=_utc(row.resolved_at), resolved_by=row.resolved_by,
        return_to_bot=None if row.return_to_bot is None else bool(row.return_to_bot),
        handling_s=row.handling_s, human_cost_usd=row.human_cost_usd,
    )


def _faq(row) -> FaqEntry:
    return FaqEntry(id=row.id, doc_id=row.doc_id, question=row.question, answer=row.answer,
                    conversation_id=row.conversation_id, author=row.author, created_at=_utc(row.created_at),
                    status=row.status, reviewed_by=row.reviewed_by, reviewed_at=_utc(row.reviewed_at))


def _turn_usage(row) -> TurnUsage:
    seconds = {stage: float(getattr(row, f"{stage}_s")) for stage in STAGES}
    stored = {stage: getattr(row, f"{stage}_cost_usd") for stage in STAGES}
    recorded = all(value is not None for value in stored.values())
    if recorded:
        charged = {stage: float(value) for stage, value in stored.items()}
    else:  # metered before m002_stage_costs: split the turn's cost by each stage's share of the seconds
        total = sum(seconds.values())
        charged = {stage: row.cost_usd * s / total if total else 0.0 for stage, s in seconds.items()}
    return TurnUsage(
        message_id=row.message_id, created_at=row.created_at, device=row.device,
        prompt_tokens=int(row.prompt_tokens), completion_tokens=int(row.completion_tokens),
        audio_s=float(row.audio_s), cost_usd=float(row.cost_usd), api_shadow_cost_usd=float(row.api_shadow_cost_usd),
        seconds=seconds, stage_cost_usd=charged, stage_costs_recorded=recorded,
    )
