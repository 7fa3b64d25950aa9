"""Retrieval benchmark on real data nobody here wrote: dense vs BM25 vs hybrid, with and without context.

1. Arduino help centre (../shared/data/arduino-help-center/content, 414 articles): recall@1/@5 and
   MRR of the gold article for customer-style paraphrased questions (bench/data/arduino_questions.jsonl).
2. DSTC10 track 2 spoken dialogues (../shared/data/dstc10-spoken-kgd): recall@1/5/10 and MRR of the
   gold FAQ snippet (12,039 snippets) for the 104 knowledge-seeking turns, last turn only and with
   the previous turns as conversation context, under real ASR noise.

Every variant runs on the same index and embedder in the same process, so the ratios are fair.
Usage: .venv/bin/python bench/retrieval.py [--out bench/results] [--limit N]
Writes retrieval.json and retrieval.md (a table) and retrieval.svg (a chart) into --out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chatbot.builder import build_embedder, build_index, build_searcher  # noqa: E402
from core.config import load_config  # noqa: E402
from knowledge.index import KnowledgeIndex  # noqa: E402
from knowledge.ingest import iter_documents  # noqa: E402
from knowledge.search import HybridSearcher  # noqa: E402
from knowledge.types import Document  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
VARIANTS = {  # name -> (dense_weight, lexical_weight); "hybrid" is the shipped default
    "dense": (1.0, 0.0),
    "bm25": (0.0, 1.0),
    "hybrid": (1.0, 0.5),
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def score(ranked: list[str], gold: str, ks=(1, 5, 10)) -> dict:
    rank = ranked.index(gold) + 1 if gold in ranked else None
    out = {f"r@{k}": float(rank is not None and rank <= k) for k in ks}
    out["mrr"] = 1.0 / rank if rank else 0.0
    return out


def mean(rows: list[dict]) -> dict:
    return {key: round(sum(r[key] for r in rows) / len(rows), 3) for key in rows[0]} if rows else {}


def build(directory: Path, documents: list[Document], embedder, config) -> KnowledgeIndex:
    index = build_index(config.with_overrides({"index_dir": str(directory)}), embedder)
    report = index.ingest(documents, config.chunking.max_chars, config.chunking.overlap_chars, progress=log)
    log(f"index {directory}: {report.documents} documents, {report.chunks} chunks")
    return index.load()


def searcher_for(config, index: KnowledgeIndex, weights: tuple[float, float]) -> HybridSearcher:
    """The shipped searcher (through the builder) with one variant's (dense, lexical) weights."""
    dense, lexical = weights
    return build_searcher(
        config.with_overrides({"retrieval": {"dense_weight": dense, "lexical_weight": lexical}}), index
    )


def arduino(out: Path, embedder, config, limit: int | None) -> dict:
    questions = [
        json.loads(line)
        for line in (ROOT / "bench/data/arduino_questions.jsonl").read_text().splitlines()
        if line.strip()
    ]
    questions = questions[:limit] if limit else questions
    index = build(
        out / "index-arduino", list(iter_documents([str(SHARED / "arduino-help-center/content")])), embedder, config
    )
    results = {}
    for name, weights in VARIANTS.items():
        searcher = searcher_for(config, index, weights)
        started = time.perf_counter()
        rows = [
            score([p.doc_id for p in searcher.search_documents(q["question"], k=10)], str(q["article_id"]))
            for q in questions
        ]
        results[name] = {**mean(rows), "ms_per_query": round(1000 * (time.perf_counter() - started) / len(rows), 1)}
        log(f"arduino {name}: {results[name]}")
    return {"questions": len(questions), "documents": index.document_count(), "results": results}


def dstc10_documents() -> list[Document]:
    knowledge = json.loads((SHARED / "dstc10-spoken-kgd/knowledge.json").read_text())
    root = str(SHARED / "dstc10-spoken-kgd")
    documents = []
    for domain, entities in knowledge.items():
        for entity_id, entity in entities.items():
            name = entity.get("name") or domain
            for doc_id, doc in entity["docs"].items():
                documents.append(
                    Document(
                        f"{domain}/{entity_id}/{doc_id}",
                        f"{name}: {doc['title']}",
                        "",
                        doc["body"],
                        "knowledge.json",
                        root,
                    )
                )
    return documents


