"""What an ingest changes in a stored index: planned from the documents, then applied to a snapshot.

`plan_changes` compares the incoming documents' content hashes with the manifest's: a document is
new, changed, unchanged, or gone (stored from a root ingested again, absent now, and not from a file
left out this time), and the new chunks of the new and changed ones are cut and numbered, not embedded.
`apply_changes` puts those chunks, once embedded, into an unpublished snapshot and takes the stale ones out.

Knows nothing about embedders, files on disk, locks or publishing: `KnowledgeIndex.ingest`
(`knowledge.index`) embeds in between, saves, and swaps the snapshot in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from core.errors import BadInput
from knowledge.chunking import chunk_text
from knowledge.ingest import Skipped
from knowledge.snapshot import MANIFEST_VERSION, IndexSnapshot, same_file
from knowledge.types import Chunk, Document


@dataclass
class Changes:
    """What an ingest does to the stored documents, worked out before anything is embedded."""

    next_chunk_id: int  # the first id after the new chunks
    new_chunks: list[Chunk] = field(default_factory=list)  # of added and changed documents, not embedded yet
    entries: dict[str, dict] = field(default_factory=dict)  # their manifest entries
    stale_chunk_ids: list[int] = field(default_factory=list)  # of changed and removed documents
    removed: list[str] = field(default_factory=list)  # documents gone from a root ingested again
    added: int = 0
    updated: int = 0
    unchanged: int = 0


def readable(documents: Iterable[Document], skipped: tuple[Skipped, ...]) -> dict[str, Document]:
    """The documents with text, by id (a later one with the same id wins); `BadInput` when none has."""
    incoming = {document.doc_id: document for document in documents if document.text.strip()}
    if not incoming:
        if skipped:
            raise BadInput(f"nothing could be read: {len(skipped)} files or rows left out (first: {skipped[0]})")
        raise BadInput("no readable documents found; give Markdown, HTML, PDF, TXT, FAQ CSV or JSONL files")
    return incoming


def plan_changes(
    manifest: dict, incoming: dict[str, Document], skipped: tuple[Skipped, ...], max_chars: int, overlap_chars: int
) -> Changes:
    """Which documents are new, changed, unchanged or gone, and the new chunks (numbered, not embedded).

    Gone: stored from a root ingested again, absent now, and not from a file left out this time.
    Reads `manifest`, changes nothing.
    """
    known: dict = manifest["documents"]
    roots = {d.root for d in incoming.values()}
    unread = {same_file(s.source) for s in skipped}  # their stored documents are kept, not removed
    changes = Changes(next_chunk_id=int(manifest["next_chunk_id"]))
    changes.removed = [
        doc_id
        for doc_id, meta in known.items()
        if meta["root"] in roots and doc_id not in incoming and same_file(meta["source"]) not in unread
    ]
    for doc_id, document in incoming.items():
        digest = content_hash(document)
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
            "hash": digest,
            "root": document.root,
            "source": document.source,
            "title": document.title,
            "url": document.url,
            "chunk_ids": ids,
        }
    for doc_id in changes.removed:
        changes.stale_chunk_ids.extend(known[doc_id]["chunk_ids"])
    return changes


def apply_changes(work: IndexSnapshot, changes: Changes, new_chunks: list[Chunk], vectors: np.ndarray) -> None:
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


def content_hash(document: Document) -> str:
    """sha256 of the document's title, url and text: what decides that it changed (the format on disk)."""
    h = hashlib.sha256()
    for part in (document.title, document.url, document.text):
        h.update(part.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()
