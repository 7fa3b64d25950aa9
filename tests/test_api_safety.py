"""The server in front of strangers: hostile bodies, personal data, floods, passwords, a broken database,
a crash mid-reply, other sites, uploads. The app runs on stand-ins (hash embedder, scripted LLM) through
Starlette's TestClient; one test kills a real server process with SIGKILL and restarts it.
"""

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from chatbot.records.store import Store
from chatbot.testing import ScriptedChatModel, scripted_pipeline
from core.config import load_config
from core.errors import ChatbotError
from tests.handoff_app import returns_index
from ui.app import create_app
from ui.guard import LoginGuard, RateLimiter, hash_password, password_matches
from ui.operator_views import transcript_markdown

PASSWORD = "s3cret-operator"
CARD, EMAIL, PHONE, IBAN = (
    "4111 1111 1111 1111",
    "chloe.baker@example.org",
    "+44 7700 900123",
    "GB82 WEST 1234 5698 7654 32",
)
QUESTION = f"How many days do I have to return items? My card is {CARD}, mail {EMAIL}, call {PHONE}, IBAN {IBAN}"


def build(tmp_path, server=None, db_url=None, reply="You can return most items within 30 days of delivery."):
    index = returns_index(tmp_path)
    config = load_config(
        None,
        {
            "company_name": "Lumen & Oak",
            "index_dir": str(tmp_path / "ix"),
            "db_url": db_url or f"sqlite:///{tmp_path}/db.sqlite",
            "server": {"operator_password": PASSWORD, "uploads_dir": str(tmp_path / "uploads"), **(server or {})},
            "grounding": {
                "min_retrieval_cosine": 0.2,
                "off_topic_cosine": 0.05,
                "direct_quote_cosine": 1.01,
                "evidence_answer_cosine": 1.01,
            },
        },
    )
    pipeline = scripted_pipeline(config, index, ScriptedChatModel(reply), config.db_url)
    return pipeline, config


@pytest.fixture
def served(tmp_path, monkeypatch):
    monkeypatch.delenv("CHATBOT_OPERATOR_PASSWORD", raising=False)

    def _served(server=None, **kwargs):
        pipeline, config = build(tmp_path, server, **kwargs)
        return pipeline, TestClient(create_app(pipeline, config), raise_server_exceptions=False)

    return _served


def ask(client, message="How many days do I have to return items?", **extra):
    r = client.post("/api/chat", json={"message": message, **extra})
    assert r.status_code == 200, r.text
    return r.json()


# ---- 8: every body validated; 400/413, never 500 ------------------------------------------------
def test_hostile_bodies_get_a_one_line_error_never_a_500(served):
    pipeline, client = served()
    body = ask(client)
    conv, reply = body["conversation_id"], body["message_id"]
    auth = ("operator", PASSWORD)
    cases = [
        (
            ("post", "/api/chat"),
            {"content": "[" * 30_000 + "]" * 30_000, "headers": {"content-type": "application/json"}},
        ),
        (
            ("post", "/api/chat"),
            {"content": "[" * 100_000 + "]" * 100_000, "headers": {"content-type": "application/json"}},
        ),
        (
            ("post", "/api/feedback"),
            {"content": '{"a":' * 10_000 + "1" + "}" * 10_000, "headers": {"content-type": "application/json"}},
        ),
        (("post", "/api/chat"), {"json": {"message": 42}}),
        (("post", "/api/chat"), {"json": {"message": "hi", "conversation_id": ["x"]}}),
        (("post", "/api/chat"), {"json": {"message": "hi", "conversation_id": "../../etc"}}),
        (("post", "/api/chat"), {"json": ["hi"]}),
        (("post", "/api/chat"), {"json": {"message": "x" * 30_000}}),
        (("post", "/api/feedback"), {"json": {"conversation_id": conv, "rating": 1, "comment": {"a": 1}}}),
        (("post", "/api/feedback"), {"json": {"conversation_id": conv, "rating": 1, "message_id": [reply]}}),
        (("post", "/api/feedback"), {"json": {"conversation_id": conv, "rating": True}}),
        (("post", "/api/feedback"), {"json": {"conversation_id": conv, "rating": 5}}),
        (("post", "/api/feedback"), {"json": {"conversation_id": conv, "rating": 1, "message_id": 10**30}}),
        (("post", "/api/feedback"), {"content": b"\xff\xfe", "headers": {"content-type": "application/json"}}),
        (("get", "/api/analytics?days=1000000000"), {"auth": auth}),
        (("get", "/api/analytics?days=-1"), {"auth": auth}),
        (("get", "/api/analytics?days=abc"), {"auth": auth}),
    ]
    for (method, path), kwargs in cases:
        r = getattr(client, method)(path, **kwargs) if method == "get" else client.request("POST", path, **kwargs)
        assert r.status_code in (400, 413, 422), (path, str(kwargs)[:80], r.status_code, r.text[:200])
        error = r.json()["error"]
        assert isinstance(error, str) and "\n" not in error and len(error) < 200, error
    assert client.get("/api/analytics?days=366", auth=auth).status_code == 200


