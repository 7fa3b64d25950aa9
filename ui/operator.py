"""The operator panel (Gradio), mounted behind the operator password.

Overview (totals, per-day charts, people's measured cost), the inbox (live handoff: claim, reply,
resolve, save the answer as a help-centre entry), knowledge-gap topics, conversations (transcripts, sources, handoff reason,
feedback, cost by stage), top unanswered questions, and the knowledge base (upload documents and
re-index with progress). Every figure comes from the engine's verbs (`Pipeline.analytics`,
`conversations`, `conversation_costs`, `reindex`); nothing is computed here beyond shaping tables
for display.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import gradio as gr
import pandas as pd

from core.errors import BadInput, ChatbotError
from chatbot.pipeline import Pipeline
from ui.guard import Operator, Operators


def _money(x) -> str:
    return "-" if x is None else f"${x:,.6f}" if abs(x) < 0.01 else f"${x:,.2f}"


def _pct(x) -> str:
    return "-" if x is None else f"{x:.0%}"


def eval_lines(report: dict) -> list[str]:
    """The serving model and its latest `chatbot eval` scores, per split."""
    lines = [f"Serving model: `{report.get('serving_model') or '-'}`"]
    if report.get("eval"):
        lines += ["", "| eval split | questions | resolution | correct | wrong | out of scope refused | run at |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {split}{' (in-sample)' if s.get('in_sample') else ''} | {s['questions']} "
                  f"| {_pct(s['resolution_rate'])} | {_pct(s['correct_rate'])} "
                  f"| {_pct(s['wrong_rate'])} | {_pct(s['out_of_scope_refused'])} | {s['at'][:16]} |"
                  for split, s in report["eval"].items()]
    else:
        lines.append("No `chatbot eval` run recorded for it yet.")
    return lines


def totals_markdown(report: dict) -> str:
    latency = report["latency_s"]
    return "\n".join([
        "| conversations | resolution rate | handoff rate | CSAT | latency p50 / p95 | tokens |",
        "|---|---|---|---|---|---|",
        f"| {report['conversations']} | {_pct(1 - report['handoff_rate'] if report['conversations'] else None)} "
        f"| {_pct(report['handoff_rate'])} | {_pct(report['csat'])} "
        f"| {latency['p50'] or 0:.2f} s / {latency['p95'] or 0:.2f} s "
        f"| {report['tokens']['prompt'] + report['tokens']['completion']:,} |",
        "",
        "| cost per conversation | on " + report["api_model"] + " | with a human agent | total saved vs API | total saved vs humans |",
        "|---|---|---|---|---|",
        f"| {_money(report['cost_per_conversation_usd'])} | {_money(report['api_shadow_cost_per_conversation_usd'])} "
        f"| {_money(report['human_agent_cost_per_conversation_usd'])} | {_money(report['savings_vs_api_usd'])} "
        f"| {_money(report['savings_vs_human_usd'])} |",
        "",
        f"Handoffs by reason: {', '.join(f'{k} {v}' for k, v in report['handoff_reasons'].items()) or 'none'}",
        "",
        *eval_lines(report),
    ])


def _long(rows: list[dict], columns: dict[str, str]) -> pd.DataFrame:
    """Per-day rows to the long format the plots colour by series."""
    data = [{"date": r["date"], "series": label, "value": r[key]}
            for r in rows for key, label in columns.items() if r.get(key) is not None]
    return pd.DataFrame(data, columns=["date", "series", "value"])


class _Handlers:
    """The panel's event handlers, bound to one engine; they shape its figures into tables."""

    def __init__(self, pipeline: Pipeline, uploads_dir: str, operators: Operators | None = None):
        self.pipeline = pipeline
        self.uploads_dir = Path(uploads_dir)
        self.operators = operators  # named operators and roles; None: whoever signed in is an admin

    def overview(self, days: int):
        figures = self.pipeline.analytics(min(max(int(days or 30), 1), 366))  # the slider's range, whatever is sent
        rows = figures["daily"]
        reasons = pd.DataFrame([{"date": r["date"], "reason": k, "handoffs": v}
                                for r in rows for k, v in r["handoff_reasons"].items()], columns=["date", "reason", "handoffs"])
        unanswered = pd.DataFrame(figures["top_unanswered"], columns=["question", "count", "outcomes"])
        if not unanswered.empty:
            unanswered["outcomes"] = unanswered["outcomes"].map(lambda d: ", ".join(f"{k} {v}" for k, v in d.items()))
        return (
            totals_markdown(figures["totals"]) + "\n\n### People (live handoff)\n\n" + human_markdown(self.pipeline.human_cost()),
            _long(rows, {"conversations": "conversations"}),
            _long(rows, {"resolution_rate": "resolution rate", "handoff_rate": "handoff rate", "csat": "CSAT"}),
            reasons,
            _long(rows, {"latency_p50_s": "p50", "latency_p95_s": "p95"}),
            _long(rows, {"cost_per_conversation_usd": "self-hosted, per conversation",
                         "cost_per_resolved_usd": "self-hosted, per resolved",
                         "api_shadow_per_conversation_usd": f"{figures['totals']['api_model']}, per conversation"}),
            _long(rows, {"savings_vs_human_usd": "vs human agents"}),
            unanswered,
        )

    def conversations_table(self):
        rows = self.pipeline.conversations()
        table = pd.DataFrame(rows, columns=["id", "updated_at", "channel", "messages", "handoff_reason", "feedback",
                                            "cost_usd", "api_shadow_cost_usd"])
        return table, gr.update(choices=[r["id"] for r in rows])

    def open_conversation(self, conversation_id: str):
        if not conversation_id:
            return "Pick a conversation.", pd.DataFrame()
        try:
            conv = self.pipeline.conversation(conversation_id)
        except ChatbotError as exc:
            return str(exc), pd.DataFrame()
        costs = self.pipeline.conversation_costs(conversation_id)
        table = pd.DataFrame([{"stage": k, "seconds": round(v["seconds"], 3), "cost_usd": v["cost_usd"]}
                              for k, v in costs["stages"].items()]
                             + [{"stage": "total (self-hosted)", "seconds": None, "cost_usd": costs["cost_usd"]},
                                {"stage": f"API shadow ({costs['api_model']})", "seconds": None,
                                 "cost_usd": costs["api_shadow_cost_usd"]}])
        return transcript_markdown(conv), table

    def reindex(self, files, request: gr.Request, progress=gr.Progress(track_tqdm=True)):
        if not self._who(request).admin:
            return ("Only an admin can upload documents; ask one, or save answers from the inbox.",
                    *self.uploads_listing())
        if not files:
            return ("Choose one or more files first (Markdown, HTML, PDF, TXT, FAQ CSV, JSONL).",
                    *self.uploads_listing())
        paths = [Path(f if isinstance(f, str) else f.name) for f in files]
        progress(0.05, desc="reading documents")
        try:
            report = self.pipeline.add_uploads(str(self.uploads_dir), [str(p) for p in paths],
                                               progress=lambda m: progress(0.2, desc=m))
        except ChatbotError as exc:
            return f"Not indexed: {exc}", *self.uploads_listing()
        finally:
            for path in paths:
                path.unlink(missing_ok=True)  # Gradio's copy of the upload: the knowledge base keeps its own
        return ingest_markdown(report, [p.name for p in paths]), *self.uploads_listing()

    def uploads_listing(self):
        """The uploaded files (name, size, when, documents indexed) and the delete picker's choices."""
        rows = [{"file": u.name, "size_kb": round(u.size_bytes / 1024, 1),
                 "uploaded": pd.Timestamp(u.modified_s, unit="s").strftime("%Y-%m-%d %H:%M"),
                 "documents": u.documents or "not indexed"}
                for u in self.pipeline.uploads(str(self.uploads_dir))]
        return (pd.DataFrame(rows, columns=["file", "size_kb", "uploaded", "documents"]),
                gr.update(choices=[r["file"] for r in rows], value=None))

    def delete_upload(self, name: str | None, request: gr.Request):
        if not self._who(request).admin:
            return "Only an admin can delete documents.", *self.uploads_listing()
        if not name:
            return "Pick an uploaded file to delete.", *self.uploads_listing()
        try:
            removed = self.pipeline.delete_upload(str(self.uploads_dir), name)
        except ChatbotError as exc:
            return str(exc), *self.uploads_listing()
        return (f"Deleted {shown(name)}; {removed} document{'s' if removed != 1 else ''} removed from the index.",
                *self.uploads_listing())


    # ---- live handoff: the inbox -----------------------------------------------------------------
    def _who(self, request: gr.Request | None) -> Operator:
        name = getattr(request, "username", None) or "operator"
        role = "admin" if self.operators is None or name == self.operators.operator_user else \
            self.operators.accounts.get(name, ("", "agent"))[1]
        return Operator(name, role)

    def inbox(self):
        """The queue, oldest first, and the picker's choices."""
        entries = self.pipeline.handoff_queue()
        table = pd.DataFrame([{"conversation": e.conversation_id, "waiting": _duration(e.waiting_s), "reason": e.reason,
                               "with": e.agent or "", "last question": (e.packet.questions or ("",))[-1][:120]}
                              for e in entries], columns=["conversation", "waiting", "reason", "with", "last question"])
        choices = [(f"{e.conversation_id[:8]} \u00b7 {e.reason} \u00b7 {_duration(e.waiting_s)}"
                    + (f" \u00b7 {e.agent}" if e.agent else ""), e.conversation_id) for e in entries]
        return table, gr.update(choices=choices)

    def show(self, conversation_id: str | None) -> str:
        """The handoff packet and the transcript of the picked conversation."""
        if not conversation_id:
            return "Pick a conversation, or claim the oldest waiting one."
        try:
            conv = self.pipeline.conversation(conversation_id)
            entry = next((e for e in self.pipeline.handoff_queue() if e.conversation_id == conversation_id), None)
            state = self.pipeline.handoff_state(conversation_id)
        except ChatbotError as exc:
            return str(exc)
        return packet_markdown(entry, state) + "\n\n---\n\n" + transcript_markdown(conv)

    def claim(self, conversation_id: str | None, request: gr.Request):
        who = self._who(request)
        if not conversation_id:
            return ("Pick a conversation first.", self.show(conversation_id), *self.inbox())
        try:
            self.pipeline.claim(conversation_id, who.name)
        except ChatbotError as exc:
            return (f"Not claimed: {exc}", self.show(conversation_id), *self.inbox())
        return (f"You ({who.name}) have conversation `{conversation_id}`: the assistant is silent; write below.",
                self.show(conversation_id), *self.inbox())

    def claim_next(self, request: gr.Request):
        waiting = [e for e in self.pipeline.handoff_queue() if e.agent is None]
        if not waiting:
            return (gr.update(), "Nobody is waiting.", self.show(None), *self.inbox())
        conversation_id = waiting[0].conversation_id
        return (gr.update(value=conversation_id), *self.claim(conversation_id, request))

    def send(self, conversation_id: str | None, text: str, request: gr.Request):
        who = self._who(request)
        try:
            if not conversation_id:
                raise BadInput("pick a conversation first")
            self.pipeline.agent_reply(conversation_id, who.name, text)
        except ChatbotError as exc:
            return f"Not sent: {exc}", self.show(conversation_id), gr.update()
        return "Sent: the customer sees it in their chat.", self.show(conversation_id), ""

    def resolve(self, conversation_id: str | None, return_to_bot: bool, request: gr.Request):
        """Close the handoff; the help-centre entry is filled in from it (the question, the person's answer)."""
        who = self._who(request)
        try:
            if not conversation_id:
                raise BadInput("pick a conversation first")
            done = self.pipeline.resolve(conversation_id, who.name, bool(return_to_bot), override=who.admin)
            conv = self.pipeline.conversation(conversation_id)
        except ChatbotError as exc:
            return (f"Not resolved: {exc}", self.show(conversation_id), gr.update(), gr.update(), gr.update(),
                    *self.inbox())
        question, answer = faq_draft(conv)
        status = (f"Resolved in {_duration(done['handling_s'] or 0)} (cost {_money(done['human_cost_usd'])}); "
                  + ("the assistant answers again." if return_to_bot else "the conversation stays with people.")
                  + " Save the answer for the help centre below.")
        return (status, self.show(conversation_id), question, answer, conversation_id, *self.inbox())

    def save_faq(self, question: str, answer: str, conversation_id: str | None, request: gr.Request) -> str:
        who = self._who(request)
        try:
            doc_id = self.pipeline.save_faq(question, answer, who.name, conversation_id or None)
        except ChatbotError as exc:
            return f"Not saved: {exc}"
        return (f"Saved as help-centre entry `{doc_id}` and indexed: the next customer who asks this in other "
                "words gets it, cited.")

    def topics(self):
        rows = [{"topic": t.label, "questions": t.count, "conversations": t.conversations,
                 "examples": " | ".join(t.examples),
                 "help-centre entry": ", ".join(e.doc_id for e in t.entries),
                 "answered since added": sum(e.answered_since for e in t.entries) if t.entries else None}
                for t in self.pipeline.gap_topics()]
        return pd.DataFrame(rows, columns=["topic", "questions", "conversations", "examples", "help-centre entry",
                                           "answered since added"])


