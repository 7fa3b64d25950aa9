"""The demo shop's order service: the HTTP API that "Lumen & Oak" would run, over a SQLite file of fictional orders.

The assistant's actions (look up, cancel, change the address of an order, refund status, invoice, password
reset) call this service the way they would call a real shop's API: over HTTP, with an optional bearer token.

- Storage: one SQLite file with two tables, `orders` (items as JSON text) and `password_resets(email,
  requested_at)`. When the file does not exist it is built from `demo/orders.jsonl` (one order a line) into a
  temporary file that is then renamed, so a half-built database is never opened as the real one.
- Times: the JSONL holds absolute ISO-8601 UTC times. Building a new database shifts every `placed_at` and
  `shipped_at` by one offset, so that the newest `placed_at` is `NEWEST_AGE` (20 minutes) before now: the
  newest order (40059930) is then inside the 1-hour change window, 40052208 (3 hours older) outside it.
- An existing database is opened as is: no shift, no reload, so cancellations and new addresses persist across
  restarts. Delete the file to start again; there are no migrations.
- Every write reads, checks and changes its row inside one `BEGIN IMMEDIATE` transaction.
- With a token set, every request needs it, `/health` and the invoice PDF included (401 otherwise).

Knows nothing of the chatbot, of customers' identities (it never checks that the caller owns an order: the
caller does) nor of prices (the invoice lists items, not amounts). It sends no email and moves no money: a
password reset is only recorded, a cancellation only changes the status.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import uvicorn
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, StringConstraints

from core.errors import BadInput, ChatbotError, NotFound
from core.jsonl import jsonl_records

EDIT_WINDOW = timedelta(hours=1)  # the help centre's "change or cancel within 1 hour of placing it" (LO-1002)
NEWEST_AGE = timedelta(minutes=20)  # how long before now a new database's newest order was placed
NO_ORDER = "No order with that number."
ORDER_NUMBER = re.compile(r"[0-9]{8}")  # ASCII digits only: str.isdigit() would take "٤٠٠٥٩٩٣٠"
STATUSES = ("processing", "shipped", "delivered", "cancelled")
REFUND_STATUSES = ("none", "requested", "processing", "refunded")
RESET_MESSAGE = "If an account exists for that address, a reset link is on its way."

SCHEMA = """
CREATE TABLE orders (
    order_number TEXT PRIMARY KEY,                  -- 8 ASCII digits
    email TEXT NOT NULL,
    items TEXT NOT NULL,                            -- a JSON list of product names
    status TEXT NOT NULL CHECK (status IN ('processing', 'shipped', 'delivered', 'cancelled')),
    carrier TEXT,
    tracking_number TEXT,
    placed_at TEXT NOT NULL,                        -- ISO-8601 UTC, YYYY-MM-DDTHH:MM:SSZ
    shipped_at TEXT,
    delivery_address TEXT NOT NULL,
    refund_status TEXT NOT NULL CHECK (refund_status IN ('none', 'requested', 'processing', 'refunded')),
    refund_amount_gbp REAL
);
CREATE TABLE password_resets (email TEXT NOT NULL, requested_at TEXT NOT NULL);
"""


class OrderConflict(ChatbotError):
    """The order exists but is past the point where this change is allowed (shipped, cancelled, too old): 409."""


def now_utc() -> datetime:
    return datetime.now(UTC)


def parse_time(text: str) -> datetime:
    """An ISO-8601 time with a zone ("2025-06-12T09:40:00Z"), as an aware UTC datetime; ValueError otherwise."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone; end it with Z")
    return moment.astimezone(UTC)


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Order:
    """One order as stored; `tracking()` and `refund()` are the two views the API shows."""

    order_number: str
    email: str
    items: tuple[str, ...]
    status: str
    carrier: str | None
    tracking_number: str | None
    placed_at: str
    shipped_at: str | None
    delivery_address: str
    refund_status: str
    refund_amount_gbp: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Order:
        return cls(**{**dict(row), "items": tuple(json.loads(row["items"]))})

    def tracking(self) -> dict[str, Any]:
        """What `GET /orders/{n}` shows: all but the refund fields, plus `item_names` ("Halo lamp, Oak side table")."""
        shown = {name: getattr(self, name) for name in FIELDS if not name.startswith("refund_")}
        return {**shown, "items": list(self.items), "item_names": ", ".join(self.items)}

    def refund(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("order_number", "email", "refund_status", "refund_amount_gbp")}


FIELDS = tuple(f.name for f in fields(Order))  # the keys of a line of orders.jsonl, the columns of `orders`


