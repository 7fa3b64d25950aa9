"""The prompt: numbered sources and the question, shaped for a small instruct model.

A 135M model follows a short user turn that holds the sources far better than a long system
prompt, so each source is cut to its few sentences most relevant to the question. The same
format is what fine-tuning trains on (`finetune/`), so keep the two in step.
"""

from __future__ import annotations

from collections.abc import Sequence

from chatbot.answer.llm import Message
from knowledge.lexical import tokenize
from knowledge.types import Passage

SYSTEM = (
    "You are the customer support assistant of {company}. Answer in one to three short sentences, "
    "using only facts from the numbered sources. If the sources do not answer the question, say you don't know."
)


def relevant_sentences(question: str, sentences: Sequence[str], limit: int) -> list[str]:
    """Up to `limit` of `sentences` (a chunk's, split at ingest) sharing the most words with `question`, in order."""
    sentences = list(sentences)
    if len(sentences) <= limit:
        return sentences
    wanted = set(tokenize(question))
    scored = [(len(wanted & set(tokenize(s))), -i) for i, s in enumerate(sentences)]
    keep = sorted(range(len(sentences)), key=lambda i: scored[i], reverse=True)[:limit]
    return [sentences[i] for i in sorted(keep)]


def format_sources(question: str, passages: Sequence[Passage], source_sentences: int) -> str:
    blocks = []
    for number, passage in enumerate(passages, start=1):
        chunk = passage.chunk
        heading = " > ".join((chunk.title, *chunk.headings))
        body = " ".join(relevant_sentences(question, passage.sentences, source_sentences))
        blocks.append(f"[{number}] {heading}: {body}")
    return "\n".join(blocks)


def build_messages(
    question: str, passages: Sequence[Passage], company: str, source_sentences: int = 4, image_text: str = ""
) -> list[Message]:
    """`image_text` is text read from the customer's screenshot, shown under the question."""
    sources = format_sources(f"{question} {image_text}".strip(), passages, source_sentences)
    screenshot = f"\nText in the customer's screenshot: {image_text[:600]}" if image_text else ""
    return [
        Message("system", SYSTEM.format(company=company)),
        Message("user", f"Sources:\n{sources}\n\nQuestion: {question}{screenshot}"),
    ]
