"""Check the Arduino help-centre evaluation set (bench/data/arduino_eval.jsonl) against the articles.

Run:  python bench/check_eval_set.py [PATH] [--articles ARTICLES_JSONL]
      (defaults: bench/data/arduino_eval.jsonl and ../shared/data/arduino-help-center/articles.jsonl)

Standard library only; no model or index needed. Exits 1 and lists every problem when any check fails:
- every line is one JSON object with the keys id, question, doc_ids, answer_contains, in_scope, split
  (turns optional); ids are unique and look like "ard-001"; no question text is repeated;
- split is "dev" or "heldout" and equals the hash rule: heldout iff int(sha1(id).hexdigest(), 16) % 3 == 0;
- kinds: direct (in scope, gold docs, no turns), follow-up (in scope, gold docs, 1-2 earlier turns),
  vague (in scope, doc_ids [] and answer_contains []: the bot should ask a clarifying question),
  out of scope (in_scope false, doc_ids [] and answer_contains []);
- every doc_id is an article_id in articles.jsonl, and no article is gold for more than 3 questions;
- answerable questions have 1-3 answer_contains patterns; each compiles and matches (case-insensitively)
  the text of at least one of its gold articles;
- at least --min-lines questions.
It then prints counts per kind and split, per help-centre section and split, and the number of distinct
articles. Patterns that also match the question (or its turns) are listed as warnings only: an answer
that merely echoes the customer would pass them, so they are weak evidence of the key fact.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SET = ROOT / "bench" / "data" / "arduino_eval.jsonl"
DEFAULT_ARTICLES = ROOT.parent / "shared" / "data" / "arduino-help-center" / "articles.jsonl"
KEYS = {"id", "question", "doc_ids", "answer_contains", "in_scope", "split", "turns"}
REQUIRED = KEYS - {"turns"}
KINDS = ("direct", "follow-up", "vague", "out-of-scope")


def split_for(qid: str) -> str:
    """The stable split rule: a third of the ids (by SHA-1) are held out."""
    return "heldout" if int(hashlib.sha1(qid.encode("utf-8")).hexdigest(), 16) % 3 == 0 else "dev"


def kind_of(rec: dict) -> str:
    if not rec.get("in_scope"):
        return "out-of-scope"
    if not rec.get("doc_ids"):
        return "vague"
    return "follow-up" if rec.get("turns") else "direct"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", default=str(DEFAULT_SET))
    ap.add_argument("--articles", default=str(DEFAULT_ARTICLES))
    ap.add_argument("--min-lines", type=int, default=170)
    ap.add_argument("--max-per-article", type=int, default=3)
    args = ap.parse_args(argv)

    articles = {}
    for line in Path(args.articles).read_text(encoding="utf-8").splitlines():
        if line.strip():
            a = json.loads(line)
            articles[str(a["article_id"])] = a

    errors: list[str] = []
    warnings: list[str] = []
    records: list[dict] = []
    seen_ids: dict[str, int] = {}
    seen_questions: dict[str, int] = {}
    for n, line in enumerate(Path(args.path).read_text(encoding="utf-8").splitlines(), start=1):
        where = f"line {n}"
        if not line.strip():
            errors.append(f"{where}: blank line")
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"{where}: not valid JSON ({exc.msg})")
            continue
        if not isinstance(rec, dict):
            errors.append(f"{where}: not a JSON object")
            continue
        missing, extra = REQUIRED - rec.keys(), rec.keys() - KEYS
        if missing or extra:
            errors.append(f"{where}: missing keys {sorted(missing)} / unknown keys {sorted(extra)}")
            continue
        qid, q = rec["id"], rec["question"]
        where = f"line {n} ({qid})"
        if not isinstance(qid, str) or not re.fullmatch(r"ard-\d{3,}", qid):
            errors.append(f"{where}: id must look like 'ard-001'")
        elif qid in seen_ids:
            errors.append(f"{where}: duplicate id (also line {seen_ids[qid]})")
        else:
            seen_ids[qid] = n
        if not isinstance(q, str) or not q.strip():
            errors.append(f"{where}: empty question")
            continue
        norm = " ".join(q.lower().split())
        if norm in seen_questions:
            errors.append(f"{where}: same question as line {seen_questions[norm]}")
        seen_questions[norm] = n
        if not isinstance(rec["in_scope"], bool):
            errors.append(f"{where}: in_scope must be true/false")
        if rec["split"] not in ("dev", "heldout"):
            errors.append(f"{where}: split must be dev or heldout")
        elif isinstance(qid, str) and rec["split"] != split_for(qid):
            errors.append(f"{where}: split is {rec['split']!r} but the hash rule gives {split_for(qid)!r}")
        turns = rec.get("turns", [])
        if not isinstance(turns, list) or not all(isinstance(t, str) and t.strip() for t in turns):
            errors.append(f"{where}: turns must be a list of non-empty strings")
            turns = []
        elif "turns" in rec and not 1 <= len(turns) <= 2:
            errors.append(f"{where}: turns should hold 1-2 earlier messages (omit the key when none)")
        docs, pats = rec["doc_ids"], rec["answer_contains"]
        if not isinstance(docs, list) or not all(isinstance(d, str) for d in docs):
            errors.append(f"{where}: doc_ids must be a list of strings")
            continue
        if not isinstance(pats, list) or not all(isinstance(p, str) and p for p in pats):
            errors.append(f"{where}: answer_contains must be a list of non-empty strings")
            continue
        kind = kind_of(rec)
        if kind in ("vague", "out-of-scope"):
            if docs or pats or turns:
                errors.append(f"{where}: {kind} questions need doc_ids [], answer_contains [] and no turns")
        else:
            unknown = [d for d in docs if d not in articles]
            if unknown:
                errors.append(f"{where}: doc_ids not in articles.jsonl: {unknown}")
            if not 1 <= len(pats) <= 3:
                errors.append(f"{where}: answerable questions need 1-3 answer_contains patterns")
            gold_text = [articles[d]["text"] for d in docs if d in articles]
            asked = " ".join([*turns, q])
            for p in pats:
                try:
                    rx = re.compile(p, re.I)
                except re.error as exc:
                    errors.append(f"{where}: pattern {p!r} does not compile ({exc})")
                    continue
                if gold_text and not any(rx.search(t) for t in gold_text):
                    errors.append(f"{where}: pattern {p!r} matches no gold article text")
                if rx.search(asked):
                    warnings.append(f"{where}: pattern {p!r} already matches the question/turns")
        rec["_kind"] = kind
        records.append(rec)

    if len(records) < args.min_lines:
        errors.append(f"only {len(records)} valid questions; at least {args.min_lines} expected")
    per_article = Counter(d for r in records for d in r["doc_ids"])
    for d, c in sorted(per_article.items()):
        if c > args.max_per_article:
            errors.append(
                f"article {d} ({articles.get(d, {}).get('title', '?')}) is gold for {c} questions "
                f"(max {args.max_per_article})"
            )

    # Report.
    by_kind = Counter((r["_kind"], r["split"]) for r in records)
    print(f"{args.path}: {len(records)} questions")
    print(f"{'kind':<14}{'dev':>6}{'heldout':>9}{'total':>7}")
    for k in KINDS:
        d, h = by_kind[(k, "dev")], by_kind[(k, "heldout")]
        print(f"{k:<14}{d:>6}{h:>9}{d + h:>7}")
    d = sum(v for (k, s), v in by_kind.items() if s == "dev")
    h = sum(v for (k, s), v in by_kind.items() if s == "heldout")
    print(f"{'all':<14}{d:>6}{h:>9}{d + h:>7}")
    by_section = Counter(
        (articles[r["doc_ids"][0]]["section"], r["split"])
        for r in records
        if r["doc_ids"] and r["doc_ids"][0] in articles
    )
    print(f"\n{'gold section (first doc)':<26}{'dev':>6}{'heldout':>9}")
    for sec in sorted({s for s, _ in by_section}):
        print(f"{sec:<26}{by_section[(sec, 'dev')]:>6}{by_section[(sec, 'heldout')]:>9}")
    cats = {(articles[x]["section"], articles[x]["category"]) for x in per_article if x in articles}
    print(f"\ndistinct gold articles: {len(per_article)} in {len(cats)} categories")
    for w in warnings:
        print("warning:", w)
    for e in errors:
        print("ERROR:", e, file=sys.stderr)
    print(f"\n{len(errors)} error(s), {len(warnings)} warning(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
