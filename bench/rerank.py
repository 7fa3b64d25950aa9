"""Does the help centre's own reranker (knowledge/rerank.py) put the right article first?

Document recall@1/@5 of `searcher.search_documents(question, k=5, context=turns)` on the Arduino
help centre's in-scope questions with gold documents (bench/data/arduino_eval.jsonl), dev and
heldout splits side by side, hybrid search against hybrid + reranker, on the same index in the same
process; plus the reranker's own cost per question (ms) and its training time and size.

Settings are chosen on dev only: `--split dev --sweep` tries rerank_candidates x rerank_weight and
prints dev alone; fix the choice in core/config.py, then run `--split both` once for heldout.
The index is trained into (INDEX/reranker/) when its reranker is missing or stale: pass a copy.

Usage: .venv/bin/python bench/rerank.py --index /tmp/rr-index [--split dev|heldout|both] [--sweep]
       [--out bench/results]   (writes rerank.json and rerank.md there)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chatbot.builder import build_index, build_searcher, train_reranker  # noqa: E402
from chatbot.models import EMBEDDERS, resolve  # noqa: E402
from core.config import load_config  # noqa: E402
from knowledge.rerank import QueryEncoderReranker, RerankingSearcher  # noqa: E402

QUESTIONS = ROOT / "bench/data/arduino_eval.jsonl"
SWEEP_CANDIDATES = (10, 20, 30)
SWEEP_WEIGHTS = (0.5, 1.0, 2.0, 4.0, 100.0)  # 100: the reranker's order alone within the candidates


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def questions(split: str) -> list[dict]:
    rows = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [q for q in rows if q.get("in_scope") and q.get("doc_ids") and q.get("split") == split]


class Timed:
    """A reranker that adds up the time spent scoring (the reranking cost of a question)."""

    def __init__(self, reranker):
        self.reranker = reranker
        self.seconds = 0.0
        self.calls = 0

    def __getattr__(self, name):
        return getattr(self.reranker, name)

    def scores(self, query, passages, context=()):
        started = time.perf_counter()
        try:
            return self.reranker.scores(query, passages, context)
        finally:
            self.seconds += time.perf_counter() - started
            self.calls += 1


def recall(searcher, rows: list[dict]) -> dict:
    r1 = r5 = 0
    started = time.perf_counter()
    for q in rows:
        ranked = [p.doc_id for p in searcher.search_documents(q["question"], k=5, context=q.get("turns", []))]
        gold = set(q["doc_ids"])
        r1 += bool(ranked) and ranked[0] in gold
        r5 += any(d in gold for d in ranked)
    n = max(len(rows), 1)
    return {
        "questions": len(rows),
        "r@1": round(r1 / n, 3),
        "r@5": round(r5 / n, 3),
        "ms_per_query": round(1000 * (time.perf_counter() - started) / n, 1),
    }


class Memo:
    """The sweep's hybrid searcher: each question's fused candidates are found once."""

    def __init__(self, searcher):
        self.searcher = searcher
        self.seen: dict = {}

    def __getattr__(self, name):
        return getattr(self.searcher, name)

    def search(self, query, k=5, context=()):
        key = (query, k, tuple(context))
        if key not in self.seen:
            self.seen[key] = self.searcher.search(query, k=k, context=context)
        return self.seen[key]


def reranked_searcher(config, index, candidates: int, weight: float, memo: Memo | None = None):
    config = config.with_overrides(
        {"retrieval": {"rerank": True, "rerank_candidates": candidates, "rerank_weight": weight}}
    )
    searcher = build_searcher(config, index)
    searcher.reranker = Timed(searcher.reranker)
    if memo is not None:
        searcher.searcher = memo
    return searcher


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True, help="a copy of the Arduino index (its reranker is trained into it)")
    parser.add_argument("--split", choices=["dev", "heldout", "both"], default="dev")
    parser.add_argument("--sweep", action="store_true", help="dev only: try rerank_candidates x rerank_weight")
    parser.add_argument("--config", help="TOML config (default: the defaults in code)")
    parser.add_argument("--out", help="folder for rerank.json and rerank.md")
    args = parser.parse_args()
    if args.sweep and args.split != "dev":
        parser.error("--sweep chooses settings: on dev only")

    config = load_config(args.config, {"index_dir": args.index})
    index = build_index(config).load()
    meta = train_reranker(config, index, log)
    log(
        f"reranker: {meta.get('questions')} pseudo-questions, {meta.get('train_seconds')} s to train "
        f"({'now' if meta.get('trained') else 'cached'}), {meta.get('size_mb')} MB"
    )
    r = config.retrieval
    hybrid = build_searcher(config.with_overrides({"retrieval": {"rerank": False}}), index)
    reranked = reranked_searcher(config, index, r.rerank_candidates, r.rerank_weight)
    # the control: the same reranking with the embedder as it ships (untrained), to tell what training adds
    untrained = RerankingSearcher(
        hybrid,
        Timed(
            QueryEncoderReranker(resolve(config.models.embedder, EMBEDDERS, "embedder"), index, "cpu", name="untrained")
        ),
        r.rerank_candidates,
        r.rerank_weight,
        r.rrf_k,
    )
    for searcher in (reranked, untrained):
        searcher.reranker.warm_up()
    hybrid.search("warm up", k=1)

    splits = ["dev", "heldout"] if args.split == "both" else [args.split]
    results: dict = {
        "settings": {"rerank_candidates": r.rerank_candidates, "rerank_weight": r.rerank_weight},
        "reranker": {
            k: meta.get(k)
            for k in (
                "questions",
                "title",
                "heading",
                "sentence",
                "train_seconds",
                "size_mb",
                "first_loss",
                "last_loss",
            )
        },
        "splits": {},
    }
    for split in splits:
        rows = questions(split)
        variants = {"hybrid": hybrid, "hybrid+reranker": reranked, "hybrid+untrained embedder as reranker": untrained}
        results["splits"][split] = {}
        for name, searcher in variants.items():  # same index, same process, one after the other
            timed = getattr(searcher, "reranker", None)
            if timed is not None:
                timed.seconds, timed.calls = 0.0, 0
            results["splits"][split][name] = recall(searcher, rows)
            if timed is not None:
                results["splits"][split][name]["rerank_ms_per_query"] = round(
                    1000 * timed.seconds / max(len(rows), 1), 1
                )
            log(f"{split} {name}: {results['splits'][split][name]}")

    if args.sweep:
        rows = questions("dev")
        sweep = {}
        memo = Memo(hybrid)
        for candidates in SWEEP_CANDIDATES:
            for weight in SWEEP_WEIGHTS:
                searcher = reranked_searcher(config, index, candidates, weight, memo)
                sweep[f"candidates={candidates} weight={weight}"] = recall(searcher, rows)
                log(f"dev candidates={candidates} weight={weight}: {sweep[f'candidates={candidates} weight={weight}']}")
        results["dev_sweep"] = sweep

    lines = [
        "| split | variant | questions | R@1 | R@5 | ms/query | rerank ms/query |",
        "|---|---|---|---|---|---|---|",
    ]
    for split, variants in results["splits"].items():
        for name, v in variants.items():
            lines.append(
                f"| {split} | {name} | {v['questions']} | {v['r@1']} | {v['r@5']} | {v['ms_per_query']} "
                f"| {v.get('rerank_ms_per_query', '')} |"
            )
    table = "\n".join(lines)
    print(table)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "rerank.json").write_text(json.dumps(results, indent=1))
        (out / "rerank.md").write_text(
            f"### Reranker (bench/rerank.py)\n\n{table}\n\nreranker: {results['reranker']}\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
