"""The customer chat page (Gradio): one multimodal box, streamed replies, sources, feedback, handoff.

A thin adapter over the engine's door: it turns Gradio values into a `Turn`, renders the events
`Pipeline.turn()` yields, and calls the engine's verbs for feedback and "Talk to a person". The
conversation id lives in the browser (BrowserState), so a page reload shows the conversation again
from the store. The LLM's draft streams in, marked as a draft, and is replaced by the checked answer:
what stays on screen is only what passed grounding. Knows nothing about how answers are decided.
"""

from __future__ import annotations

import mimetypes
import tempfile
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from chatbot.outputs.voice_out import VoiceOut
from chatbot.handoff import WITH_AGENT
from chatbot.handoff import HandoffState
from chatbot.pipeline import Draft, Pipeline, Reply, Turn
from chatbot.records.outcomes import Outcome
from core.errors import BadInput, ChatbotError
from ui.guard import RateLimiter, client_key

HANDOFF_NOTICE = (
    "**A member of our team will take over this conversation** and reply here. You can keep writing in the meantime."
)
CSS = """
#handoff-notice {background:#fff4e5;border:1px solid #f0b35b;border-radius:8px;padding:6px 12px}
.gradio-container {max-width: 860px !important; margin: auto}
"""
CONFIRM_TEXT = "Yes, that answered it"  # what the suggestion's Yes button says for the customer
AUDIO_SUFFIXES = (".webm", ".ogg", ".opus", ".m4a", ".wav", ".mp3", ".flac")


def sources_markdown(sources) -> str:
    links = [f"[{s.title}]({s.url})" if s.url else s.title for s in sources]
    return f"\n\n<sub>Sources: {' · '.join(links)}</sub>" if links else ""


def reply_markdown(reply: Reply) -> str:
    return reply.answer + sources_markdown(reply.sources)


def chat_rows(conversation) -> list[dict]:
    """A stored conversation as chat rows: the customer's, the assistant's with sources, a person's under
    their name, and notices (who joined or left) in italics."""
    rows = []
    for m in conversation.messages:
        if m.role == "customer":
            rows.append({"role": "user", "content": m.content})
        elif m.role == "agent":
            name = m.extra.get("display_name") or m.author or "our team"
            rows.append({"role": "assistant", "content": f"**{name}** \u00b7 our team\n\n{m.content}"})
        elif m.role == "notice":
            rows.append({"role": "assistant", "content": f"<sub>\u2014 *{m.content}*</sub>"})
        else:
            rows.append({"role": "assistant", "content": m.content + sources_markdown(m.sources)})
    return rows


def notice_update(conversation, state: HandoffState):
    """The banner: waiting for a person, who is with the customer, or hidden once the assistant is back."""
    if state == HandoffState.AGENT:
        joined = [m for m in conversation.messages if m.role == "notice" and m.extra.get("event") == "joined"]
        name = (joined[-1].extra.get("display_name") or joined[-1].author) if joined else "A member of our team"
        return gr.update(visible=True, value=f"**{name}** from our team is with you now.")
    return gr.update(visible=state == HandoffState.WAITING, value=HANDOFF_NOTICE)


def _kind(path: str) -> str:
    mime = mimetypes.guess_type(path)[0] or ""
    if mime.startswith("audio") or Path(path).suffix.lower() in AUDIO_SUFFIXES:
        return "audio"
    return "image" if mime.startswith("image") else "other"


def _turn(message: dict | None, conversation_id: str | None, client: str = "") -> Turn:
    """A Gradio multimodal value as the engine's `Turn` (a voice message and/or a screenshot)."""
    files = [f if isinstance(f, str) else f.get("path") for f in (message or {}).get("files") or []]
    if any(_kind(f) == "other" for f in files):
        raise BadInput("I can read screenshots (PNG, JPEG) and voice messages; that file is neither")
    return Turn(
        (message or {}).get("text") or "",
        audio=next((f for f in files if _kind(f) == "audio"), None),
        image=next((f for f in files if _kind(f) == "image"), None),
        conversation_id=conversation_id,
        channel="web",
        client=client,  # failed verifications of actions are limited per client address
    )


