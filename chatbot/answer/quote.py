"""Evidence windows: which run of source sentences could answer the question, and how well.

A window is a start sentence of a retrieved passage and the sentences right after it (the answer
often follows the sentence that restates the problem), up to `max_claims` sentences that say
something and `max_chars` characters, stopping at a sentence about the article ("Learn how to...").
Each window is described by `FEATURES`: its sentences' closeness to the question (the sentence
vectors stored at ingest, never embedded again here), the rank and scores retrieval gave its
passage, how many of the question's words it holds, and where it starts. `window_score` ranks
windows by a linear combination of those (weights chosen on the dev split, `WINDOW_WEIGHTS`), so a
quote comes from the passage retrieval trusts and carries the words the question asks about, not
merely from the single sentence closest to the question. Knows nothing about models or storage.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from chatbot.answer.sentences import is_meta, no_claim, quotable_start
from knowledge.lexical import tokenize
from knowledge.types import Passage

# the per-window description; the decision model (`chatbot.answer.decision`) reads it in this order
FEATURES = (
    "cos_start",  # cosine of the window's first sentence to the question
    "cos_max",  # the highest cosine of any of its sentences
    "cos_mean",  # mean cosine of its sentences
    "rank_inv",  # 1 / (1 + its passage's retrieval rank)
    "dense",  # its passage's dense cosine to the question
    "dense_gap",  # best passage dense cosine - this passage's
    "fused_rel",  # its passage's fused score / the best fused score
    "lexical_rel",  # its passage's BM25 score / the best BM25 score
    "cover_window",  # share of the question's content words found in the window
    "cover_passage",  # ... in its passage (title and headings included)
    "cover_title",  # ... in its passage's title and headings
    "first",  # 1 when it starts the passage
    "position",  # start sentence / sentences in the passage
    "number",  # 1 when it holds a number
    "top_dense",  # best passage dense cosine of the search (the same for every window of a turn)
    "top_margin",  # best - second best passage dense cosine
    "doc_share",  # share of the retrieved passages from this window's document
)
_NUMBER_WORD = re.compile(r"\d")
_LIST_NUMBER = re.compile(r"\W*\d+[.)]?\W*")


@dataclass(frozen=True)
class Window:
    """A quotable run of sentences of one retrieved passage, and what describes it."""

    source: int  # index into the passages
    start: int  # index of its first sentence in the passage
    sentences: tuple[str, ...]
    cosine: float  # of its first sentence to the question
    features: tuple[float, ...]  # in the order of FEATURES

    @property
    def sentence(self) -> str:
        return self.sentences[0]

    def feature(self, name: str) -> float:
        return self.features[FEATURES.index(name)]


def extend(sentences: Sequence[str], start: int, max_claims: int, max_chars: int) -> tuple[str, ...]:
    """The sentence at `start` and those after it, up to `max_claims` that say something (a bare list
    number is skipped, a lead-in ending in ':' does not count) and `max_chars` characters; a sentence
    about the article ends it."""

    picked = [sentences[start]]
    for sentence in sentences[start + 1 :]:
        if _LIST_NUMBER.fullmatch(sentence):
            continue  # a list item's number: the step follows
        claims = sum(not no_claim(s) for s in picked)
        if (
            (claims >= max_claims and not no_claim(picked[-1]))
            or is_meta(sentence)
            or len(" ".join(picked)) + len(sentence) > max_chars
        ):
            break
        picked.append(sentence)
    return tuple(picked)


def _cover(words: set[str], text: str) -> float:
    return len(words & set(tokenize(text, keep_stopwords=True))) / len(words) if words else 0.0


def windows(
    question: str,
    question_vector: np.ndarray,
    passages: Sequence[Passage],
    source_vectors: Sequence[np.ndarray],
    max_claims: int,
    max_chars: int,
) -> list[Window]:
    """Every window that could stand as the reply (see `chatbot.answer.grounding.quotable_start`),
    with its features; `source_vectors[j]` holds one row per sentence of `passages[j]`."""

    if not passages:
        return []
    words = set(tokenize(question))
    dense = [p.dense_cosine for p in passages]
    ranked = sorted(dense, reverse=True)
    top_dense, top_margin = ranked[0], ranked[0] - (ranked[1] if len(ranked) > 1 else 0.0)
    top_fused = max(p.score for p in passages) or 1.0
    top_lexical = max(p.lexical_score for p in passages) or 1.0
    docs = [p.doc_id for p in passages]
    out = []
    for j, passage in enumerate(passages):
        sentences = list(passage.sentences)
        if not sentences:
            continue
        cosines = np.asarray(source_vectors[j], dtype=np.float32) @ np.asarray(question_vector, dtype=np.float32)
        title = " ".join((passage.chunk.title, *passage.chunk.headings))
        cover_passage, cover_title = _cover(words, f"{title} {passage.chunk.text}"), _cover(words, title)
        for start, sentence in enumerate(sentences):
            if not quotable_start(sentence, question):
                continue
            picked = extend(sentences, start, max_claims, max_chars)
            inside = cosines[start : start + len(picked)]
            text = " ".join(picked)
            features = (
                float(cosines[start]),
                float(inside.max()),
                float(inside.mean()),
                1.0 / (1 + j),
                dense[j],
                top_dense - dense[j],
                passage.score / top_fused,
                passage.lexical_score / top_lexical,
                _cover(words, text),
                cover_passage,
                cover_title,
                float(start == 0),
                start / len(sentences),
                float(bool(_NUMBER_WORD.search(text))),
                top_dense,
                top_margin,
                docs.count(passage.doc_id) / len(docs),
            )
            out.append(Window(j, start, picked, float(cosines[start]), features))
    return out


# Weights of `window_score`, chosen on the dev split of bench/data/arduino_eval.jsonl and
# demo/questions.jsonl (the window that carries the key fact and cites the gold document most often);
# a feature not named weighs 0. cos_start alone is the old "closest sentence" rule: its windows were right
# (key fact, gold citation) for 59 of the 140 answerable dev questions, these for 71 (the best: 118).
WINDOW_WEIGHTS: Mapping[str, float] = {"cos_start": 1.0, "dense": 1.0, "cover_passage": 0.5, "cover_window": 0.25}


def window_score(window: Window, weights: Mapping[str, float] = WINDOW_WEIGHTS) -> float:
    return sum(weight * window.feature(name) for name, weight in weights.items())


def best_window(candidates: Sequence[Window], weights: Mapping[str, float] = WINDOW_WEIGHTS) -> Window | None:
    """The highest-scoring window (the earliest on a tie), or None when there is none."""
    return max(candidates, key=lambda w: window_score(w, weights), default=None)
