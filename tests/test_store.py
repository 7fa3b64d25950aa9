import sqlite3

import pytest
from sqlalchemy import inspect

from chatbot.records import store as store_module
from chatbot.records.costs import TurnCost, Usage
from chatbot.records.store import MIGRATIONS, Store, StoredSource
from chatbot.testing import price_sheet as sheet

ALL_MIGRATIONS = ["m001_initial", "m002_stage_costs", "m003_eval_runs", "m004_one_rating_per_message",
                  "m005_live_handoff"]

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


def _columns(store: Store) -> dict[str, list[str]]:
    inspector = inspect(store.engine)
    return {t: sorted(c["name"] for c in inspector.get_columns(t)) for t in store.tables()}


def _legacy_database(path) -> str:
    with sqlite3.connect(path) as connection:
        connection.executescript(LEGACY_M001)
    return f"sqlite:///{path}"


def test_migrations_are_named_recorded_and_applied_once(tmp_path):
    url = f"sqlite:///{tmp_path}/db.sqlite"
    store = Store(url)
    assert store.applied_migrations() == ALL_MIGRATIONS == [m.__name__ for m in MIGRATIONS]
    assert {"conversations", "messages", "message_sources", "handoffs", "feedback", "usage"} <= set(store.tables())
    conversation = store.new_conversation()
    assert Store(url).applied_migrations() == ALL_MIGRATIONS  # reopening applies nothing again
    Store(url).require_conversation(conversation)


def test_a_database_made_by_the_first_release_upgrades_to_the_same_schema_as_a_fresh_one(tmp_path):
    old = Store(_legacy_database(tmp_path / "old.db"))
    assert old.applied_migrations() == ALL_MIGRATIONS
    assert _columns(old) == _columns(Store(f"sqlite:///{tmp_path}/fresh.db"))
    [turn] = old.stage_usage("c0ffee")  # metered before m002: the cost is split by seconds
    assert not turn.stage_costs_recorded
    assert turn.stage_cost_usd == pytest.approx({"retrieval": 0.0005, "llm": 0.0015, "asr": 0.0, "ocr": 0.0})
    mid = old.add_message("c0ffee", "assistant", "again", outcome="answered")
    old.add_usage("c0ffee", mid, Usage(llm_s=1.0), sheet(hardware_usd_per_hour={"cpu": 3.6}).price(Usage(llm_s=1.0)))
    assert old.stage_usage("c0ffee")[1].stage_costs_recorded
    assert [m.content for m in old.conversation("c0ffee").messages] == ["hello", "hi", "again"]


@pytest.mark.parametrize("start", ["fresh", "existing", "legacy"])
def test_a_later_migration_that_adds_a_column_works_on_fresh_and_existing_databases(tmp_path, monkeypatch, start):
    url = {"fresh": f"sqlite:///{tmp_path}/db.sqlite", "existing": f"sqlite:///{tmp_path}/db.sqlite",
           "legacy": _legacy_database(tmp_path / "legacy.db")}[start]
    if start == "existing":
        Store(url).new_conversation()

    def m099_conversation_language(connection):
        connection.exec_driver_sql("ALTER TABLE conversations ADD COLUMN language VARCHAR(12)")

    monkeypatch.setattr(store_module, "MIGRATIONS", [*MIGRATIONS, m099_conversation_language])
    store = Store(url)
    assert store.applied_migrations() == [*ALL_MIGRATIONS, "m099_conversation_language"]
    assert "language" in _columns(store)["conversations"]
    store.require_conversation(store.new_conversation())
    assert Store(url).applied_migrations()[-1] == "m099_conversation_language"  # once


def test_a_turn_is_stored_with_sources_usage_handoff_and_feedback(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/db.sqlite")
    cid = store.new_conversation("web")
    store.add_message(cid, "customer", "where is my order?")
    mid = store.add_message(cid, "assistant", "Here. [1]", outcome="answered")
    store.add_sources(mid, [StoredSource("LO-1", "Track", "https://x", 0.5)])
    store.add_usage(cid, mid, Usage(prompt_tokens=10, completion_tokens=5, llm_s=1.0), TurnCost(0.001, 0.002))
    store.add_usage(cid, store.add_message(cid, "assistant", "again"), Usage(prompt_tokens=1), TurnCost(0.001, 0.0))
    store.add_handoff(cid, mid, "no_knowledge")
    store.add_handoff(cid, mid, "customer_request")
    store.add_feedback(cid, mid, -1, "not helpful")

    conversation = store.conversation(cid)
    assert [m.role for m in conversation.messages] == ["customer", "assistant", "assistant"]
    assert conversation.messages[1].sources[0].doc_id == "LO-1"
    assert conversation.handoff_needed and conversation.handoff_reason == "no_knowledge"  # the first reason
    assert round(conversation.cost_usd, 6) == 0.002 and round(conversation.api_shadow_cost_usd, 6) == 0.002
    totals = store.totals()
    assert totals["conversations"] == 1 and totals["messages"] == 3 and totals["ratings"] == {-1: 1}
    assert totals["handoff_reasons"] == {"no_knowledge": 1}
    assert store.history(cid, 2) == [("assistant", "Here. [1]"), ("assistant", "again")]