class _Handlers:
    """The page's event handlers, bound to one engine (methods, so Gradio sees their type hints)."""

    def __init__(self, pipeline: Pipeline, voice_out: VoiceOut | None = None, limiter: RateLimiter | None = None):
        self.pipeline = pipeline
        self.voice_out = voice_out
        self.limiter = limiter or RateLimiter(30)  # shared with the REST API: one budget per client address

    def restore(self, session: dict | None):
        """Rebuild the chat from the store after a reload."""
        conversation_id = (session or {}).get("conversation_id")
        try:
            conversation = self.pipeline.conversation(conversation_id) if conversation_id else None
            state = self.pipeline.handoff_state(conversation_id) if conversation_id else HandoffState.BOT
        except ChatbotError:
            conversation = None
        if conversation is None:
            return [], [], gr.update(visible=False)
        return chat_rows(conversation), [m.id for m in conversation.messages], notice_update(conversation, state)

    def poll(self, session: dict | None, ids: list):
        """A timer's tick: when a person wrote, joined or left since the chat was drawn, draw it again from
        the store (no reload); otherwise change nothing."""
        conversation_id = (session or {}).get("conversation_id")
        if not conversation_id:
            return gr.skip(), gr.skip(), gr.skip()
        try:
            conversation = self.pipeline.conversation(conversation_id)
            shown = {i for i in ids or [] if i is not None}
            if all(m.id in shown for m in conversation.messages if m.role in ("agent", "notice")):
                return gr.skip(), gr.skip(), gr.skip()
            state = self.pipeline.handoff_state(conversation_id)
        except ChatbotError:
            return gr.skip(), gr.skip(), gr.skip()
        return chat_rows(conversation), [m.id for m in conversation.messages], notice_update(conversation, state)

    def respond(self, message: dict, history: list, session: dict | None, ids: list, request: gr.Request):
        """Run one turn through the engine and render its events: the message, the draft, the reply."""
        session, history, ids = dict(session or {}), list(history or []), list(ids or [])
        text = (message or {}).get("text") or ""
        try:
            client = client_key(request)
            self.limiter.hit(client)
            turn = _turn(message, session.get("conversation_id"), client)
            events = self.pipeline.turn(turn)
            received = next(events)  # a voice message is transcribed, a screenshot read, the message stored
        except ChatbotError as exc:
            history += ([{"role": "user", "content": text}] if text else []) + [
                {"role": "assistant", "content": f"\u26a0\ufe0f {exc}"}
            ]
            ids += [None] * (len(history) - len(ids))
            yield history, None, session, ids, gr.update(), "", gr.update()
            return
        session["conversation_id"] = received.conversation_id
        if received.image:
            history.append({"role": "user", "content": {"path": turn.image}})
        history.append(
            {"role": "user", "content": f"(voice message) {received.question}" if received.voice else received.question}
        )
        history.append({"role": "assistant", "content": "\u2026"})
        ids += [None] * (len(history) - len(ids))
        yield history, None, session, ids, gr.update(), "", gr.update(visible=False)
        draft = ""
        try:
            for event in events:
                if isinstance(event, Draft):
                    draft += event.text
                    history[-1] = {
                        "role": "assistant",
                        "content": f"<span style='opacity:.55'>{draft}</span>\n\n"
                        "<sub>checking against our help centre\u2026</sub>",
                    }
                    yield history, None, session, ids, gr.update(), "", gr.update()
                elif isinstance(event, Reply) and event.outcome == WITH_AGENT:
                    history.pop()  # a person has the conversation: the assistant says nothing
                    ids.pop()
                    ids[-1] = event.message_id  # the customer's row: the poll knows it is drawn
                    yield history, None, session, ids, gr.update(), "", gr.update()
                elif isinstance(event, Reply):
                    ids[-1] = event.message_id
                    history[-1] = {"role": "assistant", "content": reply_markdown(event)}
                    notice = gr.update(visible=True, value=HANDOFF_NOTICE) if event.handoff.needed else gr.update()
                    suggestion = gr.update(visible=event.outcome == Outcome.SUGGESTED)  # "Did this answer it?"
                    yield history, None, session, ids, notice, event.answer, suggestion
        except ChatbotError as exc:
            history[-1] = {"role": "assistant", "content": f"\u26a0\ufe0f {exc}"}
            yield history, None, session, ids, gr.update(), "", gr.update()

    def on_like(self, data: gr.LikeData, session: dict | None, ids: list, request: gr.Request):
        index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        conversation_id = (session or {}).get("conversation_id")
        if (
            conversation_id is None
            or not isinstance(index, int)
            or not 0 <= index < len(ids or [])
            or ids[index] is None
        ):
            return
        liked = data.liked if isinstance(data.liked, bool) else str(data.liked).lower() in ("like", "true")
        try:
            self.limiter.hit(client_key(request), "ratings")
            self.pipeline.feedback(conversation_id, ids[index], 1 if liked else -1)
        except ChatbotError as exc:
            raise gr.Error(str(exc)) from None

    def confirm(self, history: list, session: dict | None, ids: list, request: gr.Request):
        """The suggestion's "Yes" button: the customer's yes, as a message the engine reads as confirming."""
        yield from self.respond({"text": CONFIRM_TEXT}, history, session, ids, request)

    def decline(self, history: list, session: dict | None, ids: list, request: gr.Request):
        """The suggestion's "No, talk to a person" button: the handoff verb (read as declining it)."""
        return *self.hand_over(history, session, ids, request), gr.update(visible=False)

    def hand_over(self, history: list, session: dict | None, ids: list, request: gr.Request):
        """The "Talk to a person" button: the engine's handoff verb, no words to interpret."""
        session = dict(session or {})
        try:
            self.limiter.hit(client_key(request))
            reply = self.pipeline.request_handoff(session.get("conversation_id"), channel="web")
        except ChatbotError as exc:
            raise gr.Error(str(exc)) from None
        session["conversation_id"] = reply.conversation_id
        history = list(history or []) + [
            {"role": "user", "content": reply.question},
            {"role": "assistant", "content": reply.answer},
        ]
        ids = list(ids or []) + [None, reply.message_id]
        return history, session, ids, gr.update(visible=True, value=HANDOFF_NOTICE)

    def read_aloud(self, enabled: bool, answer: str) -> str | None:
        """The last checked answer as a WAV file for the player, when the customer asked for voice."""
        if not enabled or not answer:
            return None
        with tempfile.NamedTemporaryFile(suffix=".wav", delete=False) as f:
            f.write(self.voice_out.speak(answer))
        return f.name

    def ask(self, message: str, conversation_id: str = "", request: gr.Request = None) -> dict:
        """Answer a text question; the same JSON as `chatbot ask --json`."""
        try:
            client = client_key(request)
            self.limiter.hit(client)
            return self.pipeline.ask(
                Turn(message, conversation_id=conversation_id or None, channel="web", client=client)
            ).to_json()
        except ChatbotError as exc:
            raise gr.Error(str(exc)) from None


