"""The demo's actions as a customer meets them: the app on stand-ins (a one-article help centre indexed with
`HashEmbedder`, a scripted LLM) with demo/chatbot.toml's `[actions.*]`, calling the real demo order service
(tests/order_service.py) over HTTP; then the hostile cases and the desk's clock at unit level."""

import json
import socket
import sqlite3
import tomllib
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from chatbot.actions.build import check_actions
from chatbot.actions.client import ActionClient, CallResult
from chatbot.actions.desk import NOT_VERIFIED, OFFER_PERSON, ActionDesk, ActionLimits
from chatbot.actions.templates import RenderError, render
from chatbot.records.outcomes import Outcome
from core.config import load_config
from core.config_actions import ActionConfig
from core.errors import ConfigError
from tests.handoff_app import ALEX, PASSWORD, basic, serve
from tests.order_service import OrderService

ROOT = Path(__file__).resolve().parents[1]
DEMO = tomllib.loads((ROOT / "demo" / "chatbot.toml").read_text(encoding="utf-8"))
# HashEmbedder's cosines are lower than a real embedder's: these route the demo's phrasing with an order number
# (margins >= 0.2 here), not the help questions (margins < 0). HashEmbedder hashes words into 256 buckets, so an
# order number can land in an example's word's bucket ("where is my order 40059930?" comes out nearer a cancel
# example than a tracking one): the requests below are worded as the examples are, and `begin` checks the route.
ROUTING = {"min_cosine": 0.3, "min_margin": 0.15, "min_margin_identified": 0.0}
ADMIN = basic("operator", PASSWORD)
HOSTILE = "{{ ''.__class__.__mro__[1].__subclasses__() }}"


@pytest.fixture(autouse=True)
def _panel_password_from_the_config(monkeypatch):
    """The real app's session fixture sets $CHATBOT_OPERATOR_PASSWORD, which wins over the config's."""
    monkeypatch.delenv("CHATBOT_OPERATOR_PASSWORD", raising=False)


def serve_actions(tmp_path, actions: dict | None = None):
    """The handoff app on stand-ins (tests/handoff_app.serve) with the demo's actions; returns (pipeline, TestClient)."""
    routing = {**DEMO.get("action_rules", {}), **ROUTING}
    return serve(tmp_path, extra={"actions": DEMO["actions"] if actions is None else actions, "action_rules": routing})


@pytest.fixture
def service(tmp_path, monkeypatch):
    """The demo order service over a fresh copy of demo/orders.jsonl in tmp_path/orders.db; the actions'
    URL templates read CHATBOT_ORDERS_URL when each request is made."""
    running = OrderService(tmp_path / "orders.db", ROOT / "demo" / "orders.jsonl")
    monkeypatch.setenv("CHATBOT_ORDERS_URL", running.url)
    monkeypatch.delenv("CHATBOT_ORDERS_TOKEN", raising=False)
    yield running
    running.stop()


@pytest.fixture
def served(tmp_path, service):
    return serve_actions(tmp_path)


@pytest.fixture
def app(served) -> TestClient:
    return served[1]


def say(client: TestClient, message: str, conversation_id: str | None = None) -> dict:
    r = client.post("/api/chat", json={"message": message, "conversation_id": conversation_id})
    assert r.status_code == 200, r.text
    return r.json()


def begin(client: TestClient, message: str, action: str) -> dict:
    """A new conversation's first message, which must start `action`."""
    reply = say(client, message)
    assert (reply.get("grounding") or {}).get("action", {}).get("name") == action, reply
    return reply


def orders_table(tmp_path) -> dict[str, tuple]:
    """The order service's rows, read from its SQLite file."""
    with sqlite3.connect(tmp_path / "orders.db") as db:
        return {row[0]: row for row in db.execute("SELECT * FROM orders")}


def status_of(tmp_path, order_number: str) -> str:
    with sqlite3.connect(tmp_path / "orders.db") as db:
        return db.execute("SELECT status FROM orders WHERE order_number = ?", (order_number,)).fetchone()[0]


# ---- over REST, with the real order service ---------------------------------------------------


def test_track_asks_the_email_then_says_what_the_service_says(app, service):
    first = begin(app, "where is my order 40061234?", "track_order")
    assert first["outcome"] == "action_ask", first
    assert "email" in first["answer"].lower()
    assert not first["handoff"]["needed"]

    done = say(app, "sam.okafor@example.org", first["conversation_id"])
    assert done["outcome"] == "action_done", done
    order = httpx.get(f"{service.url}/orders/40061234").json()
    assert done["answer"] == (
        f"Order 40061234 ({order['item_names']}) is {order['status']}. "
        f"It was sent with {order['carrier']}, tracking number {order['tracking_number']}."
    )
    assert not done["handoff"]["needed"]