def ingest_markdown(report, names: list[str]) -> str:
    """A re-index's result for the panel: what was indexed, then each file or row left out and why."""
    lines = [f"Uploaded {shown(', '.join(names))}. The knowledge base now has {report.documents} documents "
             f"({report.added} added, {report.updated} updated, {report.unchanged} unchanged, {report.removed} removed)."]
    if report.skipped:
        lines.append(f"**Left out ({len(report.skipped)})**: fix and upload again, or delete them below.")
        lines += [f"- {shown(Path(s.source).name)}{f' line {s.line}' if s.line else ''}: {shown(s.reason)}"
                  for s in report.skipped]
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m" if seconds >= 3600 else \
        f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def faq_draft(conv) -> tuple[str, str]:
    """A help-centre entry drawn from a resolved conversation: the customer's first question a person had to
    answer (typed, not the button) and the person's last reply."""
    handed = {m.id for m in conv.messages if m.role == "assistant" and m.outcome and m.outcome != "answered"}
    questions, last_customer = [], None
    for m in conv.messages:
        if m.role == "customer" and not m.extra.get("action"):
            last_customer = m.content
        elif m.id in handed and last_customer:
            questions.append(last_customer)
    typed = [m.content for m in conv.messages if m.role == "customer" and not m.extra.get("action")]
    replies = [m.content for m in conv.messages if m.role == "agent"]
    return (questions or typed or [""])[0], (replies or [""])[-1]