@dataclass(frozen=True)
class _Page:
    """The page's components that the events read and write."""

    session: gr.BrowserState
    ids: gr.State
    spoken: gr.State
    notice: gr.Markdown
    chat: gr.Chatbot
    box: gr.MultimodalTextbox
    person: gr.Button
    fresh: gr.Button
    suggestion: gr.Row  # "Did this answer your question?": Yes / No, talk to a person, after a suggestion
    yes: gr.Button
    no: gr.Button


def _layout(company: str) -> _Page:
    """Lay out the page in the open Blocks: the state, heading, handoff banner, chat, box and buttons."""
    session = gr.BrowserState({"conversation_id": None}, storage_key="chatbot-session")
    ids = gr.State([])  # the store's message id for each chat row (None for customer rows)
    spoken = gr.State("")  # the last checked answer, as plain text, for reading aloud
    gr.Markdown(f"### {company} \u00b7 customer help\nAsk by typing, record a voice message, or attach a screenshot.")
    notice = gr.Markdown(HANDOFF_NOTICE, visible=False, elem_id="handoff-notice")
    chat = gr.Chatbot(
        label="Conversation",
        elem_id="chat",
        height=460,
        feedback_options=("Like", "Dislike"),
        placeholder="How can we help today?",
    )
    box = gr.MultimodalTextbox(
        sources=["upload", "microphone"],
        file_types=["image", "audio"],
        file_count="multiple",
        placeholder="Type your question\u2026",
        show_label=False,
        elem_id="ask-box",
    )
    with gr.Row(visible=False, elem_id="suggestion-buttons") as suggestion:
        yes = gr.Button(CONFIRM_TEXT, elem_id="suggestion-yes", size="sm", variant="primary")
        no = gr.Button("No, talk to a person", elem_id="suggestion-no", size="sm", variant="secondary")
    with gr.Row():
        person = gr.Button("Talk to a person", elem_id="talk-to-person", size="sm", variant="secondary")
        fresh = gr.Button("New conversation", size="sm", variant="secondary")
    return _Page(session, ids, spoken, notice, chat, box, person, fresh, suggestion, yes, no)


