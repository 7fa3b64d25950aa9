import sqlite3
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, inspect

from chatbot.records import migrations as migrations_module
from chatbot.records.costs import TurnCost, Usage
from chatbot.records.migrations import MIGRATIONS
from chatbot.records.store import Store, StoredSource
from chatbot.testing import price_sheet as sheet
from core.errors import ChatbotError

ALL_MIGRATIONS = [
    "m001_initial",
    "m002_stage_costs",
    "m003_eval_runs",
    "m004_one_rating_per_message",
    "m005_live_handoff",
    "m006_faq_review",
    "m007_actions",
    "m008_action_sessions",
    "m009_ownership",
    "m010_index_versions",
    "m011_turn_owner",
]

# The schema as the first release created it (SQLAlchemy `Table.create` in m001_initial, before the
# migrations spelled out their DDL): databases in the field look like this with m001 applied.
LEGACY_M001 = """
CREATE TABLE schema_migrations (name VARCHAR(100) NOT NULL, applied_at DATETIME NOT NULL, PRIMARY KEY (name));
CREATE TABLE conversations (id VARCHAR(32) NOT NULL, created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL,
    channel VARCHAR(20) NOT NULL, handoff_needed BOOLEAN NOT NULL, handoff_reason VARCHAR(40),
    prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, compute_s FLOAT NOT NULL,
    cost_usd FLOAT NOT NULL, api_shadow_cost_usd FLOAT NOT NULL, PRIMARY KEY (id));
CREATE TABLE messages (id INTEGER NOT NULL, conversation_id VARCHAR(32) NOT NULL, role VARCHAR(12) NOT NULL,
    content TEXT NOT NULL, created_at DATETIME NOT NULL, outcome VARCHAR(40), extra TEXT, PRIMARY KEY (id),
    FOREIGN KEY(conversation_id) REFERENCES conversations (id));
CREATE INDEX ix_messages_conversation_id ON messages (conversation_id);
CREATE TABLE message_sources (message_id INTEGER NOT NULL, rank INTEGER NOT NULL, doc_id VARCHAR(300) NOT NULL,
    title TEXT NOT NULL, url TEXT NOT NULL, score FLOAT NOT NULL, PRIMARY KEY (message_id, rank),
    FOREIGN KEY(message_id) REFERENCES messages (id));
CREATE TABLE handoffs (id INTEGER NOT NULL, conversation_id VARCHAR(32) NOT NULL, message_id INTEGER,
    reason VARCHAR(40) NOT NULL, created_at DATETIME NOT NULL, PRIMARY KEY (id),
    FOREIGN KEY(conversation_id) REFERENCES conversations (id), FOREIGN KEY(message_id) REFERENCES messages (id));
CREATE INDEX ix_handoffs_conversation_id ON handoffs (conversation_id);
CREATE TABLE feedback (id INTEGER NOT NULL, conversation_id VARCHAR(32) NOT NULL, message_id INTEGER,
    rating INTEGER NOT NULL, comment TEXT, created_at DATETIME NOT NULL, PRIMARY KEY (id),
    FOREIGN KEY(conversation_id) REFERENCES conversations (id), FOREIGN KEY(message_id) REFERENCES messages (id));
CREATE INDEX ix_feedback_conversation_id ON feedback (conversation_id);
CREATE TABLE usage (message_id INTEGER NOT NULL, conversation_id VARCHAR(32) NOT NULL,
    prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, retrieval_s FLOAT NOT NULL,
    llm_s FLOAT NOT NULL, asr_s FLOAT NOT NULL, ocr_s FLOAT NOT NULL, audio_s FLOAT NOT NULL,
    device VARCHAR(10) NOT NULL, cost_usd FLOAT NOT NULL, api_shadow_cost_usd FLOAT NOT NULL,
    created_at DATETIME NOT NULL, PRIMARY KEY (message_id), FOREIGN KEY(message_id) REFERENCES messages (id),
    FOREIGN KEY(conversation_id) REFERENCES conversations (id));
CREATE INDEX ix_usage_conversation_id ON usage (conversation_id);
INSERT INTO schema_migrations VALUES ('m001_initial', '2025-01-01 00:00:00.000000');
INSERT INTO conversations VALUES ('c0ffee', '2025-01-01 00:00:00.000000', '2025-01-01 00:00:00.000000', 'web', 0,
    NULL, 10, 5, 2.0, 0.002, 0.004);
INSERT INTO messages VALUES (1, 'c0ffee', 'customer', 'hello', '2025-01-01 00:00:00.000000', NULL, '{}');
INSERT INTO messages VALUES (2, 'c0ffee', 'assistant', 'hi', '2025-01-01 00:00:00.000000', 'answered', '{}');
INSERT INTO usage VALUES (2, 'c0ffee', 10, 5, 0.5, 1.5, 0.0, 0.0, 0.0, 'cpu', 0.002, 0.004,
    '2025-01-01 00:00:00.000000');
"""
# The same first release on PostgreSQL: `Table.create` made SERIAL keys, FLOAT and TIMESTAMP WITH TIME ZONE
# (compiled from that release's tables with SQLAlchemy's postgresql dialect). Rows get their ids from the
# sequences, as they did in the field.
LEGACY_M001_POSTGRESQL = """
CREATE TABLE schema_migrations (name VARCHAR(100) NOT NULL, applied_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (name));
CREATE TABLE conversations (id VARCHAR(32) NOT NULL, created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL, channel VARCHAR(20) NOT NULL, handoff_needed BOOLEAN NOT NULL,
    handoff_reason VARCHAR(40), prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
    compute_s FLOAT NOT NULL, cost_usd FLOAT NOT NULL, api_shadow_cost_usd FLOAT NOT NULL, PRIMARY KEY (id));
CREATE TABLE messages (id SERIAL NOT NULL, conversation_id VARCHAR(32) NOT NULL, role VARCHAR(12) NOT NULL,
    content TEXT NOT NULL, created_at TIMESTAMP WITH TIME ZONE NOT NULL, outcome VARCHAR(40), extra TEXT,
    PRIMARY KEY (id), FOREIGN KEY(conversation_id) REFERENCES conversations (id));
CREATE INDEX ix_messages_conversation_id ON messages (conversation_id);
CREATE TABLE message_sources (message_id INTEGER NOT NULL, rank INTEGER NOT NULL, doc_id VARCHAR(300) NOT NULL,
    title TEXT NOT NULL, url TEXT NOT NULL, score FLOAT NOT NULL, PRIMARY KEY (message_id, rank),
    FOREIGN KEY(message_id) REFERENCES messages (id));
CREATE TABLE handoffs (id SERIAL NOT NULL, conversation_id VARCHAR(32) NOT NULL, message_id INTEGER,
    reason VARCHAR(40) NOT NULL, created_at TIMESTAMP WITH TIME ZONE NOT NULL, PRIMARY KEY (id),
    FOREIGN KEY(conversation_id) REFERENCES conversations (id), FOREIGN KEY(message_id) REFERENCES messages (id));
CREATE INDEX ix_handoffs_conversation_id ON handoffs (conversation_id);
CREATE TABLE feedback (id SERIAL NOT NULL, conversation_id VARCHAR(32) NOT NULL, message_id INTEGER,
    rating INTEGER NOT NULL, comment TEXT, created_at TIMESTAMP WITH TIME ZONE NOT NULL, PRIMARY KEY (id),
    FOREIGN KEY(conversation_id) REFERENCES conversations (id), FOREIGN KEY(message_id) REFERENCES messages (id));
CREATE INDEX ix_feedback_conversation_id ON feedback (conversation_id);
CREATE TABLE usage (message_id INTEGER NOT NULL, conversation_id VARCHAR(32) NOT NULL,
    prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, retrieval_s FLOAT NOT NULL,
    llm_s FLOAT NOT NULL, asr_s FLOAT NOT NULL, ocr_s FLOAT NOT NULL, audio_s FLOAT NOT NULL,
    device VARCHAR(10) NOT NULL, cost_usd FLOAT NOT NULL, api_shadow_cost_usd FLOAT NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL, PRIMARY KEY (message_id),
    FOREIGN KEY(message_id) REFERENCES messages (id), FOREIGN KEY(conversation_id) REFERENCES conversations (id));
CREATE INDEX ix_usage_conversation_id ON usage (conversation_id);
INSERT INTO schema_migrations VALUES ('m001_initial', '2025-01-01 00:00:00+00');
INSERT INTO conversations VALUES ('c0ffee', '2025-01-01 00:00:00+00', '2025-01-01 00:00:00+00', 'web', false,
    NULL, 10, 5, 2.0, 0.002, 0.004);
INSERT INTO messages (conversation_id, role, content, created_at, outcome, extra)
    VALUES ('c0ffee', 'customer', 'hello', '2025-01-01 00:00:00+00', NULL, '{}');
INSERT INTO messages (conversation_id, role, content, created_at, outcome, extra)
    VALUES ('c0ffee', 'assistant', 'hi', '2025-01-01 00:00:00+00', 'answered', '{}');
INSERT INTO usage VALUES (2, 'c0ffee', 10, 5, 0.5, 1.5, 0.0, 0.0, 0.0, 'cpu', 0.002, 0.004, '2025-01-01 00:00:00+00')
"""


