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
from a root ingested again (not those of a file that could not be read this time: they stay). Files are replaced
atomically: a failed ingest leaves the previous index.
BM25 is rebuilt from the chunks on load (it is cheap). Fusion of the two lives in `search.py`.
An index of manifest version 1 (no stored sentences) still loads and serves as before (the
grounding check splits and embeds the retrieved chunks' sentences per turn); its next ingest splits
and embeds every chunk's sentences and stores them, without embedding the chunks again.

In memory the index is an `IndexSnapshot` (manifest, chunks, FAISS index, BM25) that is never changed
once published: `ingest` and `forget` build the next snapshot aside, save it, and swap it in with one
assignment, while server threads go on searching the previous one. A search takes one snapshot for
all its reads (`KnowledgeIndex.pinned`), so it never sees half of a re-index, and never waits for one.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import BadInput, ChatbotError, NotFound
from core.files import replacing, write_atomic
from core.lazy import Lazy
from knowledge.chunking import SENTENCE_SPLITTER, chunk_text, split_sentences
from knowledge.embedding import Embedder
from knowledge.ingest import Skipped
from knowledge.lexical import BM25, tokenize
from knowledge.types import Chunk, Document

MANIFEST_VERSION = 2  # 2: sentences and their vectors stored (sentences.npy); 1 still loads
FILES = ("dense.faiss", "chunks.jsonl", "sentences.npy", "manifest.json")  # the manifest last: it marks the index


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
        target = _same_file(source)
        return [doc_id for doc_id, meta in self.manifest.get("documents", {}).items()
                if _same_file(meta["source"]) == target]


@dataclass
class _Changes:
    """What an ingest does to the stored documents, worked out before anything is embedded."""

    next_chunk_id: int  # the first id after the new chunks
    new_chunks: list[Chunk] = field(default_factory=list)  # of added and changed documents, not embedded yet
    entries: dict[str, dict] = field(default_factory=dict)  # their manifest entries
    stale_chunk_ids: list[int] = field(default_factory=list)  # of changed and removed documents
    removed: list[str] = field(default_factory=list)  # documents gone from a root ingested again
    added: int = 0
    updated: int = 0
    unchanged: int = 0


class KnowledgeIndex:
    def __init__(self, directory: str | Path, embedder: Embedder):
        self.directory = Path(directory)
        self.embedder = embedder
        # the published version: replaced whole by one assignment, never changed in place
        self._snapshot = IndexSnapshot({}, {})
        self._pins = threading.local()  # per thread: the snapshot a search in progress reads (`pinned`)
        # one writer at a time (ingest, forget, save, a manifest entry); readers take no lock
        self._writing = threading.RLock()

    # ---- reading one version ---------------------------------------------------------------
    def snapshot(self) -> IndexSnapshot:
        """The snapshot this thread pinned (`pinned`), else the one published now."""
        pinned = getattr(self._pins, "snapshot", None)
        return pinned if pinned is not None else self._snapshot

    @contextmanager
    def pinned(self) -> Iterator[IndexSnapshot]:
        """Within the block, every read of this index from this thread uses one snapshot (yielded).

        For a search that reads the index several times (dense, BM25, chunks, then a reranker's
        cosines): a re-index finishing meanwhile is seen by the next search, not by half of this one.
        Nested blocks keep the outer one's snapshot. Does not stop a re-index, and never waits for one.
        """
        outer = getattr(self._pins, "snapshot", None)
        if outer is not None:
            yield outer
            return
        self._pins.snapshot = self._snapshot
        try:
            yield self._pins.snapshot
        finally:
            self._pins.snapshot = None

    @property
    def manifest(self) -> dict:
        """The current snapshot's manifest. Read it, do not change it: searches share it (`set_manifest_entry`)."""
        return self.snapshot().manifest

    @property
    def chunks(self) -> dict[int, Chunk]:
        """The current snapshot's chunks by id; read-only, as `manifest`."""
        return self.snapshot().chunks

    @property
    def _faiss(self) -> Any:
        return self.snapshot().faiss

    # ---- loading -------------------------------------------------------------------------
    @property
    def exists(self) -> bool:
        return (self.directory / "manifest.json").is_file()

    def load(self, progress: Callable[[str], None] = _to_stderr) -> "KnowledgeIndex":
        """Read the index; `progress` hears when it is an old one without stored sentences."""
        self._read()
        snap = self.snapshot()
        missing = sum(1 for c in snap.chunks.values() if c.sentence_vectors is None)
        if missing:
            progress(f"the index at {self.directory} stores no sentences for {missing} chunks (manifest version "
                     f"{snap.manifest.get('version', 1)}): they are split and embedded on every turn; "
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
        """Read the folder's index and publish it (searches see it from now on)."""
        with self._writing:
            self._snapshot = self._read_snapshot()

    def _read_snapshot(self) -> IndexSnapshot:
        """The index as the folder holds it, in new objects nobody else holds (not published)."""
        self.check_directory()
        if not self.exists:
            raise NotFound(
                f"no knowledge index at {self.directory}; build one with "
                f"'chatbot ingest SOURCE... --index {self.directory}'"
            )
        import faiss

        try:
            manifest = json.loads((self.directory / "manifest.json").read_text())
            chunks = _read_chunks(self.directory / "chunks.jsonl")
            dense = faiss.read_index(str(self.directory / "dense.faiss"))
            if manifest.get("version", 1) >= 2:
                chunks = _attach_sentence_vectors(chunks, np.load(self.directory / "sentences.npy"),
                                                  manifest["dimension"])
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise ChatbotError(
                f"the index at {self.directory} is damaged ({exc}); rebuild it with "
                f"'chatbot ingest SOURCE... --index {self.directory} --rebuild'"
            ) from None
        if manifest.get("embedder") != self.embedder.name:
            raise ChatbotError(
                f"the index at {self.directory} was built with embedder "
                f"'{manifest.get('embedder')}', but '{self.embedder.name}' is configured; "
                "configure that embedder or rebuild the index with --rebuild"
            )
        return IndexSnapshot(manifest, chunks, dense)

    def _add_missing_sentences(self, work: IndexSnapshot, progress: Callable[[str], None]) -> None:
        """Split and embed the sentences of `work`'s chunks read without them (manifest version 1).

        Changes `work` in place: only for a snapshot that is not published yet.
        """
        missing = [c for c in work.chunks.values() if c.sentence_vectors is None]
        if not missing:
            return
        progress(f"the index stores no sentences (manifest version {work.manifest.get('version', 1)}): "
                 f"splitting and embedding those of its {len(missing)} chunks to store them")
        work.chunks.update({c.chunk_id: c for c in self._with_sentences(missing, work.manifest["dimension"])})

    def _with_sentences(self, chunks: list[Chunk], dimension: int) -> list[Chunk]:
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
            vectors = np.zeros((0, dimension), dtype=np.float32)
        out, start = [], 0
        for chunk, group in zip(chunks, groups):
            out.append(replace(chunk, sentences=group, sentence_vectors=vectors[start:start + len(group)]))
            start += len(group)
        return out

    def sentence_vectors(self, chunk_id: int) -> np.ndarray:
        """The embeddings of a chunk's sentences, one row per `chunks[chunk_id].sentences`."""
        return self.snapshot().sentence_vectors(chunk_id)

    def _empty_snapshot(self, dimension: int, chunking: dict) -> IndexSnapshot:
        import faiss

        manifest = {
            "version": MANIFEST_VERSION, "embedder": self.embedder.name, "dimension": dimension,
            "chunking": chunking, "documents": {}, "next_chunk_id": 0,
        }
        return IndexSnapshot(manifest, {}, faiss.IndexIDMap2(faiss.IndexFlatIP(dimension)))

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
        Searches meanwhile see the previous version until the new one is saved, then the new one whole.
        """
        skipped = tuple(skipped)
        self.check_directory()
        incoming = _readable(documents, skipped)
        # the sentence splitter too: an index cut by another one is rebuilt on its next ingest, not mixed
        chunking = {"max_chars": max_chars, "overlap_chars": overlap_chars, "sentences": SENTENCE_SPLITTER}
        with self._writing:
            work = self._starting_point(chunking, rebuild, progress)  # new objects: changed freely below
            changes = _plan_changes(work.manifest, incoming, skipped, max_chars, overlap_chars)
            progress(f"{len(incoming)} documents: {changes.added} new, {changes.updated} changed, "
                     f"{changes.unchanged} unchanged, {len(changes.removed)} removed; "
                     f"embedding {len(changes.new_chunks)} chunks")
            dimension = work.manifest["dimension"]
            vectors = self._embed_chunks(changes.new_chunks, dimension)
            _apply_changes(work, changes, self._with_sentences(changes.new_chunks, dimension), vectors)
            self._save_snapshot(work)
            self._snapshot = work  # published whole, after the files: searches from now on see this version
        return IngestReport(
            documents=work.document_count(), chunks=work.size, added=changes.added, updated=changes.updated,
            unchanged=changes.unchanged, removed=len(changes.removed), embedded_chunks=len(changes.new_chunks),
            skipped=skipped,
        )

    def _starting_point(self, chunking: dict, rebuild: bool, progress: Callable[[str], None]) -> IndexSnapshot:
        """The unpublished snapshot an ingest changes: the stored index, or an empty one to rebuild into
        (asked for, none stored yet, or stored with other chunking settings)."""
        if self.exists and not rebuild:
            work = self._read_snapshot()
            if work.manifest.get("chunking") == chunking:
                self._add_missing_sentences(work, progress)
                return work
            progress(f"chunking settings changed from {work.manifest.get('chunking')}: rebuilding")
        return self._empty_snapshot(self.embedder.dimension, chunking)

    def forget(self, sources: Iterable[str | Path]) -> int:
        """Remove the documents read from these files (deleted uploads) and save; returns how many."""
        if not self.exists:
            return 0
        gone = {_same_file(s) for s in sources}
        with self._writing:
            work = self._read_snapshot()
            known: dict = work.manifest["documents"]
            doc_ids = [doc_id for doc_id, meta in known.items() if _same_file(meta["source"]) in gone]
            if doc_ids:
                stale = [chunk_id for doc_id in doc_ids for chunk_id in known.pop(doc_id)["chunk_ids"]]
                work.faiss.remove_ids(np.array(stale, dtype=np.int64))
                for chunk_id in stale:
                    work.chunks.pop(chunk_id, None)
                self._save_snapshot(work)
            self._snapshot = work  # as the folder holds it now (it was read again even when nothing went)
        return len(doc_ids)

    def documents_from(self, source: str | Path) -> list[str]:
        """Ids of the stored documents read from this file."""
        return self.snapshot().documents_from(source)

    def _embed_chunks(self, chunks: list[Chunk], dimension: int) -> np.ndarray:
        if not chunks:
            return np.zeros((0, dimension), dtype=np.float32)
        texts = [c.embedding_text() for c in chunks]
        return self.embedder.embed(texts, show_progress=len(texts) > 64)

    # ---- saving ----------------------------------------------------------------------------
    def save(self) -> None:
        """Write the published snapshot's files (replacing them atomically)."""
        with self._writing:
            self._save_snapshot(self._snapshot)

    def set_manifest_entry(self, key: str, value: Any) -> None:
        """Store `value` (JSON) under `key` in the manifest, on disk and in the published snapshot.

        For what other modules keep beside the documents (the answer decision's threshold). Only
        `manifest.json` is rewritten (atomically): the chunks and vectors do not change, and rewriting
        them would cost seconds on a large help centre. The entry joins the manifest the folder holds
        now, so what another process ingested there is kept. Does not know what the entry means; an
        ingest that rebuilds the index from scratch drops it.
        """
        path = self.directory / "manifest.json"
        with self._writing:
            if not self.exists:
                raise NotFound(f"no knowledge index at {self.directory}; build one with "
                               f"'chatbot ingest SOURCE... --index {self.directory}'")
            stored = json.loads(path.read_text(encoding="utf-8"))
            stored[key] = value
            write_atomic(path, json.dumps(stored, indent=1, ensure_ascii=False))
            self._snapshot = self._snapshot.with_manifest({**self._snapshot.manifest, key: value})

    def _save_snapshot(self, snap: IndexSnapshot) -> None:
        ordered = [snap.chunks[i] for i in sorted(snap.chunks)]
        stored = [f.name for f in fields(Chunk) if f.name != "sentence_vectors"]
        rows = [c.sentence_vectors for c in ordered]
        matrix = np.concatenate(rows) if rows else np.zeros((0, snap.manifest["dimension"]), dtype=np.float32)
        try:
            self._write(snap, ordered, stored, matrix)
        except (OSError, RuntimeError) as exc:  # faiss raises RuntimeError; the previous files stay (`replacing`)
            raise ChatbotError(f"cannot write the index at {self.directory} ({getattr(exc, 'strerror', None) or exc}); "
                               "check the folder's permissions and free space") from None

    def _write(self, snap: IndexSnapshot, ordered: list[Chunk], stored: list[str], matrix: np.ndarray) -> None:
        import faiss

        with replacing(*(self.directory / name for name in FILES)) as (dense, chunks, sentences, manifest):
            faiss.write_index(snap.faiss, str(dense))
            with open(chunks, "w", encoding="utf-8") as f:
                for chunk in ordered:
                    record = {name: getattr(chunk, name) for name in stored}
                    f.write(json.dumps(record, ensure_ascii=False) + "\n")
            with open(sentences, "wb") as f:  # a file object: np.save would add ".npy" to the temporary's name
                np.save(f, np.ascontiguousarray(matrix, dtype=np.float32))
            manifest.write_text(json.dumps(snap.manifest, indent=1, ensure_ascii=False))

    # ---- retrieval primitives (each on one snapshot: a search pins one for all its calls) -----------
    @property
    def size(self) -> int:
        return self.snapshot().size

    def dense(self, vector: np.ndarray, n: int) -> list[tuple[int, float]]:
        """(chunk id, cosine) of the `n` nearest chunks."""
        return self.snapshot().dense(vector, n)

    def cosines(self, vector: np.ndarray, chunk_ids: list[int]) -> dict[int, float]:
        """Cosine of `vector` to the given chunks (reconstructed from the flat index)."""
        return self.snapshot().cosines(vector, chunk_ids)

    def lexical(self, weights: dict[str, float], n: int) -> list[tuple[int, float]]:
        """(chunk id, BM25 score) of the `n` best chunks with any matching term."""
        return self.snapshot().lexical(weights, n)

    def document_count(self) -> int:
        return self.snapshot().document_count()


def _readable(documents: Iterable[Document], skipped: tuple[Skipped, ...]) -> dict[str, Document]:
    """The documents with text, by id (a later one with the same id wins); `BadInput` when none has."""
    incoming = {document.doc_id: document for document in documents if document.text.strip()}
    if not incoming:
        if skipped:
            raise BadInput(f"nothing could be read: {len(skipped)} files or rows left out (first: {skipped[0]})")
        raise BadInput("no readable documents found; give Markdown, HTML, PDF, TXT, FAQ CSV or JSONL files")
    return incoming


def _plan_changes(manifest: dict, incoming: dict[str, Document], skipped: tuple[Skipped, ...],
                  max_chars: int, overlap_chars: int) -> _Changes:
    """Which documents are new, changed, unchanged or gone, and the new chunks (numbered, not embedded).

    Gone: stored from a root ingested again, absent now, and not from a file left out this time.
    Reads `manifest`, changes nothing.
    """
    known: dict = manifest["documents"]
    roots = {d.root for d in incoming.values()}
    unread = {_same_file(s.source) for s in skipped}  # their stored documents are kept, not removed
    changes = _Changes(next_chunk_id=int(manifest["next_chunk_id"]))
    changes.removed = [doc_id for doc_id, meta in known.items() if meta["root"] in roots
                       and doc_id not in incoming and _same_file(meta["source"]) not in unread]
    for doc_id, document in incoming.items():
        digest = _content_hash(document)
        old = known.get(doc_id)
        if old and old["hash"] == digest:
            changes.unchanged += 1
            continue
        if old:
            changes.updated += 1
            changes.stale_chunk_ids.extend(old["chunk_ids"])
        else:
            changes.added += 1
        ids = []
        for piece in chunk_text(document.text, max_chars, overlap_chars):
            chunk_id = changes.next_chunk_id
            changes.new_chunks.append(Chunk(chunk_id, doc_id, document.title, document.url, piece.headings, piece.text))
            ids.append(chunk_id)
            changes.next_chunk_id += 1
        changes.entries[doc_id] = {
            "hash": digest, "root": document.root, "source": document.source,
            "title": document.title, "url": document.url, "chunk_ids": ids,
        }
    for doc_id in changes.removed:
        changes.stale_chunk_ids.extend(known[doc_id]["chunk_ids"])
    return changes


def _apply_changes(work: IndexSnapshot, changes: _Changes, new_chunks: list[Chunk], vectors: np.ndarray) -> None:
    """Apply `changes` to the unpublished `work` in place: `new_chunks` (with their sentences) and
    their `vectors` in, stale chunks out, the manifest brought up to date."""
    if changes.stale_chunk_ids:
        work.faiss.remove_ids(np.array(changes.stale_chunk_ids, dtype=np.int64))
        for chunk_id in changes.stale_chunk_ids:
            work.chunks.pop(chunk_id, None)
    if new_chunks:
        work.faiss.add_with_ids(vectors, np.array([c.chunk_id for c in new_chunks], dtype=np.int64))
        work.chunks.update({c.chunk_id: c for c in new_chunks})
    known: dict = work.manifest["documents"]
    for doc_id in changes.removed:
        del known[doc_id]
    known.update(changes.entries)
    work.manifest["next_chunk_id"] = changes.next_chunk_id
    work.manifest["version"] = MANIFEST_VERSION


def _read_chunks(path: Path) -> dict[int, Chunk]:
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


def _attach_sentence_vectors(chunks: dict[int, Chunk], matrix: np.ndarray, dimension: int) -> dict[int, Chunk]:
    """`chunks` with each given its rows of `matrix` (chunk id order, then sentence order)."""
    ordered = sorted(chunks)
    counts = [len(chunks[i].sentences) for i in ordered]
    if matrix.ndim != 2 or matrix.shape[0] != sum(counts) or matrix.shape[1] != dimension:
        raise ValueError(f"sentences.npy holds {matrix.shape} vectors for {sum(counts)} sentences")
    matrix = np.asarray(matrix, dtype=np.float32)
    out, start = {}, 0
    for chunk_id, count in zip(ordered, counts):
        out[chunk_id] = replace(chunks[chunk_id], sentence_vectors=matrix[start:start + count])
        start += count
    return out


def _same_file(path: str | Path) -> str:
    """A file's path in one spelling ("kb/a.md", "./kb/a.md" and "/abs/kb/a.md" compare equal)."""
    return os.path.abspath(path)


def _content_hash(document: Document) -> str:
    h = hashlib.sha256()
    for part in (document.title, document.url, document.text):
        h.update(part.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()