def _wire_turns(on: _Handlers, page: _Page, voice_out: VoiceOut | None) -> None:
    """A submitted message runs one turn; with `voice_out`, a 'read replies aloud' switch and its player."""
    # no Gradio queue of one: customers' turns run side by side; the engine bounds the LLM's own queue
    # (a full one answers "busy, please try again") and batches concurrent replies
    submitted = page.box.submit(
        on.respond,
        [page.box, page.chat, page.session, page.ids],
        [page.chat, page.box, page.session, page.ids, page.notice, page.spoken, page.suggestion],
        api_visibility="private",
        concurrency_limit=None,
    )
    confirmed = page.yes.click(
        on.confirm,
        [page.chat, page.session, page.ids],
        [page.chat, page.box, page.session, page.ids, page.notice, page.spoken, page.suggestion],
        api_visibility="private",
    )
    if voice_out is not None:
        with gr.Row():
            aloud = gr.Checkbox(False, label="Read replies aloud", elem_id="read-aloud")
            player = gr.Audio(autoplay=True, visible=True, show_label=False, interactive=False)
        for event in (submitted, confirmed):
            event.then(on.read_aloud, [aloud, page.spoken], [player], api_visibility="private")


def _wire_conversation(on: _Handlers, page: _Page, demo: gr.Blocks, poll_s: float) -> None:
    """Ratings, the two buttons, the chat restored on load and, every `poll_s` (0: never), a person's messages."""
    chat, session, ids, notice = page.chat, page.session, page.ids, page.notice
    chat.like(on.on_like, [session, ids], None)
    page.person.click(on.hand_over, [chat, session, ids], [chat, session, ids, notice], api_visibility="private")
    page.no.click(
        on.decline, [chat, session, ids], [chat, session, ids, notice, page.suggestion], api_visibility="private"
    )
    page.fresh.click(
        lambda: ([], {"conversation_id": None}, [], gr.update(visible=False)),
        None,
        [chat, session, ids, notice],
        api_visibility="private",
    )
    demo.load(on.restore, [session], [chat, ids, notice], api_visibility="private")
    if poll_s > 0:  # a person's replies appear without a reload: the page asks the store every poll_s
        timer = gr.Timer(poll_s)
        timer.tick(
            on.poll,
            [session, ids],
            [chat, ids, notice],
            api_visibility="private",
            show_progress="hidden",
            concurrency_limit=8,
            queue=True,
        )


def build_chat(
    pipeline: Pipeline,
    company: str,
    voice_out: VoiceOut | None = None,
    limiter: RateLimiter | None = None,
    delete_cache: tuple[int, int] | None = None,
    poll_s: float = 2.0,
) -> gr.Blocks:
    """The page's layout and wiring; `voice_out` adds a 'read replies aloud' switch. `limiter` counts
    turns, handoffs and ratings per client address; `delete_cache`: (every, older than) seconds,
    Gradio's clean-up of uploaded recordings and screenshots; `poll_s`: how often an open chat looks for
    a person's messages (0: never)."""
    on = _Handlers(pipeline, voice_out, limiter)
    with gr.Blocks(title=f"{company} help", fill_height=True, delete_cache=delete_cache) as demo:
        page = _layout(company)
        _wire_turns(on, page, voice_out)
        _wire_conversation(on, page, demo, poll_s)
        gr.api(on.ask, api_name="ask")
    return demo
