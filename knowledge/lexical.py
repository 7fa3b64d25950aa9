"""Lexical matching: a tokenizer with Snowball stemming, and Okapi BM25 over chunks.

Used by hybrid search and by the grounding check (content words). Stems come from PyStemmer's
English Snowball (Porter 2) stemmer: shipping/ships/shipped -> ship. It knows English only and is
a stemmer, not a lemmatiser (delivery -> deliveri; went stays went). Tokens are never stored: BM25 is
rebuilt from chunk text on load, so a change of stemmer needs no re-ingest. Knows nothing about
embeddings.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter, defaultdict

import numpy as np

_WORD = re.compile(r"[a-z0-9]+(?:[.,'][a-z0-9]+)*")
STOPWORDS = frozenset(
    """
a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had
has have having he her here hers herself him himself his how i if in into is it its itself just
me more most my myself no nor not now of off on once only or other our ours ourselves out over own
same she should so some such than that the their theirs them themselves then there these they this
those through to too under until up very was we were what when where which while who whom why will
with would you your yours yourself yourselves hi hello please thanks thank hey ok okay also get got
want need like know tell let us may might must shall im ive id youre dont cant wont isnt doesnt
""".split()
)


_local = threading.local()  # a PyStemmer Stemmer is not thread-safe: one per thread


def _stemmer():
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        import Stemmer

        stemmer = _local.stemmer = Stemmer.Stemmer("english")
    return stemmer


def _stem(word: str) -> str:
    """The Snowball English stem: returns/returned/returning -> return; numbers stay as they are."""
    return word if word[0].isdigit() else _stemmer().stemWord(word)


def tokenize(text: str, keep_stopwords: bool = False) -> list[str]:
    words = _WORD.findall(text.lower().replace("\u2019", "'"))
    words = [w for w in (w.replace("'", "") for w in words) if keep_stopwords or w not in STOPWORDS]
    stems = _stemmer().stemWords(words)
    return [w if w[0].isdigit() else stem for w, stem in zip(words, stems)]


class BM25:
    """Okapi BM25 over pre-tokenised documents, with an inverted index for sparse queries."""

    def __init__(self, documents: list[list[str]], k1: float = 1.2, b: float = 0.75):
        self.k1, self.b = k1, b
        self.size = len(documents)
        lengths = np.array([len(d) for d in documents], dtype=np.float32)
        average = float(lengths.mean()) if self.size else 1.0
        self._norm = k1 * (1 - b + b * lengths / max(average, 1e-9))
        postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for i, doc in enumerate(documents):
            for term, count in Counter(doc).items():
                postings[term].append((i, count))
        self._postings = {
            t: (np.array([i for i, _ in p], dtype=np.int64), np.array([c for _, c in p], dtype=np.float32))
            for t, p in postings.items()
        }
        self._idf = {t: math.log(1 + (self.size - len(p) + 0.5) / (len(p) + 0.5)) for t, p in postings.items()}

    def scores(self, query: dict[str, float] | list[str]) -> np.ndarray:
        """BM25 score of every document; `query` is tokens or {token: weight}."""
        weights = Counter(query) if isinstance(query, list) else query
        out = np.zeros(self.size, dtype=np.float32)
        for term, weight in weights.items():
            if term not in self._postings or weight <= 0:
                continue
            ids, tf = self._postings[term]
            out[ids] += weight * self._idf[term] * tf * (self.k1 + 1) / (tf + self._norm[ids])
        return out
