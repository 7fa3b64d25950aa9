"""A turn decided without the LLM writing: its outcome, the reply's text and the passages it cites.

`chatbot.pipeline` stores what these return; this module only words and cites the evidence windows
(`chatbot.answer.quote`) it is given. It does not know how they were chosen, nor the thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from chatbot.answer.quote import Window
from chatbot.answer.replies import ANSWERS, quoted, suggested
from chatbot.records.outcomes import Outcome
from knowledge.types import Passage


class Verdict(NamedTuple):
    """A turn's outcome and reply, decided: what `Pipeline._finish` stores."""

    outcome: Outcome
    answer: str
    cited: list[Passage]
    grounding: dict


def quoted_verdict(quote: Window, passages: list[Passage], grounding: dict) -> Verdict:
    """Answered with the evidence window's sentences verbatim, citing its source."""
    return Verdict(Outcome.ANSWERED, quoted(*quote.sentences), [passages[quote.source]], grounding)


def suggested_verdict(windows: Sequence[Window], passages: list[Passage], grounding: dict) -> Verdict:
    """Suggested: the windows (the closest first, each from its own passage) quoted as what they are, citing
    each one's source in order, with the question whether they answered."""
    return Verdict(
        Outcome.SUGGESTED, suggested(*(w.sentences for w in windows)), [passages[w.source] for w in windows], grounding
    )


def unsure_verdict(outcome: Outcome, quote: Window | None, passages: list[Passage], grounding: dict) -> Verdict:
    """Handed over (`outcome`), saying the assistant is not certain and quoting the closest source sentence."""
    if quote is None:
        return Verdict(outcome, ANSWERS[outcome], [], grounding)
    answer = f"{ANSWERS[Outcome.UNSUPPORTED_ANSWER]} {quoted(quote.sentence)}"
    return Verdict(outcome, answer, [passages[quote.source]], grounding)
