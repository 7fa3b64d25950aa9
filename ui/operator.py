"""The operator panel (Gradio), mounted behind the operator password.

Overview (totals, per-day charts, people's measured cost; admins), the inbox (live handoff: claim,
reply, resolve, save the answer as a help-centre entry), help-centre answers (review, approve,
remove, history) and knowledge-gap topics, conversations (transcripts, sources, handoff reason,
feedback, cost by stage), top unanswered questions, and the knowledge base (upload documents and
re-index with progress; admins), and the actions run in the company's systems (runs, success, switch one
off; admins). Who sees what is `ui.access`'s rule, the REST API's too: an agent sees
the conversations waiting for a person and those they hold. Every figure comes from the engine's verbs (`Pipeline.analytics`,
`conversations`, `conversation_costs`, `reindex`); nothing is computed here beyond shaping tables
for display.
"""

from __future__ import annotations

import gradio as gr

from chatbot.pipeline import Pipeline
from ui.guard import Operators
from ui.operator_events import PanelEvents


def _review(on: PanelEvents, action: str):
    def review(doc_id: str | None, request: gr.Request):
        return on.review_faq(doc_id, action, request)

    return review


def _switch(on: PanelEvents, enabled: bool):
    def switch(name: str | None, request: gr.Request):
        return on.switch_action(name, enabled, request)

    return switch


PRIVATE = {"api_visibility": "private"}  # the panel's events are not part of the public API


def build_operator(
    pipeline: Pipeline,
    uploads_dir: str,
    delete_cache: tuple[int, int] | None = None,
    operators: Operators | None = None,
    inbox_poll_s: float = 5.0,
) -> gr.Blocks:
    """The panel's layout and wiring, a tab each; every figure comes from the engine's verbs.
    `delete_cache`: (every, older than) seconds, Gradio's clean-up of the panel's temporary files;
    `operators`: who is signed in and their role; `inbox_poll_s`: how often the inbox refreshes."""
    on = PanelEvents(pipeline, uploads_dir, operators)
    with gr.Blocks(title="Operator panel", delete_cache=delete_cache) as panel:
        gr.Markdown("## Operator panel")
        _overview_tab(on, panel)
        save_faq, faq_inputs, faq_status = _inbox_tab(on, panel, inbox_poll_s)
        faq_table, faq_pick = _answers_tab(on, panel)
        save_faq.click(on.save_faq, faq_inputs, [faq_status, faq_table, faq_pick], **PRIVATE)
        _gaps_tab(on, panel)
        _conversations_tab(on, panel)
        _knowledge_base_tab(on, panel)
        _actions_tab(on, panel)
        _ownership_tab(on, panel)
    return panel


def _overview_tab(on: PanelEvents, panel: gr.Blocks) -> None:
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
    outputs = [totals, conv_plot, rates_plot, reasons_plot, latency_plot, cost_plot, savings_plot, unanswered]
    refresh.click(on.overview, [days], outputs, **PRIVATE)
    panel.load(on.overview, [days], outputs, **PRIVATE)


def _inbox_tab(on: PanelEvents, panel: gr.Blocks, poll_s: float):
    """The live handoff; returns the help-centre entry's save button, its inputs and its status line."""
    with gr.Tab("Inbox", elem_id="inbox-tab"):
        gr.Markdown(
            "Conversations waiting for a person, oldest first. Claim one: the assistant goes silent, the reply "
            "box holds a draft written for you (send it, edit it or replace it) and your replies appear in the "
            "customer's open chat."
        )
        inbox = gr.Dataframe(interactive=False, elem_id="inbox")
        with gr.Row():
            picked = gr.Dropdown(
                label="Waiting conversation", choices=[], allow_custom_value=True, elem_id="inbox-pick"
            )
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
    queue_out = [inbox, picked]
    panel.load(on.inbox, None, queue_out, **PRIVATE)
    if poll_s > 0:
        gr.Timer(poll_s).tick(on.inbox, None, queue_out, show_progress="hidden", **PRIVATE)
    picked.change(on.show, [picked], [packet], **PRIVATE)
    # a claim fills the reply box with the copilot's draft: send it as it is, edit it, or replace it
    claim.click(on.claim, [picked], [inbox_status, packet, *queue_out, reply_box], **PRIVATE)
    claim_next.click(on.claim_next, None, [picked, inbox_status, packet, *queue_out, reply_box], **PRIVATE)
    for event in (send.click, reply_box.submit):
        event(on.send, [picked, reply_box], [inbox_status, packet, reply_box], **PRIVATE)
    resolve.click(
        on.resolve,
        [picked, back_to_bot],
        [inbox_status, packet, faq_question, faq_answer, faq_from, *queue_out],
        **PRIVATE,
    )
    return save_faq, [faq_question, faq_answer, faq_from], faq_status