def test_an_oversized_body_is_refused_with_413_before_it_is_read(served):
    _, client = served({"max_upload_mb": 1})
    r = client.post("/api/chat", files={"audio": ("q.wav", b"\0" * (3 * 2**20), "audio/wav")})
    assert r.status_code == 413 and "MB" in r.json()["error"]
    r = client.post("/api/chat", files={"audio": ("q.wav", b"\0" * (2**20 + 10), "audio/wav")})
    assert r.status_code == 400 and "over 1 MB" in r.json()["error"]


# ---- 5: personal data redacted before anything is written, never logged ----------------------------
def test_personal_data_is_redacted_in_the_database_file_and_in_what_is_returned(served, tmp_path):
    pipeline, client = served()
    body = ask(client, QUESTION)
    assert body["outcome"] == "answered"  # the engine still understood the question
    r = client.post(
        "/api/feedback",
        json={
            "conversation_id": body["conversation_id"],
            "message_id": body["message_id"],
            "rating": -1,
            "comment": f"ring me on {PHONE} or {EMAIL}",
        },
    )
    assert r.status_code == 200
    stored = client.get(f"/api/conversations/{body['conversation_id']}").json()["messages"][0]["content"]
    assert (
        "{{Card Number}}" in stored and "{{Email}}" in stored and "{{Phone Number}}" in stored and "{{IBAN}}" in stored
    )
    pipeline.store.engine.dispose()
    raw = (tmp_path / "db.sqlite").read_bytes()
    for secret in (CARD, EMAIL, PHONE, IBAN, "4111111111111111", "900123", "chloe.baker"):
        assert secret.encode() not in raw, secret
    assert b"return items" in raw  # the question itself is kept


def test_a_failed_insert_is_a_503_and_logs_neither_the_message_nor_sql_parameters(served, tmp_path, caplog):
    pipeline, client = served()
    conv = ask(client)["conversation_id"]
    with sqlite3.connect(tmp_path / "db.sqlite") as db:  # the next message insert fails inside SQLite
        db.execute("CREATE TRIGGER full BEFORE INSERT ON messages BEGIN SELECT RAISE(FAIL, 'disk is full'); END")
    caplog.set_level(logging.DEBUG)
    secret = "secret-words-of-the-customer"
    r = client.post("/api/chat", json={"message": f"{secret} {CARD}", "conversation_id": conv})
    assert r.status_code == 503 and r.json()["error"].startswith("our conversation records are unavailable")
    assert secret not in caplog.text and "4111" not in caplog.text and "database failure" in caplog.text


# ---- 2: limits ------------------------------------------------------------------------------------
def test_chat_is_limited_per_client_address_with_429_and_retry_after(served):
    pipeline, client = served({"chat_requests_per_minute": 5})
    for _ in range(5):
        ask(client, "talk to a person")  # each would open a handoff
    r = client.post("/api/chat", json={"message": "talk to a person"})
    assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60
    assert "too many" in r.json()["error"]
    assert pipeline.store.stats.totals()["handed_over"] == 5
    other = TestClient(client.app, client=("203.0.113.9", 5000))
    assert other.post("/api/chat", json={"message": "hello there, returns?"}).status_code == 200


