"""Answer benchmark: latency, tokens/s, outcomes and how often the grounding check fires.

Runs the real pipeline (offline default models) over question sets with a known article:
- the demo help centre (demo/questions.jsonl: question, doc_ids, answer_contains regexes; single-turn, in scope);
- the Arduino help centre (bench/data/arduino_questions.jsonl), indexed by bench/retrieval.py.
Each question starts a new conversation. Writes answers.json and answers.md into --out.
Usage: .venv/bin/python bench/answers.py [--limit N] [--set demo|arduino] [--direct-quote-cosine 1.01] [--llm NAME]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chatbot.builder import build_pipeline  # noqa: E402
from core.config import load_config  # noqa: E402
from chatbot.reporting.evaluation import EvalQuestion, load_questions  # noqa: E402
from chatbot.reporting.report import percentile  # noqa: E402


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_set(
    name: str,
    index_dir: Path,
    questions: list[EvalQuestion],
    out: Path,
    company: str,
    grounding: dict | None = None,
    models: dict | None = None,
) -> dict:
    config = load_config(
        None,
        {
            "index_dir": str(index_dir),
            "db_url": f"sqlite:///{out}/answers-{name}.db",
            "company_name": company,
            "grounding": grounding or {},
            "models": models or {},
        },
    )
    pipeline = build_pipeline(config, log)
    started = time.perf_counter()
    pipeline.warm_up()
    warm_up_s = time.perf_counter() - started
    rows = []
    for i, q in enumerate(questions, start=1):
        t0 = time.perf_counter()
        reply = pipeline.ask(q.question, channel="bench")
        wall = time.perf_counter() - t0
        rows.append(
            {
                "question": q.question,
                "answer": reply.answer,
                "outcome": reply.outcome,
                "sources": [f"{s.title} [{s.doc_id}]" for s in reply.sources],
                "cited_gold": any(s.doc_id in q.doc_ids for s in reply.sources),
                "contains_fact": (
                    any(re.search(p, reply.answer, re.I) for p in q.answer_contains) if q.answer_contains else None
                ),
                "grounding": reply.grounding,
                "wall_s": wall,
                "llm_s": reply.usage.llm_s,
                "completion_tokens": reply.usage.completion_tokens,
                "prompt_tokens": reply.usage.prompt_tokens,
                "cost_usd": reply.cost.cost_usd,
                "api_shadow_cost_usd": reply.cost.api_shadow_cost_usd,
            }
        )
        log(f"[{name} {i}/{len(questions)}] {reply.outcome:18s} {wall:5.1f}s  {q.question[:60]}")
    generated = [r for r in rows if r["completion_tokens"]]
    fired = [r for r in generated if r["grounding"].get("dropped", 0) > 0]
    outcomes: dict[str, int] = {}
    for r in rows:
        outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
    facts = [r["contains_fact"] for r in rows if r["contains_fact"] is not None]
    answered = [r for r in rows if r["outcome"] == "answered"]
    summary = {
        "questions": len(rows),
        "warm_up_s": round(warm_up_s, 1),
        "latency_s": {
            "p50": round(percentile([r["wall_s"] for r in rows], 0.5), 2),
            "p95": round(percentile([r["wall_s"] for r in rows], 0.95), 2),
        },
        "tokens_per_s": round(
            sum(r["completion_tokens"] for r in generated) / max(sum(r["llm_s"] for r in generated), 1e-9), 1
        ),
        "mean_prompt_tokens": round(statistics.mean(r["prompt_tokens"] for r in generated), 1) if generated else 0,
        "outcomes": outcomes,
        "direct_quotes": sum(bool(r["grounding"].get("direct_quote")) for r in rows),
        "grounding_fired_share": round(len(fired) / len(generated), 3) if generated else None,
        "sentences_dropped_share": round(
            sum(r["grounding"].get("dropped", 0) for r in generated)
            / max(sum(r["grounding"].get("claims", 0) for r in generated), 1),
            3,
        ),
        "answered_cites_gold_share": round(sum(r["cited_gold"] for r in answered) / len(answered), 3)
        if answered
        else None,
        "contains_fact_share": round(sum(facts) / len(facts), 3) if facts else None,
        # a precision proxy: of the turns answered (not handed over), how many state the gold fact
        "answered_contains_fact_share": (
            round(sum(bool(r["contains_fact"]) for r in answered) / len(answered), 3) if answered and facts else None
        ),
        "cost_per_turn_usd": statistics.mean(r["cost_usd"] for r in rows),
        "api_shadow_per_turn_usd": statistics.mean(r["api_shadow_cost_usd"] for r in rows),
    }
    log(f"{name}: {json.dumps(summary)}")
    return {"summary": summary, "answers": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "bench/results"))
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--set", choices=["demo", "arduino"], action="append")
    parser.add_argument(
        "--direct-quote-cosine",
        type=float,
        help="override [grounding] direct_quote_cosine; 1.01 turns direct quotes off (the baseline)",
    )
    parser.add_argument("--llm", help="override [models] llm, e.g. smollm2-135m-instruct-int8 or a folder")
    args = parser.parse_args()
    grounding = {} if args.direct_quote_cosine is None else {"direct_quote_cosine": args.direct_quote_cosine}
    models = {"llm": args.llm} if args.llm else {}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sets = args.set or ["demo", "arduino"]
    report = {}
    if "demo" in sets:
        index = out / "index-demo"
        from chatbot.builder import build_index
        from knowledge.ingest import iter_documents

        config = load_config(None, {"index_dir": str(index)})
        build_index(config).ingest(
            iter_documents([str(ROOT / "demo/help-centre")]), config.chunking.max_chars, config.chunking.overlap_chars
        )
        # one turn each: the follow-ups and out-of-scope questions are `chatbot eval`'s to score
        questions = [q for q in load_questions(ROOT / "demo/questions.jsonl") if q.in_scope and not q.turns]
        report["demo"] = run_set("demo", index, questions[: args.limit], out, "Lumen & Oak", grounding, models)
    if "arduino" in sets:
        index = out / "index-arduino"
        if not (index / "manifest.json").exists():
            sys.exit(f"{index} is missing: run bench/retrieval.py first")
        questions = load_questions(ROOT / "bench/data/arduino_questions.jsonl")
        report["arduino"] = run_set("arduino", index, questions[: args.limit], out, "Arduino", grounding, models)
    (out / "answers.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))
    lines = []
    for name, data in report.items():
        lines += [f"## {name}", "", "```", json.dumps(data["summary"], indent=1), "```", ""]
        for r in data["answers"][:8]:
            lines += [
                f"- **Q:** {r['question']}",
                f"  **A:** {r['answer']}",
                f"  _{r['outcome']}; sources: {', '.join(r['sources']) or '-'}_",
            ]
        lines.append("")
    (out / "answers.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