def _columns(store: Store) -> dict[str, list[str]]:
    inspector = inspect(store.engine)
    return {t: sorted(c["name"] for c in inspector.get_columns(t)) for t in store.db.tables()}


def _legacy_database(url: str) -> str:
    """`url` (an empty database) as the first release left it: m001 applied, one metered turn."""
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
            connection.executescript(LEGACY_M001)
        return url
    engine = create_engine(url)
    with engine.begin() as connection:
        for statement in LEGACY_M001_POSTGRESQL.split(";\n"):
            connection.exec_driver_sql(statement)
    engine.dispose()
    return url


def test_migrations_are_named_recorded_and_applied_once(db_url):
    url = db_url
    store = Store(url)
    assert store.db.applied_migrations() == ALL_MIGRATIONS == [m.__name__ for m in MIGRATIONS]
    assert {"conversations", "messages", "message_sources", "handoffs", "feedback", "usage"} <= set(store.db.tables())
    conversation = store.conversations.new_conversation()
    assert Store(url).db.applied_migrations() == ALL_MIGRATIONS  # reopening applies nothing again
    Store(url).conversations.require_conversation(conversation)


def test_a_database_made_by_the_first_release_upgrades_to_the_same_schema_as_a_fresh_one(new_database):
    old = Store(_legacy_database(new_database("old")))
    assert old.db.applied_migrations() == ALL_MIGRATIONS
    assert _columns(old) == _columns(Store(new_database("fresh")))
    [turn] = old.stats.stage_usage("c0ffee")  # metered before m002: the cost is split by seconds
    assert not turn.stage_costs_recorded
    assert turn.stage_cost_usd == pytest.approx(
        {"retrieval": 0.0005, "llm": 0.0015, "asr": 0.0, "ocr": 0.0, "action": 0.0}
    )
    mid = old.conversations.add_message("c0ffee", "assistant", "again", outcome="answered")
    old.conversations.add_usage(
        "c0ffee", mid, Usage(llm_s=1.0), sheet(hardware_usd_per_hour={"cpu": 3.6}).price(Usage(llm_s=1.0))
    )
    assert old.stats.stage_usage("c0ffee")[1].stage_costs_recorded
    assert [m.content for m in old.conversations.conversation("c0ffee").messages] == ["hello", "hi", "again"]