def test_a_wrong_email_learns_nothing_and_the_third_hands_over(app):
    private = ("processing", "halo lamp", "lantern street", "bs1 5tr", "chloe", "bennett")
    cid = begin(app, "track my order 40059930", "track_order")["conversation_id"]

    wrong = say(app, "someone.else@example.com", cid)
    assert wrong["outcome"] == "action_ask", wrong
    assert wrong["answer"].startswith(NOT_VERIFIED)
    assert "order number" in wrong["answer"]  # asked again, from the start: no hint which value was wrong
    assert not any(fact in wrong["answer"].lower() for fact in private)

    # an order that does not exist gets the very same sentence: nothing tells a number from an email
    other = begin(app, "track my order 49999999", "track_order")["conversation_id"]
    assert say(app, "someone.else@example.com", other)["answer"] == wrong["answer"]

    second = say(app, "40059930 someone.else@example.com", cid)
    assert second["outcome"] == "action_ask" and second["answer"] == wrong["answer"]
    third = say(app, "it is 40059930 and my email is nobody@example.net", cid)
    assert third["outcome"] == "action_failed", third
    assert third["handoff"]["needed"]
    assert not any(fact in third["answer"].lower() for fact in private)

    queue = app.get("/api/handoffs", headers=ADMIN)
    assert queue.status_code == 200, queue.text
    assert cid in [h["conversation_id"] for h in queue.json()["handoffs"]]


def test_a_cancel_is_confirmed_then_made_and_a_no_changes_nothing(app, tmp_path):
    cid = begin(app, "please cancel my order 40059930", "cancel_order")["conversation_id"]
    confirm = say(app, "chloe.bennett@example.com", cid)
    assert confirm["outcome"] == "action_confirm", confirm
    assert "40059930" in confirm["answer"] and "Halo lamp" in confirm["answer"]
    assert status_of(tmp_path, "40059930") == "processing"  # nothing happens before the yes

    done = say(app, "yes", cid)
    assert done["outcome"] == "action_done", done
    assert "cancelled" in done["answer"]
    assert status_of(tmp_path, "40059930") == "cancelled"

    other = begin(app, "please cancel my order 40052208", "cancel_order")["conversation_id"]
    assert say(app, "tom.reid@example.com", other)["outcome"] == "action_confirm"
    before = orders_table(tmp_path)
    declined = say(app, "no", other)
    assert declined["outcome"] == "action_cancelled", declined
    assert not declined["handoff"]["needed"]
    assert orders_table(tmp_path) == before
    assert before["40052208"][3] == "processing"


def test_a_shipped_order_is_refused_with_the_reason_and_a_person_offered(app, tmp_path):
    cid = begin(app, "please cancel my order 40061234", "cancel_order")["conversation_id"]
    assert say(app, "sam.okafor@example.org", cid)["outcome"] == "action_confirm"
    refused = say(app, "yes", cid)
    assert refused["outcome"] == "action_refused", refused
    assert "already shipped" in refused["answer"]
    assert refused["answer"].endswith(OFFER_PERSON)
    assert not refused["handoff"]["needed"]
    assert status_of(tmp_path, "40061234") == "shipped"

    person = say(app, "yes", cid)
    assert person["outcome"] == "customer_request", person
    assert person["handoff"]["needed"]


def test_verifying_one_order_does_not_open_another(app, tmp_path):
    cid = begin(app, "where is my order 40061234?", "track_order")["conversation_id"]
    assert say(app, "sam.okafor@example.org", cid)["outcome"] == "action_done"  # Sam's own order

    other = say(app, "track my order 40059930", cid)  # Chloe's: Sam's email is not on it
    assert "Halo lamp" not in other["answer"] and "processing" not in other["answer"], other
    assert other["outcome"] == "action_ask"

    cancel = say(app, "please cancel my order 40059930", cid)
    if cancel["outcome"] == "action_confirm":
        say(app, "yes", cid)
    assert status_of(tmp_path, "40059930") == "processing"


