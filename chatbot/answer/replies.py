"""The words of a reply that the engine writes itself: the fixed answers for each outcome, a source quoted
verbatim, and the LLM's supported sentences cleaned of Markdown and prompt echoes, each citing
its source as [n]. Knows nothing of retrieval, checking or storage.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from chatbot.answer.grounding import GroundingResult
from chatbot.answer.sentences import answers_on_its_own
from chatbot.records.outcomes import Outcome
from knowledge.types import Passage

if TYPE_CHECKING:
    from chatbot.answer.quote import Window

MAX_QUOTE_CHARS = 420  # a quoted answer stays short enough to read in the chat
_MARKDOWN_LEAD = re.compile(r"^\s*(?:[-*+>]|\d+[.)]|#+)\s+")
# what small models copy from the prompt: "A:", "The source:", "Title > Heading:" prefixes
_PROMPT_ECHO = re.compile(
    r"^\s*(?:(?:A|Answer|The source|Source)\s*:\s*|[^:\n]{1,120} > [^:\n]{1,160}:\s+"
    r"|The answer(?: to (?:this|the|your) question)? is\s*:?\s*"
    r"|To answer (?:this|the|your) question, I need to know that\s+)",
    re.I,
)
_MARKDOWN_EMPHASIS = re.compile(r"(\*\*|__|`)")
_HUMAN = re.compile(
    r"\b((talk|speak|chat)\s+(to|with)\s+(a|an|some|your)?\s*(real\s+|live\s+)?(human|person|agent|someone|somebody|"
    r"representative|operator|people|staff|member of staff)|(human|live|real)\s+(agent|person|support)|"
    r"customer\s+service\s+(agent|rep|representative)|transfer me|escalate)\b",
    re.I,
)

HANDOFF_REQUEST = "Talk to a person"  # stored as the customer's message when they press the button
ANSWERS = {
    Outcome.CUSTOMER_REQUEST: "Of course. I've asked a member of our team to take over this conversation; "
    "they will reply here as soon as they can.",
    Outcome.OFF_TOPIC: "Sorry, I can only help with questions about {company}: orders, shipping, returns, "
    "payments, your account and our products.",
    Outcome.NO_KNOWLEDGE: "I'm sorry, I couldn't find that in our help centre. I've passed your question to "
    "a colleague, who will get back to you.",
    Outcome.UNSUPPORTED_ANSWER: "I'm not certain about that, so I've asked a colleague to confirm.",
    Outcome.CONFIRMED: "Great, I'm glad that helped. Is there anything else I can help you with?",
    Outcome.LLM_UNAVAILABLE: "Sorry, I can't answer that right now. I've passed your question to a colleague, "
    "who will get back to you.",
    Outcome.SUGGESTION_DECLINED: "Sorry that didn't answer it. I've asked a member of our team to take over this "
    "conversation; they will reply here as soon as they can.",
}
QUOTE = "Our help centre says: \u201c{sentence}\u201d [1]"
SUGGESTION_QUESTION = "Did this answer your question?"
# honest about what it is: the closest part of the help centre, not an answer the assistant vouches for
SUGGESTION = (
    "I'm not sure, but this part of our help centre looks closest to your question: \u201c{sentence}\u201d [1] "
)
SUGGESTION += SUGGESTION_QUESTION
SUGGESTIONS = "I'm not sure, but these parts of our help centre look closest to your question: {quotes} "
SUGGESTIONS += SUGGESTION_QUESTION
_THANKS = r"(thanks?( you)?( so much| a lot)?|ty|cheers|great|perfect|brilliant|awesome|cool|ok(ay)?)"
_YES = re.compile(  # a short yes, nothing asked after it: "yes", "yes thanks!", "that helped, thank you"
    rf"^\W*(yes|yeah|yep|yup|y|sure|correct|exactly|{_THANKS}|(it|that) (did|helped|helps|works|answers it)"
    rf"|(that )?(helped|solved it|answered it))(\W+(it did|that helped|it helped|that answered it|{_THANKS}|very much|all good))*\W*$",
    re.I,
)
_NO = re.compile(r"^\W*(no|nope|nah|n|not really|it didn'?t|that didn'?t|didn'?t help|not helpful)\b", re.I)


def cite(result: GroundingResult, passages: list[Passage]) -> tuple[str, list[Passage]]:
    """The supported sentences, each followed by [n]; n numbers the distinct documents cited."""
    cited: list[Passage] = []
    numbers: dict[str, int] = {}
    parts = []
    seen: set[str] = set()
    for check in result.supported:
        sentence = plain(check.text)
        if not sentence or sentence.lower() in seen:  # small models repeat themselves
            continue
        seen.add(sentence.lower())
        passage = passages[check.source]
        if passage.doc_id not in numbers:
            numbers[passage.doc_id] = len(cited) + 1
            cited.append(passage)
        sentence = sentence if sentence[-1:] in ".!?" else sentence + "."
        parts.append(f"{sentence} [{numbers[passage.doc_id]}]")
    return " ".join(parts), cited


def quotable(quote: Window | None, query: str, min_cosine: float) -> bool:
    """Can this source sentence answer the question in its own words, at this closeness?"""
    return quote is not None and quote.cosine >= min_cosine and answers_on_its_own(quote.sentence, query)


def quoted(*sentences: str) -> str:
    """Source sentences quoted verbatim (as plain text), citing the one source shown as [1]."""
    return QUOTE.format(sentence=" ".join(plain(s) for s in sentences))


def plain(sentence: str) -> str:
    """A sentence without Markdown list markers, heading marks or emphasis."""
    sentence = _MARKDOWN_LEAD.sub("", sentence)
    for _ in range(2):  # "A: Title > Heading: text"
        sentence = _PROMPT_ECHO.sub("", sentence)
    sentence = _MARKDOWN_EMPHASIS.sub("", sentence).strip()
    return sentence[:1].upper() + sentence[1:]


def is_human_request(text: str) -> bool:
    """Does the customer ask for a person in words ("can I talk to a human?")?"""
    return bool(_HUMAN.search(text))


def suggested(*windows: Sequence[str]) -> str:
    """The closest source windows (each a run of sentences) offered as a suggestion, quoted verbatim and
    cited [1], [2], ..., asking whether they answered."""
    quotes = [" ".join(plain(s) for s in sentences) for sentences in windows]
    if len(quotes) == 1:
        return SUGGESTION.format(sentence=quotes[0])
    cited = [f"\u201c{q}\u201d [{n}]" for n, q in enumerate(quotes, start=1)]
    return SUGGESTIONS.format(quotes=", ".join(cited[:-1]) + f" and {cited[-1]}")


def confirms(text: str) -> bool:
    """Does a short reply to "Did this answer your question?" say yes ("yes thanks", "that helped")?"""
    return len(text) <= 80 and bool(_YES.search(text)) and not _NO.search(text)


def declines(text: str) -> bool:
    """Does a reply to "Did this answer your question?" say no ("no", "not really", "no, talk to a person")?"""
    return bool(_NO.search(text)) or is_human_request(text)
