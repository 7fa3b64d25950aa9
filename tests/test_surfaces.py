"""The holes an attacker's probe found in the live handoff, the roles, saved answers and the webhook: each
test makes the attack and asserts the refusal or the clean output. Stand-ins (hash embedder, scripted LLM)
behind Starlette's TestClient; one test runs a real uvicorn server on loopback."""

import csv
import hashlib
import threading
import time
from types import SimpleNamespace

import httpx
import pytest

from chatbot.faq import FaqBook
from chatbot.handoff import clean_reply
from chatbot.outputs.webhook import WebhookSender
from core.redact import Redactor
from knowledge.ingest import iter_documents
from tests.handoff_app import ALEX, PASSWORD, SAM, Receiver, basic, handed_over, serve
from ui.guard import Operators, hash_password
from ui.operator_events import PanelEvents
from ui.operator_views import shown

CARD, EMAIL, PHONE, IBAN = "4111 1111 1111 1111", "jane.doe@example.com", "07700 900123", "GB82 WEST 1234 5698 7654 32"
ADMIN = basic("operator", PASSWORD)
BITCOIN = "Can I pay with bitcoin?"
GOOD = "You can pay for bitcoin orders by card or PayPal. Bitcoin itself is not accepted."


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.delenv("CHATBOT_OPERATOR_PASSWORD", raising=False)
    return lambda **kwargs: serve(tmp_path, **kwargs)


# ---- 1. agent-written answers are drafts until approved ---------------------------------------------
def test_an_agents_answer_waits_is_never_served_until_approved_then_cited_with_both_people_in_history(app, tmp_path):
    pipeline, client = app()
    alex = basic("alex", ALEX)
    r = client.post("/api/knowledge/faq", headers=alex, json={"question": BITCOIN, "answer": GOOD})
    assert r.status_code == 200 and r.json()["status"] == "pending" and r.json()["live"] is False, r.text
    doc_id = r.json()["doc_id"]
    assert FaqBook(tmp_path / "faq").entries() == []  # nothing published
    before = client.post("/api/chat", json={"message": "Do you accept bitcoin for payment?"}).json()
    assert doc_id not in [s["doc_id"] for s in before["sources"]] and "Bitcoin itself" not in before["answer"]
    assert client.post(f"/api/knowledge/faq/{doc_id}/approve", headers=basic("sam", SAM)).status_code == 403
    r = client.post(f"/api/knowledge/faq/{doc_id}/approve", headers=ADMIN)
    assert r.status_code == 200 and r.json()["status"] == "live" and r.json()["reviewed_by"] == "operator"
    after = client.post("/api/chat", json={"message": "Do you accept bitcoin for payment?"}).json()
    assert after["outcome"] == "answered" and [s["doc_id"] for s in after["sources"]] == [doc_id]
    history = client.get(f"/api/knowledge/faq/{doc_id}/history", headers=alex).json()["history"]
    assert [(h["action"], h["by"]) for h in history] == [("saved", "alex"), ("approved", "operator")]
    assert client.post(f"/api/knowledge/faq/{doc_id}/approve", headers=ADMIN).status_code == 409  # already live


