"""The customer chat page (Gradio): one multimodal box, streamed replies, sources, feedback, handoff.

A thin adapter over `Pipeline`: it turns Gradio values into `prepare()`/`stream()` calls and
replies into chat messages. The conversation id lives in the browser (BrowserState), so a page
reload shows the conversation again from the store. The LLM's draft streams in, marked as a draft,
and is replaced by the checked answer: what stays on screen is only what passed grounding.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

import gradio as gr

from core.errors import ChatbotError
from chatbot.pipeline import Pipeline, Reply

HANDOFF_NOTICE = ("**A member of our team will take over this conversation** and reply here. "
                  "You can keep writing in the meantime.")
CSS = """
#handoff-notice {background:#fff4e5;border:1px solid #f0b35b;border-radius:8px;padding:6px 12px}
.gradio-container {max-width: 860px !important; margin: auto}
"""


def sources_markdown(sources) -> str:
    links = [f"[{s.title}]({s.url})" if s.url else s.title for s in sources]
    return f"\n\n<sub>Sources: {' · '.join(links)}</sub>" if links else ""


def reply_markdown(reply: Reply) -> str:
    return reply.answer + sources_markdown(reply.sources)


def _kind(path: str) -> str:
    mime = mimetypes.guess_type(path)[0] or ""
    suffix = Path(path).suffix.lower()
    if mime.startswith("audio") or suffix in (".webm", ".ogg", ".opus", ".m4a", ".wav", ".mp3", ".flac"):
        return "audio"
    if mime.startswith("image"):
        return "image"
    return "other"


def build_chat(pipeline: Pipeline, company: str, voice_out=None) -> gr.Blocks:
    """`voice_out` (a PiperVoiceOut) adds a 'read replies aloud' switch; None leaves it out."""
    def restore(session: dict | None):
        """Rebuild the chat from the store after a reload."""
        conversation_id = (session or {}).get("conversation_id")
        if not conversation_id:
            return [], [], gr.update(visible=False)
        try:
            conversation = pipeline.store.conversation(conversation_id)
        except ChatbotError:
            return [], [], gr.update(visible=False)
        history, ids = [], []
        for m in conversation.messages:
            if m.role == "customer":
                history.append({"role": "user", "content": m.content})
            else:
                history.append({"role": "assistant", "content": m.content + sources_markdown(m.sources)})
            ids.append(m.id)
        return history, ids, gr.update(visible=conversation.handoff_needed, value=HANDOFF_NOTICE)

    def respond(message: dict, history: list, session: dict | None, ids: list):
        session = dict(session or {})
        history = list(history or [])
        ids = list(ids or [])
        text = (message or {}).get("text") or ""
        files = [f if isinstance(f, str) else f.get("path") for f in (message or {}).get("files") or []]
        audio = next((f for f in files if _kind(f) == "audio"), None)
        image = next((f for f in files if _kind(f) == "image"), None)
        if image:
            history.append({"role": "user", "content": {"path": image}})
            ids.append(None)
        try:
            if any(_kind(f) == "other" for f in files):
                raise ChatbotError("I can read screenshots (PNG, JPEG) and voice messages; that file is neither")
            turn = pipeline.prepare(text, audio=Path(audio).read_bytes() if audio else None,
                                    image=Path(image).read_bytes() if image else None)
        except ChatbotError as exc:
            if text:
                history.append({"role": "user", "content": text})
                ids.append(None)
            history.append({"role": "assistant", "content": f"\u26a0\ufe0f {exc}"})
            ids.append(None)
            yield history, None, session, ids, gr.update()
            return
        shown = f"(voice message) {turn.question}" if audio else turn.question
        history.append({"role": "user", "content": shown})
        ids.append(None)
        history.append({"role": "assistant", "content": "\u2026"})
        ids.append(None)
        yield history, None, session, ids, gr.update()
        draft = ""
        try:
            for event in pipeline.stream(turn, session.get("conversation_id"), channel="web"):
                if isinstance(event, Reply):
                    session["conversation_id"] = event.conversation_id
                    ids[-2] = None
                    ids[-1] = event.message_id
                    history[-1] = {"role": "assistant", "content": reply_markdown(event)}
                    notice = gr.update(visible=True, value=HANDOFF_NOTICE) if event.handoff.needed else gr.update()
                    yield history, None, session, ids, notice
                else:
                    draft += event
                    history[-1] = {"role": "assistant", "content": f"<span style='opacity:.55'>{draft}</span>\n\n"
                                                                   "<sub>checking against our help centre\u2026</sub>"}
                    yield history, None, session, ids, gr.update()
        except ChatbotError as exc:
            history[-1] = {"role": "assistant", "content": f"\u26a0\ufe0f {exc}"}
            yield history, None, session, ids, gr.update()

    def on_like(data: gr.LikeData, session: dict | None, ids: list):
        index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        conversation_id = (session or {}).get("conversation_id")
        if conversation_id is None or index is None or index >= len(ids or []) or ids[index] is None:
            return
        liked = data.liked if isinstance(data.liked, bool) else str(data.liked).lower() in ("like", "true")
        pipeline.store.add_feedback(conversation_id, ids[index], 1 if liked else -1)

    def hand_over(history: list, session: dict | None, ids: list):
        session = dict(session or {})
        reply = pipeline.ask("I'd like to talk to a person, please.", session.get("conversation_id"), channel="web")
        session["conversation_id"] = reply.conversation_id
        history = list(history or []) + [{"role": "user", "content": "Talk to a person"},
                                         {"role": "assistant", "content": reply.answer}]
        ids = list(ids or []) + [None, reply.message_id]
        return history, session, ids, gr.update(visible=True, value=HANDOFF_NOTICE)

    def new_conversation():
        return [], {"conversation_id": None}, [], gr.update(visible=False)

    def read_aloud(enabled: bool, history: list):
        if not enabled or voice_out is None or not history or history[-1].get("role") != "assistant":
            return None
        content = history[-1]["content"]
        if isinstance(content, list):  # Gradio 6 may hand back [{"type": "text", "text": ...}]
            content = " ".join(part.get("text", "") for part in content if isinstance(part, dict))
        text = content.split("\n\n<sub>")[0] if isinstance(content, str) else ""
        return (voice_out.speak(text), "wav") if text else None

    with gr.Blocks(title=f"{company} help", fill_height=True) as demo:
        session = gr.BrowserState({"conversation_id": None}, storage_key="chatbot-session")
        ids = gr.State([])  # the store's message id for each chat row (None for customer rows)
        gr.Markdown(f"### {company} \u00b7 customer help\nAsk by typing, record a voice message, or attach a screenshot.")
        notice = gr.Markdown(HANDOFF_NOTICE, visible=False, elem_id="handoff-notice")
        chat = gr.Chatbot(label="Conversation", elem_id="chat", height=460, feedback_options=("Like", "Dislike"),
                          placeholder="How can we help today?")
        box = gr.MultimodalTextbox(sources=["upload", "microphone"], file_types=["image", "audio"], file_count="multiple",
                                   placeholder="Type your question\u2026", show_label=False, elem_id="ask-box")
        with gr.Row():
            person = gr.Button("Talk to a person", elem_id="talk-to-person", size="sm", variant="secondary")
            fresh = gr.Button("New conversation", size="sm", variant="secondary")

        submitted = box.submit(respond, [box, chat, session, ids], [chat, box, session, ids, notice],
                               api_visibility="private")
        if voice_out is not None:
            with gr.Row():
                aloud = gr.Checkbox(False, label="Read replies aloud", elem_id="read-aloud")
                player = gr.Audio(autoplay=True, visible=True, show_label=False, interactive=False)

            def play(enabled, history):
                audio = read_aloud(enabled, history)
                if audio is None:
                    return None
                import tempfile

                with tempfile.NamedTemporaryFile(suffix=".wav", delete=False) as f:
                    f.write(audio[0])
                return f.name

            submitted.then(play, [aloud, chat], [player], api_visibility="private")
        chat.like(on_like, [session, ids], None)
        person.click(hand_over, [chat, session, ids], [chat, session, ids, notice], api_visibility="private")
        fresh.click(new_conversation, None, [chat, session, ids, notice], api_visibility="private")
        demo.load(restore, [session], [chat, ids, notice], api_visibility="private")

        def ask(message: str, conversation_id: str = "") -> dict:
            """Answer a text question; the same JSON as `chatbot ask --json`."""
            try:
                return pipeline.ask(message, conversation_id or None, channel="web").to_json()
            except ChatbotError as exc:
                raise gr.Error(str(exc)) from None

        gr.api(ask, api_name="ask")
    return demo
