"""What the operator panel shows, as Markdown: totals, eval scores, packets, transcripts, people's cost.

Everything a customer, a person or a help-centre file controls goes through `shown`: no HTML,
images, links or emphasis, and no bidirectional or zero-width controls (so "gnp.exe" cannot pose
as "exe.png"). Knows nothing about Gradio or who is signed in.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from core.text import visible


def _money(x) -> str:
    return "-" if x is None else f"${x:,.6f}" if abs(x) < 0.01 else f"${x:,.2f}"


def _pct(x) -> str:
    return "-" if x is None else f"{x:.0%}"


def eval_lines(report: dict) -> list[str]:
    """The serving model and its latest `chatbot eval` scores, per split."""
    lines = [f"Serving model: `{report.get('serving_model') or '-'}`"]
    if report.get("eval"):
        lines += [
            "",
            "| eval split | questions | resolution | correct | wrong | out of scope refused | run at |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {split}{' (in-sample)' if s.get('in_sample') else ''} | {s['questions']} "
            f"| {_pct(s['resolution_rate'])} | {_pct(s['correct_rate'])} "
            f"| {_pct(s['wrong_rate'])} | {_pct(s['out_of_scope_refused'])} | {s['at'][:16]} |"
            for split, s in report["eval"].items()
        ]
    else:
        lines.append("No `chatbot eval` run recorded for it yet.")
    return lines


def resolution_line(r: dict) -> str:
    """Conversations by how they ended, as the market counts resolutions (`chatbot.reporting.resolution`)."""
    return (
        f"Resolved: **{r['confirmed']} confirmed** by the customer, **{r['assumed']} assumed** (no word for "
        f"{r['window_h']:g} h after the answer); {r['handed_over']} handed over to a person, {r['unresolved']} "
        f"unresolved, {r['pending']} still within the window."
    )


def suggestions_line(s: dict) -> str:
    """Suggestions offered and what customers said, and the sections they declined most."""
    if not s["offered"]:
        return "No suggestions offered yet."
    worst = ", ".join(f"{shown(d['title'])} ({d['declined']})" for d in s["most_declined"]) or "none"
    return (
        f"Suggestions: {s['offered']} offered, {_pct(s['confirmed_share'])} confirmed, "
        f"{_pct(s['declined_share'])} declined. Most declined: {worst}."
    )


def totals_markdown(report: dict) -> str:
    latency = report["latency_s"]
    return "\n".join(
        [
            "| conversations | resolution rate | handoff rate | CSAT | latency p50 / p95 | tokens |",
            "|---|---|---|---|---|---|",
            f"| {report['conversations']} | {_pct(report['resolution']['rate'])} "
            f"| {_pct(report['handoff_rate'])} | {_pct(report['csat'])} "
            f"| {latency['p50'] or 0:.2f} s / {latency['p95'] or 0:.2f} s "
            f"| {report['tokens']['prompt'] + report['tokens']['completion']:,} |",
            "",
            "| cost per conversation | on "
            + report["api_model"]
            + " | with a human agent | total saved vs API | total saved vs humans |",
            "|---|---|---|---|---|",
            f"| {_money(report['cost_per_conversation_usd'])} | {_money(report['api_shadow_cost_per_conversation_usd'])} "
            f"| {_money(report['human_agent_cost_per_conversation_usd'])} | {_money(report['savings_vs_api_usd'])} "
            f"| {_money(report['savings_vs_human_usd'])} |",
            "",
            resolution_line(report["resolution"]),
            "",
            suggestions_line(report["suggestions"]),
            "",
            f"Handoffs by reason: {', '.join(f'{k} {v}' for k, v in report['handoff_reasons'].items()) or 'none'}",
            "",
            *eval_lines(report),
        ]
    )


def ingest_markdown(report, names: list[str]) -> str:
    """A re-index's result for the panel: what was indexed, then each file or row left out and why."""
    lines = [
        f"Uploaded {shown(', '.join(names))}. The knowledge base now has {report.documents} documents "
        f"({report.added} added, {report.updated} updated, {report.unchanged} unchanged, {report.removed} removed)."
    ]
    if report.skipped:
        lines.append(f"**Left out ({len(report.skipped)})**: fix and upload again, or delete them below.")
        lines += [
            f"- {shown(Path(s.source).name)}{f' line {s.line}' if s.line else ''}: {shown(s.reason)}"
            for s in report.skipped
        ]
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return (
        f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
        if seconds >= 3600
        else f"{seconds // 60}m {seconds % 60:02d}s"
        if seconds >= 60
        else f"{seconds}s"
    )


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
    lines = [
        f"**State:** {state}"
        + (f" \u00b7 with **{shown(entry.agent)}**" if entry.agent else "")
        + f" \u00b7 waiting {_duration(entry.waiting_s)} \u00b7 reason `{entry.reason}`",
        "",
        f"**Why the assistant handed over:** {shown(p.why)}",
        "",
        *(
            [
                f"**Summary (written by the model; the questions below are the evidence):** {shown(entry.assist.summary)}",
                "",
            ]
            if getattr(entry, "assist", None)
            else []
        ),
        "**Customer's questions:**",
        "",
    ]
    lines += [f"{i}. {shown(q)}" for i, q in enumerate(p.questions, start=1)]
    lines += [
        "",
        "**Sources the assistant found:** "
        + (" \u00b7 ".join(f"{shown(s.title)} \\[{shown(s.doc_id)}\\]" for s in p.sources) or "none"),
    ]
    if p.draft:
        lines += ["", f"**Rejected draft:** {shown(p.draft)}"]
    if p.checked:
        lines.append(f"<sub>check: {', '.join(f'{k} {v}' for k, v in p.checked.items())}</sub>")
    if p.action:
        values = ", ".join(f"{shown(k)} {shown(str(v))}" for k, v in (p.action.get("params") or {}).items())
        lines += ["", f"**Action:** {shown(str(p.action.get('name')))} ({values or 'no values'})"]
    return "\n".join(lines)


