"""Actions as recorded: every run of an action (its request and the company system's answer, redacted like
messages: emails, addresses and the company's identifiers such as order numbers become placeholders),
the switch an admin turns an action off with, and each action under way, sealed (`chatbot.actions.sealed`). The rules (when to run, verify, confirm) are
`chatbot.actions.desk`'s; headers are never given here, so a secret in one is never stored.
"""

from __future__ import annotations

import json
from datetime import datetime
from collections import Counter, defaultdict
from dataclasses import dataclass

from sqlalchemy import delete, insert, select

from chatbot.records.database import Database, now
from chatbot.records.schema import action_runs, action_sessions, action_switches

RESOLVING_STATUSES = ("done",)  # a run that did what the customer asked
# runs the company's system answered or failed (not the lookups that verify a customer, not a declined write)
ATTEMPT_STATUSES = ("done", "not_found", "refused", "failed", "timeout", "unreachable")


@dataclass(frozen=True)
class ActionFigures:
    """One action's runs: how many, how they ended, and how long the company's system took."""

    action: str
    runs: int
    by_status: dict[str, int]
    success_rate: float | None  # done, of the runs the system answered or failed (ATTEMPT_STATUSES)
    resolved_share: float | None  # done, of those and the writes the customer declined at the confirmation
    latency_p50_s: float | None
    latency_max_s: float | None


class ActionRuns:
    """The action runs and switches over `db`."""

    def __init__(self, db: Database):
        self.db = db

    def record(
        self,
        conversation_id: str,
        action: str,
        status: str,
        http_status: int | None,
        seconds: float,
        request: dict,
        response: dict,
    ) -> None:
        """One run, its request (method, URL, body) and the system's answer, redacted before they are written."""
        with self.db.begin() as c:
            c.execute(
                insert(action_runs).values(
                    conversation_id=conversation_id,
                    action=action,
                    status=status,
                    http_status=http_status,
                    seconds=float(seconds),
                    request=json.dumps(self.db.redact_value(request), default=str),
                    response=json.dumps(self.db.redact_value(response), default=str),
                    at=now(),
                )
            )

    def runs(self, conversation_id: str | None = None) -> list[dict]:
        """The runs, oldest first (of one conversation, when given), as stored."""
        query = select(action_runs).order_by(action_runs.c.id)
        if conversation_id is not None:
            query = query.where(action_runs.c.conversation_id == conversation_id)
        with self.db.read() as c:
            rows = c.execute(query).all()
        return [
            {
                "action": r.action,
                "status": r.status,
                "http_status": r.http_status,
                "seconds": r.seconds,
                "request": json.loads(r.request),
                "response": json.loads(r.response),
                "at": r.at,
            }
            for r in rows
        ]

    def figures(self) -> list[ActionFigures]:
        """Each action's runs, success rate, share resolved and latency."""
        with self.db.read() as c:
            rows = c.execute(select(action_runs.c.action, action_runs.c.status, action_runs.c.seconds)).all()
        grouped: dict[str, list] = defaultdict(list)
        for row in rows:
            grouped[row.action].append(row)
        out = []
        for action, runs in sorted(grouped.items()):
            statuses = Counter(run.status for run in runs)  # a missing status reads 0 and is not added
            attempted = sum(statuses[status] for status in ATTEMPT_STATUSES)
            timed = sorted(run.seconds for run in runs if run.status in ATTEMPT_STATUSES)
            out.append(
                ActionFigures(
                    action=action,
                    runs=len(runs),
                    by_status=dict(statuses),
                    success_rate=statuses["done"] / attempted if attempted else None,
                    resolved_share=statuses["done"] / (attempted + statuses["declined"])
                    if attempted + statuses["declined"]
                    else None,
                    latency_p50_s=timed[len(timed) // 2] if timed else None,
                    latency_max_s=timed[-1] if timed else None,
                )
            )
        return out

    def switches(self) -> dict[str, bool]:
        """Action -> enabled, for the actions an admin switched."""
        with self.db.read() as c:
            return {r.action: bool(r.enabled) for r in c.execute(select(action_switches)).all()}

    def switch(self, action: str, enabled: bool, by: str) -> None:
        """An admin turns `action` on or off for every conversation from now on."""
        with self.db.begin() as c:
            c.execute(delete(action_switches).where(action_switches.c.action == action))
            c.execute(insert(action_switches).values(action=action, enabled=enabled, changed_by=by, changed_at=now()))

    def load_session(self, conversation_id: str) -> str | None:
        """The sealed action under way in the conversation, or None."""
        with self.db.read() as c:
            return c.scalar(
                select(action_sessions.c.sealed).where(action_sessions.c.conversation_id == conversation_id)
            )

    def save_session(self, conversation_id: str, sealed: str | None, older_than: datetime | None = None) -> None:
        """Keep (or, with None, forget) the conversation's sealed action; those untouched since `older_than` go."""
        with self.db.begin() as c:
            c.execute(delete(action_sessions).where(action_sessions.c.conversation_id == conversation_id))
            if older_than is not None:
                c.execute(delete(action_sessions).where(action_sessions.c.updated_at < older_than))
            if sealed is not None:
                c.execute(
                    insert(action_sessions).values(conversation_id=conversation_id, sealed=sealed, updated_at=now())
                )