def test_a_service_refusing_the_assistants_token_hands_over_without_blaming_the_customer(tmp_path, monkeypatch):
    running = OrderService(tmp_path / "orders.db", ROOT / "demo" / "orders.jsonl", token="the-right-token")
    try:
        monkeypatch.setenv("CHATBOT_ORDERS_URL", running.url)
        monkeypatch.setenv("CHATBOT_ORDERS_TOKEN", "a-stale-token")
        _, client = serve_actions(tmp_path)
        reply = begin(client, "track my order 40061234, my email is sam.okafor@example.org", "track_order")
    finally:
        running.stop()
    assert reply["outcome"] == "action_failed" and reply["handoff"]["needed"], reply  # 401: ours, not theirs
    assert NOT_VERIFIED not in reply["answer"] and "token" not in reply["answer"].lower()


def test_an_action_switched_off_while_it_waits_for_yes_does_nothing(app, tmp_path):
    cid = begin(app, "please cancel my order 40059930", "cancel_order")["conversation_id"]
    assert say(app, "chloe.bennett@example.com", cid)["outcome"] == "action_confirm"
    assert app.post("/api/actions/cancel_order", json={"enabled": False}, headers=ADMIN).status_code == 200
    after = say(app, "yes", cid)
    assert not after["outcome"].startswith("action_"), after
    assert status_of(tmp_path, "40059930") == "processing"


def test_an_unreachable_service_hands_over_with_a_sentence(tmp_path, monkeypatch):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("CHATBOT_ORDERS_URL", f"http://127.0.0.1:{port}")
    _, client = serve_actions(tmp_path)
    reply = begin(client, "track my order 40061234, my email is sam.okafor@example.org", "track_order")
    assert reply["outcome"] == "action_failed", reply
    assert reply["handoff"]["needed"]
    answer = reply["answer"]
    assert answer.endswith(".") and "colleague" in answer
    assert not any(word in answer for word in ("Traceback", "Exception", "Error", "{{", "127.0.0.1"))


def test_the_database_keeps_no_email_and_no_order_number(served, tmp_path):
    pipeline, client = served
    track = begin(client, "where is my order 40061234?", "track_order")["conversation_id"]
    assert say(client, "sam.okafor@example.org", track)["outcome"] == "action_done"
    cancel = begin(client, "please cancel my order 40059930", "cancel_order")["conversation_id"]
    assert say(client, "chloe.bennett@example.com", cancel)["outcome"] == "action_confirm"
    assert say(client, "yes", cancel)["outcome"] == "action_done"

    runs = pipeline.store.actions.runs()
    assert [(r["action"], r["status"]) for r in runs] == [
        ("track_order", "done"),
        ("track_order", "verified"),  # the cancel's lookup
        ("cancel_order", "done"),
    ]
    assert runs[0]["http_status"] == 200 and runs[0]["request"]["method"] == "GET"
    assert runs[-1]["request"]["method"] == "POST"

    files = sorted(tmp_path.glob("db.sqlite*"))  # the database, with its journal when there is one
    stored = b"".join(f.read_bytes() for f in files)
    assert b"Oak side table" in stored  # the system's answer is there, redacted: the file is the right one
    for secret in ("sam.okafor@example.org", "chloe.bennett@example.com", "40061234", "40059930"):
        assert secret.encode() not in stored, secret


def test_a_help_question_runs_no_action(served, service):
    pipeline, client = served
    for question in ("How long do I have to return an item?", "Do UK orders get a free return label?"):
        reply = say(client, question)
        assert not reply["outcome"].startswith("action_"), reply
    assert pipeline.store.actions.runs() == []


def test_an_admin_switches_an_action_off(app):
    cid = begin(app, "where is my order 40061234?", "track_order")["conversation_id"]
    assert say(app, "sam.okafor@example.org", cid)["outcome"] == "action_done"

    agent, anonymous = basic("alex", ALEX), {}
    assert app.post("/api/actions/track_order", json={"enabled": False}, headers=anonymous).status_code == 401
    assert app.post("/api/actions/track_order", json={"enabled": False}, headers=agent).status_code == 403
    assert app.get("/api/actions").status_code == 401
    assert app.get("/api/actions", headers=agent).status_code == 403
    assert app.post("/api/actions/no_such_action", json={"enabled": False}, headers=ADMIN).status_code == 404
    assert say(app, "where is my order 40061234?")["outcome"] == "action_ask"  # still on

    r = app.post("/api/actions/track_order", json={"enabled": False}, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "track_order", "enabled": False}
    reply = say(app, "where is my order 40061234?")
    assert not reply["outcome"].startswith("action_"), reply

    listed = app.get("/api/actions", headers=ADMIN)
    assert listed.status_code == 200, listed.text
    by_name = {a["name"]: a for a in listed.json()["actions"]}
    assert set(by_name) == set(DEMO["actions"])
    track = by_name["track_order"]
    assert track["enabled"] is False
    assert track["runs"] == 1 and track["success_rate"] == 1.0 and track["by_status"] == {"done": 1}
    assert by_name["cancel_order"]["enabled"] is True and by_name["cancel_order"]["runs"] == 0

    assert app.post("/api/actions/track_order", json={"enabled": True}, headers=agent).status_code == 403
    assert not say(app, "where is my order 40061234?")["outcome"].startswith("action_")  # an agent cannot undo it


