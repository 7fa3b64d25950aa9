"""Test helpers that ship with the package (as Haystack ships its MockTextEmbedder).

- `HashEmbedder`: a model-free `Embedder` for unit tests of the index, search and grounding.

Nothing here imports pytest. The tests every `Embedder` must pass are `tests/contracts.py`'s
`EmbedderContract`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from knowledge.embedding import EmbeddingModel
from knowledge.lexical import tokenize


class HashEmbedder(EmbeddingModel):
    """Bag of hashed stemmed words: texts sharing (stemmed, non-stop) words are similar; not a language model.

    `dimension`: length of each row (a word lands in bucket md5(word) % dimension).
    `batch_size`: texts per `embed_batch` call, small so batching is exercised.
    `calls` and `embedded` count the `embed` calls and the texts embedded, for tests that check
    what was (not) embedded again.
    """

    name = "hash-test"

    def __init__(self, dimension: int = 256, batch_size: int = 16):
        self.dimension = dimension
        self.batch_size = batch_size
        self.calls = 0
        self.embedded = 0

    def embed(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        self.calls += 1
        self.embedded += len(texts)
        return super().embed(texts, show_progress)

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in tokenize(text):
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dimension] += 1.0
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm else out[row]
        return out


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)
