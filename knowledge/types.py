"""Data that crosses the knowledge package's boundaries."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Document:
    doc_id: str  # front-matter / JSONL id when present, else the path relative to the ingested root
    title: str
    url: str
    text: str  # cleaned Markdown-ish text: headings kept as '#' lines, markup noise removed
    source: str  # the file it came from
    root: str  # the ingested root it was found under (used to notice deleted documents)


@dataclass(frozen=True)
class Chunk:
    chunk_id: int
    doc_id: str
    title: str
    url: str
    headings: tuple[str, ...]  # heading path inside the document, outermost first
    text: str
    # split_sentences(text), split once at ingest and stored with the chunk; () when not stored
    sentences: tuple[str, ...] = ()
    # one embedding row per sentence, from the index's embedder; None when not stored
    sentence_vectors: np.ndarray | None = field(default=None, compare=False, repr=False)

    def embedding_text(self) -> str:
        """What is embedded and indexed lexically: title and heading path give the body context."""
        path = " > ".join((self.title, *self.headings))
        return f"{path}\n{self.text}"


@dataclass(frozen=True)
class Source:
    """A help-centre document as an answer or a handoff names it."""

    doc_id: str
    title: str
    url: str


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk with its scores."""

    chunk: Chunk
    score: float  # fused rank score, higher is better; only comparable within one search
    dense_cosine: float  # cosine of the query (with its conversation context, if any) to the chunk
    lexical_score: float  # BM25 score, 0 when no query term matched

    @property
    def doc_id(self) -> str:
        return self.chunk.doc_id

    @property
    def source(self) -> Source:
        return Source(self.chunk.doc_id, self.chunk.title, self.chunk.url)

    @property
    def sentences(self) -> tuple[str, ...]:
        """The chunk's sentences: those stored at ingest, else split now (the same splitter)."""
        if self.chunk.sentences:
            return self.chunk.sentences
        from knowledge.chunking import split_sentences

        return tuple(split_sentences(self.chunk.text))

    @property
    def sentence_vectors(self) -> np.ndarray | None:
        """A (len(sentences), dimension) array stored at ingest, or None (embed `sentences` yourself)."""
        return self.chunk.sentence_vectors if self.chunk.sentences else None
