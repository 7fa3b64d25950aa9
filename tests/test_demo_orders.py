"""The demo order service as the assistant's actions meet it: a real uvicorn server on a loopback port, over a
fresh SQLite file built from demo/orders.jsonl, called with httpx."""

import io
import sqlite3
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pypdf import PdfReader

from chatbot.demo_orders import parse_time
from tests.order_service import OrderService

NEWEST, SHIPPED, DELIVERED, OLD = "40059930", "40061234", "40057711", "40052208"
WINDOW_MESSAGE = (
    "The delivery address can only be changed within 1 hour of ordering; this order was placed 3 hours ago."
)


@pytest.fixture
def start(tmp_path, repo_root):
    """Start an order service on tmp_path/orders.db (built on first start, reused after): `start(token="")`."""
    running = []

    def _start(token: str = "") -> OrderService:
        running.append(OrderService(tmp_path / "orders.db", repo_root / "demo" / "orders.jsonl", token))
        return running[-1]

    yield _start
    for service in running:
        service.stop()


@pytest.fixture
def orders(start) -> httpx.Client:
    return start().client


def stored(db_path, order_number: str) -> sqlite3.Row:
    with sqlite3.connect(db_path) as db:
        db.row_factory = sqlite3.Row
        return db.execute("SELECT * FROM orders WHERE order_number = ?", (order_number,)).fetchone()


def test_tracking_shows_the_order_with_its_carrier_and_items(orders):
    response = orders.get(f"/orders/{SHIPPED}")
    assert response.status_code == 200
    order = response.json()
    assert set(order) == {
        "order_number",
        "email",
        "items",
        "item_names",
        "status",
        "carrier",
        "tracking_number",
        "placed_at",
        "shipped_at",
        "delivery_address",
    }
    assert order["email"] == "sam.okafor@example.org" and order["items"] == ["Oak side table"]
    assert (order["status"], order["carrier"], order["tracking_number"]) == ("shipped", "DHL", "JD014600006281234567")
    assert parse_time(order["shipped_at"]) > parse_time(order["placed_at"])
    assert orders.get(f"/orders/{DELIVERED}").json()["item_names"] == "Arc floor lamp, Linen lampshade"


@pytest.mark.parametrize("number", ["12345678", "4005993", "400599300", "abcdefgh", "4005993%20"])
def test_an_unknown_or_malformed_order_number_is_not_found(orders, number):
    for path in (f"/orders/{number}", f"/orders/{number}/refund", f"/invoices/{number}.pdf"):
        response = orders.get(path)
        assert (response.status_code, response.json()) == (404, {"detail": "No order with that number."}), path
    assert orders.post(f"/orders/{number}/cancel").status_code == 404


