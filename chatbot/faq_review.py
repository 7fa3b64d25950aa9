"""Help-centre answers people write, reviewed before any customer is answered from them.

The rule is `[handoff] faq_review`:
- "admin" (the default): an agent's entry waits for an admin's approval; an admin's own goes live at once;
- "second_agent": an entry waits until a second person approves it (anyone but its last editor; an
  admin's own goes live at once);
- "none": every entry goes live at once.

An entry is redacted before it is stored anywhere (the database, the FAQ CSV, the index): cards,
emails, phone numbers, IBANs, street addresses and full names become placeholders such as
`{{Card Number}}`. An entry whose text held any cannot go live until someone edits it (saves the
same question again with a clean answer): it waits, whoever wrote it. Only live entries are in
the FAQ CSV (`chatbot.faq.FaqBook`) and so in the index; while an edit of a live entry waits, the
approved text stays live. Every save, edit, approval and removal is kept, with who and when
(`Store.faq_changes`). Knows nothing of passwords or roles beyond "is this person an admin".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from chatbot.faq import FaqBook, clean_entry, faq_doc_id
from chatbot.records.store import STORED_PERSONAL_DATA, Conflict, FaqChange, FaqEntry, Store
from core.errors import BadInput, Forbidden
from core.redact import PLACEHOLDERS, Redactor

FAQ_REVIEW = ("admin", "second_agent", "none")
LIVE, PENDING, REMOVED = "live", "pending", "removed"


@dataclass(frozen=True)
class FaqSaved:
    """What a save did: the entry's id, whether customers are answered from it now, what was redacted."""

    doc_id: str
    status: str  # "live" or "pending" (waits for review)
    personal_data: tuple[str, ...]  # kinds replaced by placeholders: edit them out before it can go live

    def to_json(self) -> dict:
        return {
            "doc_id": self.doc_id,
            "status": self.status,
            "live": self.status == LIVE,
            "personal_data": list(self.personal_data),
        }


def personal_data_in(entry: FaqEntry) -> list[str]:
    """The placeholders left in an entry's text by redaction (empty when it is clean)."""
    text = entry.question + " " + entry.answer
    return [p for p in PLACEHOLDERS.values() if p in text]


class FaqDesk:
    """The help-centre answers people save: drafts, review, the published FAQ CSV and its index.

    `folder`: where the FAQ CSV lives; `reindex(sources)`: re-indexes a folder, `forget(sources)`: drops a
    file's documents from the index (the engine's);
    `review`: one of `FAQ_REVIEW`; `keep`: public words never redacted (the company's name).
    """

    def __init__(
        self,
        store: Store,
        folder: str | Path,
        reindex: Callable[[list[str]], object],
        forget: Callable[[list[str]], object],
        review: str = "admin",
        keep: Iterable[str] = (),
    ):
        if review not in FAQ_REVIEW:
            raise BadInput(f"[handoff] faq_review must be one of {', '.join(FAQ_REVIEW)}, not {review!r}")
        self.store = store
        self.book = FaqBook(folder)
        self.reindex = reindex
        self.forget = forget
        self.review = review
        self.redactor = Redactor(keep=keep, kinds=(*STORED_PERSONAL_DATA, "name"))

    def save(
        self, question: str, answer: str, author: str, admin: bool, conversation_id: str | None = None
    ) -> FaqSaved:
        """Save (or edit: the same question again) an entry; it goes live at once or waits (module docstring)."""
        question, answer = clean_entry(question, answer)
        if conversation_id:
            self.store.conversations.require_conversation(conversation_id)
        doc_id = faq_doc_id(question)
        texts, found = self.redactor.redact_conversation([question, answer])
        at_once = self.review == "none" or admin
        status = LIVE if at_once and not found else PENDING
        entry = self.store.faq.save(doc_id, *texts, author, status, conversation_id)
        if status == LIVE:
            self._publish(entry)
        return FaqSaved(doc_id, status, tuple(sorted(found)))

    def approve(self, doc_id: str, reviewer: str, admin: bool) -> FaqEntry:
        """Publish a waiting entry: `Forbidden` unless the rule lets `reviewer` approve it, `BadInput` while
        its text holds redacted personal data, `Conflict` when it is not waiting."""
        entry = self.store.faq.get(doc_id)
        if entry.status != PENDING:
            raise Conflict(f"help-centre answer '{doc_id}' is {entry.status}, not waiting for approval")
        if self.review == "admin" and not admin:
            raise Forbidden("an admin approves help-centre answers; ask one to review it")
        if self.review == "second_agent" and not admin and reviewer == entry.author:
            raise Forbidden("a second person approves a help-centre answer; ask a colleague to review it")
        held = personal_data_in(entry)
        if held:
            raise BadInput(
                f"the answer held personal data (now {', '.join(held)}); edit it out, save it again, then approve it"
            )
        entry = self.store.faq.review(doc_id, "approved", reviewer, LIVE)
        self._publish(entry)
        return entry

    def remove(self, doc_id: str, reviewer: str, admin: bool) -> FaqEntry:
        """Take an entry out of the help centre (an admin; or the author of one still waiting)."""
        entry = self.store.faq.get(doc_id)
        if not admin and not (entry.status == PENDING and entry.author == reviewer):
            raise Forbidden("an admin removes help-centre answers")
        if entry.status == REMOVED:
            raise Conflict(f"help-centre answer '{doc_id}' is already removed")
        entry = self.store.faq.review(doc_id, "removed", reviewer, REMOVED)
        if self.book.remove(doc_id):
            if self.book.entries():
                self.reindex([str(self.book.folder)])
            else:  # the last one: the file goes, and with it its documents
                self.forget([str(self.book.path)])
                self.book.path.unlink(missing_ok=True)
        return entry

    def entries(self) -> list[FaqEntry]:
        """Every entry, oldest first, with its status."""
        return self.store.faq.entries()

    def history(self, doc_id: str | None = None) -> list[FaqChange]:
        """Who saved, edited, approved and removed an entry (or every entry), oldest first."""
        if doc_id is not None:
            self.store.faq.get(doc_id)  # NotFound for an unknown id
        return self.store.faq.changes(doc_id)

    def _publish(self, entry: FaqEntry) -> None:
        self.book.save(entry.question, entry.answer)
        self.reindex([str(self.book.folder)])
