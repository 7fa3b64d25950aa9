"""Help-centre answers people write, kept in a FAQ CSV the company owns and indexed like any source.

The file holds the published entries only (`chatbot.faq_review` keeps drafts, approvals and history
in the database): a row goes into `FOLDER/help-centre-answers.csv` (`id,question,answer,url`, the
format `chatbot ingest` reads), replacing a row with the same id, and the folder is re-indexed
(only changed documents are embedded). The file is plain CSV: export it, edit it, or ingest it
elsewhere; a cell that starts like a spreadsheet formula (`=`, `+`, `-`, `@`, tab, carriage
return) is written with a leading `'` (OWASP's advice) and read back unchanged. Its document ids
are `FAQ-` and a hash of the question, so saving the same question again updates it. Knows
nothing about conversations, people, personal data or retrieval.
"""

from __future__ import annotations

import csv
import hashlib
import io
import threading
from pathlib import Path

from core.text import clean_text, csv_cell, csv_value

FILE_NAME = "help-centre-answers.csv"
COLUMNS = ("id", "question", "answer", "url")
MAX_QUESTION_CHARS = 500
MAX_ANSWER_CHARS = 4_000


def faq_doc_id(question: str) -> str:
    """The document id of a saved answer: the same question (case and spacing aside) keeps its id."""
    key = " ".join(question.lower().split())
    return "FAQ-" + hashlib.sha1(key.encode()).hexdigest()[:10]


def clean_entry(question: object, answer: object) -> tuple[str, str]:
    """A question and its answer as an entry keeps them: one line each, within the limits; `BadInput` else."""
    return (
        clean_text(question, "question", MAX_QUESTION_CHARS, one_line=True),
        clean_text(answer, "answer", MAX_ANSWER_CHARS, one_line=True),
    )


class FaqBook:
    """The FAQ CSV in `folder`; thread-safe writes (one at a time, written whole then renamed)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self.folder / FILE_NAME

    def entries(self) -> list[dict]:
        """The rows of the file, in order (empty when there is none yet)."""
        if not self.path.is_file():
            return []
        rows = csv.DictReader(io.StringIO(self.path.read_text(encoding="utf-8")))
        return [{k: csv_value(v or "") for k, v in r.items()} for r in rows]

    def save(self, question: str, answer: str, url: str = "") -> tuple[str, str, str]:
        """Add or update the entry for `question`; returns (doc_id, question, answer) as written."""
        question, answer = clean_entry(question, answer)
        doc_id = faq_doc_id(question)
        with self._lock:
            rows = [r for r in self.entries() if r.get("id") != doc_id]
            rows.append({"id": doc_id, "question": question, "answer": answer, "url": url})
            self._write(rows)
        return doc_id, question, answer

    def remove(self, doc_id: str) -> bool:
        """Take the entry `doc_id` out of the file; False when it was not there."""
        with self._lock:
            rows = self.entries()
            kept = [r for r in rows if r.get("id") != doc_id]
            if len(kept) == len(rows):
                return False
            self._write(kept)
        return True

    def _write(self, rows: list[dict]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows([{k: csv_cell(str(r.get(k) or "")) for k in COLUMNS} for r in rows])
        partial = self.path.with_suffix(".csv.partial")
        partial.write_text(out.getvalue(), encoding="utf-8")
        partial.replace(self.path)  # readers never see half a file