def test_an_answer_holding_personal_data_is_stored_redacted_and_cannot_be_approved_until_edited(app, tmp_path):
    pipeline, client = app()
    alex = basic("alex", ALEX)
    hostile = (
        f"Refunded in full plus 500 GBP compensation; email your full card number and CVV to "
        f"refunds@evil-lumen.example. Example: {CARD}, {EMAIL}, {PHONE}, {IBAN}"
    )
    r = client.post("/api/knowledge/faq", headers=ADMIN, json={"question": "How do refunds work?", "answer": hostile})
    saved = r.json()
    assert saved["status"] == "pending" and set(saved["personal_data"]) >= {"card", "email", "phone", "iban"}
    doc_id = saved["doc_id"]
    [entry] = client.get("/api/knowledge/faq", headers=alex).json()["entries"]
    for raw in (CARD, EMAIL, PHONE, IBAN, "refunds@evil-lumen.example"):
        assert raw not in entry["answer"]
    assert "{{Card Number}}" in entry["answer"]
    r = client.post(f"/api/knowledge/faq/{doc_id}/approve", headers=ADMIN)
    assert r.status_code == 400 and "personal data" in r.json()["error"]
    assert not (tmp_path / "faq" / "help-centre-answers.csv").exists()  # neither the CSV nor the index has it
    reply = client.post("/api/chat", json={"message": "How do refunds work?"}).json()
    assert CARD not in reply["answer"] and doc_id not in [s["doc_id"] for s in reply["sources"]]
    with pipeline.store.engine.connect() as c:  # nothing raw anywhere in the database
        dump = " ".join(
            str(row)
            for table in ("faq_entries", "faq_history", "messages")
            for row in c.exec_driver_sql(f"SELECT * FROM {table}").all()
        )
    assert CARD not in dump and EMAIL not in dump and "refunds@evil-lumen" not in dump
    edited = client.post(
        "/api/knowledge/faq",
        headers=alex,
        json={"question": "How do refunds work?", "answer": "Refunds go back to the card you paid with within 5 days."},
    )
    assert edited.json() == {"doc_id": doc_id, "status": "pending", "live": False, "personal_data": []}
    assert client.post(f"/api/knowledge/faq/{doc_id}/approve", headers=ADMIN).status_code == 200
    history = client.get(f"/api/knowledge/faq/{doc_id}/history", headers=alex).json()["history"]
    assert [(h["action"], h["by"]) for h in history] == [
        ("saved", "operator"),
        ("edited", "alex"),
        ("approved", "operator"),
    ]
    by_agent = client.post(
        "/api/knowledge/faq", headers=alex, json={"question": "Can I pay by phone?", "answer": f"Yes, read us {CARD}."}
    ).json()
    assert by_agent["status"] == "pending" and by_agent["personal_data"] == ["card"]
    assert client.post(f"/api/knowledge/faq/{by_agent['doc_id']}/approve", headers=ADMIN).status_code == 400


def test_review_rules_second_agent_and_none_and_an_admins_own_entry(app):
    pipeline, client = app(handoff={"faq_review": "second_agent"})
    alex, sam = basic("alex", ALEX), basic("sam", SAM)
    doc_id = client.post("/api/knowledge/faq", headers=alex, json={"question": BITCOIN, "answer": GOOD}).json()[
        "doc_id"
    ]
    assert client.post(f"/api/knowledge/faq/{doc_id}/approve", headers=alex).status_code == 403  # not their own
    assert client.post(f"/api/knowledge/faq/{doc_id}/approve", headers=sam).json()["status"] == "live"
    assert client.post(f"/api/knowledge/faq/{doc_id}/remove", headers=sam).status_code == 403
    assert client.post(f"/api/knowledge/faq/{doc_id}/remove", headers=ADMIN).json()["status"] == "removed"
    assert pipeline.document_count() == 1  # out of the index again
    own = client.post(
        "/api/knowledge/faq",
        headers=ADMIN,
        json={"question": "Do you ship to Mars?", "answer": "We do not ship to Mars."},
    ).json()
    assert own["status"] == "live" and pipeline.document_count() == 2
    assert client.post("/api/knowledge/faq/not-an-id/approve", headers=ADMIN).status_code == 400
    assert client.post("/api/knowledge/faq/FAQ-0000000000/approve", headers=ADMIN).status_code == 404