@pytest.mark.parametrize("start", ["fresh", "existing", "legacy"])
def test_a_later_migration_that_adds_a_column_works_on_fresh_and_existing_databases(new_database, monkeypatch, start):
    url = _legacy_database(new_database("legacy")) if start == "legacy" else new_database("db")
    if start == "existing":
        Store(url).conversations.new_conversation()

    def m099_conversation_language(connection):
        connection.exec_driver_sql("ALTER TABLE conversations ADD COLUMN language VARCHAR(12)")

    monkeypatch.setattr(migrations_module, "MIGRATIONS", [*MIGRATIONS, m099_conversation_language])
    store = Store(url)
    assert store.db.applied_migrations() == [*ALL_MIGRATIONS, "m099_conversation_language"]
    assert "language" in _columns(store)["conversations"]
    store.conversations.require_conversation(store.conversations.new_conversation())
    assert Store(url).db.applied_migrations()[-1] == "m099_conversation_language"  # once


def test_a_turn_is_stored_with_sources_usage_handoff_and_feedback(db_url):
    store = Store(db_url)
    cid = store.conversations.new_conversation("web")
    store.conversations.add_message(cid, "customer", "where is my order?")
    mid = store.conversations.add_message(cid, "assistant", "Here. [1]", outcome="answered")
    store.conversations.add_sources(mid, [StoredSource("LO-1", "Track", "https://x", 0.5)])
    store.conversations.add_usage(
        cid, mid, Usage(prompt_tokens=10, completion_tokens=5, llm_s=1.0), TurnCost(0.001, 0.002)
    )
    store.conversations.add_usage(
        cid, store.conversations.add_message(cid, "assistant", "again"), Usage(prompt_tokens=1), TurnCost(0.001, 0.0)
    )
    store.conversations.add_handoff(cid, mid, "no_knowledge")
    store.conversations.add_handoff(cid, mid, "customer_request")
    store.conversations.add_feedback(cid, mid, -1, "not helpful")

    conversation = store.conversations.conversation(cid)
    assert [m.role for m in conversation.messages] == ["customer", "assistant", "assistant"]
    assert conversation.messages[1].sources[0].doc_id == "LO-1"
    assert conversation.handoff_needed and conversation.handoff_reason == "no_knowledge"  # the first reason
    assert round(conversation.cost_usd, 6) == 0.002 and round(conversation.api_shadow_cost_usd, 6) == 0.002
    totals = store.stats.totals()
    assert totals["conversations"] == 1 and totals["messages"] == 3 and totals["ratings"] == {-1: 1}
    assert totals["handoff_reasons"] == {"no_knowledge": 1}
    assert store.conversations.history(cid, 2) == [("assistant", "Here. [1]"), ("assistant", "again")]


