"""Which windows a suggestion shows: the fixed rule's, or those a reader model finds most likely to answer.

Without a reader a suggestion is the best window, then the best window of each other passage
(`chatbot.answer.window_ranker.alternatives`). With one (`[grounding] suggest_reader`), the `POOL`
best windows by the fixed rule that do not overlap are scored, and the `count` scored highest are
shown, at most `PER_PASSAGE` from one passage (the answer is often a few sentences after the one
that restates the question, in the same passage).

The reader here is query likelihood (UPR: Sachan et al., "Improving Passage Retrieval with
Zero-Shot Question Generation", 2022): a language model reads a window and the score is the mean
log-probability it gives the customer's own question after it. A model that writes plausible
customer questions from an article (Qwen2.5-Coder-1.5B-Instruct, `chatbot.practice`) ranks the
window that prompts this very question first, without writing anything a customer sees. Measured
on Arduino (README "Measured"): more suggestions hold the key fact on every split, at ~3 s a
suggestion on 2 CPU cores, so it is off by default. This module knows nothing about retrieval,
thresholds or storage; the model loads on first use.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Protocol

from core.errors import ConfigError
from core.lazy import Lazy
from chatbot.answer.quote import Window
from chatbot.answer.window_ranker import WindowRanker, alternatives, ranked
from knowledge.types import Passage

POOL = 8  # windows the reader scores: the fixed rule's best that do not overlap
PER_PASSAGE = 2  # windows shown from one passage, at most
MAX_QUESTION_CHARS = 600  # of the question read after each window (a long email's first part)
PROMPT = "Help-centre passage ({title}):\n{text}\n\nWrite a question a customer could ask that this passage answers."


class WindowReader(Protocol):
    def scores(self, question: str, windows: Sequence[tuple[str, str]]) -> list[float]:
        """One score per (title, text) window: higher, the more the window looks like it answers `question`."""
        ...


def _overlap(a: Window, b: Window) -> bool:
    return a.source == b.source and a.start < b.start + len(b.sentences) and b.start < a.start + len(a.sentences)


def suggestion(
    windows: Sequence[Window],
    quote: Window,
    count: int,
    ranker: WindowRanker | None,
    reader: WindowReader | None,
    question: str,
    passages: Sequence[Passage],
) -> list[Window]:
    """The `count` windows a suggestion quotes (see the module docstring); `quote` first without a reader."""
    if reader is None:
        return [quote, *alternatives(windows, quote, count - 1, ranker)]
    pool: list[Window] = []
    for window in ranked(windows, ranker):
        if len(pool) >= POOL:
            break
        if not any(_overlap(window, kept) for kept in pool):
            pool.append(window)
    scores = reader.scores(question, [(passages[w.source].chunk.title, " ".join(w.sentences)) for w in pool])
    shown: list[Window] = []
    for i in sorted(range(len(pool)), key=lambda i: -scores[i]):  # ties keep the fixed rule's order
        if len(shown) < count and sum(w.source == pool[i].source for w in shown) < PER_PASSAGE:
            shown.append(pool[i])
    return shown or [quote]


class CTranslate2Reader:
    """Query likelihood from a CTranslate2 export of a chat model (a folder); nothing is generated."""

    def __init__(self, path: str, device: str = "auto", threads: int = 0):
        """`path`: a folder, or a registered name (`chatbot.models.KNOWN_LLMS`) provisioned at first use."""
        self.path, self.requested_device, self.threads = path, device, threads
        self._loaded = Lazy(self._load)  # (tokenizer, generator)

    def _load(self):
        from transformers import AutoTokenizer

        from chatbot.answer.llm_ct2 import ct2_generator, pick_ct2_device
        from chatbot.models import KNOWN_LLMS, resolve

        path = resolve(self.path, KNOWN_LLMS, "suggest_reader")
        tokenizer = AutoTokenizer.from_pretrained(path)
        device = pick_ct2_device(self.requested_device)
        return tokenizer, ct2_generator(path, device, "default", 1, self.threads or os.cpu_count() or 1)

    def warm_up(self) -> None:
        self._loaded.get()

    def _prompt_ids(self, tokenizer, title: str, text: str) -> list[int]:
        content = PROMPT.format(title=title, text=text)
        if tokenizer.chat_template:
            content = tokenizer.apply_chat_template(
                [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
            )
        else:
            content = f"{content}\n"
        return tokenizer(content, add_special_tokens=False)["input_ids"]

    def scores(self, question: str, windows: Sequence[tuple[str, str]]) -> list[float]:
        if not windows:
            return []
        tokenizer, generator = self._loaded.get()
        asked = tokenizer(question[:MAX_QUESTION_CHARS], add_special_tokens=False)["input_ids"] or [0]
        prompts = [self._prompt_ids(tokenizer, title, text) for title, text in windows]
        tokens = [tokenizer.convert_ids_to_tokens(ids + asked) for ids in prompts]
        results = generator.score_batch(tokens, max_batch_size=4)
        # log_probs[i] is the log-probability of token i + 1: the question's are the last len(asked)
        return [sum(r.log_probs[-len(asked) :]) / len(asked) for r in results]


@functools.lru_cache(maxsize=4)
def _loaded_once(path: str, device: str, threads: int) -> CTranslate2Reader:
    return CTranslate2Reader(path, device, threads)


def reader_for(name: str, device: str = "auto", threads: int = 0) -> WindowReader | None:
    """The reader `[grounding] suggest_reader` names (a CTranslate2 folder or a registered LLM name), or None
    for ""; the name is checked here, the model found (a registered one provisioned) and loaded at the first
    suggestion. The same reader comes back for the same name, so settings rebuilt when the index changes do
    not load it again."""
    if not name:
        return None
    from chatbot.models import KNOWN_LLMS

    if name not in KNOWN_LLMS and not os.path.isdir(os.path.expanduser(name)):
        raise ConfigError(
            f"suggest_reader '{name}' is neither a folder nor a known model; use a CTranslate2 model folder, "
            f'one of: {", ".join(sorted(KNOWN_LLMS))}, or "" for the fixed rule'
        )
    return _loaded_once(name, device, threads)
