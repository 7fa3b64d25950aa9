"""Test helpers that ship with the package (as Haystack ships its MockTextEmbedder).

- `HashEmbedder`: a model-free `Embedder` for unit tests of the index, search and grounding.
- `EmbedderContract`: the tests every `Embedder` must pass. Subclass it in a test module and
  override the `embedder` fixture:

      class TestMyEmbedder(EmbedderContract):
          @pytest.fixture
          def embedder(self):
              return MyEmbedder(...)

This module imports pytest; only tests import it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pytest

from knowledge.embedding import Embedder, EmbeddingModel
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


class EmbedderContract:
    """What the index, the searcher and the grounding checker rely on from any `Embedder`."""

    @pytest.fixture
    def embedder(self) -> Embedder:
        raise NotImplementedError("override the `embedder` fixture with the implementation under test")

    def test_it_has_a_name_and_warms_up(self, embedder):
        embedder.warm_up()
        assert isinstance(embedder.name, str) and embedder.name
        assert isinstance(embedder.dimension, int) and embedder.dimension > 0

    def test_rows_are_float32_unit_vectors_one_per_text(self, embedder):
        vectors = embedder.embed(["Where is my order?", "How do I return a lamp?", "Reset my password"])
        assert isinstance(vectors, np.ndarray) and vectors.dtype == np.float32
        assert vectors.shape == (3, embedder.dimension) and vectors.flags.c_contiguous
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)

    def test_equal_texts_give_equal_vectors_alone_or_in_a_batch(self, embedder):
        batch = embedder.embed(["Where is my order?", "Standard delivery costs 3.95 pounds.", "Where is my order?"])
        alone = embedder.embed(["Where is my order?"])
        np.testing.assert_allclose(batch[0], batch[2], atol=1e-5)
        np.testing.assert_allclose(batch[0], alone[0], atol=1e-4)

    def test_an_empty_list_gives_zero_rows(self, embedder):
        vectors = embedder.embed([])
        assert vectors.shape == (0, embedder.dimension) and vectors.dtype == np.float32

    def test_many_texts_with_a_progress_bar_give_the_same_rows_in_order(self, embedder):
        texts = [f"question number {i} about order {i * 7}" for i in range(70)]
        quiet = embedder.embed(texts)
        shown = embedder.embed(texts, show_progress=True)
        assert quiet.shape == (70, embedder.dimension)
        np.testing.assert_allclose(quiet, shown, atol=1e-4)
        np.testing.assert_allclose(quiet[41], embedder.embed([texts[41]])[0], atol=1e-4)

    def test_a_paraphrase_is_closer_than_an_unrelated_text(self, embedder):
        question, paraphrase, unrelated = embedder.embed(
            ["How do I return a lamp?", "returning a lamp", "reset my password"])
        assert float(_unit(question) @ _unit(paraphrase)) > float(_unit(question) @ _unit(unrelated))