def test_rate_limiter_window_slides():
    now = [0.0]
    limiter = RateLimiter(2, clock=lambda: now[0])
    limiter.hit("a"), limiter.hit("a")
    with pytest.raises(ChatbotError) as refused:
        limiter.hit("a")
    assert refused.value.retry_after_s == 60
    limiter.hit("b")
    limiter.hit("a", "ratings")  # another kind has its own budget
    now[0] = 60.5
    limiter.hit("a")


def test_wrong_operator_passwords_lock_the_address_out_even_for_the_right_one(served):
    _, client = served()
    for i in range(30):
        client.post("/operator/login", data={"username": "operator", "password": f"guess-{i}"})
    r = client.post("/operator/login", data={"username": "operator", "password": PASSWORD})
    assert r.status_code == 429 and "retry-after" in r.headers and "wrong passwords" in r.json()["error"]
    for i in range(10):
        client.get("/api/analytics", auth=("operator", f"guess-{i}"))
    r = client.get("/api/analytics", auth=("operator", PASSWORD))
    assert r.status_code == 429
    fresh = TestClient(client.app, client=("198.51.100.7", 4000))
    assert fresh.post("/operator/login", data={"username": "operator", "password": PASSWORD}).status_code == 200


def test_login_lockout_doubles_and_a_right_password_resets_it():
    now = [0.0]
    guard = LoginGuard(3, 10, clock=lambda: now[0])
    for _ in range(3):
        guard.failed("a")
    with pytest.raises(ChatbotError):
        guard.check("a")
    now[0] = 10.5
    guard.check("a")
    for _ in range(3):
        guard.failed("a")
    now[0] = 25
    with pytest.raises(ChatbotError):  # second lock-out: 20 s
        guard.check("a")
    guard.succeeded("a")
    guard.check("a")


def test_a_hashed_operator_password_in_config_opens_the_panel_and_the_api(served):
    stored = hash_password(PASSWORD, iterations=1000)
    assert stored.startswith("pbkdf2_sha256$1000$") and PASSWORD not in stored
    assert password_matches(PASSWORD, stored) and not password_matches("nope", stored)
    assert password_matches("plain", "plain") and not password_matches("", "") and not password_matches("x", "")
    _, client = served({"operator_password": stored})
    assert client.get("/api/analytics", auth=("operator", PASSWORD)).status_code == 200
    assert client.get("/api/analytics", auth=("operator", stored)).status_code == 401  # the hash is no password
    assert client.post("/operator/login", data={"username": "operator", "password": PASSWORD}).status_code == 200
    hashed = subprocess.run(
        [sys.executable, "-m", "ui.guard"], input="pw\n", capture_output=True, text=True, check=True
    )
    assert password_matches("pw", hashed.stdout.strip())


def test_one_rating_per_reply_and_only_on_a_reply_of_that_conversation(served):
    pipeline, client = served()
    mine, theirs = ask(client), ask(client)
    vote = {"conversation_id": mine["conversation_id"], "message_id": mine["message_id"]}
    assert client.post("/api/feedback", json={**vote, "rating": 1}).status_code == 200
    for _ in range(20):
        assert client.post("/api/feedback", json={**vote, "rating": -1}).status_code == 200
    assert pipeline.store.stats.totals()["ratings"] == {-1: 1}  # the last one counts, once
    r = client.post("/api/feedback", json={**vote, "message_id": theirs["message_id"], "rating": -1})
    assert r.status_code == 404 and "no reply" in r.json()["error"]
    customer_message = pipeline.store.conversations.conversation(mine["conversation_id"]).messages[0].id
    assert client.post("/api/feedback", json={**vote, "message_id": customer_message, "rating": -1}).status_code == 404
    assert pipeline.store.stats.totals()["ratings"] == {-1: 1}