def human_markdown(h: dict) -> str:
    """People's measured time and cost, and savings against people on measured figures."""
    basis = (
        ("measured: handling time \u00d7 " + _money(h["usd_per_hour"]) + "/hour")
        if h["basis"] == "measured"
        else f"flat {_money(h['flat_usd_per_conversation'])} per conversation (nothing measured yet)"
    )
    mean = _duration(h["mean_handling_s"]) if h["mean_handling_s"] is not None else "-"
    return "\n".join(
        [
            "| handoffs resolved by people | open now | mean handling time | people's cost | per handled conversation "
            "| saved vs people only |",
            "|---|---|---|---|---|---|",
            f"| {h['handled']} | {h['open']} | {mean} | {_money(h['human_cost_usd'])} "
            f"| {_money(h['human_cost_per_handled_usd'])} | {_money(h['savings_vs_human_usd'])} |",
            "",
            f"<sub>People's cost basis: {basis}.</sub>",
        ]
    )


def copilot_markdown(c: dict) -> str:
    """What people did with the copilot's drafts, and their handling time with and without one."""

    def share(key: str) -> str:
        return "-" if c[key] is None else f"{c[key]:.0%}"

    def seconds(key: str) -> str:
        return "-" if c[key] is None else _duration(c[key])

    return "\n".join(
        [
            "| replies offered a draft | sent unchanged | edited | discarded | median edit (chars) "
            "| handling p50 with a draft | without |",
            "|---|---|---|---|---|---|---|",
            f"| {c['replies_with_draft']} | {share('unchanged_share')} | {share('edited_share')} "
            f"| {share('discarded_share')} | {c['median_edit_distance'] if c['median_edit_distance'] is not None else '-'} "
            f"| {seconds('handling_s_p50_with_draft')} | {seconds('handling_s_p50_without_draft')} |",
        ]
    )


def ownership_markdown(b: dict) -> str:
    """The whole bill of the period and what the same resolutions cost elsewhere."""

    def usd(value) -> str:
        return "-" if value is None else _money(value)

    levers = b["levers"]["evidence_first"]
    return "\n".join(
        [
            f"**The bill of the last {_duration(b['period_days'] * 86400)}** ({b['server_hours']:.1f} server hours, "
            f"{b['work_runs']} runs of model work, {b['stored_gb']:.2f} GB stored):",
            "",
            "| serving | model work | storage | people | data | total | per resolved |",
            "|---|---|---|---|---|---|---|",
            f"| {usd(b['serving_usd'])} | {usd(b['model_work_usd'])} | {usd(b['storage_usd'])} | {usd(b['people_usd'])} "
            f"| {usd(b['data_usd'])} | {usd(b['total_usd'])} | {usd(b['per_resolved_usd'])} |",
            "",
            f"The same {b['resolved']} resolved conversations: {usd(b['vendor_per_resolved_usd'])} each at the vendor's "
            f"price, {usd(b['api_per_resolved_usd'])} on the API model, {usd(b['human_per_resolved_usd'])} by people "
            f"alone.",
            "",
            f"<sub>Evidence first: {levers['quoted_turns']} replies quoted the help centre with no generation"
            + (
                f", about {levers['llm_s_avoided']:.0f} s of LLM time avoided."
                if levers["llm_s_avoided"] is not None
                else "."
            )
            + "</sub>",
        ]
    )


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~<])")


def shown(text: str) -> str:
    """Customer-controlled text made inert for Markdown: no HTML, no images, links or emphasis, and no
    bidirectional or zero-width controls."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(visible(str(text)), quote=False)).replace("\n", " ")


def transcript_markdown(conv) -> str:
    """A stored conversation as Markdown for operators: who said what, outcomes, sources.
    Everything a customer or a help-centre file controls is passed through `shown`."""
    lines = [
        f"**Conversation** `{conv.id}` · {conv.channel} · started {conv.created_at:%Y-%m-%d %H:%M}",
        f"**Handoff:** {conv.handoff_reason or 'no'}",
        "",
    ]
    for m in conv.messages:
        who = {"customer": "Customer", "agent": f"Agent {shown(m.author or '')}", "notice": "Notice"}.get(
            m.role, "Assistant"
        )
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
            lines.append(
                "<sub>sources: " + " · ".join(f"{shown(s.title)} \\[{shown(s.doc_id)}\\]" for s in m.sources) + "</sub>"
            )
        lines.append("")
    return "\n\n".join(lines)