def test_a_processing_order_is_cancelled_and_stays_cancelled_after_a_restart(start, tmp_path):
    first = start()
    response = first.client.post(f"/orders/{NEWEST}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert stored(tmp_path / "orders.db", NEWEST)["status"] == "cancelled"
    again = first.client.post(f"/orders/{NEWEST}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]
    placed_at = response.json()["placed_at"]
    first.stop()
    reopened = start().client.get(f"/orders/{NEWEST}").json()  # the same file, opened as is: no reload, no shift
    assert (reopened["status"], reopened["placed_at"]) == ("cancelled", placed_at)


def test_a_shipped_order_cannot_be_cancelled(orders, tmp_path):
    response = orders.post(f"/orders/{SHIPPED}/cancel")
    assert response.status_code == 409
    assert response.json() == {
        "detail": "Order 40061234 has already shipped, so it can't be cancelled. "
        "You can return it within 30 days of delivery instead."
    }
    assert stored(tmp_path / "orders.db", SHIPPED)["status"] == "shipped"


def test_the_address_changes_within_the_hour_and_not_after(orders, tmp_path):
    response = orders.post(f"/orders/{NEWEST}/address", json={"address": "  9 Copper Row, Bath BA2 4QR "})
    assert response.status_code == 200 and response.json()["delivery_address"] == "9 Copper Row, Bath BA2 4QR"
    assert stored(tmp_path / "orders.db", NEWEST)["delivery_address"] == "9 Copper Row, Bath BA2 4QR"
    late = orders.post(f"/orders/{OLD}/address", json={"address": "9 Copper Row, Bath BA2 4QR"})
    assert (late.status_code, late.json()) == (409, {"detail": WINDOW_MESSAGE})
    shipped = orders.post(f"/orders/{SHIPPED}/address", json={"address": "9 Copper Row, Bath BA2 4QR"})
    assert shipped.status_code == 409 and "already shipped" in shipped.json()["detail"]
    assert orders.post(f"/orders/{NEWEST}/address", json={"address": "x"}).status_code == 422
    assert orders.post(f"/orders/{NEWEST}/address", json={}).status_code == 422


def test_refund_status_and_amount(orders):
    response = orders.get(f"/orders/{DELIVERED}/refund")
    assert response.status_code == 200
    assert response.json() == {
        "order_number": DELIVERED,
        "email": "priya.shah@example.com",
        "refund_status": "processing",
        "refund_amount_gbp": 89.0,
    }
    assert orders.get(f"/orders/{SHIPPED}/refund").json()["refund_status"] == "none"


def test_the_invoice_link_serves_a_pdf_naming_the_order_and_items(start):
    service = start()
    response = service.client.get(f"/orders/{DELIVERED}/invoice")
    assert response.status_code == 200
    invoice = response.json()
    assert invoice == {
        "order_number": DELIVERED,
        "email": "priya.shah@example.com",
        "invoice_url": f"{service.url}/invoices/{DELIVERED}.pdf",
    }
    pdf = httpx.get(invoice["invoice_url"])
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    text = PdfReader(io.BytesIO(pdf.content), strict=True).pages[0].extract_text()
    assert DELIVERED in text and "Arc floor lamp" in text and "Linen lampshade" in text


def test_a_password_reset_never_tells_whether_the_account_exists(orders, tmp_path):
    known = orders.post("/accounts/password-reset", json={"email": "chloe.bennett@example.com"})
    unknown = orders.post("/accounts/password-reset", json={"email": "nobody@example.org"})
    assert known.status_code == unknown.status_code == 202
    assert (
        known.json()
        == unknown.json()
        == {"sent": True, "message": "If an account exists for that address, a reset link is on its way."}
    )
    with sqlite3.connect(tmp_path / "orders.db") as db:
        emails = [row[0] for row in db.execute("SELECT email FROM password_resets ORDER BY rowid")]
    assert emails == ["chloe.bennett@example.com", "nobody@example.org"]


def test_a_token_is_required_when_one_is_set(start):
    client = start(token="s3cret-token").client
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret-token"}):
        response = client.get(f"/orders/{SHIPPED}", headers=headers)
        assert response.status_code == 401 and response.json()["detail"], headers
    assert client.post(f"/orders/{NEWEST}/cancel").status_code == 401
    bad_body = client.post(f"/orders/{NEWEST}/address", content=b"{", headers={"Content-Type": "application/json"})
    assert bad_body.status_code == client.get("/no-such-path").status_code == 401  # checked before routing
    ok = client.get(f"/orders/{SHIPPED}", headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status_code == 200 and ok.json()["order_number"] == SHIPPED
    assert client.get("/health", headers={"Authorization": "Bearer s3cret-token"}).json() == {"ok": True}


def test_a_new_database_moves_the_newest_order_into_the_last_hour(orders):
    now = datetime.now(UTC)
    newest = parse_time(orders.get(f"/orders/{NEWEST}").json()["placed_at"])
    assert now - timedelta(hours=1) < newest <= now
    assert abs((now - newest) - timedelta(minutes=20)) < timedelta(minutes=1)
    old = parse_time(orders.get(f"/orders/{OLD}").json()["placed_at"])
    assert newest - old == timedelta(hours=3)  # every time moved by the same offset
