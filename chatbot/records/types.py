"""What the conversation records hand out: frozen rows and the two errors a caller may need to catch.

Knows nothing about SQL or where the rows come from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from chatbot.records.outcomes import Outcome
from core.errors import ChatbotError


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


@dataclass(frozen=True)
class ConversationTrail:
    """What resolution is judged on: the conversation's messages (role, outcome, when, rating) in order."""

    conversation_id: str
    handed_over: bool
    messages: tuple[tuple[str, str | None, datetime, int | None], ...]  # role, outcome, created_at, rating
