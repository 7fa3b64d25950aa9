"""Concurrent load through the REST API on the real packaged models (SmolLM2 int8 on CTranslate2, MiniLM).

16 customer sessions send a fixed number of questions at once; every question goes to the LLM
(direct quotes are switched off), so the turns share the model. The same server first answers a
few questions one at a time. Checked: every turn answers within the time bound, every customer
message is stored exactly once, two replies were decoded side by side (one per core), and the
aggregate throughput beats one-at-a-time by at least 1.3x (measured 1.5-1.7x on 2 CPU cores; one
batch on both cores managed 1.2x). The issue's "twice one-at-a-time" is not asserted: with two cores
and no gain from batching on them, 2x is the ceiling, and each turn's retrieval and checking (about
0.1 s of Python and MiniLM) share the cores with decoding (README "Measured"). p50/p95 are printed
for the notes.
"""

import json
import statistics
import threading
import time
import urllib.request

import pytest
import uvicorn

from chatbot.builder import build_index, build_pipeline
from core.config import load_config
from knowledge.ingest import iter_documents
from tests.app_server import QUESTIONS
from ui.app import create_app

pytestmark = pytest.mark.e2e

SESSIONS = 16
PER_SESSION = 2
ALONE = 6


def question(n: int) -> str:
    """The n-th request's message: every request of the run says something different (no repeated text)."""
    return f"{QUESTIONS[n % len(QUESTIONS)]} My order number is {4000 + n}."


def post(url: str, body: dict, timeout_s: float = 120) -> tuple[dict, float]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    began = time.perf_counter()
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return json.loads(response.read()), time.perf_counter() - began


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def server(request, tmp_path_factory, demo_docs):
    """The app on a free port, storing in SQLite and then in PostgreSQL (conftest's `postgres` cluster)."""
    tmp = tmp_path_factory.mktemp("load")
    db_url = (
        f"sqlite:///{tmp}/load.db"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres").create_database("load")
    )
    config = load_config(
        None,
        {
            "index_dir": str(tmp / "index"),
            "db_url": db_url,
            "company_name": "Lumen & Oak",
            "models": {"llm": "smollm2-135m-instruct-int8", "threads": 2},
            "generation": {"max_new_tokens": 48, "max_waiting": 64},  # max_batch and parallel_batches: the defaults
            "grounding": {"direct_quote_cosine": 2.0, "evidence_answer_cosine": 2.0, "clarify_vague": False},
            "server": {"chat_requests_per_minute": 100000},
        },
    )
    build_index(config).ingest(
        iter_documents([str(demo_docs)]), config.chunking.max_chars, config.chunking.overlap_chars
    )
    pipeline = build_pipeline(config)
    pipeline.warm_up()
    port = free_port()
    app = uvicorn.Server(uvicorn.Config(create_app(pipeline, config), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=app.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not app.started:
        assert time.time() < deadline, "the app did not start within 60 s"
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}", pipeline
    app.should_exit = True
    thread.join(10)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sixteen_concurrent_sessions_share_the_model_and_store_every_message_once(server, capsys):
    url, pipeline = server
    post(f"{url}/api/chat", {"message": question(999)})  # warm every path once

    alone_latencies = []
    began = time.perf_counter()
    for n in range(ALONE):
        reply, seconds = post(f"{url}/api/chat", {"message": question(1000 + n)})
        alone_latencies.append(seconds)
    alone_rate = ALONE / (time.perf_counter() - began)

    results: dict[int, list] = {}
    errors: list[BaseException] = []

    def session(s: int) -> None:
        try:
            conversation = None
            results[s] = []
            for turn in range(PER_SESSION):
                body = {"message": question(s * PER_SESSION + turn)}
                if conversation:
                    body["conversation_id"] = conversation
                reply, seconds = post(f"{url}/api/chat", body)
                conversation = reply["conversation_id"]
                results[s].append((reply, seconds))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=session, args=(s,)) for s in range(SESSIONS)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    elapsed = time.perf_counter() - began
    assert not errors, errors[:3]
    assert not any(t.is_alive() for t in threads), "a session did not finish within 300 s"

    latencies = [seconds for turns in results.values() for _, seconds in turns]
    rate = len(latencies) / elapsed
    with capsys.disabled():
        print(
            f"\nload ({pipeline.store.engine.dialect.name}): one at a time {alone_rate:.2f} turns/s (p50 {statistics.median(alone_latencies):.2f} s); "
            f"{SESSIONS} sessions x {PER_SESSION}: {rate:.2f} turns/s, p50 {percentile(latencies, 0.5):.2f} s, "
            f"p95 {percentile(latencies, 0.95):.2f} s, {rate / alone_rate:.1f}x; "
            f"{pipeline.llm._batcher.get().peak_running} replies decoded side by side at most, "
            f"batches of up to {max(pipeline.llm._batcher.get().batches)}"
        )

    for s, turns in results.items():  # every customer message stored exactly once, each answered
        conversation = pipeline.conversation(turns[0][0]["conversation_id"])
        customer = [m.content for m in conversation.messages if m.role == "customer"]
        assert customer == [question(s * PER_SESSION + t) for t in range(PER_SESSION)]
        assert len([m for m in conversation.messages if m.role == "assistant"]) == PER_SESSION
    assert all(reply["usage"]["seconds"]["llm"] > 0 for turns in results.values() for reply, _ in turns)
    assert pipeline.llm._batcher.get().peak_running == 2  # the two cores decoded two replies at once
    assert rate >= 1.3 * alone_rate  # one batch at a time on both cores: 1.2x; two side by side: 1.5-1.7x
