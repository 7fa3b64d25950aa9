"""The conversation engine: question (+ history) -> retrieval -> prompt -> LLM -> checked answer.

One `Pipeline` wired through its constructor; it names no model and imports no torch. The
customer's message is stored before anything else happens, so a failure later loses nothing.
Each turn ends in one outcome:
- `customer_request`: the customer asked for a person: handoff, no LLM call;
- `off_topic`: nothing in the help centre is even close: a polite refusal, no handoff;
- `no_knowledge`: retrieval too weak to answer from: handoff, no LLM call;
- `unsupported_answer`: no sentence of the LLM's answer was supported by a source: the assistant
  says it is not certain, quotes the closest source sentence, and hands off;
- `answered`: the supported sentences, each citing its source; or, when one source sentence is
  within `direct_quote_cosine` of the question, that sentence verbatim, with no LLM call.

A voice question is transcribed and a screenshot read (OCR) by `prepare()` before the turn: the
transcript becomes the question, the screenshot's text joins it for retrieval and the prompt, and
both are stored with the customer's message and metered like the other stages.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace

from chatbot.records.costs import PriceSheet, TurnCost, Usage
from core.errors import BadInput
from chatbot.answer.grounding import GroundingChecker, GroundingResult, answers_on_its_own
from chatbot.answer.llm import ChatModel
from chatbot.answer.prompt import build_messages
from chatbot.records.store import Store, StoredSource
from knowledge.search import HybridSearcher
from knowledge.types import Passage

MAX_QUESTION_CHARS = 2_000
_MARKDOWN_LEAD = re.compile(r"^\s*(?:[-*+>]|\d+[.)]|#+)\s+")
# what small models copy from the prompt: "A:", "The source:", "Title > Heading:" prefixes
_PROMPT_ECHO = re.compile(r"^\s*(?:(?:A|Answer|The source|Source)\s*:\s*|[^:\n]{1,120} > [^:\n]{1,160}:\s+"
                          r"|The answer(?: to (?:this|the|your) question)? is\s*:?\s*"
                          r"|To answer (?:this|the|your) question, I need to know that\s+)", re.I)
_MARKDOWN_EMPHASIS = re.compile(r"(\*\*|__|`)")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_HUMAN = re.compile(
    r"\b((talk|speak|chat)\s+(to|with)\s+(a|an|some|your)?\s*(real\s+|live\s+)?(human|person|agent|someone|somebody|"
    r"representative|operator|people|staff|member of staff)|(human|live|real)\s+(agent|person|support)|"
    r"customer\s+service\s+(agent|rep|representative)|transfer me|escalate)\b", re.I)

ANSWERS = {
    "customer_request": "Of course. I've asked a member of our team to take over this conversation; "
                        "they will reply here as soon as they can.",
    "off_topic": "Sorry, I can only help with questions about {company}: orders, shipping, returns, "
                 "payments, your account and our products.",
    "no_knowledge": "I'm sorry, I couldn't find that in our help centre. I've passed your question to "
                    "a colleague, who will get back to you.",
    "unsupported_answer": "I'm not certain about that, so I've asked a colleague to confirm.",
    "quote": "Our help centre says: \u201c{sentence}\u201d [1]",
}


@dataclass(frozen=True)
class Source:
    doc_id: str
    title: str
    url: str


@dataclass(frozen=True)
class Handoff:
    needed: bool
    reason: str | None


@dataclass(frozen=True)
class Reply:
    conversation_id: str
    question: str
    answer: str
    sources: tuple[Source, ...]
    handoff: Handoff
    usage: Usage
    cost: TurnCost
    outcome: str
    message_id: int
    grounding: dict = field(default_factory=dict)  # sentences checked / supported / dropped

    def to_json(self) -> dict:
        """The `chatbot ask --json` shape (also the REST API's)."""
        return {
            "conversation_id": self.conversation_id,
            "question": self.question,
            "answer": self.answer,
            "sources": [asdict(s) for s in self.sources],
            "handoff": asdict(self.handoff),
            "usage": {
                "prompt_tokens": self.usage.prompt_tokens,
                "completion_tokens": self.usage.completion_tokens,
                "seconds": {"retrieval": round(self.usage.retrieval_s, 4), "llm": round(self.usage.llm_s, 4),
                            "asr": round(self.usage.asr_s, 4), "ocr": round(self.usage.ocr_s, 4)},
                "audio_seconds": round(self.usage.audio_s, 3),
                "device": self.usage.device,
                "cost_usd": self.cost.cost_usd,
                "api_shadow_cost_usd": self.cost.api_shadow_cost_usd,
            },
            "outcome": self.outcome,
            "grounding": self.grounding,
        }


@dataclass(frozen=True)
class Prepared:
    """A customer turn ready for the pipeline: text, screenshot text, and what producing them cost."""

    question: str
    image_text: str = ""
    usage: Usage = field(default_factory=Usage)
    extra: dict = field(default_factory=dict)  # stored with the customer's message


@dataclass(frozen=True)
class Thresholds:
    min_retrieval_cosine: float = 0.35
    off_topic_cosine: float = 0.20
    direct_quote_cosine: float = 0.77  # a source sentence this close to the question answers it verbatim


def clean_question(text: object) -> str:
    if not isinstance(text, str):
        raise BadInput("the question must be text")
    text = _CONTROL.sub(" ", text).strip()
    if not text:
        raise BadInput("the question is empty; type a question")
    if len(text) > MAX_QUESTION_CHARS:
        raise BadInput(f"the question is {len(text)} characters; keep it under {MAX_QUESTION_CHARS}")
    return text


class Pipeline:
    def __init__(self, searcher: HybridSearcher, llm: ChatModel, store: Store, checker: GroundingChecker,
                 prices: PriceSheet, company: str = "our shop", k: int = 4, context_turns: int = 4,
                 max_new_tokens: int = 80, source_sentences: int = 4, thresholds: Thresholds = Thresholds(),
                 speech=None, vision=None):
        self.searcher = searcher
        self.llm = llm
        self.store = store
        self.checker = checker
        self.prices = prices
        self.company = company
        self.k = k
        self.context_turns = context_turns
        self.max_new_tokens = max_new_tokens
        self.source_sentences = source_sentences
        self.thresholds = thresholds
        self.speech = speech  # a SpeechToText, or None when voice is off
        self.vision = vision  # an ImageReader, or None when screenshots are off

    def warm_up(self) -> None:
        """Load every model now so the first customer does not wait."""
        self.store.engine  # noqa: B018 - opens the database (and fails fast on a bad URL) first
        for part in (self.llm, self.searcher.embedder, self.speech, self.vision):
            warm = getattr(part, "warm_up", None)
            if warm:
                warm()

    def prepare(self, text: str | None = None, audio: bytes | str | None = None,
                image: bytes | str | None = None) -> Prepared:
        """Transcribe a voice question and read a screenshot; errors are customer-readable."""
        usage = Usage(device=getattr(self.llm, "device", "cpu"))
        extra: dict = {}
        question = (text or "").strip() if isinstance(text, str) or text is None else text
        if audio is not None:
            if self.speech is None:
                raise BadInput("voice questions are not enabled here; please type your question")
            transcript = self.speech.transcribe(audio)
            usage = replace(usage, asr_s=transcript.asr_s, audio_s=transcript.audio_s)
            extra["transcript"] = {"text": transcript.text, "language": transcript.language,
                                   "audio_s": round(transcript.audio_s, 2)}
            question = f"{question} {transcript.text}".strip() if question else transcript.text
        image_text = ""
        if image is not None:
            if self.vision is None:
                raise BadInput("screenshots are not enabled here; please type what the screen says")
            ocr = self.vision.read(image)
            usage = replace(usage, ocr_s=ocr.ocr_s)
            image_text = ocr.text
            extra["ocr"] = {"text": ocr.text, "engine": ocr.engine}
            if not question:
                question = "Can you help me with this screenshot?"
        return Prepared(clean_question(question), image_text, usage, extra)

    def ask(self, question: str | Prepared, conversation_id: str | None = None, channel: str = "cli",
            on_token: Callable[[str], None] | None = None) -> Reply:
        """Answer one customer turn (text, or a `Prepared` voice/screenshot turn)."""
        for event in self.stream(question, conversation_id, channel):
            if isinstance(event, Reply):
                return event
            if on_token:
                on_token(event)
        raise AssertionError("stream ended without a reply")

    def stream(self, question: str | Prepared, conversation_id: str | None = None,
               channel: str = "cli") -> Iterator[str | Reply]:
        """Yield raw LLM text pieces as they come, then the checked `Reply`."""
        turn = question if isinstance(question, Prepared) else Prepared(clean_question(question))
        question, image_text, base = turn.question, turn.image_text, turn.usage
        if conversation_id:
            self.store.require_conversation(conversation_id)
        else:
            conversation_id = self.store.new_conversation(channel)
        message_id = self.store.add_message(conversation_id, "customer", question, extra=turn.extra or None)
        history = self.store.history(conversation_id, self.context_turns, before_message_id=message_id)

        if _HUMAN.search(question):
            yield self._finish(conversation_id, question, "customer_request", ANSWERS["customer_request"], [], base)
            return

        started = time.perf_counter()
        query = f"{question}\n{image_text}" if image_text else question
        passages = self.searcher.search(query, k=self.k, context=[text for _, text in history])
        retrieval_s = time.perf_counter() - started
        usage = Usage(retrieval_s=base.retrieval_s + retrieval_s, asr_s=base.asr_s, ocr_s=base.ocr_s,
                      audio_s=base.audio_s, device=getattr(self.llm, "device", "cpu"))
        best_cosine = max((p.dense_cosine for p in passages), default=-1.0)
        if best_cosine < self.thresholds.off_topic_cosine:
            yield self._finish(conversation_id, question, "off_topic",
                               ANSWERS["off_topic"].format(company=self.company), [], usage)
            return
        if best_cosine < self.thresholds.min_retrieval_cosine:
            yield self._finish(conversation_id, question, "no_knowledge", ANSWERS["no_knowledge"], [], usage)
            return

        started = time.perf_counter()
        quote = self.checker.best_quote(query, passages)
        usage = replace(usage, retrieval_s=usage.retrieval_s + time.perf_counter() - started)  # part of finding it
        if quote and quote.cosine >= self.thresholds.direct_quote_cosine and answers_on_its_own(quote.sentence, query):
            # one source sentence answers the question closely: say it verbatim, with no LLM call
            answer = _quoted(quote.sentence)
            yield self._finish(conversation_id, question, "answered", answer, [passages[quote.source]], usage,
                               {"direct_quote": True, "quote_cosine": round(quote.cosine, 4)})
            return

        messages = build_messages(question, passages, self.company, self.source_sentences, image_text)
        started = time.perf_counter()
        pieces: list[str] = []
        prompt_tokens = completion_tokens = 0
        for token in self.llm.stream(messages, self.max_new_tokens):
            if token.done:
                prompt_tokens, completion_tokens = token.prompt_tokens, token.completion_tokens
            else:
                pieces.append(token.text)
                yield token.text
        usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                      retrieval_s=usage.retrieval_s, llm_s=time.perf_counter() - started, asr_s=usage.asr_s,
                      ocr_s=usage.ocr_s, audio_s=usage.audio_s, device=getattr(self.llm, "device", "cpu"))
        raw = "".join(pieces).strip()
        result = self.checker.check(raw, passages, query)
        grounding = {"raw_answer": raw, "claims": result.claims, "supported": len(result.supported),
                     "dropped": result.dropped, "quote_cosine": round(quote.cosine, 4) if quote else None}
        # most claims invented: the surviving fragment is not a trustworthy answer on its own
        if result.supported and len(result.supported) >= result.dropped and not result.declined:
            answer, cited = _cite(result, passages)
            yield self._finish(conversation_id, question, "answered", answer, cited, usage, grounding)
            return
        outcome = "no_knowledge" if result.declined else "unsupported_answer"
        answer = ANSWERS[outcome]
        cited = []
        if quote:
            answer = f"{ANSWERS['unsupported_answer']} {_quoted(quote.sentence)}"
            cited = [passages[quote.source]]
        yield self._finish(conversation_id, question, outcome, answer, cited, usage, grounding)

    def _finish(self, conversation_id: str, question: str, outcome: str, answer: str,
                cited: list[Passage], usage: Usage, grounding: dict | None = None) -> Reply:
        grounding = grounding or {}
        message_id = self.store.add_message(conversation_id, "assistant", answer, outcome=outcome,
                                            extra={"grounding": grounding} if grounding else None)
        self.store.add_sources(message_id, [StoredSource(p.doc_id, p.chunk.title, p.chunk.url, p.score) for p in cited])
        cost = self.prices.price(usage)
        self.store.add_usage(conversation_id, message_id, usage, cost)
        handoff = outcome in ("customer_request", "no_knowledge", "unsupported_answer")
        if handoff:
            self.store.add_handoff(conversation_id, message_id, outcome)
        return Reply(
            conversation_id=conversation_id, question=question, answer=answer,
            sources=tuple(Source(p.doc_id, p.chunk.title, p.chunk.url) for p in cited),
            handoff=Handoff(handoff, outcome if handoff else None), usage=usage, cost=cost,
            outcome=outcome, message_id=message_id,
            grounding={k: v for k, v in grounding.items() if k != "raw_answer"},
        )


def _cite(result: GroundingResult, passages: list[Passage]) -> tuple[str, list[Passage]]:
    """The supported sentences, each followed by [n]; n numbers the distinct documents cited."""
    cited: list[Passage] = []
    numbers: dict[str, int] = {}
    parts = []
    seen: set[str] = set()
    for check in result.supported:
        sentence = _plain(check.text)
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


def _quoted(sentence: str) -> str:
    """A source sentence quoted verbatim (as plain text), citing the one source shown as [1]."""
    return ANSWERS["quote"].format(sentence=_plain(sentence))


def _plain(sentence: str) -> str:
    """A sentence without Markdown list markers, heading marks or emphasis."""
    sentence = _MARKDOWN_LEAD.sub("", sentence)
    for _ in range(2):  # "A: Title > Heading: text"
        sentence = _PROMPT_ECHO.sub("", sentence)
    sentence = _MARKDOWN_EMPHASIS.sub("", sentence).strip()
    return sentence[:1].upper() + sentence[1:]
