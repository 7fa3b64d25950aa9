"""The conversation records in one place: a database and its repositories, by aggregate.

`Store(url)` opens nothing until first used. Its parts, each in its own module:
- `db` (`chatbot.records.database.Database`): connections, migrations, transactions, redaction;
- `conversations` (`chatbot.records.conversations`): messages, cited sources, metering, handoffs, ratings;
- `live` (`chatbot.records.live`): the people's queue, claims and resolves with their measured cost;
- `faq` (`chatbot.records.faq_records`): help-centre answers people saved, and their history;
- `stats` (`chatbot.records.stats`): read-only figures for reports, analytics, gaps and eval scores;
- `actions` (`chatbot.records.action_runs`): runs of actions in the company's systems, and their switches;
- `ownership` (`chatbot.records.ownership_records`): the hours servers were up, and runs of model work;
- `index_versions` (`chatbot.records.index_versions`): the published versions of shared index folders.

Customer and person's words, and every string of a message's `extra`, are redacted by `core.redact`
before they are written (emails, phone numbers, card numbers, IBANs, street addresses); assistant
replies are not, since they quote the help centre, whose own contact details must survive, except
the replies of actions, which repeat the customer's order and account. `identifiers` (name -> pattern:
an action's order number) are redacted everywhere as `{{name}}`. The
store never calls back into the domain: the engine tells the desk (`chatbot.handoff`) about a
handoff; the store only records it. SQL parameters never reach logs or errors.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.engine import Engine

from chatbot.records.conversations import Conversations
from chatbot.records.database import STORED_PERSONAL_DATA, Database
from chatbot.records.faq_records import FaqRecords
from chatbot.records.live import LiveHandoffs
from chatbot.records.schema import MAX_COMMENT_CHARS, MAX_MESSAGE_CHARS
from chatbot.records.stats import Stats
from chatbot.records.types import (
    Activity,
    Conflict,
    Conversation,
    ConversationSummary,
    FaqChange,
    FaqEntry,
    GapQuestion,
    HandoffEvent,
    LiveHandoff,
    Rating,
    StoredMessage,
    StoredSource,
    StoreUnavailable,
    TurnUsage,
    UnansweredQuestion,
)
from core.redact import Redactor
from chatbot.records.action_runs import ActionRuns
from chatbot.records.ownership_records import OwnershipRecords
from chatbot.records.index_versions import IndexVersions

__all__ = [
    "MAX_COMMENT_CHARS",
    "MAX_MESSAGE_CHARS",
    "STORED_PERSONAL_DATA",
    "Activity",
    "Conflict",
    "Conversation",
    "ConversationSummary",
    "FaqChange",
    "FaqEntry",
    "GapQuestion",
    "HandoffEvent",
    "LiveHandoff",
    "Rating",
    "Store",
    "StoreUnavailable",
    "StoredMessage",
    "StoredSource",
    "TurnUsage",
    "UnansweredQuestion",
]


class Store:
    """The conversation database at a SQLAlchemy URL (SQLite by default; PostgreSQL too), by aggregate."""

    def __init__(self, url: str, redactor: Redactor | None = None, identifiers: Mapping[str, str] | None = None):
        self.db = Database(url, redactor, identifiers)
        self.actions = ActionRuns(self.db)
        self.ownership = OwnershipRecords(self.db)
        self.index_versions = IndexVersions(self.db)
        self.conversations = Conversations(self.db)
        self.live = LiveHandoffs(self.db)
        self.faq = FaqRecords(self.db)
        self.stats = Stats(self.db)

    @property
    def url(self) -> str:
        return self.db.url

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine; the first call opens the database and applies pending migrations."""
        return self.db.engine

    def check_writable(self) -> None:
        """Prove the database takes writes; a `ChatbotError` that says what to fix otherwise."""
        self.db.check_writable()

    def redact_value(self, value):
        """Every string in `value` redacted as stored messages are (`Database.redact_value`)."""
        return self.db.redact_value(value)
