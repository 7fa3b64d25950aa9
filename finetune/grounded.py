"""A help centre to grounded training chats: a question, the passages the engine really retrieves for
it (the answering one among the distractors retrieval returns), and a short reply that states the
answering source sentences and cites them [n].

Questions are read off the help centre's own structure (`knowledge.rerank.pseudo_questions`: article
titles, headings, FAQ questions), so this works for any help centre, and never uses an evaluation
question set. The answering chunk is the first one under that title or heading; when retrieval
misses it, it replaces the last retrieved passage, so the model also learns to find the answer in
any position. The reply is one or two of the sentences the prompt shows from that chunk (never a
meta sentence, a heading or a lead-in), at most `reply_words` words, then `[n]`. A share of the chats
(`decline_every`) has every passage of the answering article removed and teaches the model to say
the sources do not answer (the grounding check reads that as a decline and hands over).

This module knows nothing about tokenizers or training; the builder hands it a loaded index and
the searcher the assistant serves with.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from chatbot.answer.sentences import is_meta, no_claim
from chatbot.answer.prompt import build_messages, relevant_sentences
from finetune.train import Chat
from knowledge.lexical import tokenize
from knowledge.rerank import PseudoQuestion, pseudo_questions
from knowledge.types import Passage

DECLINE = "I don't know: the sources do not answer this."

Progress = Callable[[str], None]


@dataclass(frozen=True)
class GroundedOptions:
    """Every default lives in `core.config` ([finetune.improve], and the serving settings)."""

    company: str  # the company name in the system prompt, as served
    k: int  # passages in the prompt, as served ([retrieval] k)
    source_sentences: int  # sentences shown per source, as served ([generation] source_sentences)
    max_chats: int  # pseudo-questions used, at most
    seed: int
    reply_words: int  # a reply states the key facts in few words
    decline_every: int  # one chat in this many has no answering source and a declining reply; 0 = none


def reply_sentences(question: str, passage: Passage, source_sentences: int, max_words: int) -> list[str]:
    """The sentences of `passage` the prompt shows for `question` that state something (in order),
    one or two of them, within `max_words` (the first always, however long)."""
    shown = relevant_sentences(question, passage.sentences, source_sentences)
    usable = [
        s
        for s in shown
        if len(tokenize(s)) >= 3 and not is_meta(s) and not no_claim(s) and not s.lstrip().startswith(("#", "|"))
    ]
    chosen: list[str] = []
    for sentence in usable[:2]:
        if chosen and len(" ".join(chosen + [sentence]).split()) > max_words:
            break
        chosen.append(sentence.strip())
    return chosen


def _gold_first(question: PseudoQuestion, index) -> Passage:
    chunk = index.chunks[question.positives[0]]
    return Passage(chunk=chunk, score=0.0, dense_cosine=0.0, lexical_score=0.0)


def grounded_chat(
    question: PseudoQuestion, index, searcher, options: GroundedOptions, decline: bool = False
) -> Chat | None:
    """One chat for `question`, or None when its answering chunk has nothing quotable."""
    if decline:  # the same question with its whole article gone: the evidence cannot answer
        found = searcher.search(question.text, k=options.k + 4)
        passages = [p for p in found if p.doc_id != question.doc_id][: options.k]
        if not passages:
            return None
        return Chat(tuple(build_messages(question.text, passages, options.company, options.source_sentences)), DECLINE)
    passages = list(searcher.search(question.text, k=options.k))
    gold_ids = set(question.positives)
    position = next((i for i, p in enumerate(passages) if p.chunk.chunk_id in gold_ids), None)
    if position is None:
        passages = passages[: options.k - 1] + [_gold_first(question, index)]
        position = len(passages) - 1
    sentences = reply_sentences(question.text, passages[position], options.source_sentences, options.reply_words)
    if not sentences:
        return None
    reply = f"{' '.join(sentences)} [{position + 1}]"
    return Chat(tuple(build_messages(question.text, passages, options.company, options.source_sentences)), reply)


def grounded_chats(
    index, searcher, options: GroundedOptions, progress: Progress = lambda m: None
) -> tuple[list[Chat], dict]:
    """Chats from the titles and headings of the index's documents; returns them and counts."""
    questions = [
        q
        for q in pseudo_questions(
            index.chunks.values(), sentences_per_chunk=0, max_questions=options.max_chats, seed=options.seed
        )
        if q.kind in ("title", "heading")
    ]
    rng = random.Random(options.seed)
    chats: list[Chat] = []
    declines = skipped = 0
    for i, question in enumerate(questions):
        decline = options.decline_every > 0 and rng.randrange(options.decline_every) == 0
        chat = grounded_chat(question, index, searcher, options, decline)
        if chat is None:
            skipped += 1
            continue
        declines += decline
        chats.append(chat)
        if (i + 1) % 50 == 0:
            progress(f"grounded chats: {i + 1}/{len(questions)} questions")
    return chats, {
        "pseudo_questions": len(questions),
        "chats": len(chats),
        "declining": declines,
        "skipped_nothing_quotable": skipped,
    }


def split_chats(chats: Sequence[Chat], validation: int, seed: int) -> tuple[list[Chat], list[Chat]]:
    """(train, validation): `validation` chats chosen by the seed are held out for the loss report."""
    order = list(range(len(chats)))
    random.Random(seed).shuffle(order)
    held = set(order[:validation])
    return [c for i, c in enumerate(chats) if i not in held], [c for i, c in enumerate(chats) if i in held]