# ---- 6: a database that cannot be written ------------------------------------------------------------
def test_a_read_only_database_stops_the_server_at_start_with_one_line(served, tmp_path):
    pipeline, _ = served()
    ask(TestClient(create_app(*build(tmp_path))))  # the database exists and is migrated
    read_only = f"sqlite:///file:{tmp_path}/db.sqlite?mode=ro&uri=true"
    with pytest.raises(ChatbotError, match="cannot be written") as refused:
        create_app(*build(tmp_path, db_url=read_only))
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    "make_url",
    [
        lambda tmp: (
            tmp.joinpath("corrupt.db").write_bytes(b"this is not a database" * 100),
            f"sqlite:///{tmp}/corrupt.db",
        )[1],
        lambda tmp: "sqlite:////proc/no-such-folder/chatbot.db",
    ],
)
def test_a_corrupt_or_unwritable_database_is_one_line_and_exit_2_on_the_cli(tmp_path, make_url, repo_root):
    url = make_url(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "chatbot", "report", "--db", url],
        capture_output=True,
        text=True,
        cwd=repo_root,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    assert "cannot open the database" in result.stderr


# ---- 7: a reply cut off by a crash is handed to a person -----------------------------------------------
def test_customer_messages_left_without_a_reply_are_handed_over_at_start(served, tmp_path):
    pipeline, client = served()
    done = ask(client)
    cut = pipeline.store.conversations.new_conversation("api")
    pipeline.store.conversations.add_message(cut, "customer", "Where is my order?")
    client = TestClient(create_app(*build(tmp_path)))  # a restart
    conv = client.get(f"/api/conversations/{cut}").json()
    assert conv["handoff"] == {"needed": True, "reason": "interrupted"} and conv["messages"][0]["interrupted"]
    assert client.get(f"/api/conversations/{done['conversation_id']}").json()["handoff"]["needed"] is False
    assert "interrupted" in transcript_markdown(pipeline.store.conversations.conversation(cut))
    again = build(tmp_path)[0]
    assert again.recover() == []  # once only


