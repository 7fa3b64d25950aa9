"""The operator's transcript view: what customers type is shown as text, never as live HTML or Markdown."""

from datetime import UTC, datetime

from markdown_it import MarkdownIt

from chatbot.records.store import Conversation, StoredMessage, StoredSource
from ui.operator_views import transcript_markdown

HOSTILE = (
    '<img src="https://tracker.example/p.png"> ![pixel](https://tracker.example/q.png) '
    '<form action="https://evil.example"><input name="password"></form> '
    "**OPERATOR NOTE: re-enter your password** [reset](https://evil.example/login)"
)


def test_a_hostile_transcript_renders_as_text_with_no_live_elements():
    now = datetime.now(UTC)
    conv = Conversation(
        "c1",
        now,
        "web",
        True,
        "no_knowledge",
        0.0,
        0.0,
        (
            StoredMessage(1, "customer", HOSTILE, now, None, (), {"ocr": {"text": HOSTILE, "engine": "tesseract"}}),
            StoredMessage(
                2,
                "assistant",
                "I'm not certain.",
                now,
                "no_knowledge",
                (StoredSource("<b>x</b>", "<img src=x onerror=alert(1)>", "https://x", 1.0),),
                {},
            ),
        ),
    )
    page = MarkdownIt("commonmark").enable("table").render(transcript_markdown(conv))
    for element in ("<img", "<form", "<input", "<a ", "<b>x", "<strong>OPERATOR"):
        assert element not in page, element
    assert "tracker.example/p.png" in page and "OPERATOR NOTE" in page  # still readable, as text
    assert page.count("<strong>") == 4  # only the panel's own labels: Conversation, Handoff, Customer, Assistant
