"""Which kind of reply a turn deserves before anything is generated: is the question too vague?

A message such as "it doesn't work" or "upload failed" names no product, setting or symptom that
could pick one article over another; answering it invents a context and handing it over wastes a
person's time. Such a message, with no earlier turn to read it by, gets one short clarifying
question that offers the closest help-centre topics. Knows nothing about models or storage: it
judges the words of the message.
"""

from __future__ import annotations

from collections.abc import Sequence

from knowledge.lexical import tokenize

# words that say something is wrong or that help is wanted, but not what: they do not make a
# message specific ("my board is broken help" says no more than "board")
_GENERIC = frozenset(tokenize(
    "work works working worked broken broke break problem problems issue issues help helps error errors "
    "fail fails failed failing failure wrong bad trouble hi hello hey thanks please thing things stuff again "
    "need needs want get getting got do does doing done happen happened happening anything something "
    "someone somebody question questions fix fixed sort sorted support assist assistance urgent asap "
    "still keep keeps anymore properly right able", keep_stopwords=True))
CLARIFY = ("Could you tell me a little more, so I can find the right answer? Which product, order or "
           "service is it about, what were you trying to do, and what happened (an error message helps)?")
CLARIFY_TOPICS = " It might be one of these: {topics}."


def is_vague(question: str, history: Sequence[str] = ()) -> bool:
    """True when the message names at most one specific thing and no earlier turn gives it a context."""
    if history:
        return False  # a short follow-up is read with the conversation so far
    specific = [w for w in tokenize(question) if w not in _GENERIC and not w.isdigit()]
    return len(specific) <= 1


def clarifying_question(titles: Sequence[str]) -> str:
    """The clarifying reply; the closest article titles, when there are any, are offered as topics."""
    topics = list(dict.fromkeys(t for t in titles if t))[:3]
    return CLARIFY + (CLARIFY_TOPICS.format(topics="; ".join(topics)) if topics else "")