SLOW_SERVER = r"""
import sys, time, uvicorn
sys.path.insert(0, sys.argv[4])
from tests.test_api_safety import build
from chatbot.testing import ScriptedChatModel
from ui.app import create_app
from pathlib import Path

class Slow(ScriptedChatModel):
    def stream(self, messages, max_new_tokens):
        for token in super().stream(messages, max_new_tokens):
            time.sleep(float(sys.argv[3]))
            yield token

pipeline, config = build(Path(sys.argv[1]))
pipeline.llm = Slow("You can return most items within 30 days of delivery.")
uvicorn.run(create_app(pipeline, config), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def _start(tmp_path, port, delay, repo_root):
    script = tmp_path / "slow_server.py"
    script.write_text(SLOW_SERVER)
    process = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path), str(port), str(delay), str(repo_root)],
        cwd=repo_root,
        env={**os.environ, "PYTHONPATH": str(repo_root)},
    )
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the server did not start")


@pytest.mark.e2e  # two real server processes, ~15 s
def test_kill_9_mid_reply_then_restart_hands_the_question_to_a_person(tmp_path, repo_root):
    from tests.app_server import free_port

    port = free_port()
    server = _start(tmp_path, port, 2.0, repo_root)  # 2 s per token: the reply is still being written
    try:
        with pytest.raises(httpx.HTTPError):
            httpx.post(
                f"http://127.0.0.1:{port}/api/chat",
                json={"message": "How many days do I have to return items?"},
                timeout=3,
            )
    finally:
        os.kill(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
    cut = Store(f"sqlite:///{tmp_path}/db.sqlite").stats.conversation_list()[0].id
    server = _start(tmp_path, port, 0.0, repo_root)
    try:
        conv = httpx.get(f"http://127.0.0.1:{port}/api/conversations/{cut}", timeout=10).json()
        assert [m["role"] for m in conv["messages"]] == ["customer"] and conv["messages"][0]["interrupted"]
        assert conv["handoff"] == {"needed": True, "reason": "interrupted"}
    finally:
        server.kill()
        server.wait(timeout=30)


# ---- 3: other sites ------------------------------------------------------------------------------------
def test_other_origins_get_no_cors_grant_and_the_session_cookie_is_not_samesite_none(served):
    _, client = served()
    evil = {"Origin": "https://evil.example", "Host": "help.example.com"}
    for method, path in (
        ("get", "/operator/config"),
        ("get", "/config"),
        ("get", "/api/conversations/x"),
        ("options", "/api/chat"),
    ):
        headers = {**evil, "Access-Control-Request-Method": "POST"} if method == "options" else evil
        r = client.request(method.upper(), path, headers=headers)
        assert "access-control-allow-origin" not in r.headers, (path, r.headers)
        assert "access-control-allow-credentials" not in r.headers, (path, r.headers)
    r = client.post("/operator/login", data={"username": "operator", "password": PASSWORD})
    cookies = r.headers.get_list("set-cookie")
    assert cookies and not any("samesite=none" in c.lower() for c in cookies)

    _, widget_host = served({"cors_origins": ["https://shop.example"]})
    r = widget_host.options(
        "/api/chat",
        headers={
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert r.headers["access-control-allow-origin"] == "https://shop.example"
    assert "access-control-allow-credentials" not in r.headers


# ---- 4: uploads -------------------------------------------------------------------------------------------
def test_customer_uploads_are_capped_and_operator_files_are_off_the_public_routes(served):
    _, client = served({"max_upload_mb": 1})
    r = client.post("/gradio_api/upload", files={"files": ("big.wav", b"\0" * (2 * 2**20), "audio/wav")})
    assert r.status_code == 413
    assert client.post("/operator/login", data={"username": "operator", "password": PASSWORD}).status_code == 200
    r = client.post(
        "/operator/gradio_api/upload", files={"files": ("prices.md", b"# internal price list", "text/markdown")}
    )
    assert r.status_code == 200, r.text
    path = r.json()[0]
    assert client.get(f"/operator/gradio_api/file={path}").status_code == 200  # the operator sees it
    anonymous = TestClient(client.app)
    assert anonymous.get(f"/gradio_api/file={path}").status_code == 403  # the customer app does not serve it
    assert anonymous.get(f"/operator/gradio_api/file={path}").status_code == 401


def test_two_replicas_sharing_redis_and_a_database_let_one_clients_limit_through_once(tmp_path, monkeypatch, redis_url):
    """Two apps (replicas) on one database and one Redis: 20 chat requests from one client, alternating
    between them, get exactly the configured 5 through, counted together; the rest 429."""
    import redis as redis_client

    monkeypatch.delenv("CHATBOT_OPERATOR_PASSWORD", raising=False)
    redis_client.Redis.from_url(redis_url).flushdb()
    pipeline, config = build(tmp_path, {"chat_requests_per_minute": 5, "redis_url": redis_url})
    replicas = [TestClient(create_app(pipeline, config), client=("203.0.113.7", 5000)) for _ in range(2)]
    codes = [replicas[n % 2].post("/api/chat", json={"message": "returns?"}).status_code for n in range(20)]
    assert codes.count(200) == 5 and codes.count(429) == 15
    assert pipeline.store.stats.totals()["conversations"] == 5


def test_an_operator_signed_in_on_one_replica_is_signed_in_on_the_other_and_signing_out_ends_both(
    tmp_path, monkeypatch, redis_url
):
    """The panel's sessions live in Redis with `redis_url` (ui/panel_sessions.py): the cookie one replica
    set opens the other's panel routes; without it a replica knows only its own sign-ins."""
    monkeypatch.delenv("CHATBOT_OPERATOR_PASSWORD", raising=False)
    upload = {"files": ("notes.md", b"# shift notes", "text/markdown")}
    for shared in (redis_url, ""):
        (folder := tmp_path / ("shared" if shared else "alone")).mkdir()
        pipeline, config = build(folder, {"redis_url": shared})
        a, b = (TestClient(create_app(pipeline, config)) for _ in range(2))
        assert a.post("/operator/login", data={"username": "operator", "password": PASSWORD}).status_code == 200
        b.cookies.update(a.cookies)
        assert a.post("/operator/gradio_api/upload", files=upload).status_code == 200
        assert b.post("/operator/gradio_api/upload", files=upload).status_code == (200 if shared else 401)
        if shared:
            b.get("/operator/logout", follow_redirects=False)
            assert a.post("/operator/gradio_api/upload", files=upload).status_code == 401
