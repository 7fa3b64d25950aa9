"""Help-centre answers people saved, as recorded: each entry's text (redacted), status and reviewer, and
the history of every save, edit, approval and removal. The rules (who approves, what goes live)
are `chatbot.faq_review`'s; the published file is `chatbot.faq`'s.
"""

from __future__ import annotations

from sqlalchemy import insert, select, update

from chatbot.records.database import Database, now, utc
from chatbot.records.schema import faq_entries, faq_history
from chatbot.records.types import FaqChange, FaqEntry
from core.errors import NotFound


class FaqRecords:
    """The saved help-centre answers over `db`."""

    def __init__(self, db: Database):
        self.db = db

    def save(
        self, doc_id: str, question: str, answer: str, author: str, status: str, conversation_id: str | None = None
    ) -> FaqEntry:
        """Save or edit a help-centre answer (its text redacted like a person's reply) with `status`, and
        record the step in its history, in one transaction. A live save is reviewed by its author."""
        question, answer = self.db.redact(question), self.db.redact(answer)
        at = now()
        with self.db.begin() as c:
            known = c.execute(select(faq_entries.c.id).where(faq_entries.c.doc_id == doc_id)).first() is not None
            values = {
                "question": question,
                "answer": answer,
                "author": author,
                "created_at": at,
                "status": status,
                "reviewed_by": author if status == "live" else None,
                "reviewed_at": at if status == "live" else None,
            }
            if conversation_id is not None or not known:
                values["conversation_id"] = conversation_id
            if known:
                c.execute(update(faq_entries).where(faq_entries.c.doc_id == doc_id).values(**values))
            else:
                c.execute(insert(faq_entries).values(doc_id=doc_id, **values))
            c.execute(
                insert(faq_history).values(
                    doc_id=doc_id,
                    action="edited" if known else "saved",
                    actor=author,
                    at=at,
                    question=question,
                    answer=answer,
                    status=status,
                )
            )
            row = c.execute(select(faq_entries).where(faq_entries.c.doc_id == doc_id)).one()
        return _faq(row)

    def review(self, doc_id: str, action: str, reviewer: str, status: str) -> FaqEntry:
        """Approve or remove a help-centre answer (`action`), leaving it `status`; kept in its history."""
        at = now()
        with self.db.begin() as c:
            row = c.execute(select(faq_entries).where(faq_entries.c.doc_id == doc_id)).first()
            if row is None:
                raise NotFound(f"no help-centre answer '{doc_id}'; list them with GET /api/knowledge/faq")
            c.execute(
                update(faq_entries)
                .where(faq_entries.c.doc_id == doc_id)
                .values(status=status, reviewed_by=reviewer, reviewed_at=at)
            )
            c.execute(
                insert(faq_history).values(
                    doc_id=doc_id,
                    action=action,
                    actor=reviewer,
                    at=at,
                    question=row.question,
                    answer=row.answer,
                    status=status,
                )
            )
            row = c.execute(select(faq_entries).where(faq_entries.c.doc_id == doc_id)).one()
        return _faq(row)

    def get(self, doc_id: str) -> FaqEntry:
        """One help-centre answer; `NotFound` when there is none with that id."""
        with self.db.read() as c:
            row = c.execute(select(faq_entries).where(faq_entries.c.doc_id == doc_id)).first()
        if row is None:
            raise NotFound(f"no help-centre answer '{doc_id}'; list them with GET /api/knowledge/faq")
        return _faq(row)

    def changes(self, doc_id: str | None = None) -> list[FaqChange]:
        """The history of one help-centre answer (or of all), oldest first."""
        query = select(faq_history).order_by(faq_history.c.id)
        if doc_id is not None:
            query = query.where(faq_history.c.doc_id == doc_id)
        with self.db.read() as c:
            return [
                FaqChange(r.doc_id, r.action, r.actor, utc(r.at), r.question, r.answer, r.status)
                for r in c.execute(query).all()
            ]

    def entries(self) -> list[FaqEntry]:
        """The saved help-centre answers, oldest first."""
        with self.db.read() as c:
            return [_faq(r) for r in c.execute(select(faq_entries).order_by(faq_entries.c.id)).all()]


def _faq(row) -> FaqEntry:
    return FaqEntry(
        id=row.id,
        doc_id=row.doc_id,
        question=row.question,
        answer=row.answer,
        conversation_id=row.conversation_id,
        author=row.author,
        created_at=utc(row.created_at),
        status=row.status,
        reviewed_by=row.reviewed_by,
        reviewed_at=utc(row.reviewed_at),
    )
