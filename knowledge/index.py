"""A persisted knowledge index: chunks, a FAISS inner-product index and a manifest.

Files in the index folder:
- `manifest.json`: embedder name, dimension, chunking settings, and per document its content
  hash, root, source and chunk ids;
- `chunks.jsonl`: every chunk with its document id, title, url, heading path and sentences
  (`split_sentences` of its text, split once here rather than on every question);
- `dense.faiss`: an `IndexIDMap2(IndexFlatIP)` of normalised chunk embeddings keyed by chunk id;
- `sentences.npy`: float32 embeddings of those sentences, one row each, in the order of
  `chunks.jsonl` (chunk id order, then sentence order): a chunk's rows follow from the sentence
  counts of the chunks before it. The grounding check and the quote search read them instead of
  embedding the retrieved chunks' sentences on every turn.

Re-ingesting embeds only documents whose content hash changed and removes documents that vanished
from a root ingested again (not those of a file that could not be read this time: they stay). Files are replaced atomically: a failed ingest leaves the previous index.
BM25 is rebuilt from the chunks on load (it is cheap). Fusion of the two lives in `search.py`.
An index of manifest version 1 (no stored sentences) still loads and serves as before (the
grounding check splits and embeds the retrieved chunks' sentences per turn); its next ingest splits
and embeds every chunk's sentences and stores them, without embedding the chunks again.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

from core.errors import BadInput, ChatbotError, NotFound
from core.files import replacing
from knowledge.chunking import SENTENCE_SPLITTER, chunk_text, split_sentences
from knowledge.embedding import Embedder
from knowledge.ingest import Skipped
from knowledge.lexical import BM25, tokenize
from knowledge.types import Chunk, Document

MANIFEST_VERSION = 2  # 2: sentences and their vectors stored (sentences.npy); 1 still loads


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class IngestReport:
    documents: int  # documents in the index after ingest
    chunks: int  # chunks in the index after ingest
    added: int
    updated: int
    unchanged: int
    removed: int
    embedded_chunks: int  # chunks embedded by this run (0 when nothing changed)
    skipped: tuple[Skipped, ...] = ()  # files and rows left out (what they held before stays indexed)

    def to_json(self) -> dict:
        return {**{f.name: getattr(self, f.name) for f in fields(self) if f.name != "skipped"},
                "skipped": [s.to_json() for s in self.skipped]}


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

    def load(self, progress: Callable[[str], None] = _to_stderr) -> "KnowledgeIndex":
        """Read the index; `progress` hears when it is an old one without stored sentences."""
        self._read()
        missing = sum(1 for c in self.chunks.values() if c.sentence_vectors is None)
        if missing:
            progress(f"the index at {self.directory} stores no sentences for {missing} chunks (manifest version "
                     f"{self.manifest.get('version', 1)}): they are split and embedded on every turn; "
                     f"ingest into it again to store them ('chatbot ingest SOURCE... --index {self.directory}')")
        return self

    def check_directory(self) -> None:
        """`BadInput` when the index path, or a folder above it, is a file (a folder is needed)."""
        for path in (self.directory, *self.directory.parents):
            if path.exists():
                if not path.is_dir():
                    where = "is a file" if path == self.directory else f"is under a file ({path})"
                    raise BadInput(f"the index path {self.directory} {where}, not a folder; "
                                   "give --index a folder (it is created if missing)")
                return

    def _read(self) -> None:
        self.check_directory()
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
                    record["sentences"] = tuple(record.get("sentences", ()))
                    chunk = Chunk(**record)
                    self.chunks[chunk.chunk_id] = chunk
            self._faiss = faiss.read_index(str(self.directory / "dense.faiss"))
            if self.manifest.get("version", 1) >= 2:
                self._attach_sentence_vectors(np.load(self.directory / "sentences.npy"))
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

    def _attach_sentence_vectors(self, matrix: np.ndarray) -> None:
        """Give each chunk its rows of `matrix` (chunk id order, then sentence order)."""
        ordered = sorted(self.chunks)
        counts = [len(self.chunks[i].sentences) for i in ordered]
        if matrix.ndim != 2 or matrix.shape[0] != sum(counts) or matrix.shape[1] != self.manifest["dimension"]:
            raise ValueError(f"sentences.npy holds {matrix.shape} vectors for {sum(counts)} sentences")
        matrix = np.asarray(matrix, dtype=np.float32)
        start = 0
        for chunk_id, count in zip(ordered, counts):
            self.chunks[chunk_id] = replace(self.chunks[chunk_id], sentence_vectors=matrix[start:start + count])
            start += count

    def _add_missing_sentences(self, progress: Callable[[str], None]) -> None:
        """Split and embed the sentences of chunks read without them (an index of manifest version 1)."""
        missing = [c for c in self.chunks.values() if c.sentence_vectors is None]
        if not missing:
            return
        progress(f"the index stores no sentences (manifest version {self.manifest.get('version', 1)}): "
                 f"splitting and embedding those of its {len(missing)} chunks to store them")
        self.chunks.update({c.chunk_id: c for c in self._with_sentences(missing)})

    def _with_sentences(self, chunks: list[Chunk]) -> list[Chunk]:
        """`chunks` with their sentences split and embedded (all in one embed call)."""
        groups = [tuple(split_sentences(c.text)) for c in chunks]
        flat = [s for group in groups for s in group]
        # each distinct sentence once (overlaps and boilerplate repeat a third of them), shortest
        # first so that a batch pads little
        unique = sorted(set(flat), key=lambda s: (len(s), s))
        if unique:
            rows = self.embedder.embed(unique, show_progress=len(unique) > 256)
            where = {s: i for i, s in enumerate(unique)}
            vectors = rows[[where[s] for s in flat]]
        else:
            vectors = np.zeros((0, self.manifest["dimension"]), dtype=np.float32)
        out, start = [], 0
        for chunk, group in zip(chunks, groups):
            out.append(replace(chunk, sentences=group, sentence_vectors=vectors[start:start + len(group)]))
            start += len(group)
        return out

    def sentence_vectors(self, chunk_id: int) -> np.ndarray:
        """The embeddings of a chunk's sentences, one row per `chunks[chunk_id].sentences`."""
        return self.chunks[chunk_id].sentence_vectors

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
        skipped: Iterable[Skipped] = (),
    ) -> IngestReport:
        """Add, update and remove documents; returns what changed.

        `skipped`: files and rows the reader left out (`knowledge.ingest.read_documents`): the
        documents stored from those files stay as they are (not removed as vanished) and the report
        carries them. `BadInput` when no document has text; then the index is left untouched.
        """
        skipped = tuple(skipped)
        self.check_directory()
        incoming: dict[str, Document] = {}
        for document in documents:
            if document.text.strip():
                incoming[document.doc_id] = document
        if not incoming:
            if skipped:
                raise BadInput(f"nothing could be read: {len(skipped)} files or rows left out (first: {skipped[0]})")
            raise BadInput("no readable documents found; give Markdown, HTML, PDF, TXT, FAQ CSV or JSONL files")
        # the sentence splitter too: an index cut by another one is rebuilt on its next ingest, not mixed
        chunking = {"max_chars": max_chars, "overlap_chars": overlap_chars, "sentences": SENTENCE_SPLITTER}
        if self.exists and not rebuild:
            self._read()
            if self.manifest.get("chunking") != chunking:
                rebuild = True
                progress(f"chunking settings changed from {self.manifest.get('chunking')}: rebuilding")
            else:
                self._add_missing_sentences(progress)
        if rebuild or not self.exists:
            self._empty(self.embedder.dimension, chunking)

        roots = {d.root for d in incoming.values()}
        known: dict = self.manifest["documents"]
        unread = {_same_file(s.source) for s in skipped}  # their stored documents are kept, not removed
        removed_ids = [doc_id for doc_id, meta in known.items() if meta["root"] in roots and doc_id not in incoming
                       and _same_file(meta["source"]) not in unread]

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
        new_chunks = self._with_sentences(new_chunks)

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
        self.manifest["version"] = MANIFEST_VERSION
        self._bm25 = None
        self.save()
        return IngestReport(
            documents=len(known), chunks=len(self.chunks), added=added, updated=updated,
            unchanged=unchanged, removed=len(removed_ids), embedded_chunks=len(new_chunks), skipped=skipped,
        )

    def forget(self, sources: Iterable[str | Path]) -> int:
        """Remove the documents read from these files (deleted uploads) and save; returns how many."""
        if not self.exists:
            return 0
        self._read()
        gone = {_same_file(s) for s in sources}
        known: dict = self.manifest["documents"]
        doc_ids = [doc_id for doc_id, meta in known.items() if _same_file(meta["source"]) in gone]
        if not doc_ids:
            return 0
        stale = [chunk_id for doc_id in doc_ids for chunk_id in known.pop(doc_id)["chunk_ids"]]
        self._faiss.remove_ids(np.array(stale, dtype=np.int64))
        for chunk_id in stale:
            self.chunks.pop(chunk_id, None)
        self._bm25 = None
        self.save()
        return len(doc_ids)

    def documents_from(self, source: str | Path) -> list[str]:
        """Ids of the stored documents read from this file."""
        target = _same_file(source)
        return [doc_id for doc_id, meta in self.manifest.get("documents", {}).items()
                if _same_file(meta["source"]) == target]

    def _embed_chunks(self, chunks: list[Chunk]) -> np.ndarray:
        if not chunks:
            return np.zeros((0, self.manifest["dimension"]), dtype=np.float32)
        texts = [c.embedding_text() for c in chunks]
        return self.embedder.embed(texts, show_progress=len(texts) > 64)

    def save(self) -> None:
        # the manifest last: it is what marks the index present
        names = ("dense.faiss", "chunks.jsonl", "sentences.npy", "manifest.json")
        ordered = [self.chunks[i] for i in sorted(self.chunks)]
        stored = [f.name for f in fields(Chunk) if f.name != "sentence_vectors"]
        rows = [c.sentence_vectors for c in ordered]
        matrix = np.concatenate(rows) if rows else np.zeros((0, self.manifest["dimension"]), dtype=np.float32)
        try:
            self._write(names, ordered, stored, matrix)
        except (OSError, RuntimeError) as exc:  # faiss raises RuntimeError; the previous files stay (`replacing`)
            raise ChatbotError(f"cannot write the index at {self.directory} ({getattr(exc, 'strerror', None) or exc}); "
                               "check the folder's permissions and free space") from None

    def _write(self, names, ordered, stored, matrix) -> None:
        import faiss

        with replacing(*(self.directory / name for name in names)) as (dense, chunks, sentences, manifest):
            faiss.write_index(self._faiss, str(dense))
            with open(chunks, "w", encoding="utf-8") as f:
                for chunk in ordered:
                    record = {name: getattr(chunk, name) for name in stored}
                    f.write(json.dumps(record, ensure_ascii=False) + "\n")
            with open(sentences, "wb") as f:  # a file object: np.save would add ".npy" to the temporary's name
                np.save(f, np.ascontiguousarray(matrix, dtype=np.float32))
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


def _same_file(path: str | Path) -> str:
    """A file's path in one spelling ("kb/a.md", "./kb/a.md" and "/abs/kb/a.md" compare equal)."""
    return os.path.abspath(path)


def _content_hash(document: Document) -> str:
    h = hashlib.sha256()
    for part in (document.title, document.url, document.text):
        h.update(part.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()