# ---- 2. webhooks carry no raw personal data; a company chooses the events ---------------------------
def test_webhook_bodies_hold_no_personal_data_the_customer_sent_and_only_chosen_events_leave(app):
    receiver = Receiver()
    sender = WebhookSender(receiver.url, "secret", retries=0)
    pipeline, client = app(webhook=sender, handoff={"webhook_events": ["handoff", "customer_message"]})
    cid = handed_over(client)
    client.post(f"/api/conversations/{cid}/claim", headers=basic("alex", ALEX))
    sent = [
        f"My card is {CARD}",
        f"IBAN {IBAN} please",
        f"mail me at {EMAIL}",
        f"call me on {PHONE}",
        "I live at 12 Main St Apt 4B, Springfield, IL 62704",
    ]
    for text in sent:
        assert (
            client.post("/api/chat", json={"message": text, "conversation_id": cid}).json()["outcome"] == "with_agent"
        )
    client.post(f"/api/conversations/{cid}/reply", headers=basic("alex", ALEX), json={"text": "Thanks"})
    assert sender.flush(10)
    receiver.close()
    assert receiver.events() == ["handoff"] + ["customer_message"] * 5  # claim and agent_reply were not chosen
    raw = b" ".join(body for _, body, _ in receiver.bodies).decode()
    for secret in (CARD, IBAN, EMAIL, PHONE, "12 Main St", "4111"):
        assert secret not in raw
    assert "{{Card Number}}" in raw and "{{IBAN}}" in raw and "{{Email}}" in raw and "{{Address}}" in raw


# ---- 3. one authority for roles: every panel event as an agent and as an admin ----------------------
def test_each_panel_event_checks_the_same_roles_as_rest(app, tmp_path):
    pipeline, client = app()
    waiting, theirs, other = handed_over(client), handed_over(client), handed_over(client)
    client.post(f"/api/conversations/{theirs}/claim", headers=basic("sam", SAM))
    client.post(f"/api/conversations/{other}/claim", headers=ADMIN)  # served by a person, then back to the bot
    client.post(f"/api/conversations/{other}/resolve", headers=ADMIN, json={"return_to_bot": True})
    on = PanelEvents(
        pipeline,
        str(tmp_path / "uploads"),
        Operators("operator", lambda: PASSWORD, {"alex": ("x", "agent"), "sam": ("x", "agent")}),
    )
    agent, admin, nobody = (
        SimpleNamespace(username="alex"),
        SimpleNamespace(username="operator"),
        SimpleNamespace(username=None),
    )

    assert "admin" in on.overview(30, agent)[0] and "| conversations |" in on.overview(30, admin)[0]
    assert "credentials" in on.overview(30, nobody)[0]
    assert set(on.conversations_table(agent)[0]["id"]) == {waiting}
    assert set(on.conversations_table(admin)[0]["id"]) == {waiting, theirs, other}
    assert on.conversations_table(nobody)[0].empty
    assert "neither waiting" in on.open_conversation(other, agent)[0]
    assert "neither waiting" in on.open_conversation(theirs, agent)[0]
    assert "Conversation" in on.open_conversation(other, admin)[0]
    assert list(on.inbox(agent)[0]["conversation"]) == [waiting]
    assert list(on.inbox(admin)[0]["conversation"]) == [waiting, theirs]
    assert "neither waiting" in on.show(theirs, agent) and "State" in on.show(theirs, admin)
    assert "not waiting" in on.claim(other, agent)[0] and "You (operator)" in on.claim(other, admin)[0]
    upload = tmp_path / "gradio" / "notes.md"
    upload.parent.mkdir()
    upload.write_text("---\nid: N\n---\nNotes.")
    status, table, _ = on.reindex([str(upload)], agent, progress=lambda *a, **k: None)
    assert "admin" in status and table.empty and not upload.exists()  # refused, and no file left behind
    assert "admin" in on.delete_upload("notes.md", agent)[0]
    assert on.uploads_listing(agent)[0].empty
    status, entries, _ = on.save_faq(BITCOIN, GOOD, waiting, agent)
    assert "waiting for review" in status and list(entries["status"]) == ["pending"]
    doc_id = entries["entry"][0]
    assert "admin approves" in on.review_faq(doc_id, "approve", agent)[0]
    assert "is live" in on.review_faq(doc_id, "approve", admin)[0]
    assert list(on.faq_history(doc_id, agent)["who"]) == ["alex", "operator"]
    assert "Not sent" in on.send(waiting, "hi", nobody)[0]
    assert on.actions_table(agent)[0].empty and "admin" in on.switch_action("track_order", False, agent)[0]
    assert "no action named" in on.switch_action("track_order", False, admin)[0]  # none declared here