# ---- hostile input, at unit level -------------------------------------------------------------


class Runs:
    """`ActionRuns`' part the desk uses, in memory."""

    def __init__(self):
        self.rows: list[tuple] = []
        self.sessions: dict[str, str] = {}

    def record(self, *row) -> None:
        self.rows.append(row)

    def switches(self) -> dict[str, bool]:
        return {}

    def load_session(self, conversation_id: str) -> str | None:
        return self.sessions.get(conversation_id)

    def save_session(self, conversation_id: str, sealed: str | None, older_than=None) -> None:
        if sealed is None:
            self.sessions.pop(conversation_id, None)
        else:
            self.sessions[conversation_id] = sealed


def lookup_action(**changes) -> ActionConfig:
    """A read action over one text and one number parameter, at a host MockTransport answers."""
    fields = {
        "description": "look something up",
        "examples": ["look up my order"],
        "request": {"url": "http://shop.test/orders/{{ params.order_number }}"},
        "reply": "Order {{ result.order_number }} is {{ result.status }}.",
        "params": {"order_number": {"ask": "Which order?", "type": "number", "identifies": True}},
        **changes,
    }
    return ActionConfig.model_validate(fields)


def capturing(answer: dict, status: int = 200):
    """An `ActionClient` on httpx's MockTransport, and the requests it got."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json=answer)

    return ActionClient(httpx.MockTransport(handler)), seen


def test_a_template_cannot_reach_python_internals():
    with pytest.raises(RenderError):
        render(HOSTILE, result={})
    with pytest.raises(RenderError):
        render("{{ result.__class__.__init__.__globals__ }}", result={"a": 1})
    assert render("{{ result.missing }}ok", result={}) == "ok"  # a missing field is empty, not an error

    client, seen = capturing({"order_number": "12345678", "status": "shipped"})
    desk = ActionDesk({"peek": lookup_action(reply=HOSTILE)}, client, Runs())
    step = desk.start("c1", "peek", "look up order 12345678")
    assert len(seen) == 1
    assert step.outcome == Outcome.ACTION_FAILED
    assert step.outcome.hands_over
    assert "class" not in step.answer and "subclasses" not in step.answer and "<" not in step.answer
    assert step.answer.endswith(".")


def test_a_url_value_stays_one_path_segment():
    action = lookup_action(
        request={"url": "http://shop.test/notes/{{ params.note }}"},
        params={"note": {"ask": "What note?", "type": "text"}},
    )
    client, seen = capturing({"ok": True})
    result = client.call(action, {"note": "x/../../admin?y=1"})
    assert result.status == "done"
    (request,) = seen
    assert request.url.host == "shop.test"
    assert request.url.raw_path == b"/notes/x%2F..%2F..%2Fadmin%3Fy%3D1"
    assert request.url.path == "/notes/x/../../admin?y=1"  # decoded: one segment, the whole value
    assert request.url.query == b""


def test_a_body_value_stays_one_json_string():
    action = lookup_action(
        request={
            "method": "POST",
            "url": "http://shop.test/notes",
            "body": '{"note": "{{ params.note }}", "status": "kept"}',
        },
        params={"note": {"ask": "What note?", "type": "text"}},
    )
    client, seen = capturing({"ok": True})
    hostile = 'a", "status": "hacked'
    assert client.call(action, {"note": hostile}).status == "done"
    body = json.loads(seen[0].content)
    assert body == {"note": hostile, "status": "kept"}

    for value in ("back\\slash", "new\nline", "{{ 7 * 7 }}", "{% raw %}"):
        seen.clear()
        assert client.call(action, {"note": value}).status == "done"
        assert json.loads(seen[0].content)["note"] == value  # data, never template source


def test_a_bad_action_config_fails_naming_the_key():
    base = {"description": "x", "examples": ["do x"], "request": {"url": "http://shop.test/x"}, "reply": "ok"}
    with pytest.raises(ConfigError, match=r"actions\.x\.reply"):
        load_config(None, {"actions": {"x": {**base, "reply": "{{ result.x"}}})
    with pytest.raises(ConfigError, match=r"actions\.x\.bogus"):
        load_config(None, {"actions": {"x": {**base, "bogus": 1}}})
    with pytest.raises(ConfigError, match=r"actions\.x\.request\.url"):
        load_config(None, {"actions": {"x": {**base, "request": {"url": "{% if %}"}}}})

    read = ActionConfig.model_validate(base)
    write = ActionConfig.model_validate({**base, "risk": "write"})
    with pytest.raises(ConfigError, match=r"actions\.w\.confirm"):
        check_actions({"w": write})
    params = {"email": {"ask": "Your email?", "type": "email"}}
    confirmed = ActionConfig.model_validate({**base, "risk": "write", "confirm": "Sure?"})
    verified_by_write = ActionConfig.model_validate(
        {
            **base,
            "risk": "write",
            "confirm": "Sure?",
            "params": params,
            "verify": {"lookup": "w", "match": {"email": "email"}},
        }
    )
    with pytest.raises(ConfigError, match=r"actions\.v\.verify\.lookup"):
        check_actions({"w": confirmed, "v": verified_by_write})
    check_actions({"r": read, "w": confirmed})  # the sound ones pass


# ---- the desk's clock -------------------------------------------------------------------------


class FakeClient:
    """An `ActionClient` that answers every call with one order and counts the calls."""

    def __init__(self):
        self.calls: list[dict] = []

    def call(self, action, params):
        self.calls.append(dict(params))
        return CallResult("done", {"order_number": params.get("order_number"), "status": "shipped"}, 200)


def test_a_half_finished_action_is_forgotten_after_its_ttl():
    t = [1000.0]
    client = FakeClient()
    desk = ActionDesk({"peek": lookup_action()}, client, Runs(), ActionLimits(session_ttl_s=60), clock=lambda: t[0])
    assert desk.start("kept", "peek", "look up my order").outcome == Outcome.ACTION_ASK
    assert desk.start("forgotten", "peek", "look up my order").outcome == Outcome.ACTION_ASK

    t[0] += 59
    step = desk.carry_on("kept", "12345678")
    assert step is not None and step.outcome == Outcome.ACTION_DONE
    assert step.answer == "Order 12345678 is shipped."

    t[0] += 2  # 61 s after it asked
    assert desk.carry_on("forgotten", "12345678") is None
    assert client.calls == [{"order_number": "12345678"}]
    assert desk.carry_on("forgotten", "12345678") is None  # and it stays forgotten


def test_another_server_process_goes_on_with_an_action_under_way(tmp_path, service, monkeypatch):
    from cryptography.fernet import Fernet

    monkeypatch.setenv("CHATBOT_SECRET_KEY", Fernet.generate_key().decode())  # replicas share the key
    _, one = serve_actions(tmp_path)
    _, two = serve_actions(tmp_path)  # a second app over the same database
    cid = begin(one, "track my order 40061234", "track_order")["conversation_id"]
    done = say(two, "sam.okafor@example.org", cid)
    assert done["outcome"] == "action_done" and "JD014600006281234567" in done["answer"], done
    raw = (tmp_path / "db.sqlite").read_bytes()
    assert b"40061234" not in raw and b"sam.okafor" not in raw  # the session is sealed, the rest redacted


def test_the_sealing_key_is_made_once_private_and_a_foreign_seal_opens_to_nothing(tmp_path, monkeypatch):
    from chatbot.actions.sealed import Sealer

    monkeypatch.delenv("CHATBOT_SECRET_KEY", raising=False)
    first, again = Sealer.from_environment(tmp_path), Sealer.from_environment(tmp_path)
    assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0
    sealed = first.seal({"order_number": "40061234"})
    assert "40061234" not in sealed and again.open(sealed) == {"order_number": "40061234"}
    monkeypatch.setenv("CHATBOT_SECRET_KEY", "not a key")
    with pytest.raises(ConfigError, match="CHATBOT_SECRET_KEY"):
        Sealer.from_environment(tmp_path)
    monkeypatch.delenv("CHATBOT_SECRET_KEY")
    assert Sealer.from_environment(tmp_path / "other").open(sealed) is None
