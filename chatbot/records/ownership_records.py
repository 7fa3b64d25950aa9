"""What owning the assistant cost beyond its turns, as recorded: the hours each server process was up (its
start, a heartbeat, its stop; one that died ends at its last heartbeat) and every run of model work
with its wall and CPU seconds. Pricing them is `chatbot.reporting.ownership`'s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update

from chatbot.records.database import Database, now, utc
from chatbot.records.schema import server_runs, work_runs


@dataclass(frozen=True)
class ServerRun:
    device: str
    started_at: datetime
    ended_at: datetime  # stopped, or last seen
    running: bool


@dataclass(frozen=True)
class WorkRun:
    kind: str
    device: str
    started_at: datetime
    wall_s: float
    cpu_s: float
    detail: dict


class OwnershipRecords:
    """Server uptime and model work over `db`."""

    def __init__(self, db: Database):
        self.db = db

    def server_started(self, device: str, host: str) -> int:
        at = now()
        with self.db.begin() as c:
            run_id = c.execute(
                insert(server_runs)
                .values(device=device, host=host[:200], started_at=at, seen_at=at)
                .returning(server_runs.c.id)
            ).scalar_one()
        return int(run_id)

    def server_seen(self, run_id: int, stopped: bool = False) -> None:
        """A heartbeat of the server run (`stopped`: its last)."""
        at = now()
        values = {"seen_at": at, **({"stopped_at": at} if stopped else {})}
        with self.db.begin() as c:
            c.execute(update(server_runs).where(server_runs.c.id == run_id).values(**values))

    def server_runs(self) -> list[ServerRun]:
        with self.db.read() as c:
            rows = c.execute(select(server_runs).order_by(server_runs.c.id)).all()
        return [
            ServerRun(r.device, utc(r.started_at), utc(r.stopped_at or r.seen_at), r.stopped_at is None) for r in rows
        ]

    def record_work(
        self, kind: str, device: str, started_at: datetime, wall_s: float, cpu_s: float, detail: dict
    ) -> None:
        with self.db.begin() as c:
            c.execute(
                insert(work_runs).values(
                    kind=kind,
                    device=device,
                    started_at=started_at,
                    wall_s=float(wall_s),
                    cpu_s=float(cpu_s),
                    detail=json.dumps(detail, default=str),
                )
            )

    def work_runs(self) -> list[WorkRun]:
        with self.db.read() as c:
            rows = c.execute(select(work_runs).order_by(work_runs.c.id)).all()
        return [WorkRun(r.kind, r.device, utc(r.started_at), r.wall_s, r.cpu_s, json.loads(r.detail)) for r in rows]
