"""Scoring the assistant on a question set: how many questions it resolves, and how many correctly.

A question set (its JSON Lines format, reading and splitting it: `chatbot.reporting.questions`) is
run through the pipeline here.

Each question runs in a new conversation. The figures (see `totals`):
- resolution_rate: in-scope questions served without a person: answered, or (vague ones) clarified;
- correct_rate: in-scope questions answered with the key fact (one `answer_contains` match) and
  citing a gold document; without `answer_contains` citing a gold document is taken as the fact;
- wrong_rate / wrong_of_answered: in-scope questions answered without the key fact, of all in-scope
  questions / of the in-scope questions answered (without `answer_contains`: without citing gold);
- out_of_scope_refused: out-of-scope questions neither answered nor suggested (refused or handed over);
- what a customer would get, of the in-scope questions: likely_resolved (the key fact answered, or
  suggested from a gold document), asserted_wrong (answered without it: the harmful case),
  suggested_miss (suggested without it: costs a person, harms nobody), persons_needed (handovers
  plus suggestion misses);
- retrieval R@1/R@5: a gold document first / in the top 5 of the searcher's documents for the question
  (with the earlier turns as context, as the pipeline retrieves);
- latency p50/p95 and cost: the scored turn only (earlier turns are not metered here);
- actions (`chatbot.reporting.action_eval`): action questions routed to the right action with the right
  values, and other questions that ran one; action questions count in no other figure.
"""

from __future__ import annotations

import itertools
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, UTC
from pathlib import Path

# the question sets' names live in chatbot.reporting.questions; re-exported here, where callers import them
from chatbot.reporting.questions import SPLITS, EvalQuestion, assign_splits, load_questions, select, text_hash  # noqa: F401
from chatbot.reporting.action_eval import routed_action, routing_figures
from chatbot.reporting.report import percentile

RETRIEVAL_K = 5
CLARIFY = "clarify"  # an outcome the engine may add: asks the customer what they mean
ANSWERED = "answered"
SUGGESTED = "suggested"  # the closest window offered with "Did this answer your question?": not asserted

Progress = Callable[[str], None]


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
        """In scope: answered, with the key fact, citing gold. Out of scope: not answered. An action question:
        routed to its action (`chatbot.reporting.action_eval` scores the values too)."""
        if self.question.action is not None:
            return routed_action(self)[0] == self.question.action
        if not self.question.in_scope:
            return not self.answered and not self.outcome == SUGGESTED
        if self.question.vague:
            return self.outcome == CLARIFY
        return self.answered and self.cites_gold and self.has_fact is not False

    @property
    def wrong(self) -> bool:
        """In scope: answered without the key fact. Out of scope: answered at all. Never for an action question
        (a missed route is counted by the routing figures)."""
        if self.question.action is not None:
            return False
        if not self.question.in_scope or self.question.vague:
            return self.answered
        if not self.answered:
            return False
        return not self.has_fact if self.has_fact is not None else not self.cites_gold

    @property
    def suggested(self) -> bool:
        return self.outcome == SUGGESTED

    @property
    def suggested_hit(self) -> bool:
        """A suggestion that shows the key fact from a gold document: the customer would likely say yes."""
        return self.suggested and self.cites_gold and self.has_fact is not False

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
            "suggested_hit": self.suggested_hit,
            "flags": self.flags,
            "latency_s": round(self.latency_s, 3),
            "cost_usd": self.cost_usd,
            "grounding": self.grounding or {},
        }


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


def run(
    pipeline, questions: Sequence[EvalQuestion], progress: Progress = lambda m: None, workers: int = 1
) -> list[EvalResult]:
    """Each question's result, in the questions' order. `workers` > 1 asks that many questions at once, as
    customers would (a CPU decodes one reply per core): the figures are the same, the latencies include the
    others' load."""
    done = itertools.count(1)

    def one(question: EvalQuestion) -> EvalResult:
        result = run_question(pipeline, question)
        verdict = "correct" if result.correct else "WRONG" if result.wrong else "-"
        progress(
            f"[{next(done)}/{len(questions)}] {result.outcome:18s} {verdict:7s} {result.latency_s:5.1f}s  "
            f"{question.question[:60]}"
        )
        return result

    if workers <= 1:
        return [one(q) for q in questions]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="eval") as pool:
        return list(pool.map(one, questions))


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def totals(results: Sequence[EvalResult], model: str = "") -> dict:
    """The figures of the module's docstring; action questions are scored apart, on routing (`actions`)."""
    actions = routing_figures(results)
    results = [r for r in results if r.question.action is None]
    inside = [r for r in results if r.question.in_scope]
    outside = [r for r in results if not r.question.in_scope]
    answered_in = [r for r in inside if r.answered]
    resolved_in = [r for r in inside if r.resolved]
    correct = sum(r.correct for r in inside)
    wrong = sum(r.wrong for r in inside)
    handoffs = [r for r in results if r.handoff_reason]
    suggested_hits = sum(r.suggested_hit for r in inside)
    suggested_misses = sum(r.suggested and not r.suggested_hit for r in inside)
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
        "out_of_scope_refused": _share(sum(not r.answered and not r.suggested for r in outside), len(outside)),
        # what a customer would get (in scope): the key fact answered or suggested; a wrong fact asserted; a
        # suggestion without it (costs a person, harms nobody); and the persons needed (handovers + those)
        "likely_resolved": _share(correct + suggested_hits, len(inside)),
        "asserted_wrong": _share(wrong, len(inside)),
        "suggested_miss": _share(suggested_misses, len(inside)),
        "persons_needed": _share(sum(bool(r.handoff_reason) for r in inside) + suggested_misses, len(inside)),
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
        "actions": actions,
    }


def evaluate(
    pipeline, questions: Sequence[EvalQuestion], progress: Progress = lambda m: None, workers: int = 1
) -> dict:
    """`{"totals": {...}, "questions": [...]}` for the questions, run through `pipeline` (`workers` at once);
    the totals say when the answer decision of the pipeline's index learned from any of them (the figures
    are then in-sample)."""
    fitted = pipeline.decision_learned_from()
    results = run(pipeline, questions, progress, workers)
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
        ("likely resolved (key fact answered or suggested)", _pct(t.get("likely_resolved"))),
        ("asserted wrong (in scope)", _pct(t.get("asserted_wrong"))),
        ("suggested without the key fact", _pct(t.get("suggested_miss"))),
        ("persons needed (handovers + suggestion misses)", _pct(t.get("persons_needed"))),
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
    routing = t.get("actions") or {}
    if routing.get("action_questions"):
        rows.append(
            (
                "action routing: right action / right values / precision",
                f"{_pct(routing['recall'])} / {_pct(routing['values_rate'])} / {_pct(routing['precision'])}",
            )
        )
    if routing.get("action_questions"):
        rows.append(("other questions that ran an action", str(routing["others_routed"])))
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
        if r["outcome"] == SUGGESTED and r["in_scope"]:
            verdict = "suggested, key fact shown" if r.get("suggested_hit") else "suggested, without the key fact"
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
