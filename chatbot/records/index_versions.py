"""The published versions of each shared index folder: a process that changed the index (ingest, an upload, a
saved help-centre answer) records the version it wrote; every replica on the same folder and database
loads it when it sees a newer one (`chatbot.index_watch`). Knows nothing about what an index holds.
"""

from __future__ import annotations

import socket

from sqlalchemy import insert, select

from chatbot.records.database import Database, now
from chatbot.records.schema import index_versions


class IndexVersions:
    """Published index versions over `db`."""

    def __init__(self, db: Database):
        self.db = db

    def publish(self, index_key: str, version: str) -> None:
        """Record `version` as the current one of the index folder `index_key` (unless it already is)."""
        if self.current(index_key) == version:
            return
        with self.db.begin() as c:
            c.execute(
                insert(index_versions).values(
                    index_key=index_key, version=version, published_at=now(), host=socket.gethostname()[:200]
                )
            )

    def current(self, index_key: str) -> str | None:
        """The latest version published for `index_key`, or None when none was."""
        with self.db.read() as c:
            return c.scalar(
                select(index_versions.c.version)
                .where(index_versions.c.index_key == index_key)
                .order_by(index_versions.c.id.desc())
                .limit(1)
            )
