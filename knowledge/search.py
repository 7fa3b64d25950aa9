"""Hybrid search: dense (FAISS) and lexical (BM25) rankings fused by weighted reciprocal rank.

For a follow-up question the conversation so far is a second query: its dense embedding and its
terms (down-weighted) add two more rankings, so "how long does that take?" still finds the
article the conversation is about, while the question itself keeps the most weight.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from knowledge.embedding import Embedder
from knowledge.index import KnowledgeIndex
from knowledge.lexical import tokenize
from knowledge.types import Passage


class HybridSearcher:
    def __init__(
        self,
        index: KnowledgeIndex,
        embedder: Embedder,
        candidates: int = 30,
        rrf_k: int = 60,
        dense_weight: float = 1.0,
        lexical_weight: float = 1.0,
        context_weight: float = 0.6,  # weight of the context rankings relative to the question's
        context_term_weight: float = 0.3,  # BM25 weight of a context word relative to a question word
    ):
        self.index = index
        self.embedder = embedder
        self.candidates = candidates
        self.rrf_k = rrf_k
        self.dense_weight = dense_weight
        self.lexical_weight = lexical_weight
        self.context_weight = context_weight
        self.context_term_weight = context_term_weight

    def search(self, query: str, k: int = 5, context: Sequence[str] = ()) -> list[Passage]:
        """The `k` best chunks for `query`; `context` is earlier turns, oldest first."""
        context = [c for c in context if c and c.strip()]
        texts = [query]
        if context:
            # the question first, so a long context cannot push it past the embedder's length limit
            texts.append(query + "\n" + "\n".join(reversed(context)))
        vectors = self.embedder.embed(texts)
        question_terms = Counter(tokenize(query))
        rankings: list[tuple[float, list[tuple[int, float]]]] = []
        if self.dense_weight > 0:
            rankings.append((self.dense_weight, self.index.dense(vectors[0], self.candidates)))
        if self.lexical_weight > 0 and question_terms:
            rankings.append((self.lexical_weight, self.index.lexical(dict(question_terms), self.candidates)))
        if context:
            terms: dict[str, float] = {t: float(c) for t, c in question_terms.items()}
            for term, count in Counter(t for turn in context for t in tokenize(turn)).items():
                terms[term] = terms.get(term, 0.0) + self.context_term_weight * count
            if self.dense_weight > 0:
                rankings.append((self.dense_weight * self.context_weight, self.index.dense(vectors[1], self.candidates)))
            if self.lexical_weight > 0 and terms:
                rankings.append((self.lexical_weight * self.context_weight, self.index.lexical(terms, self.candidates)))

        fused: dict[int, float] = {}
        lexical_scores: dict[int, float] = {}
        for weight, ranking in rankings:
            for rank, (chunk_id, _) in enumerate(ranking):
                fused[chunk_id] = fused.get(chunk_id, 0.0) + weight / (self.rrf_k + rank + 1)
        if self.lexical_weight > 0 and question_terms:
            lexical_scores = dict(rankings[1][1]) if self.dense_weight > 0 else dict(rankings[0][1])
        best = sorted(fused, key=fused.__getitem__, reverse=True)[: max(k, 1) * 4]
        cosines = self.index.cosines(vectors[0], best)
        passages = [
            Passage(self.index.chunks[i], fused[i], cosines[i], lexical_scores.get(i, 0.0)) for i in best
        ]
        return passages[:k]

    def search_documents(self, query: str, k: int = 5, context: Sequence[str] = ()) -> list[Passage]:
        """Like `search`, but one passage (the best) per document."""
        seen: set[str] = set()
        out: list[Passage] = []
        for passage in self.search(query, k=k * 4, context=context):
            if passage.doc_id not in seen:
                seen.add(passage.doc_id)
                out.append(passage)
            if len(out) == k:
                break
        return out
