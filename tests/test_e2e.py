"""End to end on the real packaged models: MiniLM embeddings, SmolLM2-135M, FAISS, SQLite.

The CLI contract is exercised through real subprocesses; the rest runs one in-process pipeline so
the models load once.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from chatbot.builder import build_pipeline
from core.config import load_config

ROOT = Path(__file__).resolve().parents[1]  # the checkout
DEMO = ROOT / "demo" / "help-centre"

pytestmark = pytest.mark.e2e
QUESTIONS = [
    q
    for q in (json.loads(line) for line in (ROOT / "demo/questions.jsonl").read_text().splitlines() if line.strip())
    if q.get("in_scope", True) and q.get("doc_ids") and not q.get("turns")
]  # direct, answerable ones


def chatbot(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "chatbot", *args], capture_output=True, text=True, cwd=ROOT, timeout=600
    )
    if check and result.returncode != 0:
        raise AssertionError(f"chatbot {' '.join(args)} exited {result.returncode}: {result.stderr[-2000:]}")
    return result


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("e2e") / "index"
    out = json.loads(chatbot("ingest", str(DEMO), "--index", str(directory), "--json").stdout)
    assert out["documents"] >= 20 and out["chunks"] >= out["documents"]
    return directory


@pytest.fixture(scope="module")
def pipeline(index_dir, tmp_path_factory):
    db = tmp_path_factory.mktemp("db") / "chat.db"
    config = load_config(
        None, {"index_dir": str(index_dir), "db_url": f"sqlite:///{db}", "company_name": "Lumen & Oak"}
    )
    pipeline = build_pipeline(config)
    pipeline.warm_up()
    return pipeline


def test_search_prints_one_result_per_document_best_first(index_dir):
    out = json.loads(
        chatbot(
            "search", "how long do I have to send something back", "--index", str(index_dir), "-k", "5", "--json"
        ).stdout
    )
    results = out["results"]
    assert len(results) == 5 and len({r["doc_id"] for r in results}) == 5
    assert {"doc_id", "title", "url", "score", "text"} <= set(results[0])
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    assert "return" in results[0]["title"].lower()


def test_hybrid_retrieval_finds_the_right_article_for_customer_questions(pipeline):
    hits = [
        bool(set(q["doc_ids"]) & {p.doc_id for p in pipeline.searcher.search_documents(q["question"], k=3)})
        for q in QUESTIONS
    ]
    assert sum(hits) / len(hits) >= 0.8, f"recall@3 {sum(hits)}/{len(hits)}"


def test_answers_are_grounded_in_their_cited_sources_or_handed_over(pipeline):
    answered = 0
    for q in QUESTIONS[::5]:
        reply = pipeline.ask(q["question"])
        assert reply.answer.strip()
        if reply.outcome == "answered":
            answered += 1
            assert reply.sources and not reply.handoff.needed
            cited = " ".join(
                pipeline.searcher.index.chunks[c].text
                for s in reply.sources
                for c in pipeline.searcher.index.manifest["documents"][s.doc_id]["chunk_ids"]
            )
            for number in re.findall(r"\d+(?:\.\d+)?", re.sub(r"\[\d+\]", "", reply.answer)):
                assert number in cited, f"{number!r} in {reply.answer!r} is not in its sources"
        elif reply.outcome == "clarify":  # a vague message ("hi i need help with my account"): one question back
            assert not reply.handoff.needed and not reply.sources and reply.answer.endswith((".", "?"))
        else:
            assert reply.handoff.needed and reply.handoff.reason in ("no_knowledge", "unsupported_answer")
        if reply.grounding.get("direct_quote"):  # a source sentence close to the question, verbatim
            quoted = re.search("\u201c(.+)\u201d", reply.answer).group(1)
            source = " ".join(re.sub(r"\*\*|__|`", "", cited).split())
            for sentence in re.split(r"(?<=[.!?:])\s+", quoted):  # the closest sentence and those after it
                assert " ".join(sentence.split()) in source, f"{sentence!r} is not in its source"
            assert reply.usage.llm_s == 0 and reply.cost.cost_usd > 0
        elif reply.outcome != "clarify":  # the LLM ran: metered
            assert reply.usage.prompt_tokens > 0 and reply.usage.llm_s > 0 and reply.cost.cost_usd > 0
    assert answered >= 1


def test_off_topic_question_gets_a_polite_refusal_not_an_invention(pipeline):
    reply = pipeline.ask("Who won the football world cup in 1966?")
    assert reply.outcome == "off_topic" and not reply.handoff.needed and not reply.sources
    assert reply.usage.llm_s == 0


def test_follow_up_question_is_answered_from_the_conversation_topic(pipeline):
    first = pipeline.ask("How do I reset my Halo Smart Lamp?")
    follow = pipeline.ask("and what if that doesn't work?", conversation_id=first.conversation_id)
    assert follow.conversation_id == first.conversation_id
    lamp = {"LO-1017", "LO-1018", "LO-1019", "LO-1020"}  # the Halo Smart Lamp's articles
    assert follow.retrieved and set(follow.retrieved[:2]) <= lamp, follow.retrieved  # read with the first turn
    alone = pipeline.ask("and what if that doesn't work?")  # the same words in a new conversation
    assert set(alone.retrieved[:2]) != set(follow.retrieved[:2])


def test_ask_and_report_json_contract(index_dir, tmp_path):
    db = f"sqlite:///{tmp_path}/cli.db"
    out = json.loads(
        chatbot("ask", "Which payment methods do you accept?", "--index", str(index_dir), "--db", db, "--json").stdout
    )
    assert set(out) >= {"conversation_id", "question", "answer", "sources", "handoff", "usage"}
    assert set(out["usage"]) >= {"prompt_tokens", "completion_tokens", "seconds", "cost_usd", "api_shadow_cost_usd"}
    assert set(out["usage"]["seconds"]) >= {"retrieval", "llm"} and set(out["handoff"]) == {"needed", "reason"}
    assert all(set(s) == {"doc_id", "title", "url"} for s in out["sources"])
    again = json.loads(
        chatbot(
            "ask",
            "talk to a human please",
            "--index",
            str(index_dir),
            "--db",
            db,
            "--conversation",
            out["conversation_id"],
            "--json",
        ).stdout
    )
    assert again["conversation_id"] == out["conversation_id"] and again["handoff"] == {
        "needed": True,
        "reason": "customer_request",
    }

    report = json.loads(chatbot("report", "--db", db, "--json").stdout)
    assert report["conversations"] == 1 and report["messages"] == 4
    first_reason = out["handoff"]["reason"] if out["handoff"]["needed"] else "customer_request"
    assert report["handoff_rate"] == 1.0 and report["handoff_reasons"] == {first_reason: 1}
    assert report["cost_per_conversation_usd"] > 0 and report["api_shadow_cost_usd"] > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["ask", "   ", "--index", "{index}"], "empty"),
        (["ask", "hello", "--index", "{tmp}/missing"], "chatbot ingest"),
        (["search", "hello", "--index", "{tmp}/missing", "--json"], "chatbot ingest"),
        (["ingest", "{tmp}/nope.md", "--index", "{tmp}/ix"], "does not exist"),
        (["ingest", "{tmp}/broken.pdf", "--index", "{tmp}/ix"], "PDF"),
        (["ask", "hello", "--index", "{index}", "--db", "notaurl"], "database URL"),
        (["report", "--db", "sqlite:///{tmp}/r.db", "--config", "{tmp}/missing.toml"], "does not exist"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_no_traceback(args, message, index_dir, tmp_path):
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    args = [a.format(index=index_dir, tmp=tmp_path) for a in args]
    result = chatbot(*args, check=False)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr


def test_the_registered_int8_model_is_served_by_ctranslate2_through_the_cli(index_dir, tmp_path):
    from chatbot.builder import build_llm
    from chatbot.answer.llm import Message
    from chatbot.answer.llm_ct2 import CTranslate2ChatModel

    config = load_config(None, {"models": {"llm": "smollm2-135m-instruct-int8"}})
    llm = build_llm(config)
    assert isinstance(llm, CTranslate2ChatModel) and llm.name == "smollm2-135m-instruct-int8"
    tokens = list(llm.stream([Message("user", "Say hello.")], 8))
    assert tokens[-1].done and tokens[-1].completion_tokens > 0 and "".join(t.text for t in tokens).strip()

    out = json.loads(
        chatbot(
            "ask",
            "Which payment methods do you accept?",
            "--model",
            "smollm2-135m-instruct-int8",
            "--index",
            str(index_dir),
            "--db",
            f"sqlite:///{tmp_path}/int8.db",
            "--json",
        ).stdout
    )
    assert out["answer"] and (out["usage"]["seconds"]["llm"] > 0 or out["grounding"].get("direct_quote"))


def test_the_demos_action_routing_chosen_on_dev_holds_on_heldout(index_dir):
    """The demo's actions routed by the real embedder: thresholds chosen on the dev split, held-out scored."""
    from chatbot.actions.build import build_router, calibrate_routing
    from chatbot.actions.router import RoutePoint, score
    from chatbot.builder import build_index, build_searcher
    from chatbot.reporting.questions import load_questions, select

    config = load_config(str(ROOT / "demo/chatbot.toml"), {"index_dir": str(index_dir)})
    index = build_index(config).load()
    searcher = build_searcher(config, index)
    questions = load_questions(ROOT / "demo/questions.jsonl")
    chosen = calibrate_routing(config, index, searcher, select(questions, "dev"), "dev")
    assert chosen is not None and chosen["non_action_routed"] == 0
    router = build_router(config, index)
    assert router is not None and router.min_margin == chosen["min_margin"]  # the stored thresholds are used
    points = []
    for q in select(questions, "heldout"):
        name, cosine = router.closest(q.question)
        best = max(p.dense_cosine for p in searcher.search(q.question, k=config.retrieval.k))
        points.append(RoutePoint(q.action, name, cosine, best, router.identified(q.question)))
    held = score(points, router.min_cosine, router.min_margin, router.min_margin_identified)
    assert held["action_questions"] >= 15 and held["recall"] >= 0.9, held
    assert held["non_action_routed"] == 0 and held["routed_wrong_action"] == 0, held


def test_chatbot_serve_records_the_hours_it_was_up(index_dir, tmp_path):
    """The serving bill's hours: `chatbot serve` records its start and, on SIGTERM, its stop."""
    import os
    import signal
    import socket
    import time
    import urllib.request

    from chatbot.records.store import Store

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = f"sqlite:///{tmp_path}/serve.db"
    env = {**os.environ, "CHATBOT_OPERATOR_PASSWORD": "pw"}
    args = ["serve", "--index", str(index_dir), "--db", db, "--port", str(port)]
    server = subprocess.Popen([sys.executable, "-m", "chatbot", *args], cwd=ROOT, env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 300
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except OSError:
                assert server.poll() is None and time.time() < deadline, server.stderr.read().decode()[-2000:]
                time.sleep(1)
        [running] = Store(db).ownership.server_runs()
        assert running.running
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    finally:
        server.kill()
    [stopped] = Store(db).ownership.server_runs()
    assert not stopped.running and stopped.ended_at > stopped.started_at