def read_orders(orders_path: Path) -> list[dict[str, Any]]:
    """The orders of a JSONL file, checked; `BadInput` naming the line and the fix for the first bad one."""
    orders = []
    with open(orders_path, encoding="utf-8") as lines:
        for number, value in jsonl_records(lines, orders_path):
            where = f"{orders_path} line {number}"
            if not isinstance(value, dict) or set(value) != set(FIELDS):
                raise BadInput(f"{where}: give an object with exactly the keys {', '.join(FIELDS)}")
            if not isinstance(value["order_number"], str) or not ORDER_NUMBER.fullmatch(value["order_number"]):
                raise BadInput(f"{where}: order_number must be a string of 8 digits")
            if value["status"] not in STATUSES or value["refund_status"] not in REFUND_STATUSES:
                raise BadInput(f"{where}: status is one of {STATUSES}, refund_status one of {REFUND_STATUSES}")
            if not isinstance(value["items"], list) or not all(isinstance(i, str) for i in value["items"]):
                raise BadInput(f"{where}: items must be a list of product names")
            try:
                for key in ("placed_at", "shipped_at"):
                    if key == "placed_at" or value[key] is not None:
                        parse_time(value[key])
            except (TypeError, ValueError) as exc:
                raise BadInput(f"{where}: placed_at and shipped_at must be ISO-8601 UTC times ({exc})") from None
            orders.append(value)
    if not orders:
        raise BadInput(f"{orders_path} holds no orders; add one JSON object a line")
    return orders


def shift_times(orders: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """The orders with every time moved by one offset (whole seconds) so the newest `placed_at` is `NEWEST_AGE` ago."""
    newest = max(parse_time(o["placed_at"]) for o in orders)
    offset = timedelta(seconds=round((now - NEWEST_AGE - newest).total_seconds()))

    def moved(text: str | None) -> str | None:
        return text and format_time(parse_time(text) + offset)

    return [{**o, "placed_at": moved(o["placed_at"]), "shipped_at": moved(o["shipped_at"])} for o in orders]


def create_database(db_path: Path, orders_path: Path, now: datetime) -> None:
    """Build `db_path` from the JSONL at `orders_path`, times shifted to `now`; written aside, then renamed in."""
    orders = shift_times(read_orders(orders_path), now)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    building = db_path.with_name(db_path.name + ".building")
    building.unlink(missing_ok=True)  # left by a build that died half-way
    with closing(sqlite3.connect(building)) as db:
        db.executescript(SCHEMA)
        with db:
            db.executemany(
                f"INSERT INTO orders ({', '.join(FIELDS)}) VALUES ({', '.join('?' * len(FIELDS))})",
                [tuple(json.dumps(o[k]) if k == "items" else o[k] for k in FIELDS) for o in orders],
            )
    os.replace(building, db_path)


def hours_ago(age: timedelta) -> str:
    hours = max(0, int(age.total_seconds() // 3600))
    return "1 hour" if hours == 1 else f"{hours} hours"


class OrderBook:
    """The orders in one SQLite file: lookups, and writes that check and change a row in one transaction.

    A connection per call (the server answers from a thread pool); `clock` is the time the edit window is
    measured against.
    """

    def __init__(self, db_path: Path, clock: Callable[[], datetime] = now_utc):
        self.db_path = db_path
        self.clock = clock

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.db_path, timeout=10, isolation_level=None)  # transactions are begun by hand
        db.row_factory = sqlite3.Row
        return db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A connection inside `BEGIN IMMEDIATE` (no other writer until commit); rolled back if the body raises."""
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @staticmethod
    def _order(db: sqlite3.Connection, order_number: str) -> Order:
        """The order, or `NotFound` (a number that is not 8 digits names no order either)."""
        if ORDER_NUMBER.fullmatch(order_number):
            row = db.execute("SELECT * FROM orders WHERE order_number = ?", (order_number,)).fetchone()
            if row is not None:
                return Order.from_row(row)
        raise NotFound(NO_ORDER)

    def get(self, order_number: str) -> Order:
        with closing(self._connect()) as db:
            return self._order(db, order_number)

    def cancel(self, order_number: str) -> Order:
        """Cancel a processing order; `OrderConflict` once it has shipped or when it is already cancelled."""
        with self._transaction() as db:
            order = self._order(db, order_number)
            if order.status in ("shipped", "delivered"):
                raise OrderConflict(
                    f"Order {order_number} has already shipped, so it can't be cancelled. "
                    "You can return it within 30 days of delivery instead."
                )
            if order.status == "cancelled":
                raise OrderConflict(f"Order {order_number} is already cancelled; there is nothing more to do.")
            db.execute("UPDATE orders SET status = 'cancelled' WHERE order_number = ?", (order_number,))
            return self._order(db, order_number)

    def change_address(self, order_number: str, address: str) -> Order:
        """Set a new delivery address within `EDIT_WINDOW` of ordering, while the order is still processing."""
        with self._transaction() as db:
            order = self._order(db, order_number)
            if order.status in ("shipped", "delivered"):
                raise OrderConflict(f"Order {order_number} has already shipped, so its delivery address can't change.")
            if order.status == "cancelled":
                raise OrderConflict(f"Order {order_number} is cancelled, so its delivery address can't change.")
            age = self.clock() - parse_time(order.placed_at)
            if age > EDIT_WINDOW:
                raise OrderConflict(
                    "The delivery address can only be changed within 1 hour of ordering; "
                    f"this order was placed {hours_ago(age)} ago."
                )
            db.execute("UPDATE orders SET delivery_address = ? WHERE order_number = ?", (address, order_number))
            return self._order(db, order_number)

    def record_password_reset(self, email: str) -> None:
        """Note that a reset was asked for `email`, known or not (nothing is sent)."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO password_resets (email, requested_at) VALUES (?, ?)",
                (email.lower(), format_time(self.clock())),
            )


def invoice_pdf(order: Order) -> bytes:
    """A one-page A4 PDF naming the shop, the order and its items: hand-written objects, no PDF library."""
    lines = ["Lumen & Oak", f"Invoice for order {order.order_number}", f"Placed: {order.placed_at}"]
    lines += [f"Deliver to: {order.delivery_address}", "Items:", *(f"  - {item}" for item in order.items)]
    escaped = [line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") for line in lines]
    shown = " ".join(f"({line}) Tj T*" for line in escaped)  # one line, then down by the leading (16 pt)
    content = f"BT /F1 12 Tf 16 TL 72 770 Td {shown} ET".encode("cp1252", errors="replace")  # WinAnsiEncoding
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> "
        b"/Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
    ]
    pdf = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(pdf))
        pdf += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(pdf)
    pdf += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    pdf += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    pdf += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(pdf)


