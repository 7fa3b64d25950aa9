"""What goes into the engine and what comes out of a turn: `Turn` in; `Received`, `Draft` pieces and the
checked `Reply` out; the engine's `Settings`. Frozen dataclasses, nothing else: knows nothing of how
an answer is made.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from chatbot.records.costs import TurnCost, Usage
from chatbot.records.outcomes import Outcome
from knowledge.types import Source

if TYPE_CHECKING:
    from chatbot.answer.decision import AnswerModel
    from chatbot.answer.window_reader import WindowReader


@dataclass(frozen=True)
class Handoff:
    needed: bool
    reason: str | None


@dataclass(frozen=True)
class Reply:
    """The last event of a turn: the checked answer as stored, its sources, handoff and cost."""

    conversation_id: str
    question: str
    answer: str
    sources: tuple[Source, ...]
    handoff: Handoff
    usage: Usage
    cost: TurnCost
    outcome: Outcome
    message_id: int
    grounding: dict = field(default_factory=dict)  # sentences checked / supported / dropped
    retrieved: tuple[str, ...] = ()  # doc ids of the passages the turn read, best first (none if not searched)

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
                "seconds": {
                    "retrieval": round(self.usage.retrieval_s, 4),
                    "llm": round(self.usage.llm_s, 4),
                    "asr": round(self.usage.asr_s, 4),
                    "ocr": round(self.usage.ocr_s, 4),
                    "action": round(self.usage.action_s, 4),
                },
                "audio_seconds": round(self.usage.audio_s, 3),
                "device": self.usage.device,
                "cost_usd": self.cost.cost_usd,
                "api_shadow_cost_usd": self.cost.api_shadow_cost_usd,
            },
            "outcome": self.outcome,
            "suggestion": self.outcome
            == Outcome.SUGGESTED,  # the closest help-centre part, offered: "Did this answer it?"
            "grounding": self.grounding,
            "retrieved": list(self.retrieved),
        }


@dataclass(frozen=True)
class Turn:
    """One customer turn as it enters the engine: what they typed, said or showed."""

    text: str = ""
    audio: bytes | str | None = None  # a recording (bytes or a file path): its transcript is the question
    image: bytes | str | None = None  # a screenshot (bytes or a file path): its text joins the question
    conversation_id: str | None = None  # None starts a new conversation
    channel: str = "cli"  # where the turn came from: "cli", "web", "api"
    client: str = ""  # who sent it (the REST client's address): failed verifications are limited per client


@dataclass(frozen=True)
class Received:
    """The first event of a turn: the customer's message is stored, as the engine understood it."""

    conversation_id: str
    message_id: int
    question: str  # the text answered: typed, or the recording's transcript
    voice: bool  # the question came from a recording
    image: bool  # a screenshot came with it


@dataclass(frozen=True)
class Draft:
    """A raw piece of the LLM's answer, not yet checked: show it as a draft, never as the answer."""

    text: str


Event = Received | Draft | Reply


@dataclass(frozen=True)
class Settings:
    """What the engine needs beyond its parts; every default lives in `core.config`."""

    company: str  # the company's name, in the off-topic refusal and the prompt
    k: int  # passages put in the prompt
    context_turns: int  # earlier messages used to retrieve for a follow-up
    max_new_tokens: int  # the LLM's answer budget
    source_sentences: int  # most relevant sentences kept from each source in the prompt
    min_retrieval_cosine: float  # below: no_knowledge handoff, no LLM call
    off_topic_cosine: float  # below: polite off-topic refusal, no handoff
    direct_quote_cosine: float  # a source sentence this close to the question answers it verbatim
    evidence_answer_cosine: float  # when the LLM's answer fails the check, a source sentence this close answers
    quote_sentences: int  # a quoted answer: the closest source sentence and those right after it, this many in all
    clarify_vague: bool  # a vague first message gets a clarifying question instead of a guess or a handoff
    chunk_max_chars: int  # chunking of documents re-indexed through the engine
    chunk_overlap_chars: int
    # the trained answer / hand-over decision with the threshold `chatbot calibrate` stored in the index;
    # None (or no threshold): the cosine thresholds above decide
    answer_model: AnswerModel | None = None
    below_threshold: str = "suggest"  # under the trained decision's threshold: "suggest", "handoff" or "llm"
    suggest_windows: int = 3  # source windows a suggestion quotes, each from another passage
    suggest_sentences: int = 2  # sentences each of them quotes (an answer's quote: quote_sentences)
    reader: WindowReader | None = None  # picks a suggestion's windows (chatbot/answer/window_reader.py); None: the rule
    resolution_window_h: float = 24.0  # no word from the customer this long after an answer: resolved
    topic_distance: float = 0.45  # cosine distance under which two unanswered questions share a gap topic

    @property
    def ranker(self):
        """The window ranker calibration learned with the decision, or None (the fixed rule chooses)."""
        return self.answer_model.ranker if self.answer_model else None


@dataclass(frozen=True)
class _Understood:
    """A turn's text after speech and screenshot reading, and what reading them cost."""

    question: str
    image_text: str
    usage: Usage
    extra: dict  # stored with the customer's message: transcript, OCR text
