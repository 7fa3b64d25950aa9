"""`chatbot eval`: reading question sets, scoring, and the command on the real models (e2e).

No quality figure is asserted: the scores are the command's output, not the test's business.
"""

import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from chatbot.cli import main
from chatbot.reporting.evaluation import evaluate, load_questions

ROOT = Path(__file__).resolve().parents[1]  # the checkout
DEMO = ROOT / "demo" / "help-centre"


def _lines(*records) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


def test_reads_the_current_and_the_older_shapes(write):
    path = write(
        "q.jsonl",
        _lines(
            {
                "id": "a",
                "question": "How long to return?",
                "doc_ids": ["R"],
                "answer_contains": ["30 days?"],
                "in_scope": True,
                "turns": ["I bought a lamp"],
                "split": "heldout",
            },
            {"question": "Who won in 1966?", "doc_ids": [], "answer_contains": [], "in_scope": False},
            {"question": "Cost of next-day?", "doc_id": "S", "answer_contains": "£7.95"},
            {"question": "VAT?", "article_id": 3600, "title": "Taxes"},
        ),
    )
    a, off, old, arduino = load_questions(path)
    assert (a.id, a.doc_ids, a.turns, a.split, a.in_scope) == ("a", ("R",), ("I bought a lamp",), "heldout", True)
    assert off.in_scope is False and off.doc_ids == () and off.id == "2"
    assert old.doc_ids == ("S",) and old.answer_contains == (r"£7\.95",) and old.in_scope  # a literal, escaped
    assert arduino.doc_ids == ("3600",) and arduino.answer_contains == ()
    assert {q.split for q in (off, old, arduino)} <= {"dev", "heldout"}


