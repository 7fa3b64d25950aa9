"""One version of the knowledge index in memory (`IndexSnapshot`), and its files on disk.

Files in the index folder:
- `manifest.json`: embedder name, dimension, chunking settings, and per document its content
  hash, root, source and chunk ids;
- `chunks.jsonl`: every chunk with its document id, title, url, heading path and sentences
  (`split_sentences` of its text, split once at ingest rather than on every question);
- `dense.faiss`: an `IndexIDMap2(IndexFlatIP)` of normalised chunk embeddings keyed by chunk id;
- `sentences.npy`: float32 embeddings of those sentences, one row each, in the order of
  `chunks.jsonl` (chunk id order, then sentence order): a chunk's rows follow from the sentence
  counts of the chunks before it. The grounding check and the quote search read them instead of
  embedding the retrieved chunks' sentences on every turn.

`read_snapshot` and `write_snapshot` turn a folder into a snapshot and back (the files replaced
atomically, the manifest last); `manifest_fingerprint` is the one fingerprint of an index's documents
that caches built on them compare. BM25 is never stored: it is built from the chunks on first use.

Knows nothing about embedders, ingest or which snapshot is published, nor about locks: a snapshot is
changed only by the writer that builds it, before `KnowledgeIndex` publishes it (`knowledge.index`).
Errors come out as raised (OSError, ValueError, faiss's RuntimeError...): the caller words them.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from core.files import replacing
from core.lazy import Lazy
from knowledge.lexical import BM25, tokenize
from knowledge.types import Chunk

MANIFEST_VERSION = 2  # 2: sentences and their vectors stored (sentences.npy); 1 still loads
FILES = ("dense.faiss", "chunks.jsonl", "sentences.npy", "manifest.json")  # the manifest last: it marks the index


def manifest_fingerprint(manifest: dict, extra: dict, with_chunk_ids: bool = False) -> str:
    """A sha256 that changes when a document's content hash, the embedder, the chunking or `extra` does.

    The one fingerprint of an index's documents that caches built on them (the reranker, the answer
    decision's examples) compare. `extra` is the caller's own recipe and settings (JSON-serialisable;
    it must not use the keys "embedder", "chunking" or "documents"). `with_chunk_ids`: a renumbering of
    the chunks counts as a change too (for caches that store chunk ids). Knows nothing about what the
    cache holds: the caller decides what in `extra` makes it stale.
    """
    clash = {"embedder", "chunking", "documents"} & set(extra)
    if clash:
        raise ValueError(f"extra cannot use the manifest's own keys {sorted(clash)}")
    documents = manifest.get("documents", {})
    if with_chunk_ids:
        rows = sorted((d, m.get("hash"), tuple(m.get("chunk_ids", ()))) for d, m in documents.items())
    else:
        rows = sorted((d, m.get("hash")) for d, m in documents.items())
    payload = {**extra, "embedder": manifest.get("embedder"), "chunking": manifest.get("chunking"), "documents": rows}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=list).encode("utf-8")).hexdigest()


class IndexSnapshot:
    """One version of the index in memory: its manifest, chunks, FAISS index and BM25, all of one ingest.

    Never changed once published (`KnowledgeIndex` swaps in a new one instead), so a reader that took it
    keeps a consistent view for as long as it holds it. Only the writer that builds a snapshot changes
    it, before publishing it. BM25 is built from the chunks on the first lexical search (once, even
    when several threads ask at once). Knows nothing about files or embedders.
    """

    def __init__(self, manifest: dict, chunks: dict[int, Chunk], faiss: Any = None, bm25: Lazy | None = None):
        self.manifest = manifest
        self.chunks = chunks
        self.faiss = faiss  # an IndexIDMap2(IndexFlatIP); None before anything is loaded
        self._bm25: Lazy[tuple[BM25, np.ndarray]] = bm25 if bm25 is not None else Lazy(self._build_bm25)

    def with_manifest(self, manifest: dict) -> IndexSnapshot:
        """The same chunks and vectors (and BM25, built or not) under another manifest."""
        return IndexSnapshot(manifest, self.chunks, self.faiss, self._bm25)

    def _build_bm25(self) -> tuple[BM25, np.ndarray]:
        ids = sorted(self.chunks)
        return BM25([tokenize(self.chunks[i].embedding_text()) for i in ids]), np.array(ids, dtype=np.int64)

    @property
    def size(self) -> int:
        return len(self.chunks)

    def dense(self, vector: np.ndarray, n: int) -> list[tuple[int, float]]:
        """(chunk id, cosine) of the `n` nearest chunks."""
        if self.size == 0:
            return []
        scores, ids = self.faiss.search(np.asarray(vector, dtype=np.float32).reshape(1, -1), min(n, self.size))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def cosines(self, vector: np.ndarray, chunk_ids: list[int]) -> dict[int, float]:
        """Cosine of `vector` to the given chunks (reconstructed from the flat index)."""
        if not chunk_ids:
            return {}
        rows = np.stack([self.faiss.reconstruct(int(i)) for i in chunk_ids])
        return dict(zip(chunk_ids, (rows @ np.asarray(vector, dtype=np.float32).ravel()).tolist()))

    def lexical(self, weights: dict[str, float], n: int) -> list[tuple[int, float]]:
        """(chunk id, BM25 score) of the `n` best chunks with any matching term."""
        bm25, ids = self._bm25.get()
        scores = bm25.scores(weights)
        top = np.argsort(-scores)[:n]
        return [(int(ids[i]), float(scores[i])) for i in top if scores[i] > 0]

    def sentence_vectors(self, chunk_id: int) -> np.ndarray:
        """The embeddings of a chunk's sentences (None when the index stores none)."""
        return self.chunks[chunk_id].sentence_vectors

    def document_count(self) -> int:
        return len(self.manifest.get("documents", {}))

    def documents_from(self, source: str | Path) -> list[str]:
        """Ids of the documents read from this file."""
        target = same_file(source)
        return [
            doc_id for doc_id, meta in self.manifest.get("documents", {}).items() if same_file(meta["source"]) == target
        ]


