"""What a single sentence is, before anything is checked against it: a claim or a bare lead-in, a
statement or a sentence about the article, a reply that stands on its own or one that restates
the question. The grounding check (`chatbot.answer.grounding`) and the quote windows
(`chatbot.answer.quote`) both ask these; neither imports the other for them. Knows nothing about
sources, embeddings or answers.
"""

from __future__ import annotations

import re

from knowledge.lexical import tokenize

_NO_CLAIM = re.compile(r"^\W*(\d+[.)]?)?\W*$|:\s*\.?\s*$")  # a bare list number, or a lead-in ending in ':'


_HEADING_LIKE = re.compile(r"^\W*(how|what|why|where|when|which|who|can|do|does|is|are)\b|\?\W*$", re.I)


def answers_on_its_own(sentence: str, question: str) -> bool:
    """Could this source sentence stand alone as the reply? Not a question or a "How to ..." link
    title, and it says something (a content word or number) that the question does not."""
    if _HEADING_LIKE.search(sentence):
        return False
    return bool(set(tokenize(sentence)) - set(tokenize(question)))


# sentences about the article rather than about the customer's question: never an answer
_META = re.compile(
    r"^\W*(?:learn (?:how|more|about)|find out (?:how|more)|read (?:more|on|about)|see (?:also|more|how|our|the)\b|"
    r"(?:this|the following|in this)(?: \w+)? (?:article|guide|page|section|tutorial|document|video)|"
    r"(?:this|these) (?:steps?|instructions?) (?:will|show|explain)|click (?:here|the link)|"
    r"for more (?:information|details|help)|(?:related|further) (?:articles?|reading)|table of contents|"
    r"(?:you (?:can|will) )?(?:learn|find) (?:how|out|more)|in this (?:article|guide)|here(?:'s| is) how)",
    re.I,
)
_LINK_HEAVY = re.compile(r"\[[^\]]+\]\([^)]+\)|https?://\S+")


def no_claim(piece: str) -> bool:
    """A bare list number ("2.") or a lead-in ending in ':' ("All you need to do is:")."""
    return bool(_NO_CLAIM.search(piece))


def is_meta(sentence: str) -> bool:
    """Is this sentence about the article ("Learn how to...", "This guide outlines...", "See also..."),
    a bare list of links, or a heading without a verb, rather than a statement a customer can use?"""
    text = sentence.strip()
    if _META.search(text) or text.startswith("|"):  # a table row is not a sentence
        return True
    links = _LINK_HEAVY.findall(text)
    if links and len(_LINK_HEAVY.sub("", text).split()) < 4:  # mostly links
        return True
    words = re.findall(r"[A-Za-z][\w'-]*", text)
    return len(words) <= 8 and text[-1:] not in ".!?" and sum(w[0].isupper() for w in words) >= 0.6 * len(words)


def quotable_start(sentence: str, question: str) -> bool:
    """Can a quote start with this source sentence? Three content words or more, not a lead-in, not
    about the article, and it stands on its own as a reply to `question` (`answers_on_its_own`)."""
    return (
        len(tokenize(sentence)) >= 3
        and not _NO_CLAIM.search(sentence)
        and not is_meta(sentence)
        and answers_on_its_own(sentence, question)
    )
