"""A persisted knowledge index: chunks, a FAISS inner-product index and a manifest.

Files in the index folder:
- `manifest.json`: embedder name, dimension, chunking settings, and per document its content
  hash, root, source and chunk ids;
- `chunks.jsonl`: every chunk with its document id, title, url and heading path;
- `dense.faiss`: an `IndexIDMap2(IndexFlatIP)` of normalised chunk embeddings keyed by chunk id.

Re-ingesting embeds only documents whose content hash changed and removes documents that vanished
from a root ingested again. Files are replaced atomically: a failed ingest leaves the previous index.
BM25 is rebuilt from the chunks on load (it is cheap). Fusion of the two lives in `search.py`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from core.errors import BadInput, ChatbotError, NotFound
from core.files import replacing
from knowledge.chunking import SENTENCE_SPLITTER, chunk_text
from knowledge.embedding import Embedder
from knowledge.lexical import BM25, tokenize
from knowledge.types import Chunk, Document

MANIFEST_VERSION = 1


@dataclass(frozen=True)
class IngestReport:
    documents: int  # documents in the index after ingest
    chunks: int  # chunks in the index after ingest
    added: int
    updated: int
    unchanged: int
    removed: int
    embedded_chunks: int  # chunks embedded by this run (0 when nothing changed)


class KnowledgeIndex:
    def __init__(self, directory: str | Path, embedder: Embedder):
        self.directory = Path(directory)
        self.embedder = embedder
        self.manifest: dict = {}
        self.chunks: dict[int, Chunk] = {}
        self._faiss = None
        self._bm25: BM25 | None = None
        self._bm25_ids: np.ndarray | None = None

    # ---- loading -------------------------------------------------------------------------
    @property
    def exists(self) -> bool:
        return (self.directory / "manifest.json").is_file()

    def load(self) -> "KnowledgeIndex":
        if not self.exists:
            raise NotFound(
                f"no knowledge index at {self.directory}; build one with "
                f"'chatbot ingest SOURCE... --index {self.directory}'"
            )
        import faiss

        try:
            self.manifest = json.loads((self.directory / "manifest.json").read_text())
            self.chunks = {}
            with open(self.directory / "chunks.jsonl", encoding="utf-8") as f:
                for line in f:
                    record = json.loads(line)
                    record["headings"] = tuple(record["headings"])
                    chunk = Chunk(**record)
                    self.chunks[chunk.chunk_id] = chunk
            self._faiss = faiss.read_index(str(self.directory / "dense.faiss"))
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise ChatbotError(
                f"the index at {self.directory} is damaged ({exc}); rebuild it with "
                f"'chatbot ingest SOURCE... --index {self.directory} --rebuild'"
            ) from None
        if self.manifest.get("embedder") != self.embedder.name:
            raise ChatbotError(
                f"the index at {self.directory} was built with embedder "
                f"'{self.manifest.get('embedder')}', but '{self.embedder.name}' is configured; "
                "configure that embedder or rebuild the index with --rebuild"
            )
        self._bm25 = None
        return self

    def _empty(self, dimension: int, chunking: dict) -> None:
        import faiss

        self.manifest = {
            "version": MANIFEST_VERSION, "embedder": self.embedder.name, "dimension": dimension,
            "chunking": chunking, "documents": {}, "next_chunk_id": 0,
        }
        self.chunks = {}
        self._faiss = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        self._bm25 = None

    # ---- ingest --------------------------------------------------------------------------
    def ingest(
        self,
        documents: Iterable[Document],
        max_chars: int,
        overlap_chars: int,
        rebuild: bool = False,
        progress: Callable[[str], None] = lambda message: None,
    ) -> IngestReport:
        # the sentence splitter too: an index cut by another one is rebuilt on its next ingest, not mixed
        chunking = {"max_chars": max_chars, "overlap_chars": overlap_chars, "sentences": SENTENCE_SPLITTER}
        if self.exists and not rebuild:
            self.load()
            if self.manifest.get("chunking") != chunking:
                rebuild = True
                progress(f"chunking settings changed from {self.manifest.get('chunking')}: rebuilding")
        if rebuild or not self.exists:
            self._empty(self.embedder.dimension, chunking)

        incoming: dict[str, Document] = {}
        for document in documents:
            if document.text.strip():
                incoming[document.doc_id] = document
        if not incoming:
            raise BadInput("no readable documents found; give Markdown, HTML, PDF, TXT, FAQ CSV or JSONL files")
        roots = {d.root for d in incoming.values()}
        known: dict = self.manifest["documents"]
        removed_ids = [doc_id for doc_id, meta in known.items() if meta["root"] in roots and doc_id not in incoming]

        added = updated = unchanged = 0
        new_chunks: list[Chunk] = []
        stale_chunk_ids: list[int] = []
        new_entries: dict[str, dict] = {}
        next_id = int(self.manifest["next_chunk_id"])
        for doc_id, document in incoming.items():
            digest = _content_hash(document)
            old = known.get(doc_id)
            if old and old["hash"] == digest:
                unchanged += 1
                continue
            if old:
                updated += 1
                stale_chunk_ids.extend(old["chunk_ids"])
            else:
                added += 1
            ids = []
            for piece in chunk_text(document.text, max_chars, overlap_chars):
                new_chunks.append(Chunk(next_id, doc_id, document.title, document.url, piece.headings, piece.text))
                ids.append(next_id)
                next_id += 1
            new_entries[doc_id] = {
                "hash": digest, "root": document.root, "source": document.source,
                "title": document.title, "url": document.url, "chunk_ids": ids,
            }
        for doc_id in removed_ids:
            stale_chunk_ids.extend(known[doc_id]["chunk_ids"])

        progress(f"{len(incoming)} documents: {added} new, {updated} changed, {unchanged} unchanged, "
                 f"{len(removed_ids)} removed; embedding {len(new_chunks)} chunks")
        vectors = self._embed_chunks(new_chunks)

        if stale_chunk_ids:
            self._faiss.remove_ids(np.array(stale_chunk_ids, dtype=np.int64))
            for chunk_id in stale_chunk_ids:
                self.chunks.pop(chunk_id, None)
        if new_chunks:
            self._faiss.add_with_ids(vectors, np.array([c.chunk_id for c in new_chunks], dtype=np.int64))
            self.chunks.update({c.chunk_id: c for c in new_chunks})
        for doc_id in removed_ids:
            del known[doc_id]
        known.update(new_entries)
        self.manifest["next_chunk_id"] = next_id
        self._bm25 = None
        self.save()
        return IngestReport(
            documents=len(known), chunks=len(self.chunks), added=added, updated=updated,
            unchanged=unchanged, removed=len(removed_ids), embedded_chunks=len(new_chunks),
        )

    def _embed_chunks(self, chunks: list[Chunk]) -> np.ndarray:
        if not chunks:
            return np.zeros((0, self.manifest["dimension"]), dtype=np.float32)
        texts = [c.embedding_text() for c in chunks]
        return self.embedder.embed(texts, show_progress=len(texts) > 64)

    def save(self) -> None:
        import faiss

        # the manifest last: it is what marks the index present
        names = ("dense.faiss", "chunks.jsonl", "manifest.json")
        with replacing(*(self.directory / name for name in names)) as (dense, chunks, manifest):
            faiss.write_index(self._faiss, str(dense))
            with open(chunks, "w", encoding="utf-8") as f:
                for chunk in sorted(self.chunks.values(), key=lambda c: c.chunk_id):
                    f.write(json.dumps(asdict(chunk), ensure_ascii=False) + "\n")
            manifest.write_text(json.dumps(self.manifest, indent=1, ensure_ascii=False))

    # ---- retrieval primitives ------------------------------------------------------------
    @property
    def size(self) -> int:
        return len(self.chunks)

    def dense(self, vector: np.ndarray, n: int) -> list[tuple[int, float]]:
        """(chunk id, cosine) of the `n` nearest chunks."""
        if self.size == 0:
            return []
        scores, ids = self._faiss.search(np.asarray(vector, dtype=np.float32).reshape(1, -1), min(n, self.size))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def cosines(self, vector: np.ndarray, chunk_ids: list[int]) -> dict[int, float]:
        """Cosine of `vector` to the given chunks (reconstructed from the flat index)."""
        if not chunk_ids:
            return {}
        rows = np.stack([self._faiss.reconstruct(int(i)) for i in chunk_ids])
        return dict(zip(chunk_ids, (rows @ np.asarray(vector, dtype=np.float32).ravel()).tolist()))

    def lexical(self, weights: dict[str, float], n: int) -> list[tuple[int, float]]:
        """(chunk id, BM25 score) of the `n` best chunks with any matching term."""
        if self._bm25 is None:
            ids = sorted(self.chunks)
            self._bm25_ids = np.array(ids, dtype=np.int64)
            self._bm25 = BM25([tokenize(self.chunks[i].embedding_text()) for i in ids])
        scores = self._bm25.scores(weights)
        top = np.argsort(-scores)[:n]
        return [(int(self._bm25_ids[i]), float(scores[i])) for i in top if scores[i] > 0]

    def document_count(self) -> int:
        return len(self.manifest.get("documents", {}))


def _content_hash(document: Document) -> str:
    h = hashlib.sha256()
    for part in (document.title, document.url, document.text):
        h.update(part.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()