def test_the_demo_set_holds_out_a_third_and_keeps_its_splits():
    everything = load_questions(ROOT / "demo/questions.jsonl")
    questions = [q for q in everything if q.action is None]  # the help-centre, vague and out-of-scope ones
    heldout = [q for q in questions if q.split == "heldout"]
    assert len(questions) >= 80 and abs(len(heldout) - len(questions) / 3) <= 2
    assert any(q.turns for q in heldout) and any(not q.in_scope for q in heldout)
    actions = {q.action for q in everything if q.action}  # each action is asked in both splits
    assert len(actions) >= 6
    for split in ("dev", "heldout"):
        assert {q.action for q in everything if q.action and q.split == split} == actions


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"question": "x", "doc_ids": ["A"]', "line 2 is not valid JSON"),
        ('{"question": "x", "doc_ids": ["A"]}', "line 2 is missing 'answer_contains', 'in_scope'"),
        ('{"doc_ids": ["A"], "answer_contains": [], "in_scope": true}', "line 2 needs a non-empty 'question'"),
        (
            '{"question": "x", "doc_ids": [], "answer_contains": ["30 days"], "in_scope": true}',
            "line 2: a question with answer_contains needs its gold documents",
        ),
        ('{"question": "x", "doc_ids": ["A"], "answer_contains": ["("], "in_scope": true}', "line 2: answer_contains"),
        (
            '{"question": "x", "doc_ids": ["A"], "answer_contains": [], "in_scope": true, "split": "test"}',
            "line 2: 'split'",
        ),
    ],
)
def test_a_malformed_question_file_exits_2_naming_the_line(write, capsys, line, message):
    path = write("bad.jsonl", _lines({"question": "ok", "doc_id": "A"}, line))
    assert main(["eval", "--questions", str(path), "--index", str(path.parent / "none")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_missing_question_file_exits_2(tmp_path, capsys):
    assert main(["eval", "--questions", str(tmp_path / "nope.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err


class _Scripted:
    """A stand-in pipeline: answers from a table, retrieves a fixed list, records the conversations."""

    def __init__(self, answers: dict):
        self.answers = answers
        self.asked: list[tuple[str, str | None]] = []
        self.llm = SimpleNamespace(name="scripted")
        self.settings = SimpleNamespace(context_turns=4)

    def search_documents(self, question, k, context=()):
        return ("S", "R")[:k]

    def decision_learned_from(self):
        return frozenset()  # no calibrated decision

    def ask(self, question, conversation_id=None, channel="cli"):
        self.asked.append((question, conversation_id))
        outcome, answer, cited = self.answers.get(question, ("off_topic", "Sorry.", []))
        hands_over = outcome in ("no_knowledge", "unsupported_answer", "customer_request")
        return SimpleNamespace(
            conversation_id=conversation_id or f"c{len(self.asked)}",
            answer=answer,
            outcome=outcome,
            sources=[SimpleNamespace(doc_id=d) for d in cited],
            handoff=SimpleNamespace(needed=hands_over, reason=outcome if hands_over else None),
            cost=SimpleNamespace(cost_usd=0.001),
            grounding={},
        )


def test_scoring_counts_correct_wrong_handoffs_and_refusals(write):
    path = write(
        "q.jsonl",
        _lines(
            {"id": "right", "question": "return?", "doc_ids": ["R"], "answer_contains": ["30 days"], "in_scope": True},
            {"id": "wrong", "question": "cost?", "doc_ids": ["S"], "answer_contains": ["£3\\.95"], "in_scope": True},
            {"id": "handoff", "question": "odd?", "doc_ids": ["R"], "answer_contains": ["x"], "in_scope": True},
            {
                "id": "follow",
                "question": "and then?",
                "doc_ids": ["S"],
                "answer_contains": [],
                "in_scope": True,
                "turns": ["first"],
            },
            {"id": "off", "question": "1966?", "doc_ids": [], "answer_contains": [], "in_scope": False},
        ),
    )
    pipeline = _Scripted(
        {
            "return?": ("answered", "Within 30 DAYS. [1]", ["R"]),
            "cost?": ("answered", "It is £5. [1]", ["S"]),
            "odd?": ("no_knowledge", "A colleague will reply.", []),
            "first": ("answered", "Hello.", ["S"]),
            "and then?": ("answered", "Then this. [1]", ["S"]),
        }
    )
    report = evaluate(pipeline, load_questions(path))
    by_id = {r["id"]: r for r in report["questions"]}
    assert by_id["right"]["correct"] and not by_id["right"]["wrong"]  # case-insensitive fact, gold cited
    assert by_id["wrong"]["wrong"] and "missing_fact" in by_id["wrong"]["flags"]
    assert by_id["follow"]["correct"] and "no_fact_check" in by_id["follow"]["flags"]
    assert ("and then?", "c4") in pipeline.asked  # the follow-up continues the conversation of its turn
    t = report["totals"]
    assert (t["questions"], t["in_scope"], t["resolved"], t["correct"], t["wrong"]) == (5, 4, 3, 2, 1)
    assert t["handoff_reasons"] == {"no_knowledge": 1} and t["out_of_scope_refused"] == 1.0
    assert t["retrieval"] == {"r_at_1": 0.5, "r_at_5": 1.0, "questions": 4} and t["model"] == "scripted"


class _Slow(_Scripted):
    """Answers after a delay that shrinks with the question's number, counting how many are asked at once."""

    def __init__(self, answers: dict):
        super().__init__(answers)
        self.lock, self.now, self.most = threading.Lock(), 0, 0

    def ask(self, question, conversation_id=None, channel="cli"):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(0.05 / (1 + int(question.strip("q?"))))  # later questions finish first
        with self.lock:
            self.now -= 1
            return super().ask(question, conversation_id or f"conversation-{question}", channel)


def test_workers_ask_questions_at_once_and_keep_their_order(write):
    records = [
        {"id": f"n{i}", "question": f"q{i}?", "doc_ids": ["R"], "answer_contains": [f"fact {i}"], "in_scope": True}
        for i in range(6)
    ]
    path = write("q.jsonl", _lines(*records))
    answers = {f"q{i}?": ("answered", f"fact {i} [1]" if i % 2 else "no", ["R"]) for i in range(6)}
    alone = evaluate(_Scripted(answers), load_questions(path))
    pipeline = _Slow(answers)
    together = evaluate(pipeline, load_questions(path), workers=3)
    assert pipeline.most > 1  # really at once
    assert [q["id"] for q in together["questions"]] == [f"n{i}" for i in range(6)]
    assert [q["correct"] for q in together["questions"]] == [q["correct"] for q in alone["questions"]]
    assert together["totals"]["correct"] == alone["totals"]["correct"] == 3


@pytest.mark.e2e
def test_eval_command_on_the_demo_help_centre(tmp_path, capsys):
    """Ingest the demo help centre, then score a few demo questions of each kind."""
    index = tmp_path / "index"
    assert main(["ingest", str(DEMO), "--index", str(index), "--json"]) == 0
    capsys.readouterr()
    questions = load_questions(ROOT / "demo/questions.jsonl")
    chosen = [
        next(q for q in questions if q.in_scope and not q.turns),
        next(q for q in questions if q.turns),
        next(q for q in questions if not q.in_scope),
        next(q for q in questions if q.in_scope and not q.turns and len(q.doc_ids) > 2),
        questions[-1],
    ]  # left out by --limit
    lines = [json.loads(line) for line in (ROOT / "demo/questions.jsonl").read_text().splitlines() if line.strip()]
    records = {r["id"]: r for r in lines}
    path = tmp_path / "few.jsonl"
    path.write_text(_lines(*(records[q.id] for q in chosen)), encoding="utf-8")
    report_path = tmp_path / "report.md"

    code = main(
        [
            "eval",
            "--questions",
            str(path),
            "--index",
            str(index),
            "--db",
            f"sqlite:///{tmp_path}/eval.db",
            "--limit",
            "4",
            "--out",
            str(report_path),
            "--json",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert str(report_path) in err
    report = json.loads(out)
    assert set(report) == {"totals", "questions"}
    rows, t = report["questions"], report["totals"]
    assert [r["id"] for r in rows] == [q.id for q in chosen[:4]]
    for r in rows:
        assert {
            "question",
            "turns",
            "outcome",
            "answer",
            "cited_doc_ids",
            "retrieved_doc_ids",
            "gold_doc_ids",
            "correct",
            "wrong",
            "flags",
            "latency_s",
            "cost_usd",
            "split",
            "in_scope",
        } <= set(r)
        assert r["answer"].strip() and len(r["retrieved_doc_ids"]) == 5 and r["latency_s"] > 0
        assert not (r["correct"] and r["wrong"])
    assert rows[1]["turns"] == list(chosen[1].turns)

    inside = [r for r in rows if r["in_scope"]]
    answered = [r for r in inside if r["outcome"] == "answered"]
    outside = [r for r in rows if not r["in_scope"]]
    share = lambda part, whole: round(part / whole, 4) if whole else None  # noqa: E731
    assert (t["questions"], t["in_scope"], t["out_of_scope"]) == (4, 3, 1)
    assert t["resolution_rate"] == share(len(answered), len(inside)) and t["resolved"] == len(answered)
    assert t["correct_rate"] == share(sum(r["correct"] for r in inside), len(inside))
    assert t["wrong_rate"] == share(sum(r["wrong"] for r in inside), len(inside))
    assert t["wrong_of_answered"] == share(sum(r["wrong"] for r in inside), len(answered))
    assert t["out_of_scope_refused"] == share(sum(r["outcome"] != "answered" for r in outside), len(outside))
    handoffs = [r for r in rows if r["handoff_reason"]]
    assert t["handoff_rate"] == share(len(handoffs), len(rows)) and sum(t["handoff_reasons"].values()) == len(handoffs)
    assert sum(t["outcomes"].values()) == 4
    ranks = [next((i for i, d in enumerate(r["retrieved_doc_ids"], 1) if d in r["gold_doc_ids"]), None) for r in inside]
    assert t["retrieval"]["r_at_1"] == share(sum(k == 1 for k in ranks), len(inside))
    assert t["retrieval"]["r_at_5"] == share(sum(k is not None for k in ranks), len(inside))
    assert t["latency_s"]["p50"] <= t["latency_s"]["p95"] and t["model"]
    assert t["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in rows))
    assert t["decision_fitted_to_these"] is False  # this index's decision learned from no question file

    text = report_path.read_text(encoding="utf-8")
    assert all(r["question"] in text and r["answer"] in text for r in rows) and "resolution rate" in text


def test_totals_say_what_a_customer_would_get_from_suggestions(write):
    path = write(
        "q.jsonl",
        _lines(
            {"id": "hit", "question": "return?", "doc_ids": ["R"], "answer_contains": ["30 days"], "in_scope": True},
            {"id": "miss", "question": "cost?", "doc_ids": ["S"], "answer_contains": ["£3\\.95"], "in_scope": True},
            {"id": "wrong", "question": "tax?", "doc_ids": ["S"], "answer_contains": ["VAT"], "in_scope": True},
            {"id": "person", "question": "odd?", "doc_ids": ["R"], "answer_contains": ["x"], "in_scope": True},
            {"id": "off", "question": "1966?", "doc_ids": [], "answer_contains": [], "in_scope": False},
        ),
    )
    pipeline = _Scripted(
        {
            "return?": ("suggested", "Closest: “within 30 days” [1] Did this answer your question?", ["R"]),
            "cost?": ("suggested", "Closest: “£5 a parcel” [1] Did this answer your question?", ["S"]),
            "tax?": ("answered", "No tax. [1]", ["S"]),
            "odd?": ("no_knowledge", "A colleague will reply.", []),
            "1966?": ("suggested", "Closest: “our history” [1] Did this answer your question?", ["R"]),
        }
    )
    t = evaluate(pipeline, load_questions(path))["totals"]
    assert (t["likely_resolved"], t["asserted_wrong"], t["suggested_miss"], t["persons_needed"]) == (
        0.25,
        0.25,
        0.25,
        0.5,
    )
    assert t["out_of_scope_refused"] == 0.0  # a suggestion is not a refusal
