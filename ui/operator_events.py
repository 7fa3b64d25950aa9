"""The operator panel's event handlers (`PanelEvents`): each takes the Gradio request, asks `ui.access` what
its signed-in person may see or do (the REST API's rules too), calls the engine's verbs and shapes
the figures into tables. Knows nothing of the panel's layout (`ui.operator`).
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pandas as pd

from core.errors import BadInput, ChatbotError
from core.text import visible
from chatbot.pipeline import Pipeline
from ui.access import (
    operator_named,
    require_admin,
    require_claimable,
    require_visible,
    visible_conversations,
    visible_queue,
)
from ui.guard import Operator, Operators
from ui.operator_admin import AdminEvents
from ui.operator_views import (
    _duration,
    _money,
    faq_draft,
    copilot_markdown,
    human_markdown,
    ingest_markdown,
    packet_markdown,
    shown,
    totals_markdown,
    transcript_markdown,
)


def _long(rows: list[dict], columns: dict[str, str]) -> pd.DataFrame:
    """Per-day rows to the long format the plots colour by series."""
    data = [
        {"date": r["date"], "series": label, "value": r[key]}
        for r in rows
        for key, label in columns.items()
        if r.get(key) is not None
    ]
    return pd.DataFrame(data, columns=["date", "series", "value"])


class PanelEvents(AdminEvents):
    """The panel's event handlers, bound to one engine; they shape its figures into tables. Every one
    takes the Gradio request and asks `ui.access` what its signed-in person may see or do, as REST does."""

    def __init__(self, pipeline: Pipeline, uploads_dir: str, operators: Operators | None = None):
        self.pipeline = pipeline
        self.uploads_dir = Path(uploads_dir)
        self.operators = operators or Operators("operator", lambda: "")  # named operators and their roles

    def _who(self, request: gr.Request | None) -> Operator:
        """The signed-in person (`NotSignedIn` without a session)."""
        return operator_named(self.operators, getattr(request, "username", None))

    # ---- overview and conversations --------------------------------------------------------------
    def overview(self, days: int, request: gr.Request):
        try:
            require_admin(self._who(request), "the analytics")
        except ChatbotError as exc:
            return (f"{exc}. Your inbox and the knowledge gaps are in their tabs.", *[pd.DataFrame()] * 7)
        figures = self.pipeline.analytics(min(max(int(days or 30), 1), 366))  # the slider's range, whatever is sent
        rows = figures["daily"]
        reasons = pd.DataFrame(
            [{"date": r["date"], "reason": k, "handoffs": v} for r in rows for k, v in r["handoff_reasons"].items()],
            columns=["date", "reason", "handoffs"],
        )
        unanswered = pd.DataFrame(figures["top_unanswered"], columns=["question", "count", "outcomes"])
        if not unanswered.empty:
            unanswered["question"] = unanswered["question"].map(visible)
            unanswered["outcomes"] = unanswered["outcomes"].map(lambda d: ", ".join(f"{k} {v}" for k, v in d.items()))
        return (
            totals_markdown(figures["totals"])
            + "\n\n### People (live handoff)\n\n"
            + human_markdown(self.pipeline.human_cost())
            + "\n\n"
            + copilot_markdown(figures["copilot"]),
            _long(rows, {"conversations": "conversations"}),
            _long(rows, {"resolution_rate": "resolution rate", "handoff_rate": "handoff rate", "csat": "CSAT"}),
            reasons,
            _long(rows, {"latency_p50_s": "p50", "latency_p95_s": "p95"}),
            _long(
                rows,
                {
                    "cost_per_conversation_usd": "self-hosted, per conversation",
                    "cost_per_resolved_usd": "self-hosted, per resolved",
                    "api_shadow_per_conversation_usd": f"{figures['totals']['api_model']}, per conversation",
                },
            ),
            _long(rows, {"savings_vs_human_usd": "vs human agents"}),
            unanswered,
        )

    def conversations_table(self, request: gr.Request):
        try:
            rows = visible_conversations(self.pipeline, self._who(request))
        except ChatbotError:
            rows = []
        table = pd.DataFrame(
            rows,
            columns=[
                "id",
                "updated_at",
                "channel",
                "messages",
                "handoff_reason",
                "feedback",
                "cost_usd",
                "api_shadow_cost_usd",
            ],
        )
        return table, gr.update(choices=[r["id"] for r in rows])

    def open_conversation(self, conversation_id: str, request: gr.Request):
        if not conversation_id:
            return "Pick a conversation.", pd.DataFrame()
        try:
            conv = self.pipeline.conversation(require_visible(self.pipeline, self._who(request), conversation_id))
        except ChatbotError as exc:
            return str(exc), pd.DataFrame()
        costs = self.pipeline.conversation_costs(conversation_id)
        table = pd.DataFrame(
            [
                {"stage": k, "seconds": round(v["seconds"], 3), "cost_usd": v["cost_usd"]}
                for k, v in costs["stages"].items()
            ]
            + [
                {"stage": "total (self-hosted)", "seconds": None, "cost_usd": costs["cost_usd"]},
                {
                    "stage": f"API shadow ({costs['api_model']})",
                    "seconds": None,
                    "cost_usd": costs["api_shadow_cost_usd"],
                },
            ]
        )
        return transcript_markdown(conv), table

    # ---- knowledge base: admins only -------------------------------------------------------------
    def reindex(self, files, request: gr.Request, progress=gr.Progress(track_tqdm=True)):
        paths = [Path(f if isinstance(f, str) else f.name) for f in files or []]
        try:
            require_admin(self._who(request), "uploading documents (agents save answers from the inbox)")
            if not paths:
                raise BadInput("choose one or more files first (Markdown, HTML, PDF, TXT, FAQ CSV, JSONL)")
            progress(0.05, desc="reading documents")
            report = self.pipeline.add_uploads(
                str(self.uploads_dir), [str(p) for p in paths], progress=lambda m: progress(0.2, desc=m)
            )
        except ChatbotError as exc:
            return f"Not indexed: {exc}", *self.uploads_listing(request)
        finally:
            for path in paths:
                path.unlink(
                    missing_ok=True
                )  # Gradio's copy of the upload, refused or not: the knowledge base keeps its own
        return ingest_markdown(report, [p.name for p in paths]), *self.uploads_listing(request)

    def uploads_listing(self, request: gr.Request):
        """The uploaded files (name, size, when, documents indexed) and the delete picker's choices; admins only."""
        try:
            require_admin(self._who(request), "the knowledge base")
            uploads = self.pipeline.uploads(str(self.uploads_dir))
        except ChatbotError:
            uploads = []
        rows = [
            {
                "file": u.name,
                "size_kb": round(u.size_bytes / 1024, 1),
                "uploaded": pd.Timestamp(u.modified_s, unit="s").strftime("%Y-%m-%d %H:%M"),
                "documents": u.documents or "not indexed",
            }
            for u in uploads
        ]
        return (
            pd.DataFrame(rows, columns=["file", "size_kb", "uploaded", "documents"]),
            gr.update(choices=[r["file"] for r in rows], value=None),
        )

    def delete_upload(self, name: str | None, request: gr.Request):
        try:
            require_admin(self._who(request), "deleting documents")
            if not name:
                raise BadInput("pick an uploaded file to delete")
            removed = self.pipeline.delete_upload(str(self.uploads_dir), name)
        except ChatbotError as exc:
            return str(exc), *self.uploads_listing(request)
        return (
            f"Deleted {shown(name)}; {removed} document{'s' if removed != 1 else ''} removed from the index.",
            *self.uploads_listing(request),
        )

    # ---- live handoff: the inbox -----------------------------------------------------------------
    def inbox(self, request: gr.Request):
        """The queue as this person may see it, oldest first, and the picker's choices."""
        try:
            entries = visible_queue(self.pipeline, self._who(request))
        except ChatbotError:
            entries = []
        table = pd.DataFrame(
            [
                {
                    "conversation": e.conversation_id,
                    "waiting": _duration(e.waiting_s),
                    "reason": e.reason,
                    "with": e.agent or "",
                    "last question": visible((e.packet.questions or ("",))[-1][:120]),
                }
                for e in entries
            ],
            columns=["conversation", "waiting", "reason", "with", "last question"],
        )
        choices = [
            (
                f"{e.conversation_id[:8]} \u00b7 {e.reason} \u00b7 {_duration(e.waiting_s)}"
                + (f" \u00b7 {e.agent}" if e.agent else ""),
                e.conversation_id,
            )
            for e in entries
        ]
        return table, gr.update(choices=choices)

    def show(self, conversation_id: str | None, request: gr.Request) -> str:
        """The handoff packet and the transcript of the picked conversation."""
        if not conversation_id:
            return "Pick a conversation, or claim the oldest waiting one."
        try:
            require_visible(self.pipeline, self._who(request), conversation_id)
            conv = self.pipeline.conversation(conversation_id)
            entry = next((e for e in self.pipeline.handoff_queue() if e.conversation_id == conversation_id), None)
            state = self.pipeline.handoff_state(conversation_id)
        except ChatbotError as exc:
            return str(exc)
        return packet_markdown(entry, state) + "\n\n---\n\n" + transcript_markdown(conv)

    def claim(self, conversation_id: str | None, request: gr.Request):
        try:
            who = self._who(request)
            if not conversation_id:
                raise BadInput("pick a conversation first")
            self.pipeline.claim(require_claimable(self.pipeline, who, conversation_id), who.name)
            draft = self.pipeline.assist(conversation_id, wait=True)["draft"]
        except ChatbotError as exc:
            return (f"Not claimed: {exc}", self.show(conversation_id, request), *self.inbox(request), gr.update())
        return (
            f"You ({who.name}) have conversation `{conversation_id}`: the assistant is silent; write below"
            + (" (a draft is in the box)." if draft else "."),
            self.show(conversation_id, request),
            *self.inbox(request),
            gr.update(value=draft) if draft else gr.update(),
        )

    def claim_next(self, request: gr.Request):
        waiting = [e for e in self.pipeline.handoff_queue() if e.agent is None]
        if not waiting:
            return (gr.update(), "Nobody is waiting.", self.show(None, request), *self.inbox(request), gr.update())
        conversation_id = waiting[0].conversation_id
        return (gr.update(value=conversation_id), *self.claim(conversation_id, request))

    def send(self, conversation_id: str | None, text: str, request: gr.Request):
        try:
            who = self._who(request)
            if not conversation_id:
                raise BadInput("pick a conversation first")
            self.pipeline.agent_reply(conversation_id, who.name, text)
        except ChatbotError as exc:
            return f"Not sent: {exc}", self.show(conversation_id, request), gr.update()
        return "Sent: the customer sees it in their chat.", self.show(conversation_id, request), ""

    def resolve(self, conversation_id: str | None, return_to_bot: bool, request: gr.Request):
        """Close the handoff; the help-centre entry is filled in from it (the question, the person's answer)."""
        try:
            who = self._who(request)
            if not conversation_id:
                raise BadInput("pick a conversation first")
            done = self.pipeline.resolve(conversation_id, who.name, bool(return_to_bot), override=who.admin)
            conv = self.pipeline.conversation(conversation_id)
        except ChatbotError as exc:
            return (
                f"Not resolved: {exc}",
                self.show(conversation_id, request),
                gr.update(),
                gr.update(),
                gr.update(),
                *self.inbox(request),
            )
        question, answer = faq_draft(conv)
        status = (
            f"Resolved in {_duration(done['handling_s'] or 0)} (cost {_money(done['human_cost_usd'])}); "
            + ("the assistant answers again." if return_to_bot else "the conversation stays with people.")
            + " Save the answer for the help centre below."
        )
        return (status, transcript_markdown(conv), question, answer, conversation_id, *self.inbox(request))

    # ---- help-centre answers and knowledge gaps --------------------------------------------------
    def save_faq(self, question: str, answer: str, conversation_id: str | None, request: gr.Request):
        try:
            who = self._who(request)
            saved = self.pipeline.save_faq(question, answer, who.name, conversation_id or None, who.admin)
        except ChatbotError as exc:
            return f"Not saved: {exc}", *self.faq_entries(request)
        if saved.personal_data:
            status = (
                f"Saved as `{saved.doc_id}`, waiting: it held personal data ({', '.join(saved.personal_data)}), "
                "now replaced by placeholders. Edit them out and save again before it can be approved."
            )
        elif saved.status == "live":
            status = (
                f"Saved as help-centre entry `{saved.doc_id}` and indexed: the next customer who asks this "
                "in other words gets it, cited."
            )
        else:
            status = f"Saved as `{saved.doc_id}`, waiting for review: customers get it once it is approved."
        return status, *self.faq_entries(request)

    def faq_entries(self, request: gr.Request):
        """Help-centre answers people saved (status, author, reviewer) and the review picker's choices."""
        try:
            self._who(request)
            entries = self.pipeline.faq.entries()
        except ChatbotError:
            entries = []
        table = pd.DataFrame(
            [
                {
                    "entry": e.doc_id,
                    "status": e.status,
                    "question": visible(e.question),
                    "answer": visible(e.answer),
                    "by": e.author,
                    "reviewed by": e.reviewed_by or "",
                }
                for e in entries
            ],
            columns=["entry", "status", "question", "answer", "by", "reviewed by"],
        )
        return table, gr.update(choices=[e.doc_id for e in entries if e.status != "removed"], value=None)

    def faq_history(self, doc_id: str | None, request: gr.Request):
        try:
            self._who(request)
            changes = self.pipeline.faq.history(doc_id) if doc_id else []
        except ChatbotError:
            changes = []
        return pd.DataFrame(
            [
                {
                    "when": c.at.strftime("%Y-%m-%d %H:%M"),
                    "what": c.action,
                    "who": c.actor,
                    "status": c.status,
                    "answer": visible(c.answer),
                }
                for c in changes
            ],
            columns=["when", "what", "who", "status", "answer"],
        )

    def review_faq(self, doc_id: str | None, action: str, request: gr.Request):
        """Approve or remove the picked entry (the rule is `[handoff] faq_review`)."""
        try:
            who = self._who(request)
            if not doc_id:
                raise BadInput("pick an entry first")
            verb = self.pipeline.faq.approve if action == "approve" else self.pipeline.faq.remove
            entry = verb(doc_id, who.name, who.admin)
            status = f"`{doc_id}` is {entry.status}" + (
                ": customers are answered from it, cited." if entry.status == "live" else "."
            )
        except ChatbotError as exc:
            status = f"Not done: {exc}"
        return status, *self.faq_entries(request), self.faq_history(doc_id, request)

    def topics(self, request: gr.Request):
        try:
            self._who(request)
            found = self.pipeline.gap_topics()
        except ChatbotError:
            found = []
        rows = [
            {
                "topic": visible(t.label),
                "questions": t.count,
                "conversations": t.conversations,
                "examples": visible(" | ".join(t.examples)),
                "help-centre entry": ", ".join(e.doc_id for e in t.entries),
                "answered since added": sum(e.answered_since for e in t.entries) if t.entries else None,
            }
            for t in found
        ]
        return pd.DataFrame(
            rows,
            columns=["topic", "questions", "conversations", "examples", "help-centre entry", "answered since added"],
        )