def test_the_panels_own_routes_answer_only_a_signed_in_session(app):
    _, client = app()
    for path in ("/operator/gradio_api/startup-events", "/operator/gradio_api/heartbeat/abc123"):
        assert client.get(path).status_code == 401, path
    r = client.post("/operator/login", data={"username": "operator", "password": PASSWORD})
    assert r.status_code == 200, r.text
    assert client.get("/operator/gradio_api/startup-events").status_code == 200


# ---- 4. CSV cells are written safely -------------------------------------------------------------
def test_formula_cells_are_escaped_in_the_csv_and_read_back_unchanged(tmp_path):
    book = FaqBook(tmp_path)
    formulas = ['=HYPERLINK("http://evil.example","click")', "+1+1", "-2+3", "@SUM(A1)", "=cmd|' /C calc'!A0"]
    for i, formula in enumerate(formulas):
        book.save(f"Question {i}", formula)
    cells = [row[2] for row in csv.reader(book.path.read_text().splitlines()[1:])]
    assert cells == ["'" + f for f in formulas]  # what a spreadsheet shows as text, never runs
    assert [e["answer"] for e in book.entries()] == formulas
    documents = [d for d in iter_documents([str(tmp_path)]) if hasattr(d, "text")]
    assert sorted(d.text.split("\n")[-1] for d in documents) == sorted(formulas)