def dstc10(out: Path, embedder, config, limit: int | None, context_turns: int = 5) -> dict:
    base = SHARED / "dstc10-spoken-kgd/val"
    logs = json.loads((base / "logs.json").read_text())
    labels = json.loads((base / "labels.json").read_text())
    cases = [(log_, label["knowledge"][0]) for log_, label in zip(logs, labels) if label["target"]]
    cases = cases[:limit] if limit else cases
    index = build(out / "index-dstc10", dstc10_documents(), embedder, config)
    results = {}
    # the baseline: plain dense retrieval of the turns concatenated oldest first
    rows = []
    for turns, gold in cases:
        text = " ".join(t["text"] for t in turns[-1 - context_turns :])
        ranked, seen = [], set()
        for chunk_id, _ in index.dense(embedder.embed([text])[0], 60):
            doc_id = index.chunks[chunk_id].doc_id
            if doc_id not in seen:
                seen.add(doc_id)
                ranked.append(doc_id)
        rows.append(score(ranked[:10], f"{gold['domain']}/{gold['entity_id']}/{gold['doc_id']}"))
    results[f"plain dense, {context_turns + 1} turns concatenated"] = mean(rows) | {"ms_per_query": None}
    for name, weights in VARIANTS.items():
        searcher = searcher_for(config, index, weights)
        for with_context in (False, True):
            rows = []
            started = time.perf_counter()
            for turns, gold in cases:
                question = turns[-1]["text"]
                context = [t["text"] for t in turns[-1 - context_turns : -1]] if with_context else []
                ranked = [p.doc_id for p in searcher.search_documents(question, k=10, context=context)]
                rows.append(score(ranked, f"{gold['domain']}/{gold['entity_id']}/{gold['doc_id']}"))
            key = f"{name}+context{context_turns}" if with_context else f"{name} last-turn"
            results[key] = {**mean(rows), "ms_per_query": round(1000 * (time.perf_counter() - started) / len(rows), 1)}
            log(f"dstc10 {key}: {results[key]}")
    return {"turns": len(cases), "snippets": index.document_count(), "results": results}


def table(title: str, results: dict) -> str:
    keys = list(next(iter(results.values())))
    lines = [f"### {title}", "", "| variant | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(str(v[k]) for k in keys) + " |" for name, v in results.items()]
    return "\n".join(lines)


def chart(sections: dict[str, dict], metric: str = "r@5") -> str:
    """A small horizontal bar chart (SVG, no plotting library needed)."""
    rows = [(f"{s}: {name}", v[metric]) for s, data in sections.items() for name, v in data["results"].items()]
    width, bar_h, left = 640, 22, 250
    height = 40 + bar_h * len(rows)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
        f'<text x="10" y="20" font-size="14">Retrieval {metric} (higher is better)</text>',
    ]
    for i, (label, value) in enumerate(rows):
        y = 32 + i * bar_h
        w = (width - left - 60) * value
        colour = "#2b7bb9" if "hybrid" in label else "#9ab"
        parts.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{label}</text>')
        parts.append(f'<rect x="{left}" y="{y + 2}" width="{w:.1f}" height="{bar_h - 6}" fill="{colour}"/>')
        parts.append(f'<text x="{left + w + 4:.1f}" y="{y + 14}">{value:.3f}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "bench/results"))
    parser.add_argument("--limit", type=int, help="only the first N questions of each set")
    parser.add_argument("--only", choices=["arduino", "dstc10"], help="run one of the two sets")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = load_config()
    embedder = build_embedder(config)
    report: dict = {"embedder": embedder.name}
    if args.only in (None, "arduino"):
        report["arduino"] = arduino(out, embedder, config, args.limit)
    if args.only in (None, "dstc10"):
        report["dstc10"] = dstc10(out, embedder, config, args.limit)
    (out / "retrieval.json").write_text(json.dumps(report, indent=1))
    tables = []
    if "arduino" in report:
        a = report["arduino"]
        tables.append(
            table(
                f"Arduino help centre ({a['questions']} paraphrased questions, {a['documents']} articles)", a["results"]
            )
        )
    if "dstc10" in report:
        d = report["dstc10"]
        tables.append(
            table(f"DSTC10 spoken ({d['turns']} knowledge-seeking turns, {d['snippets']} snippets)", d["results"])
        )
    (out / "retrieval.md").write_text("\n\n".join(tables) + "\n")
    (out / "retrieval.svg").write_text(chart({k: v for k, v in report.items() if k != "embedder"}))
    print((out / "retrieval.md").read_text())


if __name__ == "__main__":
    main()
