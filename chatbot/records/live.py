"""Live handoffs as recorded: the people's queue (waiting, claimed), who holds a conversation, and each
handoff's measured handling time and cost (priced by `chatbot.records.costs.human_cost_usd`). Knows
nothing of the rules around them (`chatbot.handoff.LiveDesk`) nor of announcing them.
"""

from __future__ import annotations

from datetime import datetime

import threading
from dataclasses import replace

from sqlalchemy import func, insert, select, update

from chatbot.records.costs import human_cost_usd
from chatbot.records.database import Database, now, utc
from chatbot.records.schema import conversations, live_handoffs
from chatbot.records.types import Conflict, LiveHandoff
from core.errors import NotFound


class LiveHandoffs:
    """The live handoffs over `db`; at most one open (waiting or claimed) per conversation."""

    def __init__(self, db: Database):
        self.db = db
        self._queue_lock = threading.Lock()  # one open live handoff per conversation (`open`)

    def _require(self, conversation_id: str) -> None:
        with self.db.read() as c:
            found = c.scalar(select(conversations.c.id).where(conversations.c.id == conversation_id))
        if found is None:
            raise NotFound(f"no conversation '{conversation_id}'")

    def open(self, conversation_id: str, reason: str, message_id: int | None = None) -> bool:
        """Put the conversation in the people's queue unless it is there already (waiting or claimed);
        True when it was added."""
        # Two callers at once (a turn handing over while an operator claims) opened two; one must wait for the
        # other: PostgreSQL locks the conversation's row until commit, SQLite ignores FOR UPDATE and takes the lock.
        with self._queue_lock, self.db.begin() as c:
            c.execute(select(conversations.c.id).where(conversations.c.id == conversation_id).with_for_update())
            if (
                c.scalar(
                    select(live_handoffs.c.id).where(
                        live_handoffs.c.conversation_id == conversation_id, live_handoffs.c.resolved_at.is_(None)
                    )
                )
                is not None
            ):
                return False
            c.execute(
                insert(live_handoffs).values(
                    conversation_id=conversation_id, message_id=message_id, reason=str(reason), requested_at=now()
                )
            )
        return True

    def latest(self, conversation_id: str) -> LiveHandoff | None:
        """The conversation's newest live handoff (open or resolved), or None when it never had one."""
        with self.db.read() as c:
            row = c.execute(
                select(live_handoffs)
                .where(live_handoffs.c.conversation_id == conversation_id)
                .order_by(live_handoffs.c.id.desc())
                .limit(1)
            ).first()
        return _live(row) if row is not None else None

    def open_handoffs(self) -> list[LiveHandoff]:
        """Every open live handoff (waiting or claimed), oldest request first."""
        with self.db.read() as c:
            rows = c.execute(
                select(live_handoffs)
                .where(live_handoffs.c.resolved_at.is_(None))
                .order_by(live_handoffs.c.requested_at, live_handoffs.c.id)
            ).all()
        return [_live(r) for r in rows]

    def claim(self, conversation_id: str, agent: str) -> LiveHandoff:
        """`agent` takes the conversation; it joins the queue first if it was not there (reason "operator").
        `Conflict` when another person holds it; claiming one's own again changes nothing."""
        self._require(conversation_id)
        self.open(conversation_id, "operator")
        with self.db.begin() as c:
            c.execute(
                update(live_handoffs)
                .where(
                    live_handoffs.c.conversation_id == conversation_id,
                    live_handoffs.c.resolved_at.is_(None),
                    live_handoffs.c.agent.is_(None),
                )
                .values(agent=agent, claimed_at=now())
            )
        live = self.latest(conversation_id)
        if live is None or live.agent != agent:
            raise Conflict(f"{live.agent if live else 'someone'} already handles conversation '{conversation_id}'")
        return live

    def resolve(
        self, conversation_id: str, agent: str, return_to_bot: bool, usd_per_hour: float, override: bool = False
    ) -> LiveHandoff:
        """Close the open handoff: handling time from claim to now, priced at `usd_per_hour`, is added to the
        conversation. `Conflict` unless `agent` holds it (`override`: an admin may resolve anyone's);
        `NotFound` when nothing is open."""
        live = self.latest(conversation_id)
        if live is None or live.resolved_at is not None:
            raise NotFound(f"conversation '{conversation_id}' is not waiting for a person")
        if live.agent is None:
            raise Conflict(f"claim conversation '{conversation_id}' before resolving it")
        if live.agent != agent and not override:
            raise Conflict(
                f"{live.agent} handles conversation '{conversation_id}'; only they or an admin can resolve it"
            )
        resolved = now()
        claimed = live.claimed_at or resolved  # set with the agent, whom this handoff has
        handling_s = max(0.0, (resolved - claimed).total_seconds())
        cost = human_cost_usd(handling_s, usd_per_hour)
        with self.db.begin() as c:
            c.execute(
                update(live_handoffs)
                .where(live_handoffs.c.id == live.id)
                .values(
                    resolved_at=resolved,
                    resolved_by=agent,
                    return_to_bot=bool(return_to_bot),
                    handling_s=handling_s,
                    human_cost_usd=cost,
                )
            )
            c.execute(
                update(conversations)
                .where(conversations.c.id == conversation_id)
                .values(
                    human_s=conversations.c.human_s + handling_s,
                    human_cost_usd=conversations.c.human_cost_usd + cost,
                    updated_at=resolved,
                )
            )
        return replace(
            live,
            resolved_at=resolved,
            resolved_by=agent,
            return_to_bot=bool(return_to_bot),
            handling_s=handling_s,
            human_cost_usd=cost,
        )

    def resolved(self) -> list[tuple[str, datetime, float | None, float]]:
        """(conversation, when, measured handling seconds or None, human cost USD) of each live handoff people
        resolved, oldest first."""
        with self.db.read() as c:
            rows = c.execute(
                select(
                    live_handoffs.c.conversation_id,
                    live_handoffs.c.resolved_at,
                    live_handoffs.c.handling_s,
                    live_handoffs.c.human_cost_usd,
                )
                .where(live_handoffs.c.resolved_at.is_not(None))
                .order_by(live_handoffs.c.resolved_at)
            ).all()
        return [(r.conversation_id, utc(r.resolved_at), r.handling_s, float(r.human_cost_usd or 0.0)) for r in rows]

    def totals(self) -> dict:
        """Resolved live handoffs: how many, their handling seconds and cost (USD); conversations handed over."""
        with self.db.read() as c:
            row = c.execute(
                select(
                    func.count(live_handoffs.c.id),
                    func.coalesce(func.sum(live_handoffs.c.handling_s), 0.0),
                    func.coalesce(func.sum(live_handoffs.c.human_cost_usd), 0.0),
                    func.count(func.distinct(live_handoffs.c.conversation_id)),
                ).where(live_handoffs.c.resolved_at.is_not(None))
            ).one()
            waiting = c.scalar(select(func.count(live_handoffs.c.id)).where(live_handoffs.c.resolved_at.is_(None)))
        return {
            "handled": int(row[0]),
            "handling_s": float(row[1]),
            "human_cost_usd": float(row[2]),
            "conversations": int(row[3]),
            "open": int(waiting or 0),
        }


def _live(row) -> LiveHandoff:
    return LiveHandoff(
        id=row.id,
        conversation_id=row.conversation_id,
        message_id=row.message_id,
        reason=row.reason,
        requested_at=utc(row.requested_at),
        agent=row.agent,
        claimed_at=utc(row.claimed_at),
        resolved_at=utc(row.resolved_at),
        resolved_by=row.resolved_by,
        return_to_bot=None if row.return_to_bot is None else bool(row.return_to_bot),
        handling_s=row.handling_s,
        human_cost_usd=row.human_cost_usd,
    )