# ---- 5. client addresses from the TCP peer -------------------------------------------------------
@pytest.mark.parametrize("proxies, limited", [([], True), (["127.0.0.1"], False)])
def test_a_forged_forwarded_for_header_gets_no_fresh_rate_limit_unless_the_proxy_is_trusted(
    tmp_path, monkeypatch, proxies, limited
):
    import uvicorn

    from core.config import load_config
    from tests.app_server import free_port
    from ui.app import create_app, uvicorn_options

    monkeypatch.delenv("CHATBOT_OPERATOR_PASSWORD", raising=False)
    pipeline, _ = serve(tmp_path)
    config = load_config(
        None,
        {
            "index_dir": str(tmp_path / "ix"),
            "db_url": f"sqlite:///{tmp_path}/db.sqlite",
            "server": {"chat_requests_per_minute": 2, "trusted_proxies": proxies, "operator_password": PASSWORD},
        },
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(pipeline, config), host="127.0.0.1", port=port, log_level="warning", **uvicorn_options(config)
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    try:
        codes = [
            httpx.post(
                f"http://127.0.0.1:{port}/api/chat",
                json={"message": f"Returns? {i}"},
                headers={"x-forwarded-for": f"10.9.9.{i}"},
                timeout=30,
            ).status_code
            for i in range(4)
        ]
    finally:
        server.should_exit = True
        thread.join(10)
    assert (429 in codes) is limited, codes


# ---- 6. state-changing REST calls: JSON only, same site ---------------------------------------------
def test_cross_site_forms_and_foreign_origins_are_refused(app):
    _, client = app(server={"cors_origins": ["https://shop.example"]})
    cid = handed_over(client)
    alex = basic("alex", ALEX)
    client.post(f"/api/conversations/{cid}/claim", headers=alex)
    reply = f"/api/conversations/{cid}/reply"
    assert (
        client.post(reply, headers=alex, content=b'{"text": "planted"}').status_code == 415
    )  # no content type: a plain form could send this
    assert (
        client.post(reply, headers={**alex, "content-type": "text/plain"}, content=b'{"text": "x"}').status_code == 415
    )
    assert client.post(reply, headers=alex, data={"text": "planted"}).status_code == 415
    assert (
        client.post(
            "/api/knowledge/faq",
            headers={**alex, "content-type": "text/plain"},
            content=b'{"question": "q", "answer": "a"}',
        ).status_code
        == 415
    )
    evil = {**alex, "origin": "https://evil.example"}
    assert client.post(reply, headers=evil, json={"text": "planted"}).status_code == 403
    assert client.post("/api/chat", headers={"origin": "null"}, json={"message": "hi"}).status_code == 403
    assert (
        client.post(reply, headers={**alex, "origin": "https://shop.example"}, json={"text": "ok"}).status_code == 200
    )
    assert client.post(reply, headers={**alex, "origin": "http://testserver"}, json={"text": "ok"}).status_code == 200
    messages = client.get(f"/api/conversations/{cid}").json()["messages"]
    assert not any("planted" in m["content"] for m in messages)


# ---- 7. the low items --------------------------------------------------------------------------
def test_an_agents_markdown_image_becomes_a_link():
    assert (
        clean_reply('See ![receipt](https://evil.example/pixel.png "t") here')
        == "See [receipt](https://evil.example/pixel.png) here"
    )
    assert "![" not in clean_reply("![](http://x.example/a.png)")


def test_bidirectional_and_zero_width_controls_are_not_shown_to_operators():
    assert "exe" not in shown("invoice\u202egnp.exe").split("gnp")[0] and "\u202e" not in shown("a\u202eb")
    assert shown("pay\u200bpal\u200d\ufeff") == "paypal"


def test_german_and_us_addresses_and_full_names_are_redacted():
    redactor = Redactor(keep=["Lumen & Oak"])
    for text in (
        "Bitte an Hauptstraße 5, 10115 Berlin",
        "Lieferung: Berliner Str. 12a, 80331 München",
        "Ship to 1600 Pennsylvania Avenue NW, Washington, DC 20500",
        "12 Main St Apt 4B, Springfield, IL 62704",
    ):
        redacted, counts = redactor.redact(text)
        assert counts["address"] == 1 and not any(ch.isdigit() for ch in redacted), (text, redacted)
    redacted, counts = redactor.redact("Jane Doe and Hans Müller wrote to Lumen & Oak about The Lamp")
    assert redacted == "{{Name}} and {{Name}} wrote to Lumen & Oak about The Lamp", redacted


def test_an_unknown_user_costs_the_key_derivation_a_known_one_does(monkeypatch):
    derived = []
    real = hashlib.pbkdf2_hmac
    monkeypatch.setattr(hashlib, "pbkdf2_hmac", lambda *a, **k: derived.append(a[3]) or real(*a, **k))
    operators = Operators("operator", lambda: "plain", {"alex": (hash_password("right", 20_000), "agent")})
    assert operators.check("alex", "wrong") is None
    assert operators.check("nobody-here", "wrong") is None
    assert derived[0] == 20_000 and derived[-1] == 20_000 and len(derived) >= 2


def test_customers_see_display_names_and_an_override_names_the_admin(app):
    pipeline, client = app(
        handoff={
            "agents": {
                "alex": {"password": hash_password(ALEX, iterations=1000), "display_name": "Alex"},
                "boss": {
                    "password": hash_password("boss-pw", iterations=1000),
                    "role": "admin",
                    "display_name": "Dana",
                },
            }
        }
    )
    cid = handed_over(client)
    client.post(f"/api/conversations/{cid}/claim", headers=basic("alex", ALEX))
    r = client.post(f"/api/conversations/{cid}/resolve", headers=basic("boss", "boss-pw"), json={"return_to_bot": True})
    assert r.status_code == 200, r.text
    other = handed_over(client)
    client.post(f"/api/conversations/{other}/claim", headers=ADMIN)
    client.post(f"/api/conversations/{other}/reply", headers=ADMIN, json={"text": "Hello from us"})
    notices = [m for m in client.get(f"/api/conversations/{cid}").json()["messages"] if m["role"] == "notice"]
    assert notices[-1]["content"].startswith("Dana has left") and notices[-1]["author"] == "Dana"
    shown_names = [
        m["author"]
        for m in client.get(f"/api/conversations/{other}").json()["messages"]
        if m["role"] in ("agent", "notice")
    ]
    assert shown_names and "operator" not in shown_names and set(shown_names) == {"Lumen & Oak support"}
