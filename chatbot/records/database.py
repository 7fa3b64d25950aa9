"""The conversation database as infrastructure only: a SQLAlchemy engine opened and migrated on first use,
transactions that turn a database failure into `StoreUnavailable`, and the redactor every write of
people's words goes through. As datasette's `Database`: no domain query lives here; the
repositories (`chatbot.records.conversations`, `live`, `faq_records`, `stats`) hold those.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import overload
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, insert, inspect, make_url, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, DatabaseError, DBAPIError, IntegrityError

from chatbot.records.migrations import migrate
from chatbot.records.schema import schema_migrations
from chatbot.records.types import StoreUnavailable
from core.errors import BadInput, ChatbotError
from core.redact import Redactor

log = logging.getLogger(__name__)

STORED_PERSONAL_DATA = ("email", "phone", "card", "iban", "address")  # `core.redact` kinds replaced before writing


class Database:
    """The database at a SQLAlchemy URL: connections, migrations, transactions, redaction. Cheap to make;
    the first use opens it. `redactor`: what people's words are redacted with (emails, phones, cards,
    IBANs, addresses by default; names are left alone, since "it's" is often followed by a product)."""

    def __init__(self, url: str, redactor: Redactor | None = None, identifiers: Mapping[str, str] | None = None):
        self.url = url
        self.redactor = redactor or Redactor(kinds=STORED_PERSONAL_DATA)
        # the company's identifiers (an action's order number: name -> pattern), redacted as `{{name}}` too
        self.identifiers = [(re.compile(pattern), "{{" + name + "}}") for name, pattern in (identifiers or {}).items()]
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine; the first call opens the database and applies pending migrations."""
        with self._lock:
            if self._engine is None:
                self._engine = self._connect()
        return self._engine

    def _connect(self) -> Engine:
        try:
            path = self.url.removeprefix("sqlite:///")
            if self.url.startswith("sqlite:///") and not path.startswith((":memory:", "file:")):  # file: a URI
                Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            url = make_url(self.url)
            if url.drivername == "postgresql":  # psycopg 3 is the driver installed; SQLAlchemy 2.0 picks psycopg2
                url = url.set(drivername="postgresql+psycopg")
            # Sessions in UTC: PostgreSQL returns timestamps in the server's zone, so per-day figures
            # (chatbot.reporting.analytics) fell on that zone's days; SQLite hands back the UTC written.
            libpq = (
                url.get_backend_name() == "postgresql"
                and url.get_driver_name() in ("psycopg", "psycopg2")
                and "options" not in url.query
            )  # a URL's own ?options= wins
            engine = create_engine(
                url,
                hide_parameters=True,  # no customer's words in logs or errors
                connect_args={"options": "-c timezone=UTC"} if libpq else {},
                # a server restarted (upgrade, failover) left dead pooled connections: each
                # failed one customer's turn; a ping on checkout replaces them (one round trip)
                pool_pre_ping=url.get_backend_name() != "sqlite",
            )
            with engine.begin() as connection:
                migrate(connection)
        except ArgumentError:
            raise BadInput(f"'{self.url}' is not a database URL; use e.g. sqlite:///chatbot.db") from None
        except (DatabaseError, ModuleNotFoundError, OSError) as exc:  # corrupt, unreachable, no driver, no folder
            raise ChatbotError(
                f"cannot open the database {_shown(self.url)}: {_first_line(exc)}; "
                "check the path, its permissions and the file (or --db)"
            ) from None
        return engine

    def check_writable(self) -> None:
        """Open the database and prove it takes writes (a row inserted, then rolled back); a
        `ChatbotError` that says what to fix otherwise. Servers call it at start."""
        engine = self.engine
        try:
            with engine.connect() as c:
                with c.begin() as transaction:
                    c.execute(
                        insert(schema_migrations).values(name=f"write-check-{uuid.uuid4().hex}", applied_at=now())
                    )
                    transaction.rollback()
        except DBAPIError as exc:
            raise ChatbotError(
                f"the database {_shown(self.url)} cannot be written: {_first_line(exc)}; "
                "check its permissions and free disk space"
            ) from None

    @contextmanager
    def begin(self, conflicts: bool = False) -> Iterator[Connection]:
        """A transaction; a database failure becomes `StoreUnavailable` (logged without parameters).
        `conflicts`: let an `IntegrityError` through, for a caller that handles a race on a unique key."""
        try:
            with self.engine.begin() as c:
                yield c
        except DBAPIError as exc:
            if conflicts and isinstance(exc, IntegrityError):
                raise
            log.error("database failure: %s", _first_line(exc))
            raise StoreUnavailable(
                "our conversation records are unavailable right now; please try again in a few minutes"
            ) from None

    read = begin  # reads go through the same door: a failing database is a `StoreUnavailable` too

    @overload
    def redact(self, text: str) -> str: ...
    @overload
    def redact(self, text: None) -> None: ...

    def redact(self, text: str | None) -> str | None:
        """`text` with the personal data `redactor` finds replaced by placeholders (NUL characters dropped)."""
        if not text:
            return text
        text = text_value(text)
        for pattern, placeholder in self.identifiers:
            text = pattern.sub(placeholder, text)
        return self.redactor.redact(text, names=())[0]

    def redact_value(self, value):
        """Every string in `value` (text, or dicts, lists and tuples of them) redacted as stored messages are:
        a message's `extra` (transcript, OCR text, the LLM's draft), a webhook's payload."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {k: self.redact_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact_value(v) for v in value]
        return value

    def applied_migrations(self) -> list[str]:
        """Names of the migrations applied to this database, in name order."""
        with self.read() as c:
            return list(c.scalars(select(schema_migrations.c.name).order_by(schema_migrations.c.name)))

    def tables(self) -> list[str]:
        """Names of the tables in the database, sorted."""
        return sorted(inspect(self.engine).get_table_names())


def now() -> datetime:
    """The time rows are stamped with: UTC."""
    return datetime.now(UTC)


@overload
def utc(moment: datetime) -> datetime: ...
@overload
def utc(moment: None) -> None: ...


def utc(moment: datetime | None) -> datetime | None:
    """SQLite hands timestamps back without their zone; they were written in UTC."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _shown(url: str) -> str:
    """`url` fit for a message: a PostgreSQL URL's password masked (postgresql://bot:***@host/db)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


@overload
def text_value(value: str) -> str: ...
@overload
def text_value(value: None) -> None: ...


def text_value(value: str | None) -> str | None:
    """`value` without NUL characters: PostgreSQL's TEXT cannot hold them (a comment with one failed the
    write there while SQLite kept it), and they carry nothing a reader sees."""
    return value.replace("\x00", "") if value else value


def _first_line(exc: BaseException) -> str:
    """An error in one line, without the statement or its parameters."""
    inner = getattr(exc, "orig", None) or exc
    lines = str(inner).strip().splitlines()
    return f"{inner.__class__.__name__}: {lines[0] if lines else ''}".rstrip(": ")