def packet_markdown(entry, state: str) -> str:
    """The handoff packet for a person: questions, the sources found, the rejected draft and why."""
    if entry is None:
        return f"**State:** {state} (not in the queue)"
    p = entry.packet
    lines = [f"**State:** {state}" + (f" \u00b7 with **{shown(entry.agent)}**" if entry.agent else "")
             + f" \u00b7 waiting {_duration(entry.waiting_s)} \u00b7 reason `{entry.reason}`", "",
             f"**Why the assistant handed over:** {shown(p.why)}", "", "**Customer's questions:**", ""]
    lines += [f"{i}. {shown(q)}" for i, q in enumerate(p.questions, start=1)]
    lines += ["", "**Sources the assistant found:** " + (" \u00b7 ".join(
        f"{shown(s.title)} \\[{shown(s.doc_id)}\\]" for s in p.sources) or "none")]
    if p.draft:
        lines += ["", f"**Rejected draft:** {shown(p.draft)}"]
    if p.checked:
        lines.append(f"<sub>check: {', '.join(f'{k} {v}' for k, v in p.checked.items())}</sub>")
    return "\n".join(lines)


def human_markdown(h: dict) -> str:
    """People's measured time and cost, and savings against people on measured figures."""
    basis = ("measured: handling time \u00d7 " + _money(h["usd_per_hour"]) + "/hour") if h["basis"] == "measured" \
        else f"flat {_money(h['flat_usd_per_conversation'])} per conversation (nothing measured yet)"
    mean = _duration(h["mean_handling_s"]) if h["mean_handling_s"] is not None else "-"
    return "\n".join([
        "| handoffs resolved by people | open now | mean handling time | people's cost | per handled conversation "
        "| saved vs people only |", "|---|---|---|---|---|---|",
        f"| {h['handled']} | {h['open']} | {mean} | {_money(h['human_cost_usd'])} "
        f"| {_money(h['human_cost_per_handled_usd'])} | {_money(h['savings_vs_human_usd'])} |",
        "", f"<sub>People's cost basis: {basis}.</sub>"])


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~<])")