def _answers_tab(on: PanelEvents, panel: gr.Blocks):
    """Help-centre answers under review; returns the entries' table and picker (a save refreshes them)."""
    with gr.Tab("Help-centre answers", elem_id="answers-tab"):
        gr.Markdown(
            "Answers people saved. An agent's waits for review before customers get it; one that held "
            "personal data waits until it is edited. Every save, edit, approval and removal is kept."
        )
        faq_table = gr.Dataframe(interactive=False, elem_id="faq-entries")
        with gr.Row():
            faq_pick = gr.Dropdown(label="Entry", choices=[], elem_id="faq-pick")
            approve = gr.Button("Approve", variant="primary", elem_id="faq-approve")
            remove = gr.Button("Remove", variant="stop", elem_id="faq-remove")
        review_status = gr.Markdown(elem_id="faq-review-status")
        faq_changes = gr.Dataframe(label="History", interactive=False, elem_id="faq-history")
    panel.load(on.faq_entries, None, [faq_table, faq_pick], **PRIVATE)
    faq_pick.change(on.faq_history, [faq_pick], [faq_changes], **PRIVATE)
    for button, action in ((approve, "approve"), (remove, "remove")):
        button.click(_review(on, action), [faq_pick], [review_status, faq_table, faq_pick, faq_changes], **PRIVATE)
    return faq_table, faq_pick


def _gaps_tab(on: PanelEvents, panel: gr.Blocks) -> None:
    with gr.Tab("Knowledge gaps", elem_id="gaps-tab"):
        gr.Markdown(
            "Unanswered and handed-over questions grouped into topics, largest first, with the "
            "help-centre entries saved for them and how many later questions each answered."
        )
        refresh_topics = gr.Button("Refresh topics", elem_id="refresh-topics")
        topics = gr.Dataframe(interactive=False, elem_id="topics")
    refresh_topics.click(on.topics, None, [topics], **PRIVATE)
    panel.load(on.topics, None, [topics], **PRIVATE)


def _conversations_tab(on: PanelEvents, panel: gr.Blocks) -> None:
    with gr.Tab("Conversations"):
        table = gr.Dataframe(interactive=False)
        with gr.Row():
            chosen = gr.Dropdown(label="Conversation", choices=[], allow_custom_value=True)
            reload = gr.Button("Reload list")
        transcript = gr.Markdown()
        stage_costs = gr.Dataframe(label="Cost by stage", interactive=False)
    panel.load(on.conversations_table, None, [table, chosen], **PRIVATE)
    reload.click(on.conversations_table, None, [table, chosen], **PRIVATE)
    chosen.change(on.open_conversation, [chosen], [transcript, stage_costs], **PRIVATE)


def _knowledge_base_tab(on: PanelEvents, panel: gr.Blocks) -> None:
    with gr.Tab("Knowledge base"):
        gr.Markdown("Upload help-centre documents; they are added to the index (changed ones re-embedded).")
        uploads = gr.File(file_count="multiple", label="Documents")
        go = gr.Button("Upload and re-index", variant="primary")
        status = gr.Markdown(elem_id="upload-status")
        uploaded = gr.Dataframe(label="Uploaded files", interactive=False, elem_id="uploaded-files")
        with gr.Row():
            to_delete = gr.Dropdown(label="Uploaded file", choices=[], elem_id="upload-pick")
            delete = gr.Button("Delete file and its documents", variant="stop", elem_id="delete-upload")
    go.click(on.reindex, [uploads], [status, uploaded, to_delete], **PRIVATE)
    panel.load(on.uploads_listing, None, [uploaded, to_delete], **PRIVATE)
    delete.click(on.delete_upload, [to_delete], [status, uploaded, to_delete], **PRIVATE)


def _actions_tab(on: PanelEvents, panel: gr.Blocks) -> None:
    with gr.Tab("Actions", elem_id="actions-tab"):
        gr.Markdown(
            "What customers asked the assistant to do in your systems (`[actions]` in the config): runs, "
            "success rate, share resolved and latency. An admin may switch an action off: such requests are "
            "then answered from the help centre or handed over."
        )
        table = gr.Dataframe(interactive=False, elem_id="actions")
        with gr.Row():
            pick = gr.Dropdown(label="Action", choices=[], elem_id="action-pick")
            off = gr.Button("Switch off", variant="stop", elem_id="action-off")
            back_on = gr.Button("Switch on", elem_id="action-on")
            refresh = gr.Button("Refresh")
        status = gr.Markdown(elem_id="action-status")
    panel.load(on.actions_table, None, [table, pick], **PRIVATE)
    refresh.click(on.actions_table, None, [table, pick], **PRIVATE)
    off.click(_switch(on, False), [pick], [status, table, pick], **PRIVATE)
    back_on.click(_switch(on, True), [pick], [status, table, pick], **PRIVATE)


def _ownership_tab(on: PanelEvents, panel: gr.Blocks) -> None:
    with gr.Tab("Cost of ownership", elem_id="ownership-tab"):
        gr.Markdown(
            "The whole bill from measured figures: the hours the server was up, model work, storage, people's "
            "time; per resolved conversation, beside the vendor's price, the API model and people alone."
        )
        with gr.Row():
            days = gr.Slider(1, 90, value=30, step=1, label="days")
            refresh = gr.Button("Refresh", variant="primary", elem_id="ownership-refresh")
        bill = gr.Markdown(elem_id="ownership-bill")
        with gr.Row():
            drivers = gr.BarPlot(x="date", y="usd", color="driver", title="The bill by driver per day (USD)")
            planner = gr.LinePlot(
                x="log10_conversations",
                y="usd_per_resolved",
                color="option",
                title="USD per resolved conversation at each monthly volume: the planner",
                x_title="conversations a month, log10 (2 = 100, 3 = 1,000, 5 = 100,000)",
                y_lim=[0, 3],  # people alone (~$6) is off the top
            )
    refresh.click(on.ownership_view, [days], [bill, drivers, planner], **PRIVATE)
    panel.load(on.ownership_view, [days], [bill, drivers, planner], **PRIVATE)
