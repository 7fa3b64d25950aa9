"""The grounding check: is each answer sentence supported by one of the sources shown?

A sentence's claim is what it adds to the question: its content words that the question does not
already hold. Its evidence in a source is the `evidence_sentences` source sentences closest to
the question followed by the sentence (by embedding), with the source's title and headings. It is
supported when (1) every number in it (prices, days, hours) appears in that evidence, with the
same unit where it has one ("2 weeks" is not backed by "2pm"), not merely somewhere in the
source, (2) at least `min_overlap` of its new content words appear there, (3) it embeds within
`min_cosine` of the closest source sentence, and (4) it is negated ("not", "isn't", "never")
exactly when that closest sentence is, (5) it does not use a word whose opposite the evidence uses
instead ("outdoors" for "indoors only", "free" for "a paid service", "after" for "before": a
curated list of pairs, `OPPOSITES`), and (6) every name or code in it ("Arduino IDE", "MKR 1000",
"Klarna": a capitalised word that does not start the sentence, or letters mixed with digits) appears
in a source shown, the question or the company's name, so a fluent paraphrase that brings in a
product, screen or service the sources never mention is not passed. Unsupported sentences are
dropped; the supporting source is cited. A sentence that adds nothing ("Sure!", the question echoed
back, a bare list number, a lead-in ending in ':') carries no claim and is dropped without counting
against the answer. This checks support, not truth: a source that is itself wrong passes, and a
contradiction in words outside the list of opposites is still missed (no NLI model ships offline).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from knowledge.chunking import split_sentences
from knowledge.embedding import Embedder
from knowledge.lexical import tokenize
from knowledge.types import Passage
from chatbot.answer.quote import Window, windows
from chatbot.answer.sentences import is_meta, no_claim

FILLER = frozenset(tokenize("answer yes no sure course certainly absolutely help happy glad question sorry"))
_CITATION = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")
_NEGATION = re.compile(r"\b(not|no|never|cannot|without|nor)\b|n't\b", re.I)
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
# (word, opposite) pairs, as written; compared as stems. A claim using one where its evidence uses the
# other, and not it, contradicts the evidence without a negation. Kept to pairs that are opposites in a
# support reply whatever the product; a well-kept antonym list (WordNet) needs a corpus download.
OPPOSITES = (
    ("free", "paid"),
    ("free", "charge"),
    ("indoors", "outdoors"),
    ("indoor", "outdoor"),
    ("inside", "outside"),
    ("before", "after"),
    ("more", "less"),
    ("more", "fewer"),
    ("minimum", "maximum"),
    ("include", "exclude"),
    ("included", "excluded"),
    ("enable", "disable"),
    ("enabled", "disabled"),
    ("open", "closed"),
    ("available", "unavailable"),
    ("possible", "impossible"),
    ("allowed", "prohibited"),
    ("required", "optional"),
    ("mandatory", "optional"),
    ("automatically", "manually"),
    ("automatic", "manual"),
    ("increase", "decrease"),
    ("higher", "lower"),
    ("earliest", "latest"),
    ("accepted", "rejected"),
    ("online", "offline"),
    ("weekdays", "weekends"),
    ("refundable", "nonrefundable"),
    ("upgrade", "downgrade"),
    ("public", "private"),
    ("cheaper", "dearer"),
    ("faster", "slower"),
    ("longer", "shorter"),
    ("full", "partial"),
    ("all", "some"),
)
_NAME = re.compile(r"[A-Za-z]*[A-Z][\w-]*|[A-Za-z-]*\d[\w-]*")  # a word with a capital, or letters and digits
_QUANTITY = re.compile(rf"({_NUMBER.pattern})(?:[ \t]*-?[ \t]*([A-Za-z]+))?")  # a number and the word after it
DONT_KNOW = re.compile(
    r"\b(i (do not|don't|dont) know|i'm not sure|i am not sure|(sources?|information) (do|does) not|"
    r"not (mentioned|provided|specified) in)\b",
    re.I,
)


@dataclass(frozen=True)
class SentenceCheck:
    text: str
    supported: bool
    claim: bool  # False for fillers with under two content words
    source: int | None  # index into the passages of the best supporting source
    overlap: float
    cosine: float


@dataclass(frozen=True)
class Quote:
    """The source sentence closest to the question, and how close (MiniLM cosine)."""

    source: int  # index into the passages
    sentence: str
    cosine: float


@dataclass(frozen=True)
class GroundingResult:
    sentences: tuple[SentenceCheck, ...]
    declined: bool  # the model itself said it does not know

    @property
    def supported(self) -> tuple[SentenceCheck, ...]:
        return tuple(s for s in self.sentences if s.supported)

    @property
    def dropped(self) -> int:
        return sum(1 for s in self.sentences if s.claim and not s.supported)

    @property
    def claims(self) -> int:
        return sum(1 for s in self.sentences if s.claim)


def _stem(word: str) -> str:
    return (tokenize(word, keep_stopwords=True) or [word.lower()])[0]


_OPPOSITE_STEMS = tuple({pair for a, b in OPPOSITES for pair in ((_stem(a), _stem(b)), (_stem(b), _stem(a)))})


def contradicts(claim: str, evidence: str) -> bool:
    """Does the claim use a word whose opposite (`OPPOSITES`) the evidence uses instead of it?"""
    said, found = set(tokenize(claim, keep_stopwords=True)), set(tokenize(evidence, keep_stopwords=True))
    return any(a in said and b in found and a not in found and b not in said for a, b in _OPPOSITE_STEMS)


def names(text: str) -> set[str]:
    """The names and codes of a sentence, lower-cased: capitalised words other than its first, "I" and
    words after a colon, and words mixing letters with digits ("R4", "MKR1000"); bare numbers are not
    names (`quantities_supported` checks them)."""
    found = set()
    for sentence in split_sentences(text) or [text]:
        for n, match in enumerate(re.finditer(r"\S+", sentence)):
            word = match.group().strip(".,;:!?()[]{}\"'“”‘’*_`")
            after_colon = n > 0 and sentence[: match.start()].rstrip().endswith(":")
            if n == 0 or after_colon or word in ("I", "") or not _NAME.fullmatch(word) or word.isdigit():
                continue
            if any(c.isupper() for c in word) or (any(c.isdigit() for c in word) and any(c.isalpha() for c in word)):
                found.add(word.lower())
    return found


def names_supported(claim: str, known: str) -> bool:
    """Every name or code of the claim (`names`) is in `known` (the sources, the question...): as a word
    with the same stem ("LEDs" for "LED"), or, from four characters on, spelt without its spaces and
    hyphens ("ChromeOS" for "Chrome OS", "Wi-Fi" for "WiFi")."""
    wanted = names(claim)
    if not wanted:
        return True
    stems = set(tokenize(known, keep_stopwords=True))
    compact = re.sub(r"[^0-9a-z]+", "", known.lower())
    for name in wanted:
        bare = re.sub(r"[^0-9a-z]+", "", name)
        if not (set(tokenize(name, keep_stopwords=True)) <= stems or (len(bare) >= 4 and bare in compact)):
            return False
    return True


def negated(text: str) -> bool:
    """Does the sentence say not/never/no? ("suitable for outdoor use" vs "isn't suitable for outdoor spaces")"""
    return bool(_NEGATION.search(text.replace("\u2019", "'")))


def numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(text)}


def quantities(text: str) -> set[tuple[str, str]]:
    """(number, the stemmed word right after it): "2 weeks" -> ("2", "week"), "2pm" -> ("2", "pm"),
    "2-year" -> ("2", "year"); "" when no word follows ("£14.95.")."""
    found = set()
    for match in _QUANTITY.finditer(text):
        unit = match.group(2) or ""
        found.add(
            (
                match.group(1).replace(",", ""),
                (tokenize(unit, keep_stopwords=True) or [unit.lower()])[0] if unit else "",
            )
        )
    return found


def quantities_supported(claim: str, evidence: str) -> bool:
    """Every number of the claim is in the evidence, and with the same unit where the claim gives one:
    "2 weeks" is not backed by "order before 2pm"."""
    backed = quantities(evidence)
    values = {n for n, _ in backed}
    return all((n, u) in backed if u else n in values for n, u in quantities(claim))


def strip_citations(text: str) -> str:
    return _CITATION.sub("", text).strip()


class GroundingChecker:
    """Keeps the sentences of an answer that the sources support, and finds the best quote.

    A claim is supported when its content words (`min_overlap`, a share) and its meaning
    (`min_cosine`, to the closest source sentence) are found in its `evidence_sentences` closest
    source sentences, with the same numbers, units and negation. Source sentences and their vectors
    come stored with the chunks (split and embedded once, at ingest), so a call embeds only the
    answer's sentences or the question. It judges text against text; it
    knows nothing about prompts or models. Every default lives in `core.config` ([grounding]).
    """

    def __init__(
        self, embedder: Embedder, min_overlap: float, min_cosine: float, evidence_sentences: int, known_names: str = ""
    ):
        self.embedder = embedder
        self.known_names = known_names  # names a reply may use beyond its sources' (the company's)
        self.evidence_sentences = evidence_sentences
        self.min_overlap = min_overlap
        self.min_cosine = min_cosine

    def check(self, answer: str, passages: Sequence[Passage], question: str = "") -> GroundingResult:
        sentences = [strip_citations(s) for s in split_sentences(answer)]
        sentences = [s for s in sentences if s]
        declined = bool(DONT_KNOW.search(answer))
        if not sentences or not passages:
            return GroundingResult(tuple(SentenceCheck(s, False, True, None, 0.0, 0.0) for s in sentences), declined)
        headings = [" ".join((p.chunk.title, *p.chunk.headings)) for p in passages]
        sources = _sources(passages, whole_if_none=True)
        source_sentences = [group for group, _ in sources]
        asked = f"{question.strip()} " if question.strip() else ""
        answer_vectors, source_vectors = self._embed([asked + s for s in sentences], sources)
        flat_vectors = np.concatenate(source_vectors)
        bounds = np.cumsum([0] + [len(g) for g in source_sentences])

        known = set(tokenize(question)) | FILLER
        # names a claim may use: those of any source shown (a name from another source is no invention)
        known_names = " ".join([*(p.chunk.text for p in passages), *headings, asked, self.known_names])
        checks = []
        for i, sentence in enumerate(sentences):
            content = set(tokenize(sentence)) - known
            if not content or (len(content) < 2 and not numbers(sentence)) or no_claim(sentence):
                checks.append(SentenceCheck(sentence, False, False, None, 0.0, 0.0))
                continue
            similarity = flat_vectors @ answer_vectors[i]
            best = (None, -1.0, 0.0, 0.0)  # (source, combined, overlap, cosine)
            for j in range(len(passages)):
                scores = similarity[bounds[j] : bounds[j + 1]]
                closest = np.argsort(-scores)[: self.evidence_sentences]
                evidence = " ".join([headings[j], *(source_sentences[j][k] for k in closest)])
                overlap = len(content & set(tokenize(evidence, keep_stopwords=True))) / len(content)
                cosine = float(scores.max())
                ok = (
                    quantities_supported(sentence, evidence)
                    and overlap >= self.min_overlap
                    and cosine >= self.min_cosine
                    and negated(sentence) == negated(source_sentences[j][closest[0]])
                    and not contradicts(sentence, evidence)
                    and names_supported(sentence, known_names)
                )
                score = overlap + cosine + (10.0 if ok else 0.0)
                if score > best[1]:
                    best = (j if ok else None, score, overlap, cosine)
            source, _, overlap, cosine = best
            checks.append(SentenceCheck(sentence, source is not None, True, source, overlap, cosine))
        return GroundingResult(tuple(checks), declined)

    def best_quote(self, question: str, passages: Sequence[Passage]) -> Quote | None:
        """The source sentence closest to the question (three content words or more, not a lead-in)."""
        sources = _sources(passages)
        candidates = [
            (j, k, s)
            for j, (group, _) in enumerate(sources)
            for k, s in enumerate(group)
            if len(tokenize(s)) >= 3 and not no_claim(s) and not is_meta(s)
        ]  # no lead-ins
        if not candidates:
            return None
        (question_vector,), source_vectors = self._embed([question], sources)
        scores = np.array([source_vectors[j][k] @ question_vector for j, k, _ in candidates], dtype=np.float32)
        best = int(np.argmax(scores))
        return Quote(candidates[best][0], candidates[best][2], float(scores[best]))

    def evidence(self, question: str, passages: Sequence[Passage], max_claims: int, max_chars: int) -> list[Window]:
        """Every quotable window of the passages (`chatbot.answer.quote.windows`), with its features;
        embeds only the question (the passages' sentence vectors were stored at ingest)."""
        if not passages:
            return []
        sources = _sources(passages)
        (question_vector,), source_vectors = self._embed([question], sources)
        return windows(question, question_vector, passages, source_vectors, max_claims, max_chars)

    def _embed(
        self, texts: list[str], sources: list[tuple[list[str], np.ndarray | None]]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """`texts` embedded (this turn's), and each source's sentence vectors: those the index stored,
        else embedded in the same call (a passage that did not come from an index)."""
        missing = [s for group, stored in sources if stored is None for s in group]
        vectors = self.embedder.embed(texts + missing)
        own, rest = vectors[: len(texts)], vectors[len(texts) :]
        out, start = [], 0
        for group, stored in sources:
            if stored is None:
                stored, start = rest[start : start + len(group)], start + len(group)
            out.append(stored)
        return own, out


def _sources(passages: Sequence[Passage], whole_if_none: bool = False) -> list[tuple[list[str], np.ndarray | None]]:
    """Each passage's sentences (split once at ingest) and their stored vectors, or None when not stored.
    `whole_if_none`: a passage with no sentence counts as one, its whole text."""
    out = []
    for p in passages:
        sentences, vectors = list(p.sentences), p.sentence_vectors
        if not sentences and whole_if_none:
            sentences, vectors = [p.chunk.text], None
        out.append((sentences, vectors))
    return out