def same_file(path: str | Path) -> str:
    """A file's path in one spelling ("kb/a.md", "./kb/a.md" and "/abs/kb/a.md" compare equal)."""
    return os.path.abspath(path)


# ---- the files -----------------------------------------------------------------------------------
def read_snapshot(directory: Path) -> IndexSnapshot:
    """The index the folder holds, in new objects nobody else holds (its embedder not checked).

    Raises what reading raises (OSError, ValueError, KeyError, TypeError, faiss's RuntimeError) for a
    missing or damaged file. A manifest of version 1 loads without sentence vectors.
    """
    import faiss

    manifest = json.loads((directory / "manifest.json").read_text())
    chunks = read_chunks(directory / "chunks.jsonl")
    dense = faiss.read_index(str(directory / "dense.faiss"))
    if manifest.get("version", 1) >= 2:
        chunks = attach_sentence_vectors(chunks, np.load(directory / "sentences.npy"), manifest["dimension"])
    return IndexSnapshot(manifest, chunks, dense)


def read_chunks(path: Path) -> dict[int, Chunk]:
    """`chunks.jsonl` by chunk id, without sentence vectors (those are in `sentences.npy`)."""
    chunks: dict[int, Chunk] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            record["headings"] = tuple(record["headings"])
            record["sentences"] = tuple(record.get("sentences", ()))
            chunk = Chunk(**record)
            chunks[chunk.chunk_id] = chunk
    return chunks


def attach_sentence_vectors(chunks: dict[int, Chunk], matrix: np.ndarray, dimension: int) -> dict[int, Chunk]:
    """`chunks` with each given its rows of `matrix` (chunk id order, then sentence order)."""
    ordered = sorted(chunks)
    counts = [len(chunks[i].sentences) for i in ordered]
    if matrix.ndim != 2 or matrix.shape[0] != sum(counts) or matrix.shape[1] != dimension:
        raise ValueError(f"sentences.npy holds {matrix.shape} vectors for {sum(counts)} sentences")
    matrix = np.asarray(matrix, dtype=np.float32)
    out, start = {}, 0
    for chunk_id, count in zip(ordered, counts):
        out[chunk_id] = replace(chunks[chunk_id], sentence_vectors=matrix[start : start + count])
        start += count
    return out


def write_snapshot(directory: Path, snap: IndexSnapshot) -> None:
    """Write `snap`'s files into the folder, replacing them atomically (`core.files.replacing`).

    Raises what writing raises (OSError; faiss's RuntimeError); then the previous files stay.
    """
    import faiss

    ordered = [snap.chunks[i] for i in sorted(snap.chunks)]
    stored = [f.name for f in fields(Chunk) if f.name != "sentence_vectors"]
    rows = [c.sentence_vectors for c in ordered]
    matrix = np.concatenate(rows) if rows else np.zeros((0, snap.manifest["dimension"]), dtype=np.float32)
    with replacing(*(directory / name for name in FILES)) as (dense, chunks, sentences, manifest):
        faiss.write_index(snap.faiss, str(dense))
        with open(chunks, "w", encoding="utf-8") as f:
            for chunk in ordered:
                record = {name: getattr(chunk, name) for name in stored}
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        with open(sentences, "wb") as f:  # a file object: np.save would add ".npy" to the temporary's name
            np.save(f, np.ascontiguousarray(matrix, dtype=np.float32))
        manifest.write_text(json.dumps(snap.manifest, indent=1, ensure_ascii=False))
