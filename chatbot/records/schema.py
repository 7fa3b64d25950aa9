"""The conversation database's tables, defined once: what every query in `chatbot.records` reads and writes.

Tables: conversations, messages (each with its `author`), message_sources, handoffs, feedback,
usage, eval_runs, live_handoffs (a person takes over: queued, claimed, resolved, with measured
handling time and cost), action_runs, action_switches and action_sessions (sealed), server_runs and work_runs (the cost of
ownership), faq_entries (help-centre answers operators saved: live, pending review
or removed) and faq_history (every save, edit, approval and removal), and schema_migrations. The
migrations (`chatbot.records.migrations`) spell out their own DDL and never build from these
objects, so an old database upgrades the same way a new one is made. Knows nothing about queries.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, Float, ForeignKey, Integer, MetaData, String, Table, Text

metadata = MetaData()

MAX_MESSAGE_CHARS = 20_000
MAX_COMMENT_CHARS = 2_000

schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)
conversations = Table(
    "conversations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("channel", String(20), nullable=False, default="cli"),
    Column("handoff_needed", Boolean, nullable=False, default=False),
    Column("handoff_reason", String(40)),
    Column("prompt_tokens", Integer, nullable=False, default=0),
    Column("completion_tokens", Integer, nullable=False, default=0),
    Column("compute_s", Float, nullable=False, default=0.0),
    Column("cost_usd", Float, nullable=False, default=0.0),
    Column("api_shadow_cost_usd", Float, nullable=False, default=0.0),
    Column("human_s", Float, nullable=False, default=0.0),  # m005: people's measured handling time, claim to resolve
    Column("human_cost_usd", Float, nullable=False, default=0.0),  # m005: that time priced per hour
)
messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("conversation_id", String(32), ForeignKey("conversations.id"), nullable=False, index=True),
    Column("role", String(12), nullable=False),  # "customer" or "assistant"
    Column("content", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("outcome", String(40)),  # assistant only: answered, off_topic, no_knowledge, ...
    Column("extra", Text),  # JSON: grounding figures, OCR text, transcript details
    Column("author", String(100)),  # m005: "customer", "assistant" or the operator's user name; NULL on older rows
    Column("server_run_id", Integer),  # m011: the server run answering a customer message; NULL: none (CLI, older)
)
message_sources = Table(
    "message_sources",
    metadata,
    Column("message_id", Integer, ForeignKey("messages.id"), primary_key=True),
    Column("rank", Integer, primary_key=True),
    Column("doc_id", String(300), nullable=False),
    Column("title", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("score", Float, nullable=False),
)
handoffs = Table(
    "handoffs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("conversation_id", String(32), ForeignKey("conversations.id"), nullable=False, index=True),
    Column("message_id", Integer, ForeignKey("messages.id")),
    Column("reason", String(40), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("conversation_id", String(32), ForeignKey("conversations.id"), nullable=False, index=True),
    Column("message_id", Integer, ForeignKey("messages.id")),
    Column("rating", Integer, nullable=False),  # +1 thumbs up, -1 thumbs down
    Column("comment", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
usage = Table(
    "usage",
    metadata,
    Column("message_id", Integer, ForeignKey("messages.id"), primary_key=True),
    Column("conversation_id", String(32), ForeignKey("conversations.id"), nullable=False, index=True),
    Column("prompt_tokens", Integer, nullable=False),
    Column("completion_tokens", Integer, nullable=False),
    Column("retrieval_s", Float, nullable=False),
    Column("llm_s", Float, nullable=False),
    Column("asr_s", Float, nullable=False),
    Column("ocr_s", Float, nullable=False),
    Column("audio_s", Float, nullable=False),
    Column("device", String(10), nullable=False),
    Column("cost_usd", Float, nullable=False),
    Column("api_shadow_cost_usd", Float, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # what each stage was charged when the turn was metered (m002); NULL on older rows
    Column("retrieval_cost_usd", Float),
    Column("llm_cost_usd", Float),
    Column("asr_cost_usd", Float),
    Column("ocr_cost_usd", Float),
    Column("action_s", Float, nullable=False, server_default="0"),  # an action's request (m007)
    Column("action_cost_usd", Float),
)
eval_runs = Table(
    "eval_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("model", String(300), nullable=False),  # the LLM that served the run
    Column("questions", Text, nullable=False),  # the question file
    Column("split", String(20), nullable=False),  # dev, heldout or all
    Column("totals", Text, nullable=False),  # JSON: the `chatbot eval` totals
)
live_handoffs = Table(
    "live_handoffs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("conversation_id", String(32), ForeignKey("conversations.id"), nullable=False, index=True),
    Column("message_id", Integer, ForeignKey("messages.id")),  # the reply that handed over, if any
    Column("reason", String(40), nullable=False),  # a handing-over Outcome, or "reopened" / "operator"
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("agent", String(100)),  # who claimed it; NULL while it waits
    Column("claimed_at", DateTime(timezone=True)),
    Column("resolved_at", DateTime(timezone=True)),  # NULL while open
    Column("resolved_by", String(100)),
    Column(
        "return_to_bot", Boolean
    ),  # at resolve: the assistant answers again (else the conversation stays with people)
    Column("handling_s", Float),  # claim to resolve, seconds
    Column("human_cost_usd", Float),  # handling_s priced at `[prices] human_agent_usd_per_hour`
)
faq_entries = Table(
    "faq_entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("doc_id", String(300), nullable=False, unique=True),  # the knowledge-base document it became
    Column("question", Text, nullable=False),
    Column("answer", Text, nullable=False),
    Column("conversation_id", String(32), ForeignKey("conversations.id")),  # the conversation it was saved from
    Column("author", String(100), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("status", String(20), nullable=False),  # live (in the FAQ CSV and index), pending, removed
    Column("reviewed_by", String(100)),  # who approved (or removed) it; the author when it went live at once
    Column("reviewed_at", DateTime(timezone=True)),
)
faq_history = Table(
    "faq_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("doc_id", String(300), nullable=False, index=True),
    Column("action", String(20), nullable=False),  # saved, edited, approved, removed
    Column("actor", String(100), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("question", Text, nullable=False),  # the entry's text after the action
    Column("answer", Text, nullable=False),
    Column("status", String(20), nullable=False),  # the entry's status after the action
)
action_runs = Table(
    "action_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("conversation_id", String(32), ForeignKey("conversations.id"), nullable=False),
    Column("action", String(100), nullable=False, index=True),
    Column("status", String(20), nullable=False),  # done, not_found, refused, failed, unverified, declined
    Column("http_status", Integer),  # NULL: no answer (time-out, unreachable) or not sent
    Column("seconds", Float, nullable=False),
    Column("request", Text, nullable=False),  # JSON: method, url, body, redacted
    Column("response", Text, nullable=False),  # JSON: the system's answer, redacted
    Column("at", DateTime(timezone=True), nullable=False),
)
action_switches = Table(
    "action_switches",
    metadata,
    Column("action", String(100), primary_key=True),
    Column("enabled", Boolean, nullable=False),
    Column("changed_by", String(100), nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
)
action_sessions = Table(
    "action_sessions",
    metadata,
    Column("conversation_id", String(32), ForeignKey("conversations.id"), primary_key=True),
    Column("sealed", Text, nullable=False),  # chatbot.actions.sealed: ciphertext, the key is not in the database
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
server_runs = Table(
    "server_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device", String(10), nullable=False),  # the hardware price that applies: cpu, cuda
    Column("host", String(200), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("seen_at", DateTime(timezone=True), nullable=False),  # the last heartbeat
    Column("stopped_at", DateTime(timezone=True)),  # NULL: still up, or it died (then seen_at ends it)
)
work_runs = Table(
    "work_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(40), nullable=False),  # ingest, calibrate, improve, finetune, distill, eval, bench, data
    Column("device", String(10), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False, index=True),
    Column("wall_s", Float, nullable=False),
    Column("cpu_s", Float, nullable=False),  # this process and its children, user + system
    Column("detail", Text, nullable=False),  # JSON: what the run says about itself (no personal data)
)
index_versions = Table(
    "index_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("index_key", String(500), nullable=False, index=True),  # the index folder, as every replica names it
    Column("version", String(64), nullable=False),  # a digest of its manifest (knowledge.index.KnowledgeIndex.version)
    Column("published_at", DateTime(timezone=True), nullable=False),
    Column("host", String(200), nullable=False),  # the machine that wrote it
)
