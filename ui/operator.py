"""The operator panel (Gradio), mounted behind the operator password.

Overview (totals and per-day charts), conversations (transcripts, sources, handoff reason,
feedback, cost by stage), top unanswered questions, and the knowledge base (upload documents and
re-index with progress). Every figure comes from the engine's verbs (`Pipeline.analytics`,
`conversations`, `conversation_costs`, `reindex`); nothing is computed here beyond shaping tables
for display.
"""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import gradio as gr
import pandas as pd

from core.errors import ChatbotError
from chatbot.pipeline import Pipeline
from knowledge.ingest import SUPPORTED


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
        lines += [f"| {split} | {s['questions']} | {_pct(s['resolution_rate'])} | {_pct(s['correct_rate'])} "
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

    def __init__(self, pipeline: Pipeline, uploads_dir: str):
        self.pipeline = pipeline
        self.uploads_dir = Path(uploads_dir)

    def overview(self, days: int):
        figures = self.pipeline.analytics(min(max(int(days or 30), 1), 366))  # the slider's range, whatever is sent
        rows = figures["daily"]
        reasons = pd.DataFrame([{"date": r["date"], "reason": k, "handoffs": v}
                                for r in rows for k, v in r["handoff_reasons"].items()], columns=["date", "reason", "handoffs"])
        unanswered = pd.DataFrame(figures["top_unanswered"], columns=["question", "count", "outcomes"])
        if not unanswered.empty:
            unanswered["outcomes"] = unanswered["outcomes"].map(lambda d: ", ".join(f"{k} {v}" for k, v in d.items()))
        return (
            totals_markdown(figures["totals"]),
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

    def reindex(self, files, progress=gr.Progress(track_tqdm=True)):
        if not files:
            return "Choose one or more files first (Markdown, HTML, PDF, TXT, FAQ CSV, JSONL)."
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        saved = []
        for f in files:
            path = Path(f if isinstance(f, str) else f.name)
            if path.suffix.lower() not in SUPPORTED:
                return f"{path.name}: unsupported type; supported: {', '.join(sorted(SUPPORTED))}"
            shutil.copyfile(path, self.uploads_dir / path.name)
            path.unlink(missing_ok=True)  # Gradio's copy of the upload: the knowledge base keeps its own
            saved.append(path.name)
        progress(0.05, desc="reading documents")
        try:
            report = self.pipeline.reindex([str(self.uploads_dir)], progress=lambda m: progress(0.2, desc=m))
        except ChatbotError as exc:
            return f"Not indexed: {exc}"
        return (f"Indexed {', '.join(saved)}. The knowledge base now has {report.documents} documents "
                f"({report.added} added, {report.updated} updated, {report.unchanged} unchanged, {report.removed} removed).")


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
        who = "Customer" if m.role == "customer" else "Assistant"
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


def build_operator(pipeline: Pipeline, uploads_dir: str, delete_cache: tuple[int, int] | None = None) -> gr.Blocks:
    """The panel's layout and wiring; every figure comes from the engine's verbs.
    `delete_cache`: (every, older than) seconds, Gradio's clean-up of the panel's temporary files."""
    on = _Handlers(pipeline, uploads_dir)
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
            status = gr.Markdown()

        outputs = [totals, conv_plot, rates_plot, reasons_plot, latency_plot, cost_plot, savings_plot, unanswered]
        refresh.click(on.overview, [days], outputs, api_visibility="private")
        panel.load(on.overview, [days], outputs, api_visibility="private")
        panel.load(on.conversations_table, None, [table, chosen], api_visibility="private")
        reload.click(on.conversations_table, None, [table, chosen], api_visibility="private")
        chosen.change(on.open_conversation, [chosen], [transcript, stage_costs], api_visibility="private")
        go.click(on.reindex, [uploads], [status], api_visibility="private")
    return panel
