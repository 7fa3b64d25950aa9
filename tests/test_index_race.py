"""Searches running while the index is re-ingested see one whole version of it, never a mix.

The server searches from many threads while an upload re-indexes the same `KnowledgeIndex`
(`chatbot.pipeline.Engine.reindex` holds a lock against other re-indexes only). Every document's
text carries its version ("v1" or "v2") and each re-ingest changes every document (and adds and
removes some), so a search that read part of one version and part of the next shows up as a result
with both markers, a short result, or an exception (a chunk id the other version does not hold).
"""

from __future__ import annotations

import random
import threading
import time

import numpy as np

from chatbot.builder import build_searcher
from core.config import DEFAULTS
from knowledge.index import KnowledgeIndex
from knowledge.rerank import RerankingSearcher
from knowledge.testing import HashEmbedder
from knowledge.types import Document

DOCUMENTS = 200  # many chunks: re-ingesting and rebuilding BM25 take long enough for searches to overlap them
SHIFT = 20  # version 2 drops the first SHIFT documents and adds as many new ones
SEARCHERS = 6  # threads searching at once
ROUNDS = 4  # re-ingests, alternating v2 and v1 so each one changes every document
K = 5
WORDS = (
    "refund delivery parcel courier invoice password account voucher warranty exchange label tracking "
    "basket checkout discount coupon subscription battery charger screen keyboard cable adapter "
    "printer router modem speaker headphones camera lens tripod backpack wallet jacket shoes"
).split()


def documents(version: str, numbers: range) -> list[Document]:
    """One single-chunk document per number; its words depend on the number, its marker on `version`."""
    out = []
    for n in numbers:
        rng = random.Random(n)
        sentences = [f"Release {version} of article {n}."]
        sentences += [" ".join(rng.sample(WORDS, 6)).capitalize() + f" {version}." for _ in range(4)]
        out.append(
            Document(
                f"doc{n}",
                f"Article {n}",
                f"https://help.example/{n}",
                " ".join(sentences),
                source=f"/kb/doc{n}.md",
                root="/kb",
            )
        )
    return out


def version_a() -> list[Document]:
    return documents("v1", range(DOCUMENTS))


def version_b() -> list[Document]:
    return documents("v2", range(SHIFT, DOCUMENTS + SHIFT))


class CosineReranker:
    """Scores candidates by `index.cosines`, as the trained reranker does, so reranked searches read the
    index twice (fused candidates, then their vectors)."""

    name = "cosine"

    def __init__(self, index: KnowledgeIndex):
        self.index = index

    def warm_up(self) -> None:
        pass

    def scores(self, query, passages, context=()) -> np.ndarray:
        vector = self.index.embedder.embed([query])[0]
        ids = [p.chunk.chunk_id for p in passages]
        cosines = self.index.cosines(vector, ids)
        return np.array([cosines[i] for i in ids], dtype=np.float32)


def _marker(text: str) -> str:
    return "v2" if "v2" in text else "v1" if "v1" in text else "none"


def test_searches_during_reingests_see_one_whole_version(tmp_path):
    index = KnowledgeIndex(tmp_path / "ix", HashEmbedder())
    index.ingest(version_a(), max_chars=2000, overlap_chars=0)
    hybrid = build_searcher(DEFAULTS, index)
    searchers = [hybrid, RerankingSearcher(hybrid, CosineReranker(index), candidates=10, weight=100.0, rrf_k=60)]
    stop = threading.Event()
    problems: list[str] = []
    searches = [0] * SEARCHERS

    def search_until_stopped(number: int) -> None:
        rng = random.Random(number)
        searcher = searchers[number % len(searchers)]
        while not stop.is_set():
            query = " ".join(rng.sample(WORDS, 3))
            try:
                passages = searcher.search(query, k=K)
            except Exception as exc:  # noqa: BLE001 - any exception is a finding
                problems.append(f"{query!r} raised {type(exc).__name__}: {exc}")
                continue
            markers = {_marker(p.chunk.text) for p in passages}
            if len(markers) != 1 or len(passages) != K:
                problems.append(f"{query!r} got {len(passages)} passages of versions {sorted(markers)}")
            searches[number] += 1

    threads = [threading.Thread(target=search_until_stopped, args=(n,), daemon=True) for n in range(SEARCHERS)]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    try:
        for round_ in range(ROUNDS):
            report = index.ingest(version_b() if round_ % 2 == 0 else version_a(), max_chars=2000, overlap_chars=0)
            assert report.documents == DOCUMENTS and report.embedded_chunks == DOCUMENTS
            # forget a few files between re-ingests too: a removal alone must not show half-done either
            index.forget([f"/kb/doc{n}.md" for n in range(SHIFT, SHIFT + 3)])
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    elapsed = time.perf_counter() - started

    assert not problems, f"{len(problems)} of {sum(searches)} searches saw a mixed index, first: {problems[:3]}"
    assert all(searches), f"every thread searched at least once during {elapsed:.1f} s: {searches}"
    last = "v1" if ROUNDS % 2 == 0 else "v2"  # the last re-ingest is what searches see now
    assert {_marker(p.chunk.text) for p in hybrid.search("refund delivery parcel", k=K)} == {last}