class AddressChange(BaseModel):
    address: Annotated[str, StringConstraints(strip_whitespace=True, min_length=5, max_length=200)]


class PasswordResetRequest(BaseModel):
    email: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=254)]


def bearer_guard(token: str) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    """Middleware that answers 401 unless the request carries `Authorization: Bearer <token>` (constant time).

    A middleware, not a route dependency: it runs before routing and body parsing, so an unknown path or a
    malformed body gets 401 too, never a 404 or 422 that a caller without the token could learn from.
    """

    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            detail = "Send the service token as 'Authorization: Bearer <token>'."
            return JSONResponse({"detail": detail}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
        return await call_next(request)

    return guard


def order_routes(book: OrderBook) -> APIRouter:
    """The order endpoints: thin translations between HTTP and `book`, which decides."""
    router = APIRouter()

    @router.get("/orders/{order_number}")
    def track(order_number: str) -> dict[str, Any]:
        return book.get(order_number).tracking()

    @router.post("/orders/{order_number}/cancel")
    def cancel(order_number: str) -> dict[str, Any]:
        return book.cancel(order_number).tracking()

    @router.post("/orders/{order_number}/address")
    def change_address(order_number: str, body: AddressChange) -> dict[str, Any]:
        return book.change_address(order_number, body.address).tracking()

    @router.get("/orders/{order_number}/refund")
    def refund(order_number: str) -> dict[str, Any]:
        return book.get(order_number).refund()

    @router.get("/orders/{order_number}/invoice")
    def invoice(order_number: str, request: Request) -> dict[str, Any]:
        order = book.get(order_number)
        url = f"{str(request.base_url).rstrip('/')}/invoices/{order.order_number}.pdf"
        return {"order_number": order.order_number, "email": order.email, "invoice_url": url}

    @router.get("/invoices/{order_number}.pdf")
    def invoice_file(order_number: str) -> Response:
        order = book.get(order_number)
        headers = {"Content-Disposition": f'inline; filename="{order.order_number}.pdf"'}
        return Response(invoice_pdf(order), media_type="application/pdf", headers=headers)

    return router


def account_routes(book: OrderBook) -> APIRouter:
    """The password reset (the same answer whether or not the account exists) and the health check."""
    router = APIRouter()

    @router.post("/accounts/password-reset", status_code=202)
    def password_reset(body: PasswordResetRequest) -> dict[str, Any]:
        book.record_password_reset(body.email)
        return {"sent": True, "message": RESET_MESSAGE}

    @router.get("/health")
    def health() -> dict[str, bool]:
        return {"ok": True}

    return router


def create_app(db_path: str | Path, orders_path: str | Path = "demo/orders.jsonl", token: str = "") -> FastAPI:
    """The order service over the SQLite file `db_path`, built from `orders_path` first if it does not exist.

    db_path: the SQLite file; an existing one is used as is (its orders, cancellations and addresses kept).
    orders_path: the JSONL of orders a new database is built from (times shifted, see the module docstring).
    token: when not empty, every request must send `Authorization: Bearer <token>` or gets 401.
    """
    db_path = Path(db_path)
    if not db_path.exists():
        create_database(db_path, Path(orders_path), now_utc())
    book = OrderBook(db_path)
    app = FastAPI(title="Lumen & Oak orders (demo)")
    if token:
        app.middleware("http")(bearer_guard(token))
    app.include_router(order_routes(book))
    app.include_router(account_routes(book))

    async def as_json(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404 if isinstance(exc, NotFound) else 409)

    app.add_exception_handler(NotFound, as_json)
    app.add_exception_handler(OrderConflict, as_json)

    return app


def serve(
    host: str, port: int, db_path: str | Path, orders_path: str | Path = "demo/orders.jsonl", token: str = ""
) -> None:
    """Run the order service on `host`:`port` until interrupted (see `create_app` for the other arguments)."""
    uvicorn.run(create_app(db_path, orders_path, token), host=host, port=port, log_level="warning")
