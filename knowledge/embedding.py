"""Sentence embeddings behind one seam, `Embedder.embed(texts, show_progress=False)`.

Rows are L2-normalised float32, so a dot product is a cosine. As in simonw/llm's EmbeddingModel,
a backend implements one method, `embed_batch(texts)`, on the `EmbeddingModel` base class, which
derives `embed` from it: batching, an optional progress bar, an empty list, the dtype. The
sentence-transformers model loads on first use (or `warm_up()`); constructing one is free.
`knowledge.testing.HashEmbedder` is a model-free stand-in for tests.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from core.lazy import Lazy


class Embedder(Protocol):
    """What the index, the searcher and the grounding checker use."""

    name: str  # recorded in the index manifest; a different name forces a rebuild

    @property
    def dimension(self) -> int: ...  # length of each row (may load the model)

    def warm_up(self) -> None: ...  # load the model now rather than on the first embed

    def embed(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray: ...


class EmbeddingModel:
    """Base class of embedders: subclasses set `name` and `dimension` and implement `embed_batch`."""

    name: str
    dimension: int
    batch_size: int = 64  # texts per `embed_batch` call
    # single texts remembered (most recent first out): a turn embeds its question to search and again to
    # choose the evidence, and a customer's repeated question is embedded once
    recent_texts: int = 256

    def warm_up(self) -> None:
        """Load the model now; nothing to load by default."""

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        """Up to `batch_size` texts to a (len(texts), dimension) array of L2-normalised rows."""
        raise NotImplementedError

    def embed(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        """A float32 (len(texts), dimension) array; `show_progress` draws a bar on stderr."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if len(texts) == 1 and self.recent_texts > 0:
            return self._embed_one(texts[0])
        size = max(1, self.batch_size)
        bar = None
        if show_progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(texts), desc="embedding", unit="text")
        # longest first, so a batch holds texts of about one length and pads little (sentence-transformers
        # sorts only within one call): 1,000 help-centre sentences embed ~1.5x faster (`chatbot bench`)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        rows = []
        try:
            for start in range(0, len(texts), size):
                batch = [texts[i] for i in order[start : start + size]]
                rows.append(np.asarray(self.embed_batch(batch), dtype=np.float32))
                if bar is not None:
                    bar.update(len(batch))
        finally:
            if bar is not None:
                bar.close()
        out = np.empty((len(texts), rows[0].shape[1]), dtype=np.float32)
        out[order] = np.concatenate(rows)
        return out

    def _embed_one(self, text: str) -> np.ndarray:
        with _RECENT_LOCK:
            recent = self.__dict__.setdefault("_recent", OrderedDict())
            row = recent.get(text)
            if row is not None:
                recent.move_to_end(text)
        if row is None:
            row = np.asarray(self.embed_batch([text]), dtype=np.float32)[0]
            with _RECENT_LOCK:
                recent[text] = row
                while len(recent) > self.recent_texts:
                    recent.popitem(last=False)
        return np.ascontiguousarray(row[None, :], dtype=np.float32).copy()


_RECENT_LOCK = threading.Lock()  # guards every embedder's remembered texts (a few dict operations at a time)


class SentenceTransformerEmbedder(EmbeddingModel):
    def __init__(self, model: str, name: str, device: str, batch_size: int = 64):
        self.model_path = model  # local folder or hub id
        self.name = name
        self.device = device  # "cpu" or "cuda" (the builder settles "auto")
        self.batch_size = batch_size
        self._model = Lazy(self._load)

    def _load(self):
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(self.model_path), device=self.device)

    def warm_up(self) -> None:
        self._model.get()

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        return self._model.get().encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )

    @property
    def dimension(self) -> int:
        model = self._model.get()
        get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get())
