"""Practice questions on disk: the help centre's sections, and the customer-style questions written for
each of them (`chatbot.practice` writes them with a model), cached in the index folder.

A section is the chunks of one document under one heading path. Its key is a digest of its title,
headings and text; a section's questions are stored with the writer and prompt version that wrote
them, so they are reused until that section (or the writer) changes, and questions of a section that
is gone are never read back: chunk ids are looked up again from the current index each time.
It knows nothing about models or searching.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from core.files import write_atomic
from knowledge.types import Chunk

FILE = "practice-questions.jsonl"  # in the index folder: one line per section written


@dataclass(frozen=True)
class Section:
    doc_id: str
    title: str
    headings: tuple[str, ...]
    chunk_ids: tuple[int, ...]
    text: str  # the section's chunks, in order

    def key(self) -> str:
        content = json.dumps([self.title, self.headings, self.text], ensure_ascii=False)
        return hashlib.sha256(content.encode("utf-8")).hexdigest()[:24]


@dataclass(frozen=True)
class Written:
    """What the writer wrote for one section, and which of those questions retrieval found it for."""

    key: str
    doc_id: str
    writer: str  # the model's name, and the version of its prompt
    version: int
    questions: tuple[str, ...]
    kept: tuple[str, ...]
    seconds: float  # wall seconds the writer took for this section

    def to_json(self) -> dict:
        return {**asdict(self), "seconds": round(self.seconds, 2)}


def sections(chunks: Iterable[Chunk]) -> list[Section]:
    """The help centre's sections: the chunks of a document sharing a heading path, in chunk order."""
    by_key: dict[tuple[str, tuple[str, ...]], list[Chunk]] = defaultdict(list)
    for chunk in sorted(chunks, key=lambda c: c.chunk_id):
        by_key[(chunk.doc_id, tuple(h.strip() for h in chunk.headings))].append(chunk)
    return [
        Section(
            doc_id, group[0].title.strip(), headings, tuple(c.chunk_id for c in group), "\n".join(c.text for c in group)
        )
        for (doc_id, headings), group in by_key.items()
    ]


def read(index_dir: str | Path) -> dict[str, Written]:
    """Every section written so far, by key (an unreadable line is skipped: it is written again)."""
    path = Path(index_dir) / FILE
    out: dict[str, Written] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            row = json.loads(line)
            out[row["key"]] = Written(
                row["key"],
                row["doc_id"],
                str(row["writer"]),
                int(row["version"]),
                tuple(row["questions"]),
                tuple(row["kept"]),
                float(row["seconds"]),
            )
        except (ValueError, KeyError, TypeError):
            continue
    return out


def store(index_dir: str | Path, written: Iterable[Written]) -> None:
    """Replace the cache with `written` (atomically: a reader sees the old file or the new one)."""
    text = "".join(json.dumps(w.to_json(), ensure_ascii=False) + "\n" for w in written)
    write_atomic(Path(index_dir) / FILE, text.encode("utf-8"))


def current(index_dir: str | Path, chunks: Iterable[Chunk]) -> list[tuple[Section, Written]]:
    """Each section the index still holds that has questions written for it, with them."""
    cached = read(index_dir)
    return [(section, cached[key]) for section in sections(chunks) if (key := section.key()) in cached]


def kept_questions(index_dir: str | Path, chunks: Iterable[Chunk], used: bool = True) -> list[tuple[str, Section]]:
    """(question, its section) for every kept practice question of a section the index still holds; none
    when they are not `used` (a setting that leaves them out of training)."""
    if not used:
        return []
    return [(question, section) for section, written in current(index_dir, chunks) for question in written.kept]


def digest(pairs: Iterable[tuple[str, Section]]) -> str:
    """Changes when the kept questions or their sections' chunks do (a trained model's fingerprint holds it)."""
    content = json.dumps([[q, s.doc_id, list(s.chunk_ids)] for q, s in pairs], ensure_ascii=False)
    return hashlib.sha256(content.encode("utf-8")).hexdigest()
