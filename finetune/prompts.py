"""Exchanges to serve-time prompts: the gold reply among distractor sources, numbered and shuffled.

Training, distillation and evaluation all build their prompts here, with `chatbot.answer.prompt.build_messages`
(the format the assistant is served with), so a fine-tuned model sees at training time what it
sees in production. An exchange's sources are its own reply (as the passage that answers) plus one
to three replies of other intents, in a shuffled order; the choice depends only on the seed and the
exchange, so an evaluation is repeatable and independent of file order.

This module knows nothing about tokenizers or models.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from chatbot.answer.llm import Message
from chatbot.answer.prompt import build_messages
from finetune.data import Exchange
from knowledge.types import Chunk, Passage

MAX_DISTRACTORS = 3


def topic_title(intent: str) -> str:
    """`cancel_order` -> "Cancel order": the heading a source shows, like an article title."""
    words = intent.replace("_", " ").replace("-", " ").strip()
    return words[:1].upper() + words[1:] if words and intent != "unknown" else "Support reply"


def reply_passage(exchange: Exchange, chunk_id: int) -> Passage:
    chunk = Chunk(
        chunk_id=chunk_id,
        doc_id=f"log-{exchange.intent}-{chunk_id}",
        title=topic_title(exchange.intent),
        url="",
        headings=(),
        text=exchange.reply,
    )
    return Passage(chunk=chunk, score=0.0, dense_cosine=0.0, lexical_score=0.0)


class SourcePool:
    """Replies to draw distractor sources from, grouped by intent."""

    def __init__(self, exchanges: Sequence[Exchange]):
        self.by_intent: dict[str, list[Exchange]] = {}
        for exchange in exchanges:
            self.by_intent.setdefault(exchange.intent, []).append(exchange)
        self.intents = sorted(self.by_intent)

    def sources(self, exchange: Exchange, seed: int, max_distractors: int = MAX_DISTRACTORS) -> list[Passage]:
        """The gold reply plus 1..max_distractors replies of other intents, shuffled."""
        rng = random.Random(f"{seed}\0{exchange.question}\0{exchange.reply}")
        others = [i for i in self.intents if i != exchange.intent]
        count = min(len(others), rng.randint(1, max_distractors)) if max_distractors > 0 else 0
        chosen = [exchange] + [rng.choice(self.by_intent[i]) for i in rng.sample(others, count)]
        rng.shuffle(chosen)
        return [reply_passage(e, n) for n, e in enumerate(chosen)]


def exchange_messages(
    exchange: Exchange,
    pool: SourcePool,
    company: str,
    seed: int,
    source_sentences: int = 4,
    max_distractors: int = MAX_DISTRACTORS,
) -> list[Message]:
    """The system and user messages the assistant would be served for this exchange's question."""
    return build_messages(exchange.question, pool.sources(exchange, seed, max_distractors), company, source_sentences)
