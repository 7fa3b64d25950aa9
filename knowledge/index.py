"""A persisted knowledge index: chunks, a FAISS inner-product index and a manifest.

Its files (`manifest.json`, `chunks.jsonl`, `dense.faiss`, `sentences.npy`) and the in-memory
`IndexSnapshot` are described in `knowledge.snapshot`; what an ingest adds, updates and removes is
planned in `knowledge.changes`. This module holds `KnowledgeIndex`: which snapshot is published, the
lock writers hold, and the embedder (chunks and their sentences are embedded here).

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
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import BadInput, ChatbotError, NotFound
from core.files import write_atomic
from knowledge.changes import apply_changes, plan_changes, readable
from knowledge.chunking import SENTENCE_SPLITTER, split_sentences
from knowledge.embedding import Embedder
from knowledge.ingest import Skipped
from knowledge.snapshot import (
    FILES,
    MANIFEST_VERSION,
    IndexSnapshot,
    manifest_fingerprint,
    read_snapshot,
    same_file,
    write_snapshot,
)
from knowledge.types import Chunk, Document

# the public names; FILES, MANIFEST_VERSION, IndexSnapshot and manifest_fingerprint live in knowledge.snapshot
__all__ = ["FILES", "MANIFEST_VERSION", "IndexSnapshot", "IngestReport", "KnowledgeIndex", "manifest_fingerprint"]


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
        return {
            **{f.name: getattr(self, f.name) for f in fields(self) if f.name != "skipped"},
            "skipped": [s.to_json() for s in self.skipped],
        }


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

    def version(self) -> str:
        """A digest of the published snapshot's manifest (its documents' hashes, chunking, decision): two
        processes that loaded the same files report the same version; any change to them, another."""
        text = json.dumps(self.snapshot().manifest, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    @property
    def key(self) -> str:
        """The name its folder is published under (`chatbot.index_watch`): the absolute path, the same on
        every replica that mounts the shared folder at the same place."""
        return str(self.directory.resolve())

    def reload(self) -> None:
        """Read the folder again and publish what it holds now (another process wrote it): searches in
        progress finish on the snapshot they pinned, the next ones see the new one."""
        self._read()

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

    def load(self, progress: Callable[[str], None] = _to_stderr) -> KnowledgeIndex:
        """Read the index; `progress` hears when it is an old one without stored sentences."""
        self._read()
        snap = self.snapshot()
        missing = sum(1 for c in snap.chunks.values() if c.sentence_vectors is None)
        if missing:
            progress(
                f"the index at {self.directory} stores no sentences for {missing} chunks (manifest version "
                f"{snap.manifest.get('version', 1)}): they are split and embedded on every turn; "
                f"ingest into it again to store them ('chatbot ingest SOURCE... --index {self.directory}')"
            )
        return self

    def check_directory(self) -> None:
        """`BadInput` when the index path, or a folder above it, is a file (a folder is needed)."""
        for path in (self.directory, *self.directory.parents):
            if path.exists():
                if not path.is_dir():
                    where = "is a file" if path == self.directory else f"is under a file ({path})"
                    raise BadInput(
                        f"the index path {self.directory} {where}, not a folder; "
                        "give --index a folder (it is created if missing)"
                    )
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
        try:
            snap = read_snapshot(self.directory)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise ChatbotError(
                f"the index at {self.directory} is damaged ({exc}); rebuild it with "
                f"'chatbot ingest SOURCE... --index {self.directory} --rebuild'"
            ) from None
        if snap.manifest.get("embedder") != self.embedder.name:
            raise ChatbotError(
                f"the index at {self.directory} was built with embedder "
                f"'{snap.manifest.get('embedder')}', but '{self.embedder.name}' is configured; "
                "configure that embedder or rebuild the index with --rebuild"
            )
        return snap

    def _add_missing_sentences(self, work: IndexSnapshot, progress: Callable[[str], None]) -> None:
        """Split and embed the sentences of `work`'s chunks read without them (manifest version 1).

        Changes `work` in place: only for a snapshot that is not published yet.
        """
        missing = [c for c in work.chunks.values() if c.sentence_vectors is None]
        if not missing:
            return
        progress(
            f"the index stores no sentences (manifest version {work.manifest.get('version', 1)}): "
            f"splitting and embedding those of its {len(missing)} chunks to store them"
        )
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
            out.append(replace(chunk, sentences=group, sentence_vectors=vectors[start : start + len(group)]))
            start += len(group)
        return out

    def sentence_vectors(self, chunk_id: int) -> np.ndarray:
        """The embeddings of a chunk's sentences, one row per `chunks[chunk_id].sentences`."""
        return self.snapshot().sentence_vectors(chunk_id)

    def _empty_snapshot(self, dimension: int, chunking: dict) -> IndexSnapshot:
        import faiss

        manifest = {
            "version": MANIFEST_VERSION,
            "embedder": self.embedder.name,
            "dimension": dimension,
            "chunking": chunking,
            "documents": {},
            "next_chunk_id": 0,
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
        incoming = readable(documents, skipped)
        # the sentence splitter too: an index cut by another one is rebuilt on its next ingest, not mixed
        chunking = {"max_chars": max_chars, "overlap_chars": overlap_chars, "sentences": SENTENCE_SPLITTER}
        with self._writing:
            work = self._starting_point(chunking, rebuild, progress)  # new objects: changed freely below
            changes = plan_changes(work.manifest, incoming, skipped, max_chars, overlap_chars)
            progress(
                f"{len(incoming)} documents: {changes.added} new, {changes.updated} changed, "
                f"{changes.unchanged} unchanged, {len(changes.removed)} removed; "
                f"embedding {len(changes.new_chunks)} chunks"
            )
            dimension = work.manifest["dimension"]
            vectors = self._embed_chunks(changes.new_chunks, dimension)
            apply_changes(work, changes, self._with_sentences(changes.new_chunks, dimension), vectors)
            self._save_snapshot(work)
            self._snapshot = work  # published whole, after the files: searches from now on see this version
        return IngestReport(
            documents=work.document_count(),
            chunks=work.size,
            added=changes.added,
            updated=changes.updated,
            unchanged=changes.unchanged,
            removed=len(changes.removed),
            embedded_chunks=len(changes.new_chunks),
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
        gone = {same_file(s) for s in sources}
        with self._writing:
            work = self._read_snapshot()
            known: dict = work.manifest["documents"]
            doc_ids = [doc_id for doc_id, meta in known.items() if same_file(meta["source"]) in gone]
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
                raise NotFound(
                    f"no knowledge index at {self.directory}; build one with "
                    f"'chatbot ingest SOURCE... --index {self.directory}'"
                )
            stored = json.loads(path.read_text(encoding="utf-8"))
            stored[key] = value
            write_atomic(path, json.dumps(stored, indent=1, ensure_ascii=False))
            self._snapshot = self._snapshot.with_manifest({**self._snapshot.manifest, key: value})

    def _save_snapshot(self, snap: IndexSnapshot) -> None:
        try:
            write_snapshot(self.directory, snap)
        except (OSError, RuntimeError) as exc:  # faiss raises RuntimeError; the previous files stay (`replacing`)
            raise ChatbotError(
                f"cannot write the index at {self.directory} ({getattr(exc, 'strerror', None) or exc}); "
                "check the folder's permissions and free space"
            ) from None

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
