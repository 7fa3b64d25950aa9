"""Sentences split and embedded at ingest vs on every turn: per-turn time of the grounding check,
the quote search and the prompt's sentence pick, before and after, side by side in one run.

"Before" is the code as it was (copied below: `_OldChecker`, `_old_relevant_sentences`): every turn
splits the retrieved chunks' sentences three times and embeds them twice (quote search, check).
"After" is the shipped `GroundingChecker` on the same passages, whose chunks carry the sentences
and vectors stored at ingest: only the question and the answer's sentences are embedded.
The demo help centre (demo/help-centre) and its single-turn questions (demo/questions.jsonl), the
configured embedder (MiniLM), the pipeline's retrieval (k passages). The answer checked is a
stand-in for the LLM's: "Sure!", the top passage's two sentences closest to the question in words,
and an invented sentence (a dropped claim). Each turn runs `--repeats` times per path, interleaved;
the fastest run is kept (a shared machine's noise only adds time), and the table gives the median turn. Both paths' results are compared (supported flags, sources, quotes, cosines).

Usage: .venv/bin/python bench/sentences.py [--repeats 5] [--limit N] [--ingest FOLDER --index DIR]
`--ingest` also times a fresh ingest of FOLDER into DIR (removed first) and lists the index files' sizes.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chatbot.answer.grounding import (  # noqa: E402
    DONT_KNOW,
    FILLER,
    GroundingChecker,
    GroundingResult,
    Quote,
    SentenceCheck,
    negated,
    numbers,
    quantities_supported,
    strip_citations,
)
from chatbot.answer.sentences import is_meta, no_claim  # noqa: E402
from chatbot.answer.prompt import relevant_sentences  # noqa: E402
from chatbot.builder import build_checker, build_embedder, build_index, build_searcher  # noqa: E402
from chatbot.reporting.evaluation import load_questions  # noqa: E402
from core.config import load_config  # noqa: E402
from knowledge.chunking import split_sentences  # noqa: E402
from knowledge.ingest import iter_documents  # noqa: E402
from knowledge.lexical import tokenize  # noqa: E402


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class _OldChecker(GroundingChecker):
    """check() and best_quote() as they were before sentences were stored: split and embed per call."""

    def check(self, answer, passages, question=""):
        sentences = [strip_citations(s) for s in split_sentences(answer)]
        sentences = [s for s in sentences if s]
        declined = bool(DONT_KNOW.search(answer))
        if not sentences or not passages:
            return GroundingResult(tuple(SentenceCheck(s, False, True, None, 0.0, 0.0) for s in sentences), declined)
        headings = [" ".join((p.chunk.title, *p.chunk.headings)) for p in passages]
        source_sentences = [split_sentences(p.chunk.text) or [p.chunk.text] for p in passages]
        flat = [s for group in source_sentences for s in group]
        asked = f"{question.strip()} " if question.strip() else ""
        vectors = self.embedder.embed([asked + s for s in sentences] + flat)
        answer_vectors, flat_vectors = vectors[: len(sentences)], vectors[len(sentences) :]
        bounds = np.cumsum([0] + [len(g) for g in source_sentences])
        known = set(tokenize(question)) | FILLER
        checks = []
        for i, sentence in enumerate(sentences):
            content = set(tokenize(sentence)) - known
            if not content or (len(content) < 2 and not numbers(sentence)) or no_claim(sentence):
                checks.append(SentenceCheck(sentence, False, False, None, 0.0, 0.0))
                continue
            similarity = flat_vectors @ answer_vectors[i]
            best = (None, -1.0, 0.0, 0.0)
            for j in range(len(passages)):
                scores = similarity[bounds[j] : bounds[j + 1]]
                closest = np.argsort(-scores)[: self.evidence_sentences]
                evidence = " ".join([headings[j], *(source_sentences[j][k] for k in closest)])
                overlap = len(content & set(tokenize(evidence, keep_stopwords=True))) / len(content)
                cosine = float(scores.max())
                ok = (
                    quantities_supported(sentence, evidence)
                    and overlap >= self.min_overlap
                    and cosine >= self.min_cosine
                    and negated(sentence) == negated(source_sentences[j][closest[0]])
                )
                score = overlap + cosine + (10.0 if ok else 0.0)
                if score > best[1]:
                    best = (j if ok else None, score, overlap, cosine)
            source, _, overlap, cosine = best
            checks.append(SentenceCheck(sentence, source is not None, True, source, overlap, cosine))
        return GroundingResult(tuple(checks), declined)

    def best_quote(self, question, passages):
        candidates = [
            (j, s)
            for j, p in enumerate(passages)
            for s in split_sentences(p.chunk.text)
            if len(tokenize(s)) >= 3 and not no_claim(s) and not is_meta(s)
        ]
        if not candidates:
            return None
        vectors = self.embedder.embed([question] + [s for _, s in candidates])
        scores = vectors[1:] @ vectors[0]
        best = int(np.argmax(scores))
        return Quote(candidates[best][0], candidates[best][1], float(scores[best]))


def _old_relevant_sentences(question, text, limit):
    return relevant_sentences(question, split_sentences(text), limit)


def _turn(checker, question, answer, passages, limit, old: bool):
    started = time.perf_counter()
    quote = checker.best_quote(question, passages)
    quoted = time.perf_counter()
    for p in passages:
        _old_relevant_sentences(question, p.chunk.text, limit) if old else relevant_sentences(
            question, p.sentences, limit
        )
    prompted = time.perf_counter()
    result = checker.check(answer, passages, question)
    done = time.perf_counter()
    return (quoted - started, prompted - quoted, done - prompted), quote, result


def _same(a: GroundingResult, b: GroundingResult, qa: Quote | None, qb: Quote | None) -> tuple[bool, float]:
    """Equal decisions, and the largest cosine difference."""
    decisions = [(s.text, s.supported, s.claim, s.source) for s in a.sentences] == [
        (s.text, s.supported, s.claim, s.source) for s in b.sentences
    ]
    quotes = (qa is None) == (qb is None) and (qa is None or (qa.source, qa.sentence) == (qb.source, qb.sentence))
    diffs = [abs(x.cosine - y.cosine) for x, y in zip(a.sentences, b.sentences)]
    if qa and qb:
        diffs.append(abs(qa.cosine - qb.cosine))
    return decisions and quotes, max(diffs, default=0.0)


def _sizes(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(directory.iterdir()) if p.is_file()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--limit", type=int, default=0, help="questions (0: all single-turn in-scope ones)")
    parser.add_argument("--ingest", help="also time a fresh ingest of this folder ...")
    parser.add_argument("--index", help="... into this index folder (removed first)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-sentences-"))
    config = load_config(None, {"index_dir": str(work / "index")})
    embedder = build_embedder(config, log)
    embedder.warm_up()
    index = build_index(config, embedder)
    started = time.perf_counter()
    index.ingest(
        iter_documents([str(ROOT / "demo/help-centre")]), config.chunking.max_chars, config.chunking.overlap_chars
    )
    log(
        f"demo ingest {time.perf_counter() - started:.1f}s: {index.size} chunks, "
        f"{sum(len(c.sentences) for c in index.chunks.values())} sentences; files {_sizes(index.directory)}"
    )
    searcher = build_searcher(config, index)
    new = build_checker(config, embedder)
    old = _OldChecker(new.embedder, new.min_overlap, new.min_cosine, new.evidence_sentences)
    limit = config.generation.source_sentences

    questions = [q for q in load_questions(ROOT / "demo/questions.jsonl") if q.in_scope and not q.turns]
    questions = questions[: args.limit] if args.limit else questions
    turns = []
    for q in questions:
        passages = searcher.search(q.question, k=config.retrieval.k)
        picked = relevant_sentences(q.question, passages[0].sentences, 2)
        answer = " ".join(["Sure!", *picked, "Bitcoin payments are accepted in every Lumen & Oak shop."])
        turns.append((q.question, answer, passages))
    for question, answer, passages in turns[:3]:  # warm both paths (model kernels, caches)
        _turn(old, question, answer, passages, limit, True)
        _turn(new, question, answer, passages, limit, False)

    before, after = [], []
    mismatches, worst = 0, 0.0
    for question, answer, passages in turns:
        runs_old, runs_new = [], []
        for _ in range(args.repeats):
            t_old, q_old, r_old = _turn(old, question, answer, passages, limit, True)
            t_new, q_new, r_new = _turn(new, question, answer, passages, limit, False)
            runs_old.append(t_old)
            runs_new.append(t_new)
        same, diff = _same(r_old, r_new, q_old, q_new)
        mismatches += not same
        worst = max(worst, diff)
        before.append([min(x) for x in zip(*runs_old)])
        after.append([min(x) for x in zip(*runs_new)])

    before, after = np.array(before) * 1000, np.array(after) * 1000  # ms, columns: quote, prompt, check
    sentences = [sum(len(p.sentences) for p in passages) for _, _, passages in turns]
    print(
        f"demo help centre, {embedder.name} on {embedder.device}, {len(turns)} turns x {args.repeats} repeats, "
        f"k={config.retrieval.k} passages ({statistics.mean(sentences):.1f} source sentences) per turn"
    )
    print(f"{'ms per turn (median turn)':28s} {'before':>9s} {'after':>9s} {'after/before':>13s}")
    for column, name in enumerate(("best_quote", "prompt sentence pick", "grounding check")):
        b, a = float(np.median(before[:, column])), float(np.median(after[:, column]))
        print(f"{name:28s} {b:9.2f} {a:9.2f} {a / b:13.3f}")
    b, a = float(np.median(before.sum(axis=1))), float(np.median(after.sum(axis=1)))
    print(f"{'all three':28s} {b:9.2f} {a:9.2f} {a / b:13.3f}")
    b, a = float(before.sum()), float(after.sum())
    print(f"{'total over all turns':28s} {b:9.1f} {a:9.1f} {a / b:13.3f}")
    print(
        f"same decisions, sources and quotes: {len(turns) - mismatches}/{len(turns)} turns; "
        f"largest cosine difference {worst:.2e}"
    )

    if args.ingest:
        target = Path(args.index or work / "ingest")
        shutil.rmtree(target, ignore_errors=True)
        documents = list(iter_documents([args.ingest]))
        big = build_index(load_config(None, {"index_dir": str(target)}), embedder)
        started = time.perf_counter()
        report = big.ingest(documents, config.chunking.max_chars, config.chunking.overlap_chars)
        elapsed = time.perf_counter() - started
        sizes = _sizes(target)
        print(
            f"ingest of {args.ingest}: {elapsed:.1f}s, {report.documents} documents, {report.chunks} chunks, "
            f"{sum(len(c.sentences) for c in big.chunks.values())} sentences; "
            f"index {sum(sizes.values()) / 1e6:.2f} MB: {sizes}"
        )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
