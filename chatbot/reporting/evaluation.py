"""Scoring the assistant on a question set: how many questions it resolves, and how many correctly.

A question set is JSON Lines, one customer question a line:

    {"id": "...", "question": "...", "doc_ids": ["LO-1008"], "answer_contains": ["30 days"],
     "in_scope": true, "turns": ["earlier customer turn", ...], "split": "dev"}

- `doc_ids`: the help-centre documents that answer it (any one cited counts); [] when out of scope,
  and [] for a vague in-scope question ("it doesn't work"), which should get a clarifying question;
- `answer_contains`: regular expressions, matched case-insensitively; the answer must match one;
- `in_scope`: false for questions the assistant should not answer (not about the shop);
- `turns` (optional): earlier customer turns, asked first in the same conversation, not scored;
- `split` (optional): "dev" (tune on it) or "heldout" (report it); where it is missing, a hash of the
  question text picks a third of each kind of question to hold out (`assign_splits`);
- `id` (optional): defaults to the line number.
The older shapes are read too: `doc_id` (a string) and `answer_contains` (a literal substring) as in
the first demo set, and `article_id` as in bench/data/arduino_questions.jsonl; they are in scope.

Each question runs in a new conversation. The figures (see `totals`):
- resolution_rate: in-scope questions served without a person: answered, or (vague ones) clarified;
- correct_rate: in-scope questions answered with the key fact (one `answer_contains` match) and
  citing a gold document; without `answer_contains` citing a gold document is taken as the fact;
- wrong_rate / wrong_of_answered: in-scope questions answered without the key fact, of all in-scope
  questions / of the in-scope questions answered (without `answer_contains`: without citing gold);
- out_of_scope_refused: out-of-scope questions not answered (refused or handed over);
- retrieval R@1/R@5: a gold document first / in the top 5 of the searcher's documents for the question
  (with the earlier turns as context, as the pipeline retrieves);
- latency p50/p95 and cost: the scored turn only (earlier turns are not metered here).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, UTC
from pathlib import Path

from chatbot.reporting.report import percentile
from core.errors import BadInput, NotFound
from core.jsonl import jsonl_records

SPLITS = ("dev", "heldout")
RETRIEVAL_K = 5
CLARIFY = "clarify"  # an outcome the engine may add: asks the customer what they mean
ANSWERED = "answered"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class EvalQuestion:
    id: str
    question: str
    doc_ids: tuple[str, ...]
    answer_contains: tuple[str, ...]  # regular expressions, case-insensitive; () when no fact is checked
    in_scope: bool
    turns: tuple[str, ...] = ()
    split: str = "dev"
    line: int = 0

    @property
    def vague(self) -> bool:
        """In scope but too vague to answer: the right reply is a clarifying question."""
        return self.in_scope and not self.doc_ids


@dataclass(frozen=True)
class EvalResult:
    question: EvalQuestion
    outcome: str
    answer: str
    cited: tuple[str, ...]
    retrieved: tuple[str, ...]
    handoff_reason: str | None
    latency_s: float
    cost_usd: float
    earlier_answers: tuple[str, ...] = ()
    grounding: dict | None = None  # what the check measured: claims, supported, quote cosine, direct quote

    @property
    def answered(self) -> bool:
        return self.outcome == ANSWERED

    @property
    def resolved(self) -> bool:
        """Served without a person: answered, or a vague question met with a clarifying question."""
        return self.answered or (self.question.vague and self.outcome == CLARIFY)

    @property
    def cites_gold(self) -> bool:
        return any(d in self.question.doc_ids for d in self.cited)

    @property
    def has_fact(self) -> bool | None:
        """Whether the answer matches one `answer_contains` pattern; None when the question has none."""
        if not self.question.answer_contains:
            return None
        return any(re.search(p, self.answer, re.I) for p in self.question.answer_contains)

    @property
    def correct(self) -> bool:
        """In scope: answered, with the key fact, citing gold. Out of scope: not answered."""
        if not self.question.in_scope:
            return not self.answered
        if self.question.vague:
            return self.outcome == CLARIFY
        return self.answered and self.cites_gold and self.has_fact is not False

    @property
    def wrong(self) -> bool:
        """In scope: answered without the key fact. Out of scope: answered at all."""
        if not self.question.in_scope or self.question.vague:
            return self.answered
        if not self.answered:
            return False
        return not self.has_fact if self.has_fact is not None else not self.cites_gold

    def rank(self) -> int | None:
        """1-based rank of the first gold document among those retrieved; None if absent."""
        for position, doc_id in enumerate(self.retrieved, start=1):
            if doc_id in self.question.doc_ids:
                return position
        return None

    @property
    def flags(self) -> list[str]:
        q = self.question
        flags = []
        if not q.in_scope:
            if self.answered:
                flags.append("answered_out_of_scope")
            return flags
        if self.answered:
            if self.has_fact is False:
                flags.append("missing_fact")
            if not self.cites_gold:
                flags.append("no_gold_citation")
        if self.handoff_reason:
            flags.append(f"handoff:{self.handoff_reason}")
        if self.outcome == CLARIFY:
            flags.append("clarify")
        if self.rank() is None:
            flags.append("gold_not_retrieved")
        if not q.answer_contains:
            flags.append("no_fact_check")
        return flags

    def to_json(self) -> dict:
        q = self.question
        return {
            "id": q.id,
            "split": q.split,
            "question": q.question,
            "turns": list(q.turns),
            "in_scope": q.in_scope,
            "gold_doc_ids": list(q.doc_ids),
            "outcome": self.outcome,
            "answer": self.answer,
            "cited_doc_ids": list(self.cited),
            "retrieved_doc_ids": list(self.retrieved),
            "handoff_reason": self.handoff_reason,
            "cites_gold": self.cites_gold,
            "has_fact": self.has_fact,
            "correct": self.correct,
            "wrong": self.wrong,
            "flags": self.flags,
            "latency_s": round(self.latency_s, 3),
            "cost_usd": self.cost_usd,
            "grounding": self.grounding or {},
        }


def text_hash(question: str) -> str:
    return hashlib.sha256(" ".join(question.lower().split()).encode("utf-8")).hexdigest()


def assign_splits(questions: Sequence[EvalQuestion]) -> list[EvalQuestion]:
    """Give a split to the questions without one: in each kind (in scope or not, follow-up or not),
    the third with the lowest hash of their text is held out; the others are dev. Not by hand, and
    stable: adding a question moves at most the one at the boundary of its kind."""
    kinds: dict[tuple[bool, bool], list[EvalQuestion]] = {}
    for q in questions:
        if not q.split:
            kinds.setdefault((q.in_scope, bool(q.turns)), []).append(q)
    heldout: set[str] = set()
    for group in kinds.values():
        ranked = sorted(group, key=lambda q: text_hash(q.question))
        heldout.update(q.id for q in ranked[: round(len(group) / 3)])
    return [q if q.split else replace(q, split="heldout" if q.id in heldout else "dev") for q in questions]


def load_questions(path: str | Path) -> list[EvalQuestion]:
    """Read a question set; any problem is a `BadInput` naming the line."""
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"question file {path} does not exist; give a JSONL file of questions")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise BadInput(f"{path} is not UTF-8 text; give a JSONL file of questions") from None
    questions: list[EvalQuestion] = []
    seen: dict[str, int] = {}
    for number, record in jsonl_records(lines, path):
        question = _parse(record, f"{path} line {number}", number)
        if question.id in seen:
            raise BadInput(
                f"{path} line {number}: id '{question.id}' is also on line {seen[question.id]}; "
                "give each question its own id"
            )
        seen[question.id] = number
        questions.append(question)
    if not questions:
        raise BadInput(f"{path} has no questions; add one JSON object a line")
    return assign_splits(questions)


def _parse(record: object, where: str, line: int) -> EvalQuestion:
    if not isinstance(record, dict):
        raise BadInput(f"{where} must be a JSON object with 'question', 'doc_ids', 'answer_contains', 'in_scope'")
    question = record.get("question")
    if not isinstance(question, str) or not question.strip():
        raise BadInput(f"{where} needs a non-empty 'question' string")
    question = question.strip()

    if "doc_ids" in record:  # the current shape: every key stated
        missing = [k for k in ("answer_contains", "in_scope") if k not in record]
        if missing:
            raise BadInput(f"{where} is missing {', '.join(repr(k) for k in missing)}")
        doc_ids = record["doc_ids"]
        if not isinstance(doc_ids, list) or not all(isinstance(d, (str, int)) and str(d).strip() for d in doc_ids):
            raise BadInput(f"{where}: 'doc_ids' must be a list of document ids ([] when out of scope)")
        doc_ids = [str(d).strip() for d in doc_ids]
        patterns = record["answer_contains"]
        if isinstance(patterns, str):
            patterns = [patterns]
        if not isinstance(patterns, list) or not all(isinstance(p, str) and p for p in patterns):
            raise BadInput(f"{where}: 'answer_contains' must be a list of regular expressions")
        in_scope = record["in_scope"]
        if not isinstance(in_scope, bool):
            raise BadInput(f"{where}: 'in_scope' must be true or false")
    elif "doc_id" in record or "article_id" in record:  # the older shapes: a literal substring, in scope
        gold = record.get("doc_id", record.get("article_id"))
        if not isinstance(gold, (str, int)) or not str(gold).strip():
            raise BadInput(f"{where}: 'doc_id' must be a document id")
        doc_ids = [str(gold).strip()]
        literal = record.get("answer_contains")
        if literal is not None and (not isinstance(literal, str) or not literal):
            raise BadInput(f"{where}: 'answer_contains' must be text")
        patterns = [re.escape(literal)] if literal else []
        in_scope = bool(record.get("in_scope", True))
    else:
        raise BadInput(f"{where} is missing 'doc_ids' (the documents that answer it; [] when out of scope)")

    if in_scope and not doc_ids and patterns:
        raise BadInput(f"{where}: a question with answer_contains needs its gold documents in 'doc_ids'")
    if not in_scope and doc_ids:
        raise BadInput(f"{where}: an out-of-scope question has no gold documents; set 'doc_ids' to []")
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise BadInput(f"{where}: answer_contains {pattern!r} is not a valid regular expression ({exc})") from None

    turns = record.get("turns", [])
    if not isinstance(turns, list) or not all(isinstance(t, str) and t.strip() for t in turns):
        raise BadInput(f"{where}: 'turns' must be a list of the customer's earlier messages")
    split = record.get("split", "")  # none: `assign_splits` gives one
    if split not in (*SPLITS, ""):
        raise BadInput(f"{where}: 'split' must be one of {', '.join(SPLITS)}, not {split!r}")
    qid = record.get("id", line)
    if not isinstance(qid, (str, int)) or not str(qid).strip():
        raise BadInput(f"{where}: 'id' must be text or a number")
    return EvalQuestion(
        id=str(qid).strip(),
        question=question,
        doc_ids=tuple(doc_ids),
        answer_contains=tuple(patterns),
        in_scope=in_scope,
        turns=tuple(t.strip() for t in turns),
        split=split,
        line=line,
    )


def select(questions: Sequence[EvalQuestion], split: str = "all", limit: int | None = None) -> list[EvalQuestion]:
    if split not in (*SPLITS, "all"):
        raise BadInput(f"--split must be dev, heldout or all, not {split!r}")
    if limit is not None and limit < 1:
        raise BadInput("--limit must be at least 1")
    chosen = [q for q in questions if split == "all" or q.split == split]
    if not chosen:
        raise BadInput(f"no questions in the '{split}' split")
    return chosen[:limit] if limit else chosen


def run_question(pipeline, question: EvalQuestion, channel: str = "eval") -> EvalResult:
    """Ask the earlier turns, then the question, in one new conversation; retrieval is probed apart."""
    conversation_id = None
    context: list[str] = []
    earlier: list[str] = []
    for turn in question.turns:
        reply = pipeline.ask(turn, conversation_id=conversation_id, channel=channel)
        conversation_id = reply.conversation_id
        context += [turn, reply.answer]
        earlier.append(reply.answer)
    started = time.perf_counter()
    reply = pipeline.ask(question.question, conversation_id=conversation_id, channel=channel)
    latency = time.perf_counter() - started
    # the pipeline's own context: the last `context_turns` messages of the conversation
    turns = pipeline.settings.context_turns
    context = context[-turns:] if turns > 0 else []
    retrieved = pipeline.search_documents(question.question, RETRIEVAL_K, context)
    return EvalResult(
        question=question,
        outcome=str(reply.outcome),
        answer=reply.answer,
        cited=tuple(s.doc_id for s in reply.sources),
        retrieved=retrieved,
        handoff_reason=str(reply.handoff.reason) if reply.handoff.needed else None,
        latency_s=latency,
        cost_usd=reply.cost.cost_usd,
        earlier_answers=tuple(earlier),
        grounding=dict(reply.grounding),
    )


def run(pipeline, questions: Sequence[EvalQuestion], progress: Progress = lambda m: None) -> list[EvalResult]:
    results = []
    for number, question in enumerate(questions, start=1):
        result = run_question(pipeline, question)
        verdict = "correct" if result.correct else "WRONG" if result.wrong else "-"
        progress(
            f"[{number}/{len(questions)}] {result.outcome:18s} {verdict:7s} {result.latency_s:5.1f}s  "
            f"{question.question[:60]}"
        )
        results.append(result)
    return results


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def totals(results: Sequence[EvalResult], model: str = "") -> dict:
    inside = [r for r in results if r.question.in_scope]
    outside = [r for r in results if not r.question.in_scope]
    answered_in = [r for r in inside if r.answered]
    resolved_in = [r for r in inside if r.resolved]
    correct = sum(r.correct for r in inside)
    wrong = sum(r.wrong for r in inside)
    handoffs = [r for r in results if r.handoff_reason]
    ranks = [r.rank() for r in inside if r.question.doc_ids]
    latencies = [r.latency_s for r in results]
    cost = sum(r.cost_usd for r in results)
    p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
    return {
        "model": model,
        "questions": len(results),
        "in_scope": len(inside),
        "out_of_scope": len(outside),
        "resolved": len(resolved_in),
        "correct": correct,
        "wrong": wrong,
        "resolution_rate": _share(len(resolved_in), len(inside)),
        "correct_rate": _share(correct, len(inside)),
        "wrong_rate": _share(wrong, len(inside)),
        "wrong_of_answered": _share(wrong, len(answered_in)),
        "fact_checked": sum(bool(r.question.answer_contains) for r in inside),
        "clarify_rate": _share(sum(r.outcome == CLARIFY for r in results), len(results)),
        "handoff_rate": _share(len(handoffs), len(results)),
        "handoff_reasons": dict(Counter(r.handoff_reason for r in handoffs).most_common()),
        "outcomes": dict(Counter(r.outcome for r in results).most_common()),
        "out_of_scope_refused": _share(sum(not r.answered for r in outside), len(outside)),
        "retrieval": {
            "r_at_1": _share(sum(k == 1 for k in ranks), len(ranks)),
            "r_at_5": _share(sum(k is not None and k <= RETRIEVAL_K for k in ranks), len(ranks)),
            "questions": len(ranks),
        },
        "latency_s": {
            "p50": round(p50, 3) if p50 is not None else None,
            "p95": round(p95, 3) if p95 is not None else None,
        },
        "cost_usd": cost,
        "cost_per_resolved_usd": cost / len(resolved_in) if resolved_in else None,
    }


def evaluate(pipeline, questions: Sequence[EvalQuestion], progress: Progress = lambda m: None) -> dict:
    """`{"totals": {...}, "questions": [...]}` for the questions, run through `pipeline`; the totals say
    when the answer decision of the pipeline's index learned from any of them (the figures are then
    in-sample)."""
    fitted = pipeline.decision_learned_from()
    results = run(pipeline, questions, progress)
    return {
        "totals": {
            **totals(results, pipeline.llm.name),
            "decision_fitted_to_these": any(q.id in fitted for q in questions),
        },
        "questions": [r.to_json() for r in results],
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def totals_table(t: dict) -> list[str]:
    """The headline figures as a Markdown table."""
    rows = [
        ("model", t["model"] or "-"),
        ("questions (in scope / out of scope)", f"{t['questions']} ({t['in_scope']} / {t['out_of_scope']})"),
        ("resolution rate (in scope, answered)", _pct(t["resolution_rate"])),
        ("correct rate (in scope)", _pct(t["correct_rate"])),
        ("wrong rate (in scope)", _pct(t["wrong_rate"])),
        ("wrong of answered", _pct(t["wrong_of_answered"])),
        ("questions with a fact check", str(t["fact_checked"])),
        ("clarify rate", _pct(t["clarify_rate"])),
        (
            "handoff rate",
            " ".join(
                [_pct(t["handoff_rate"]), *(f"{reason} {count}," for reason, count in t["handoff_reasons"].items())]
            ).rstrip(","),
        ),
        ("out of scope refused", _pct(t["out_of_scope_refused"])),
        ("retrieval R@1 / R@5", f"{_pct(t['retrieval']['r_at_1'])} / {_pct(t['retrieval']['r_at_5'])}"),
        ("latency p50 / p95", f"{t['latency_s']['p50']}s / {t['latency_s']['p95']}s"),
        (
            "cost per resolved question",
            "-" if t["cost_per_resolved_usd"] is None else f"${t['cost_per_resolved_usd']:.6f}",
        ),
    ]
    if t.get("decision_fitted_to_these"):
        rows.append(
            (
                "answer decision",
                "fitted to these questions (in-sample: read the held-out split, or calibration's out-of-fold figures)",
            )
        )
    return ["| figure | value |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)]


def write_report(path: str | Path, report: dict, source: str = "", split: str = "all") -> Path:
    """A Markdown report: the totals, then every question with its answer and verdict."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# Evaluation: {source or 'questions'} ({split})",
        "",
        f"Run {when}.",
        "",
        *totals_table(report["totals"]),
        "",
        "## Answers",
        "",
    ]
    for r in report["questions"]:
        verdict = "correct" if r["correct"] else "WRONG" if r["wrong"] else "not answered"
        if not r["in_scope"]:
            verdict = "refused (good)" if r["correct"] else "ANSWERED OUT OF SCOPE"
        lines.append(f"### {r['id']} [{r['split']}] {verdict}")
        lines.append("")
        for turn in r["turns"]:
            lines.append(f"- earlier turn: {turn}")
        lines.append(f"- **Q:** {r['question']}")
        lines.append(f"- **A:** {r['answer']}")
        lines.append(
            f"- outcome `{r['outcome']}`; cited {', '.join(r['cited_doc_ids']) or '-'}; "
            f"gold {', '.join(r['gold_doc_ids']) or '- (out of scope)'}; "
            f"retrieved {', '.join(r['retrieved_doc_ids']) or '-'}"
        )
        lines.append(f"- flags: {', '.join(r['flags']) or '-'}; {r['latency_s']}s; ${r['cost_usd']:.6f}")
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
