"""Heading-aware chunking with overlap.

A document is cut at its Markdown headings first; a section longer than `max_chars` is packed
paragraph by paragraph (sentence by sentence for a huge paragraph), and each further chunk of the
same section starts with up to `overlap_chars` of the previous one, cut at a sentence boundary.
Every piece keeps its heading path. This module knows nothing about ids, embeddings or storage.

Sentences come from pysbd (rule-based, English rules: "e.g.", "Dr. Smith", "U.S. Dollars" stay
whole); it knows no other language's abbreviations and nothing of Markdown, so lines are split
first here. pysbd is ~300x slower than a regex, so a line with no possible boundary skips it and
each line's result is cached (the same retrieved chunks are split again on every question).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")  # fallback when pysbd loses text
_MAYBE_BOUNDARY = re.compile(r"[.!?][\"'\u201d\u2019)\]]*\s")  # no match: the line is one sentence
_LIST_NUMBER = re.compile(r"^(\d{1,3}[.)])\s+(\S.*)$")  # its own piece, as the grounding check expects
SENTENCE_SPLITTER = "pysbd-en"  # recorded in an index's manifest: a different splitter means a rebuild
_local = threading.local()  # a pysbd Segmenter keeps per-call state, so one per thread


@dataclass(frozen=True)
class Piece:
    headings: tuple[str, ...]
    text: str


def split_sentences(text: str) -> list[str]:
    """Sentences and list items of `text` (a line break always ends one)."""
    out: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if line:
            out.extend(_line_sentences(line))
    return out


def _segmenter():
    segmenter = getattr(_local, "segmenter", None)
    if segmenter is None:
        import pysbd

        segmenter = _local.segmenter = pysbd.Segmenter(language="en", clean=False)
    return segmenter


@lru_cache(maxsize=16384)
def _line_sentences(line: str) -> tuple[str, ...]:
    """The sentences of one stripped line; pysbd's, or the regex's if pysbd dropped any text."""
    if not _MAYBE_BOUNDARY.search(line):
        return (line,)
    sentences = tuple(s.strip() for s in _segmenter().segment(line) if s.strip())
    if "".join("".join(sentences).split()) != "".join(line.split()):
        return tuple(s.strip() for s in _SENTENCE_END.split(line) if s.strip())
    out: list[str] = []
    for sentence in sentences:  # "2. Tap Orders." -> "2.", "Tap Orders.": a list number is no claim
        marker = _LIST_NUMBER.match(sentence)
        out.extend((marker.group(1), marker.group(2)) if marker else (sentence,))
    return tuple(out)


def chunk_text(text: str, max_chars: int, overlap_chars: int) -> list[Piece]:
    if max_chars < 100:
        raise ValueError("max_chars must be at least 100")
    if not 0 <= overlap_chars < max_chars // 2:
        raise ValueError("overlap_chars must be between 0 and max_chars / 2")
    pieces: list[Piece] = []
    for headings, body in _sections(text):
        for chunk in _pack(body, max_chars, overlap_chars):
            pieces.append(Piece(headings, chunk))
    return pieces


def _sections(text: str) -> list[tuple[tuple[str, ...], str]]:
    """(heading path, body) for each section that has a body."""
    sections: list[tuple[tuple[str, ...], str]] = []
    stack: list[tuple[int, str]] = []
    lines: list[str] = []

    def flush() -> None:
        body = "\n".join(lines).strip()
        if body:
            sections.append((tuple(title for _, title in stack), body))
        lines.clear()

    in_code = False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            in_code = not in_code
        match = None if in_code else _HEADING.match(line)
        if match:
            flush()
            level = len(match.group(1))
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, match.group(2)))
        else:
            lines.append(line)
    flush()
    return sections


def _pack(body: str, max_chars: int, overlap_chars: int) -> list[str]:
    units: list[str] = []  # paragraphs, or sentences of paragraphs too long to keep whole
    for paragraph in re.split(r"\n\s*\n", body):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        if len(paragraph) <= max_chars:
            units.append(paragraph)
        else:
            for sentence in split_sentences(paragraph):
                while len(sentence) > max_chars:  # a run-on "sentence" (a table, a code block)
                    units.append(sentence[:max_chars])
                    sentence = sentence[max_chars - overlap_chars :]
                units.append(sentence)
    chunks: list[str] = []
    current = ""
    for unit in units:
        candidate = f"{current}\n\n{unit}" if current else unit
        if len(candidate) <= max_chars or not current:
            current = candidate
            continue
        chunks.append(current)
        tail = _tail(current, overlap_chars)
        current = f"{tail}\n\n{unit}" if tail and len(tail) + len(unit) + 2 <= max_chars else unit
    if current:
        chunks.append(current)
    return chunks


def _tail(text: str, overlap_chars: int) -> str:
    """The last whole sentences of `text` that fit in `overlap_chars`."""
    if overlap_chars <= 0:
        return ""
    tail = ""
    for line in reversed(text.splitlines()):  # from the end, so only the last lines are segmented
        line = line.strip()
        for sentence in reversed(_line_sentences(line) if line else ()):
            candidate = f"{sentence} {tail}".strip()
            if len(candidate) > overlap_chars:
                return tail
            tail = candidate
    return tail
