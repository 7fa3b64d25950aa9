"""Heading-aware chunking with overlap.

A document is cut at its Markdown headings first; a section longer than `max_chars` is packed
paragraph by paragraph (sentence by sentence for a huge paragraph), and each further chunk of the
same section starts with up to `overlap_chars` of the previous one, cut at a sentence boundary.
Every piece keeps its heading path. This module knows nothing about ids, embeddings or storage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")


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
            out.extend(s.strip() for s in _SENTENCE_END.split(line) if s.strip())
    return out


def chunk_text(text: str, max_chars: int = 900, overlap_chars: int = 150) -> list[Piece]:
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
                    sentence = sentence[max_chars - overlap_chars:]
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
    for sentence in reversed(split_sentences(text)):
        candidate = f"{sentence} {tail}".strip()
        if len(candidate) > overlap_chars:
            break
        tail = candidate
    return tail
