"""Live handoff: who holds a conversation, the people's queue and its packet, measured human cost.

A conversation's state (`HandoffState`, the one vocabulary of the code, the REST API and the README)
comes from its newest live handoff in the store:
- `bot`: never handed over, or a person resolved it and gave it back: the assistant answers;
- `waiting`: handed over and in the queue; the assistant still answers what it can meanwhile;
- `agent`: a person claimed it: the assistant is silent, the customer's messages go to that person;
- `closed`: a person resolved it and kept it (`return_to_bot` false): the assistant stays silent and
  the customer's next message puts the conversation back in the queue (reason `reopened`).

A person's time is measured from claim to resolve and priced at `usd_per_hour`; it is stored per
conversation beside the assistant's cost. Every handoff, person's reply, customer message to a
person and resolve is announced through `notify(event, payload)` (the webhook, when one is set),
its text redacted like the database's; announcing never blocks and never fails a turn. Knows nothing
of passwords (ui.guard checks those) nor of how the queue is shown.
"""

from __future__ import annotations

import logging
import re
import threading
from enum import StrEnum
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from chatbot.records.outcomes import Outcome
from chatbot.copilot import DRAFT_USES, Assist, Copilot, used
from chatbot.records.store import Conflict, LiveHandoff, MAX_MESSAGE_CHARS, Store
from core.errors import BadInput
from core.text import clean_text
from knowledge.types import Source

log = logging.getLogger(__name__)

WITH_AGENT = Outcome.WITH_AGENT  # a turn's outcome while a person holds the conversation: stored, no reply
WHY = {  # why the assistant handed over, in an operator's words
    "no_knowledge": "the help centre had nothing close enough to answer from",
    "unsupported_answer": "the draft's sentences were not supported by the sources",
    "customer_request": "the customer asked for a person",
    "interrupted": "the server stopped before replying",
    "reopened": "the customer wrote again after a person closed the conversation",
    "operator": "an operator joined the conversation",
    "suggestion_declined": "the customer said the suggested help-centre part did not answer their question",
    "action_failed": "the company's system could not do what the customer asked",
    "llm_unavailable": "the language model failed or its server was down while writing the reply",
}
Notify = Callable[[str, dict], None]


class HandoffState(StrEnum):
    """Who answers a conversation now: one word each, in the code, the REST API and the README."""

    BOT = "bot"  # never handed over, or given back: the assistant answers
    WAITING = "waiting"  # in the people's queue; the assistant still answers what it can
    AGENT = "agent"  # a person holds it: the assistant is silent
    CLOSED = "closed"  # a person resolved it and kept it: the customer's next message re-queues it


EVENTS = ("handoff", "claim", "customer_message", "agent_reply", "resolve")  # what `notify` can be told
_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]*)[^)]*\)")  # a Markdown image: ![alt](url "title")


@dataclass(frozen=True)
class Packet:
    """What a person needs to take over: the customer's questions, what the assistant found and tried."""

    questions: tuple[str, ...]  # what the customer wrote, oldest first
    sources: tuple[Source, ...]  # the help-centre documents the assistant read for the last question
    draft: str | None  # the assistant's rejected draft (the LLM's words before the check), if it wrote one
    why: str  # why it handed over
    checked: dict = field(default_factory=dict)  # the check's figures: claims, supported, dropped
    action: dict = field(default_factory=dict)  # an action that failed: its name, values (redacted), status, error


@dataclass(frozen=True)
class QueueEntry:
    """A conversation in the people's queue: waiting (`agent` None) or claimed."""

    conversation_id: str
    reason: str
    requested_at: datetime
    waiting_s: float  # since the request, seconds
    agent: str | None
    claimed_at: datetime | None
    packet: Packet
    assist: Assist | None = None  # the copilot's draft reply and summary, once written

    def to_json(self) -> dict:
        return {
            "conversation_id": self.conversation_id,
            "reason": self.reason,
            "requested_at": self.requested_at.isoformat(),
            "waiting_s": round(self.waiting_s, 1),
            "state": HandoffState.AGENT if self.agent else HandoffState.WAITING,
            "agent": self.agent,
            "claimed_at": self.claimed_at.isoformat() if self.claimed_at else None,
            "packet": asdict(self.packet),
            "draft": self.assist.draft if self.assist else None,  # never sent unless a person sends it
            "summary": self.assist.summary if self.assist else None,
        }


def clean_reply(text: object) -> str:
    """A person's reply as stored: text, not empty, at most MAX_MESSAGE_CHARS; `BadInput` otherwise. A
    Markdown image becomes a link, so the customer's browser never fetches a URL a person typed."""
    text = clean_text(text, "reply", MAX_MESSAGE_CHARS, hint="type a message for the customer")
    return _IMAGE.sub(lambda m: f"[{m.group(1) or 'image'}]({m.group(2)})", text)


