"""Data that crosses the knowledge package's boundaries."""

from __future__ import annotations

from dataclasses import dataclass


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

    def embedding_text(self) -> str:
        """What is embedded and indexed lexically: title and heading path give the body context."""
        path = " > ".join((self.title, *self.headings))
        return f"{path}\n{self.text}"


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
