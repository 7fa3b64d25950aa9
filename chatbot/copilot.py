"""The person's copilot: for a conversation handed to people, a draft reply and a two-line summary written by
the serving model, beside the person and never to the customer.

The draft is asked of the model with the served prompt (`chatbot.answer.prompt.build_messages`: the
help centre's passages for the customer's questions, which the fine-tuned model learned on), with the
packet's rejected draft left out and a failed action's result added. The summary is asked with the
customer's messages. Both are written once per handoff and last customer message, in one background
thread started at the handoff, so the queue never waits on the model; a claim that comes first writes
them then. `used(draft, sent)` says what the person did with a draft. It does not know whether a draft
is right: the person decides, and `chatbot improve` judges the model on what people sent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein

from chatbot.answer.llm import ChatModel, Message
from chatbot.answer.prompt import build_messages
from knowledge.chunking import split_sentences
from knowledge.types import Passage

log = logging.getLogger(__name__)

SUMMARY_SYSTEM = (
    "You help a support agent of {company}. Summarise the customer's messages in two short lines: "
    "line 1, what the customer wants; line 2, what they still need from us."
)
DRAFT_USES = ("unchanged", "edited", "discarded")
EDITED_SIMILARITY = 0.5  # a sent reply this similar to the draft (normalised Levenshtein) edited it, else discarded


@dataclass(frozen=True)
class Assist:
    """What the copilot offers a person for one conversation."""

    draft: str  # a reply the person may send, edit or discard
    summary: str  # two lines: what the customer wants, what they still need
    model: str
    seconds: float  # what writing both took

    def to_json(self) -> dict:
        return {"draft": self.draft, "summary": self.summary, "model": self.model, "seconds": round(self.seconds, 3)}


def used(draft: str | None, sent: str) -> tuple[str | None, int | None]:
    """What a person did with `draft` when they sent `sent` ("unchanged", "edited", "discarded"; None without a
    draft) and the Levenshtein distance between them (characters)."""
    if not draft:
        return None, None
    distance = Levenshtein.distance(draft.strip(), sent.strip())
    if distance == 0:
        return "unchanged", 0
    similar = Levenshtein.normalized_similarity(draft.strip(), sent.strip()) >= EDITED_SIMILARITY
    return ("edited" if similar else "discarded"), distance


class Copilot:
    """Writes and keeps the drafts and summaries; `search(question)`: the help centre's passages for it."""

    def __init__(
        self,
        llm: ChatModel,
        company: str,
        search: Callable[[str], Sequence[Passage]],
        max_new_tokens: int = 80,
        background: bool = True,
    ):
        self.llm = llm
        self.company = company
        self.search = search
        self.max_new_tokens = max_new_tokens
        self.background = background  # False: `prepare` writes at once (tests, the CLI)
        self._ready: dict[tuple, Assist] = {}
        self._writing: dict[tuple, Future] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def prepare(self, key: tuple, questions: Sequence[str], action: dict | None = None) -> None:
        """Start writing the assist for `key` (conversation, last customer message) unless written or under way."""
        with self._lock:
            if key in self._ready or key in self._writing:
                return
            if self.background:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(1, thread_name_prefix="copilot")
                self._writing[key] = self._pool.submit(self._write, key, list(questions), action)
                return
        self._write(key, list(questions), action)

    def ready(self, key: tuple) -> Assist | None:
        """The assist for `key` when written, else None (still being written, or never asked for)."""
        with self._lock:
            return self._ready.get(key)

    def assist(self, key: tuple, questions: Sequence[str], action: dict | None = None) -> Assist | None:
        """The assist for `key`, written now (or waited for) when not ready; None when the model failed."""
        self.prepare(key, questions, action)
        with self._lock:
            writing = self._writing.get(key)
        if writing is not None:
            try:
                writing.result(timeout=120)
            except Exception:  # noqa: BLE001 - logged where it was written
                return None
        return self.ready(key)

    def _write(self, key: tuple, questions: list[str], action: dict | None) -> Assist | None:
        started = time.perf_counter()
        try:
            draft, summary = self.draft_for(questions, action), self._summary(questions)
        except Exception:  # noqa: BLE001 - a person without a draft still has the conversation
            log.exception("the copilot could not write for %s", key[0])
            with self._lock:
                self._writing.pop(key, None)
            return None
        assist = Assist(draft, summary, self.llm.name, time.perf_counter() - started)
        with self._lock:
            self._ready[key] = assist
            self._writing.pop(key, None)
            if len(self._ready) > 1000:  # old conversations' assists go first
                self._ready.pop(next(iter(self._ready)))
        return assist

    def draft_for(self, questions: Sequence[str], action: dict | None = None) -> str:
        """A draft reply to the customer's `questions` (the last three count), written now."""
        question = " ".join(list(questions)[-3:]) or "(no message)"
        passages = list(self.search(question))
        if action:  # what the company's system answered for the customer's request
            question += f"\n(Our system: {action.get('name')} ended {action.get('status')}: {action.get('error', '-')})"
        return self._complete(build_messages(question, passages, self.company))

    def _summary(self, questions: list[str]) -> str:
        text = "\n".join(f"Customer: {q}" for q in questions[-6:]) or "Customer: (no message)"
        written = self._complete(
            [Message("system", SUMMARY_SYSTEM.format(company=self.company)), Message("user", text)], budget=60
        )
        return "\n".join(split_sentences(written)[:2])  # two lines at most, whatever the model wrote

    def _complete(self, messages: list[Message], budget: int | None = None) -> str:
        pieces = [t.text for t in self.llm.stream(messages, budget or self.max_new_tokens) if not t.done]
        return "".join(pieces).strip()