def shown(text: str) -> str:
    """Customer-controlled text made inert for Markdown: no HTML, no images, links or emphasis."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(str(text), quote=False)).replace("\n", " ")


def transcript_markdown(conv) -> str:
    """A stored conversation as Markdown for operators: who said what, outcomes, sources.
    Everything a customer or a help-centre file controls is passed through `shown`."""
    lines = [f"**Conversation** `{conv.id}` · {conv.channel} · started {conv.created_at:%Y-%m-%d %H:%M}",
             f"**Handoff:** {conv.handoff_reason or 'no'}", ""]
    for m in conv.messages:
        who = {"customer": "Customer", "agent": f"Agent {shown(m.author or '')}", "notice": "Notice"}.get(m.role, "Assistant")
        lines.append(f"**{who}:** {shown(m.content)}")
        if m.interrupted:
            lines.append("<sub>no reply: the server stopped mid-turn; handed to a person (interrupted)</sub>")
        if "transcript" in m.extra:
            lines.append(f"<sub>voice, {m.extra['transcript'].get('audio_s', 0)} s</sub>")
        if "ocr" in m.extra:
            lines.append(f"<sub>screenshot text: {shown(m.extra['ocr']['text'][:300])}</sub>")
        if m.outcome:
            lines.append(f"<sub>outcome: {m.outcome}</sub>")
        if m.sources:
            lines.append("<sub>sources: " + " · ".join(f"{shown(s.title)} \\[{shown(s.doc_id)}\\]" for s in m.sources)
                         + "</sub>")
        lines.append("")
    return "\n\n".join(lines)


def build_operator(pipeline: Pipeline, uploads_dir: str, delete_cache: tuple[int, int] | None = None,
                   operators: Operators | None = None, inbox_poll_s: float = 5.0) -> gr.Blocks:
    """The panel's layout and wiring; every figure comes from the engine's verbs.
    `delete_cache`: (every, older than) seconds, Gradio's clean-up of the panel's temporary files;
    `operators`: who is signed in and their role; `inbox_poll_s`: how often the inbox refreshes."""
    on = _Handlers(pipeline, uploads_dir, operators)
    with gr.Blocks(title="Operator panel", delete_cache=delete_cache) as panel:
        gr.Markdown("## Operator panel")
        with gr.Tab("Overview"):
            with gr.Row():
                days = gr.Slider(1, 90, value=30, step=1, label="days")
                refresh = gr.Button("Refresh", variant="primary")
            totals = gr.Markdown()
            with gr.Row():
                conv_plot = gr.BarPlot(x="date", y="value", color="series", title="Conversations per day")
                rates_plot = gr.ScatterPlot(x="date", y="value", color="series", title="Resolution, handoff rate and CSAT")
            with gr.Row():
                reasons_plot = gr.BarPlot(x="date", y="handoffs", color="reason", title="Handoffs by reason")
                latency_plot = gr.ScatterPlot(x="date", y="value", color="series", title="Latency per turn (s)")
            with gr.Row():
                # the API's price sits beside ours (same scale); a human's is ~10,000x, so it gets its own chart
                cost_plot = gr.ScatterPlot(x="date", y="value", color="series", title="Cost: self-hosted vs API (USD)")
                savings_plot = gr.BarPlot(x="date", y="value", color="series", title="Saved vs human agents (USD)")
            gr.Markdown("### Top unanswered or handed-over questions")
            unanswered = gr.Dataframe(interactive=False)
        with gr.Tab("Inbox", elem_id="inbox-tab"):
            gr.Markdown("Conversations waiting for a person, oldest first. Claim one: the assistant goes silent and "
                        "your replies appear in the customer's open chat.")
            inbox = gr.Dataframe(interactive=False, elem_id="inbox")
            with gr.Row():
                picked = gr.Dropdown(label="Waiting conversation", choices=[], allow_custom_value=True, elem_id="inbox-pick")
                claim_next = gr.Button("Claim the oldest waiting", variant="primary", elem_id="claim-next")
                claim = gr.Button("Claim", elem_id="claim")
            inbox_status = gr.Markdown(elem_id="inbox-status")
            packet = gr.Markdown(elem_id="packet")
            with gr.Row():
                reply_box = gr.Textbox(label="Reply to the customer", lines=2, scale=4, elem_id="agent-reply")
                send = gr.Button("Send", variant="primary", scale=1, elem_id="send-reply")
            with gr.Row():
                back_to_bot = gr.Checkbox(True, label="The assistant takes the conversation back", elem_id="return-to-bot")
                resolve = gr.Button("Resolve", elem_id="resolve")
            gr.Markdown("#### Save the answer for the help centre")
            faq_question = gr.Textbox(label="Question", elem_id="faq-question")
            faq_answer = gr.Textbox(label="Answer", lines=3, elem_id="faq-answer")
            faq_from = gr.State(None)  # the conversation the entry comes from
            save_faq = gr.Button("Save as help-centre entry", variant="primary", elem_id="save-faq")
            faq_status = gr.Markdown(elem_id="faq-status")
        with gr.Tab("Knowledge gaps", elem_id="gaps-tab"):
            gr.Markdown("Unanswered and handed-over questions grouped into topics, largest first, with the "
                        "help-centre entries saved for them and how many later questions each answered.")
            refresh_topics = gr.Button("Refresh topics", elem_id="refresh-topics")
            topics = gr.Dataframe(interactive=False, elem_id="topics")
        with gr.Tab("Conversations"):
            table = gr.Dataframe(interactive=False)
            with gr.Row():
                chosen = gr.Dropdown(label="Conversation", choices=[], allow_custom_value=True)
                reload = gr.Button("Reload list")
            transcript = gr.Markdown()
            stage_costs = gr.Dataframe(label="Cost by stage", interactive=False)
        with gr.Tab("Knowledge base"):
            gr.Markdown("Upload help-centre documents; they are added to the index (changed ones re-embedded).")
            uploads = gr.File(file_count="multiple", label="Documents")
            go = gr.Button("Upload and re-index", variant="primary")
            status = gr.Markdown(elem_id="upload-status")
            uploaded = gr.Dataframe(label="Uploaded files", interactive=False, elem_id="uploaded-files")
            with gr.Row():
                to_delete = gr.Dropdown(label="Uploaded file", choices=[], elem_id="upload-pick")
                delete = gr.Button("Delete file and its documents", variant="stop", elem_id="delete-upload")

        outputs = [totals, conv_plot, rates_plot, reasons_plot, latency_plot, cost_plot, savings_plot, unanswered]
        refresh.click(on.overview, [days], outputs, api_visibility="private")
        panel.load(on.overview, [days], outputs, api_visibility="private")
        panel.load(on.conversations_table, None, [table, chosen], api_visibility="private")
        reload.click(on.conversations_table, None, [table, chosen], api_visibility="private")
        chosen.change(on.open_conversation, [chosen], [transcript, stage_costs], api_visibility="private")
        go.click(on.reindex, [uploads], [status, uploaded, to_delete], api_visibility="private")
        panel.load(on.uploads_listing, None, [uploaded, to_delete], api_visibility="private")
        delete.click(on.delete_upload, [to_delete], [status, uploaded, to_delete], api_visibility="private")
        queue_out = [inbox, picked]
        panel.load(on.inbox, None, queue_out, api_visibility="private")
        if inbox_poll_s > 0:
            gr.Timer(inbox_poll_s).tick(on.inbox, None, queue_out, api_visibility="private", show_progress="hidden")
        picked.change(on.show, [picked], [packet], api_visibility="private")
        claim.click(on.claim, [picked], [inbox_status, packet, *queue_out], api_visibility="private")
        claim_next.click(on.claim_next, None, [picked, inbox_status, packet, *queue_out], api_visibility="private")
        sent = dict(fn=on.send, inputs=[picked, reply_box], outputs=[inbox_status, packet, reply_box],
                    api_visibility="private")
        send.click(**sent)
        reply_box.submit(**sent)
        resolve.click(on.resolve, [picked, back_to_bot],
                      [inbox_status, packet, faq_question, faq_answer, faq_from, *queue_out], api_visibility="private")
        save_faq.click(on.save_faq, [faq_question, faq_answer, faq_from], [faq_status], api_visibility="private")
        refresh_topics.click(on.topics, None, [topics], api_visibility="private")
        panel.load(on.topics, None, [topics], api_visibility="private")
    return panel