def _at_once(calls) -> list:
    """Run the calls in threads released together; their results (or exceptions) in order."""
    barrier, results = threading.Barrier(len(calls)), [None] * len(calls)

    def run(n, call):
        barrier.wait()
        try:
            results[n] = call()
        except Exception as exc:  # noqa: BLE001 - returned to the test
            results[n] = exc

    threads = [threading.Thread(target=run, args=(n, call)) for n, call in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_servers_opening_a_new_database_at_once_migrate_it_once(db_url):
    opened = _at_once([lambda: Store(db_url).db.applied_migrations() for _ in range(6)])  # a store each, as processes
    assert opened == [ALL_MIGRATIONS] * 6


def test_a_turn_and_operators_racing_open_one_live_handoff(db_url):
    # PostgreSQL serialises them across processes (a store each); SQLite within the serving process
    stores = [Store(db_url) for _ in range(6)] if db_url.startswith("postgresql") else [Store(db_url)] * 6
    for _ in range(3):
        cid = stores[0].conversations.new_conversation()
        opened = _at_once([lambda s=s, cid=cid: s.live.open(cid, "operator") for s in stores])
        assert sorted(opened) == [False] * 5 + [True]
    assert len(stores[0].live.open_handoffs()) == 3


def test_a_turn_left_unanswered_by_a_dead_replica_is_found_once_and_a_live_ones_is_left_alone(db_url):
    """Replicas share the database: a customer message whose server run stopped, or was not seen since
    `live_since`, is interrupted; one a live run is still answering is not; one no run took (the CLI)
    only at a server's start (`unowned`). Two replicas flagging it at once make one handoff."""
    from sqlalchemy import update

    from chatbot.records.schema import server_runs

    store, chats = Store(db_url), Store(db_url).conversations
    live, dead, stopped = (store.ownership.server_started("cpu", host) for host in ("a", "b", "c"))
    long_ago = datetime.now(UTC) - timedelta(minutes=10)
    with store.db.begin() as c:
        c.execute(update(server_runs).where(server_runs.c.id == dead).values(seen_at=long_ago))
    store.ownership.server_seen(stopped, stopped=True)
    asked = {}
    for run in (live, dead, stopped, None):
        conversation = chats.new_conversation("api")
        asked[run] = (conversation, chats.add_message(conversation, "customer", "where is it?", server_run=run))
    live_since = datetime.now(UTC) - timedelta(minutes=3)
    assert set(chats.interrupted(live_since, unowned=False)) == {asked[dead], asked[stopped]}
    assert set(chats.interrupted(live_since)) == {asked[dead], asked[stopped], asked[None]}
    assert [chats.flag_interrupted(*asked[dead]) for _ in range(2)] == [True, False]  # one handoff per message
    assert asked[dead] not in chats.interrupted(live_since)
    assert chats.conversation(asked[dead][0]).handoff_reason == "interrupted"
    assert chats.conversation(asked[live][0]).handoff_needed is False


def test_text_with_nul_characters_is_stored_without_them(db_url):
    store = Store(db_url)  # PostgreSQL's TEXT refuses NUL; SQLite kept it
    cid = store.conversations.new_conversation()
    mid = store.conversations.add_message(
        cid, "assistant", "Returns\x00 take 30 days.", outcome="answered", extra={"draft": "a\x00b"}
    )
    store.conversations.add_sources(mid, [StoredSource("LO-1", "Ret\x00urns", "https://x/\x00", 0.5)])
    store.conversations.add_feedback(cid, mid, 1, "thanks\x00!")  # a customer's comment: the REST API passes it as sent
    [message] = store.conversations.conversation(cid).messages
    assert (message.content, message.sources[0].title) == ("Returns take 30 days.", "Returns")
    assert message.extra == {"draft": "ab"}
    assert store.stats.totals()["ratings"] == {1: 1}


@pytest.mark.postgres
def test_a_postgresql_url_without_a_driver_uses_psycopg(postgres):
    url = postgres.create_database().replace("postgresql+psycopg://", "postgresql://")
    assert Store(url).db.applied_migrations() == ALL_MIGRATIONS


def test_times_read_back_are_utc_whatever_the_server_zone(db_url):
    store = Store(db_url)  # the test PostgreSQL runs in America/New_York; SQLite hands back naive UTC
    cid = store.conversations.new_conversation()
    store.conversations.add_message(cid, "customer", "hello")
    [message] = store.conversations.conversation(cid).messages
    assert abs(message.created_at.replace(tzinfo=UTC) - datetime.now(UTC)) < timedelta(minutes=1)  # per-day figures


def test_an_unreachable_postgresql_says_so_without_its_password():
    with pytest.raises(ChatbotError) as failed:  # port 1: nothing listens there
        Store("postgresql://bot:s3cret@127.0.0.1:1/chatbot").db.applied_migrations()
    assert "s3cret" not in str(failed.value) and "postgresql://bot:***@127.0.0.1:1/chatbot" in str(failed.value)


@pytest.mark.postgres
def test_the_store_reconnects_after_postgresql_restarts(postgres):
    store = Store(postgres.create_database())
    cid = store.conversations.new_conversation()
    postgres.restart()  # the pooled connection died with the server: the next turn must not fail on it
    store.conversations.require_conversation(cid)


def test_a_reply_whose_last_write_fails_leaves_nothing_of_it_half_written(db_url, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from chatbot.records import conversations as conversations_module
    from chatbot.records.store import StoreUnavailable

    store = Store(db_url)
    cid = store.conversations.new_conversation()
    store.conversations.add_message(cid, "customer", "Can I pay with bitcoin?")  # stored first, on its own

    def disk_full(*args):
        raise OperationalError("INSERT INTO handoffs", {}, Exception("database or disk is full"))

    monkeypatch.setattr(conversations_module, "_insert_handoff", disk_full)  # the turn's last write
    used, cost = Usage(retrieval_s=0.1, llm_s=1.0, prompt_tokens=50, completion_tokens=9), TurnCost(0.01, 0.02)
    with pytest.raises(StoreUnavailable):
        store.conversations.record_reply(
            cid,
            "Let me find someone.",
            "no_knowledge",
            {"grounding": {"claims": 1}},
            [StoredSource("R", "Returns", "https://x/R", 0.4)],
            used,
            cost,
        )
    conversation = store.conversations.conversation(cid)
    assert [m.role for m in conversation.messages] == ["customer"]  # no reply without its sources, usage, handoff
    assert store.stats.stage_usage(cid) == [] and not conversation.handoff_needed
    assert store.stats.totals()["prompt_tokens"] == 0 and conversation.cost_usd == 0
    monkeypatch.undo()
    message_id = store.conversations.record_reply(
        cid,
        "Let me find someone.",
        "no_knowledge",
        None,
        [StoredSource("R", "Returns", "https://x/R", 0.4)],
        used,
        cost,
    )
    conversation = store.conversations.conversation(cid)
    assert conversation.messages[-1].id == message_id and conversation.messages[-1].sources[0].doc_id == "R"
    assert conversation.handoff_reason == "no_knowledge" and len(store.stats.stage_usage(cid)) == 1