class LiveDesk:
    """The people's side of a conversation, over the store.

    `usd_per_hour`: a person's fully loaded hourly cost; `notify(event, payload)`: announces events
    (the webhook); `search(question)`: the help-centre documents for a question, for the packet;
    `display_names`: user name -> the name customers see (a person without one is shown as
    `team_name`, never by their login); `events`: the events `notify` is called for (None: all of `EVENTS`). Every string
    of an announced payload goes through `redact` first (the store's redactor), so no raw personal
    data leaves.
    """

    def __init__(
        self,
        store: Store,
        usd_per_hour: float = 30.0,
        notify: Notify | None = None,
        search: Callable[[str], list[Source]] | None = None,
        display_names: dict[str, str] | None = None,
        team_name: str = "Our support team",
        events: Iterable[str] | None = None,
        redact: Callable[[object], object] | None = None,
    ):
        self.store = store
        self.team_name = team_name
        self.events = frozenset(EVENTS if events is None else events)
        self.redact = redact or store.redact_value
        self.usd_per_hour = usd_per_hour
        self.notify = notify
        self.search = search
        self.display_names = dict(display_names or {})
        self._packets: dict[tuple, Packet] = {}  # (conversation, handoff id, last question id) -> packet
        self.copilot: Copilot | None = None  # drafts and summaries for people (chatbot.copilot), wired by the builder
        self._lock = threading.Lock()

    # ---- what the engine asks ------------------------------------------------------------------
    def state(self, conversation_id: str) -> HandoffState:
        """Who answers the conversation now (`HandoffState`)."""
        return _state(self.store.live.latest(conversation_id))

    def holder(self, conversation_id: str) -> str | None:
        """The person who holds the conversation now, or None."""
        live = self.store.live.latest(conversation_id)
        return live.agent if _state(live) == HandoffState.AGENT else None

    def hand_over(self, conversation_id: str, message_id: int | None, reason: str) -> bool:
        """The engine handed the conversation over (the handoff is recorded): it joins the people's queue
        unless it is there already, and the handoff is announced; True when it joined."""
        if not self.store.live.open(conversation_id, reason, message_id):
            return False
        self._announce_handoff(conversation_id, reason)
        self.assist(conversation_id)  # the copilot starts writing, in the background
        return True

    def assist(self, conversation_id: str, wait: bool = False) -> Assist | None:
        """The copilot's draft reply and summary for the conversation as it stands: None without a copilot, or
        while it is still being written (unless `wait`: then written now)."""
        if self.copilot is None:
            return None
        live = self.store.live.latest(conversation_id)
        packet = self.packet(conversation_id, live)
        key = (conversation_id, live.id if live else None, len(packet.questions))
        if wait:
            return self.copilot.assist(key, packet.questions, packet.action or None)
        self.copilot.prepare(key, packet.questions, packet.action or None)
        return self.copilot.ready(key)

    def customer_wrote(self, conversation_id: str, message_id: int, text: str) -> bool:
        """The customer's message is stored; True when people have it and the assistant must stay silent
        (a closed conversation goes back in the queue)."""
        live = self.store.live.latest(conversation_id)
        state = _state(live)
        if state not in (HandoffState.AGENT, HandoffState.CLOSED):
            return False
        if state == HandoffState.CLOSED:
            self.hand_over(conversation_id, message_id, "reopened")
        else:
            self._announce(
                "customer_message", conversation_id, {"agent": live.agent, "message_id": message_id, "text": text}
            )
        return True

    # ---- what people do ------------------------------------------------------------------------
    def queue(self) -> list[QueueEntry]:
        """Conversations waiting for a person or held by one, oldest request first, each with its packet."""
        now = datetime.now(UTC)
        return [
            QueueEntry(
                h.conversation_id,
                h.reason,
                h.requested_at,
                (now - h.requested_at).total_seconds(),
                h.agent,
                h.claimed_at,
                self.packet(h.conversation_id, h),
                self.assist(h.conversation_id),
            )
            for h in self.store.live.open_handoffs()
        ]

    def claim(self, conversation_id: str, agent: str) -> LiveHandoff:
        """`agent` takes the conversation (`Conflict` if another person holds it); the customer sees who joined."""
        before = self.store.live.latest(conversation_id)
        live = self.store.live.claim(conversation_id, agent)
        if before is None or before.id != live.id or before.agent != agent:
            name = self.display_name(agent)
            self.store.conversations.add_message(
                conversation_id,
                "notice",
                f"{name} joined the conversation.",
                author=agent,
                extra={"display_name": name, "event": "joined"},
            )
            self._announce("claim", conversation_id, {"agent": agent})
        return live

    def reply(self, conversation_id: str, agent: str, text: str, draft_used: str | None = None) -> int:
        """A person's message to the customer (redacted like theirs); `Conflict` unless `agent` holds it. With a
        copilot draft offered, what they did with it (`draft_used`, else judged from the text) is stored with
        the draft and the edit distance."""
        text = clean_reply(text)
        if draft_used is not None and draft_used not in DRAFT_USES:
            raise BadInput(f"draft_used must be one of {', '.join(DRAFT_USES)}")
        holder = self.holder(conversation_id)
        if holder != agent:
            self.store.conversations.require_conversation(conversation_id)
            raise Conflict(
                f"claim conversation '{conversation_id}' before replying" + (f"; {holder} handles it" if holder else "")
            )
        name = self.display_name(agent)
        assist = self.assist(conversation_id)
        judged, distance = used(assist.draft if assist else None, text)
        copilot = (
            {"draft": assist.draft, "draft_used": draft_used or judged, "edit_distance": distance} if assist else {}
        )
        message_id = self.store.conversations.add_message(
            conversation_id, "agent", text, author=agent, extra={"display_name": name, **copilot}
        )
        stored = self.store.conversations.conversation(conversation_id).messages[-1].content
        self._announce("agent_reply", conversation_id, {"agent": agent, "message_id": message_id, "text": stored})
        return message_id

    def resolve(self, conversation_id: str, agent: str, return_to_bot: bool, override: bool = False) -> LiveHandoff:
        """Close the handoff: measured time priced and stored; the bot answers again when `return_to_bot`.
        `override`: an admin may resolve a conversation another person holds."""
        if not isinstance(return_to_bot, bool):
            raise BadInput("return_to_bot must be true or false")
        live = self.store.live.resolve(conversation_id, agent, return_to_bot, self.usd_per_hour, override)
        name = self.display_name(agent)  # who resolved it: an admin's override names the admin
        text = (
            f"{name} has left the conversation; our assistant will answer again."
            if return_to_bot
            else f"{name} has closed the conversation. Write again if you need anything else."
        )
        self.store.conversations.add_message(
            conversation_id,
            "notice",
            text,
            author=agent,
            extra={"display_name": name, "event": "resolved", "return_to_bot": return_to_bot},
        )
        self._announce(
            "resolve",
            conversation_id,
            {
                "agent": agent,
                "return_to_bot": return_to_bot,
                "handling_s": round(live.handling_s or 0.0, 3),
                "human_cost_usd": live.human_cost_usd,
            },
        )
        return live

    def display_name(self, agent: str) -> str:
        """The name customers see for `agent`: their configured display name, else the team's, never a login."""
        return self.display_names.get(agent) or self.team_name

    def packet(self, conversation_id: str, live: LiveHandoff | None = None) -> Packet:
        """The handoff packet: questions, the sources the assistant found, its rejected draft and why."""
        live = live or self.store.live.latest(conversation_id)
        conversation = self.store.conversations.conversation(conversation_id)
        questions = [m for m in conversation.messages if m.role == "customer"]
        key = (conversation_id, live.id if live else None, questions[-1].id if questions else None)
        with self._lock:
            if key in self._packets:
                return self._packets[key]
        reply = next((m for m in conversation.messages if live and m.id == live.message_id), None)
        grounding = (reply.extra.get("grounding") or {}) if reply else {}
        reason = live.reason if live else "operator"
        why = WHY.get(reason, reason)
        action = grounding.get("action") or {}
        if reason == "action_failed" and action:
            why = (
                f"{why}: {action.get('name')} ended {action.get('status') or 'unverified'} ({action.get('error', '-')})"
            )
        if reason == "unsupported_answer" and grounding.get("claims"):
            why = (
                f"{grounding.get('dropped', 0)} of {grounding['claims']} sentences of the draft were not "
                "supported by the sources"
            )
        sources = [Source(s.doc_id, s.title, s.url) for s in (reply.sources if reply else ())]
        typed = [m.content for m in questions if not m.extra.get("action")]
        if self.search is not None and typed:
            try:
                sources += self.search(typed[-1])
            except Exception:  # noqa: BLE001 - a packet without found sources beats no packet
                log.exception("packet search failed")
        packet = Packet(
            tuple(m.content for m in questions),
            tuple(dict.fromkeys(sources)),
            grounding.get("raw_answer") or None,
            why,
            {k: grounding[k] for k in ("claims", "supported", "dropped") if k in grounding},
            action,
        )
        with self._lock:
            if len(self._packets) > 1000:
                self._packets.clear()
            self._packets[key] = packet
        return packet

    # ---- announcing ----------------------------------------------------------------------------
    def _announce_handoff(self, conversation_id: str, reason: str) -> None:
        if self.notify is not None and "handoff" in self.events:  # the packet costs a search: only when sent
            self._announce(
                "handoff", conversation_id, {"reason": str(reason), "packet": asdict(self.packet(conversation_id))}
            )

    def _announce(self, event: str, conversation_id: str, payload: dict) -> None:
        if self.notify is None or event not in self.events:
            return
        try:
            self.notify(event, {"conversation_id": conversation_id, **self.redact(payload)})
        except Exception:  # noqa: BLE001 - an integration's failure never fails the customer's turn
            log.exception("announcing %s failed", event)


def _state(live: LiveHandoff | None) -> HandoffState:
    """The state a conversation's newest live handoff leaves it in (rows of every version read alike)."""
    if live is None:
        return HandoffState.BOT
    if live.resolved_at is None:
        return HandoffState.AGENT if live.agent else HandoffState.WAITING
    return HandoffState.BOT if live.return_to_bot else HandoffState.CLOSED
