"""The conversation engine: question (+ history) -> retrieval -> prompt -> LLM -> checked answer.

One `Pipeline` wired through its constructor; it names no model and imports no torch. Its door is
`turn(Turn)`: a turn goes in (text, audio, image, conversation id, channel) and events come out:
`Received` (the stored message), `Draft` pieces while the LLM writes, then the checked `Reply`.
Named verbs serve what adapters need besides. The customer's message is stored before anything else
happens, so a failure later loses nothing. Each turn ends in one `Outcome`, among them:
- `customer_request`: the customer asked for a person: handoff, no LLM call;
- `off_topic`: nothing in the help centre is even close: a polite refusal, no handoff;
- `no_knowledge`: retrieval too weak to answer from: handoff, no LLM call;
- `unsupported_answer`: no sentence of the LLM's answer was supported by a source: the assistant
  says it is not certain, quotes the closest source sentence, and hands off;
- `answered`: the supported sentences, each citing its source; or, with no LLM call, the best
  evidence window (`chatbot.answer.quote`: a source sentence and those after it) verbatim, when the
  trained decision calibrated into the index (`chatbot calibrate`) says it answers, or, without one,
  when its first sentence is within `direct_quote_cosine` of the question. Under the decision's threshold
  `suggest_windows` windows (`chatbot.answer.window_reader`) are offered (`below_threshold = "suggest"`: "Did
  this answer your question?"), the turn is handed over with the quote (`"handoff"`) or the LLM tries (`"llm"`);
- `suggested`: that suggestion; "yes" confirms it, "no" or asking for a person hands over.

A voice question is transcribed and a screenshot read (OCR) first: the transcript becomes the question, the screenshot's text joins it for retrieval and the prompt, and both are stored with the customer's message and metered like the other stages.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from chatbot.answer.decision import clarifying_question, is_vague
from chatbot.answer.grounding import GroundingChecker
from chatbot.answer.window_ranker import choose
from chatbot.answer.window_reader import suggestion
from chatbot.answer.llm import ChatModel
from chatbot.answer.prompt import build_messages
from chatbot.inputs.understand import MAX_QUESTION_CHARS, clean_question, understand  # noqa: F401
from chatbot.answer.replies import ANSWERS, HANDOFF_REQUEST, MAX_QUOTE_CHARS, cite, confirms, declines  # noqa: F401
from chatbot.answer.replies import is_human_request, quotable, quoted  # noqa: F401
from chatbot.verbs import KnowledgeVerbs, OperatorVerbs
from chatbot.verdicts import Verdict, quoted_verdict, suggested_verdict, unsure_verdict
from chatbot.turns import Draft, Event, Handoff, Received, Reply, Settings, Turn, _Understood  # noqa: F401
from chatbot.handoff import WITH_AGENT
from chatbot.records.costs import PriceSheet, Usage
from chatbot.records.outcomes import Outcome
from chatbot.records.store import Store, StoredSource
from knowledge.types import Passage
from core.errors import ChatbotError

if TYPE_CHECKING:  # the seams' types only: importing them would load nothing heavy, but keeps this light
    from chatbot.actions.desk import ActionDesk, ActionStep
    from chatbot.actions.router import ActionRouter, Routing
    from chatbot.answer.quote import Window
    from chatbot.inputs.speech import SpeechToText
    from chatbot.inputs.vision import ImageReader
    from chatbot.records.store import Conversation
    from knowledge.index import KnowledgeIndex
    from knowledge.search import Searcher


class Pipeline(KnowledgeVerbs, OperatorVerbs):
    """The engine's one door: `turn()` takes a customer turn and yields its events; verbs do the rest.

    Adapters (CLI, REST, Gradio) only translate shapes: they call `turn()` / `ask()` and the verbs
    (`request_handoff`, `conversation`, `feedback`, `reindex`, `analytics`, ...) and never reach
    into the parts. Wired by `chatbot.builder.build_pipeline`; it names no model and imports no
    torch. It does not know how answers are shown, nor which adapter is calling.
    """

    def __init__(
        self,
        searcher: Searcher,
        index: KnowledgeIndex,
        llm: ChatModel,
        store: Store,
        checker: GroundingChecker,
        prices: PriceSheet,
        settings: Settings,
        speech: SpeechToText | None = None,
        vision: ImageReader | None = None,
    ):
        self.searcher = searcher
        self.index = index
        self.llm = llm
        self.store = store
        self.checker = checker
        self.prices = prices
        self.settings = settings
        self.speech = speech  # None when voice questions are off
        self.vision = vision  # None when screenshots are off
        self.actions: ActionDesk | None = None  # the company's actions (chatbot/actions/), wired by the builder
        self.router: ActionRouter | None = None
        self._reindex_lock = threading.Lock()  # one re-index at a time; turns go on meanwhile
        self.server_run: int | None = None  # the `chatbot serve` run answering here (its customer messages say so)

    # ---- the door --------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Open the database and load every model now, so the first customer does not wait."""
        self.store.engine  # noqa: B018 - opens the database (and fails fast on a bad URL) first
        self.llm.warm_up()
        self.searcher.warm_up()  # the embedder, and a trained reranker when one is on
        for part in (self.speech, self.vision):
            if part is not None:
                part.warm_up()

    def turn(self, turn: Turn) -> Iterator[Event]:
        """Answer one customer turn: `Received`, then `Draft` pieces (if the LLM runs), then the `Reply`.

        The customer's message is stored before anything else can fail, so nothing they sent is
        lost. Bad input raises `BadInput` before anything is stored; an unknown conversation
        `NotFound`; both carry a message safe to show the customer.
        """
        understood = understand(turn, self.speech, self.vision, self.llm.device)
        conversation_id = self._open_conversation(turn.conversation_id, turn.channel)
        message_id = self.store.conversations.add_message(
            conversation_id, "customer", understood.question, extra=understood.extra or None, server_run=self.server_run
        )
        yield Received(conversation_id, message_id, understood.question, turn.audio is not None, turn.image is not None)
        if self.desk.customer_wrote(conversation_id, message_id, understood.question):
            yield self._with_agent(conversation_id, message_id, understood)  # a person has it: the bot is silent
            return
        after_suggestion = self._after_suggestion(conversation_id, message_id, understood)
        if after_suggestion is not None:
            yield after_suggestion
            return
        step = self.actions.carry_on(conversation_id, understood.question, turn.client) if self.actions else None
        if step is not None:  # the answer to an action's question or confirmation
            yield self._finish_action(conversation_id, understood, step)
            return
        yield from self._answer(conversation_id, message_id, understood, turn.client)

    def ask(self, question: str | Turn, conversation_id: str | None = None, channel: str = "cli") -> Reply:
        """Run a turn to its end and return the `Reply` (a text question, or a whole `Turn`)."""
        turn = (
            question if isinstance(question, Turn) else Turn(question, conversation_id=conversation_id, channel=channel)
        )
        for event in self.turn(turn):
            if isinstance(event, Reply):
                return event
        raise AssertionError("a turn ended without a reply")

    # ---- verbs -----------------------------------------------------------------------------
    def request_handoff(self, conversation_id: str | None = None, channel: str = "cli") -> Reply:
        """The customer asked for a person (a button, not words): hand over, no LLM call; right after a
        suggestion, as `suggestion_declined`."""
        conversation_id = self._open_conversation(conversation_id, channel)
        message_id = self.store.conversations.add_message(
            conversation_id,
            "customer",
            HANDOFF_REQUEST,
            extra={"action": "request_handoff"},
            server_run=self.server_run,
        )
        usage = Usage(device=self.llm.device)
        if self.desk.state(conversation_id) == "agent":  # a person holds it already: the request goes to them
            return self._with_agent(
                conversation_id, message_id, _Understood(HANDOFF_REQUEST, "", usage, {"action": "request_handoff"})
            )
        declined = self._after_suggestion(conversation_id, message_id, _Understood(HANDOFF_REQUEST, "", usage, {}))
        if declined is not None:  # the button right after a suggestion: it did not answer the question
            return declined
        return self._finish(
            conversation_id, HANDOFF_REQUEST, Outcome.CUSTOMER_REQUEST, ANSWERS[Outcome.CUSTOMER_REQUEST], [], usage
        )

    def conversation(self, conversation_id: str) -> Conversation:
        """A stored conversation with its messages and sources; `NotFound` when unknown."""
        return self.store.conversations.conversation(conversation_id)

    def feedback(
        self, conversation_id: str, message_id: int | None, rating: int, comment: str | None = None
    ) -> Reply | None:
        """A thumbs up (1) or down (-1) on a reply of this conversation (`NotFound` for another's),
        with an optional comment; one rating per reply, a new one replaces the last. A thumbs down on the
        latest reply, when it was a suggestion, is a "no": the conversation is handed over (reason
        `suggestion_declined`) and that reply is returned; else None."""
        self.store.conversations.add_feedback(conversation_id, message_id, rating, comment)
        last = self.store.conversations.last_reply(conversation_id)
        if rating != -1 or last is None or last[0] != message_id or last[1] != Outcome.SUGGESTED:
            return None
        declined = Outcome.SUGGESTION_DECLINED
        return self._finish(conversation_id, "", declined, ANSWERS[declined], [], Usage(device=self.llm.device))

    def recover(self, stale_s: float = 180.0, at_start: bool = True) -> list[str]:
        """Hand over (`interrupted`) each conversation whose last customer message got no reply because its server's
        run stopped or was not seen for `stale_s` (a live replica's turn is left alone). `at_start` (not a heartbeat):
        first check the database takes writes (`ChatbotError` saying what to fix); also take messages no run took."""
        if at_start:
            self.store.check_writable()
        live_since = datetime.now(UTC) - timedelta(seconds=stale_s)
        found = []
        for conversation_id, message_id in self.store.conversations.interrupted(live_since, unowned=at_start):
            if self.store.conversations.flag_interrupted(conversation_id, message_id):  # else a replica was first
                self.desk.hand_over(conversation_id, message_id, Outcome.INTERRUPTED)
                found.append(conversation_id)
        return found

    def _with_agent(self, conversation_id: str, message_id: int, turn: _Understood) -> Reply:
        """The turn's reply while a person holds the conversation: nothing said, nothing metered."""
        return Reply(
            conversation_id=conversation_id,
            question=turn.question,
            answer="",
            sources=(),
            handoff=Handoff(True, WITH_AGENT),
            usage=turn.usage,
            cost=self.prices.price(turn.usage),
            outcome=WITH_AGENT,
            message_id=message_id,
        )  # no reply: the message is for the person

    # ---- the turn, step by step ------------------------------------------------------------
    def _open_conversation(self, conversation_id: str | None, channel: str) -> str:
        """The given conversation (`NotFound` when unknown), or a new one on `channel`."""
        if conversation_id:
            self.store.conversations.require_conversation(conversation_id)
            return conversation_id
        return self.store.conversations.new_conversation(channel)

    def _answer(
        self, conversation_id: str, message_id: int, turn: _Understood, client: str = ""
    ) -> Iterator[Draft | Reply]:
        """Route the stored question to its outcome: a person, an action, a refusal, a quote, or a checked answer."""
        if is_human_request(turn.question):
            answer = ANSWERS[Outcome.CUSTOMER_REQUEST]
            yield self._finish(conversation_id, turn.question, Outcome.CUSTOMER_REQUEST, answer, [], turn.usage)
            return
        query = f"{turn.question}\n{turn.image_text}" if turn.image_text else turn.question
        earlier = self.store.conversations.history(conversation_id, self.settings.context_turns, message_id)
        history = [text for _, text in earlier]
        passages, usage = self._retrieve(history, query, turn.usage)
        routed = self._routed(turn.question, passages)
        if routed is not None and self.actions is not None:  # the customer asks for something done, not explained
            step = self.actions.start(conversation_id, routed.action, turn.question, client)
            yield self._finish_action(conversation_id, replace(turn, usage=usage), step, routed)
            return
        unanswerable = self._without_evidence(turn, history, passages)
        if unanswerable is not None:
            outcome, answer = unanswerable
            yield self._finish(conversation_id, turn.question, outcome, answer, [], usage, retrieved=passages)
            return
        started = time.perf_counter()
        windows = self.checker.evidence(query, passages, self.settings.quote_sentences, MAX_QUOTE_CHARS)
        quote = choose(windows, self.settings.ranker)
        verdict = self._from_evidence(quote, query, passages, windows)  # a suggestion's reader included
        usage = replace(usage, retrieval_s=usage.retrieval_s + time.perf_counter() - started)  # part of finding it
        if verdict is not None:
            yield self._finish_verdict(conversation_id, turn.question, verdict, usage, passages)
            return
        yield from self._generate_and_check(conversation_id, turn, query, passages, quote, usage)

    def _without_evidence(
        self, turn: _Understood, history: list[str], passages: list[Passage]
    ) -> tuple[Outcome, str] | None:
        """The outcome and reply of a turn the help centre cannot answer as asked: a clarifying question for
        a vague first message, a refusal far off topic, a handoff when nothing is close enough; else None."""
        s = self.settings
        best_cosine = max((p.dense_cosine for p in passages), default=-1.0)
        vague = s.clarify_vague and not turn.image_text and is_vague(turn.question, history)
        if best_cosine >= s.off_topic_cosine and vague:
            return Outcome.CLARIFY, clarifying_question([p.chunk.title for p in passages])
        if best_cosine < s.min_retrieval_cosine:
            outcome = Outcome.OFF_TOPIC if best_cosine < s.off_topic_cosine else Outcome.NO_KNOWLEDGE
            return outcome, ANSWERS[outcome].format(company=s.company)
        return None

    def _routed(self, question: str, passages: list[Passage]) -> Routing | None:
        """The action the question asks for, when the router (and an admin's switches) let it run."""
        if self.actions is None or self.router is None:
            return None
        help_cosine = max((p.dense_cosine for p in passages), default=-1.0)
        routed = self.router.route(question, help_cosine)
        return (
            routed if routed is not None and routed.action in self.actions.enabled() else None
        )  # switches: asked only then

    def _finish_action(
        self, conversation_id: str, turn: _Understood, step: ActionStep, routed: Routing | None = None
    ) -> Reply:
        """`_finish` for an action's step: its time metered, its reply redacted when stored."""
        grounding = step.grounding
        if routed is not None:
            grounding = {**grounding, "routing": {"cosine": round(routed.cosine, 4), "margin": round(routed.margin, 4)}}
        usage = replace(turn.usage, action_s=turn.usage.action_s + step.action_s)
        return self._finish(
            conversation_id, turn.question, step.outcome, step.answer, [], usage, grounding, personal=True
        )

    def _from_evidence(
        self, quote: Window | None, query: str, passages: list[Passage], windows: Sequence[Window] = ()
    ) -> Verdict | None:
        """What the best evidence window decides without the LLM: the trained decision (calibrated on a dev split)
        answers with the quote, or suggests or hands over below it; else a close quote answers. None: the LLM tries."""
        s, model = self.settings, self.settings.answer_model
        if model is None or model.threshold is None:
            if quotable(quote, query, s.direct_quote_cosine):  # one source sentence answers closely: no LLM call
                return quoted_verdict(quote, passages, {"direct_quote": True, "quote_cosine": round(quote.cosine, 4)})
            return None
        probability = model.probability(quote) if quote else 0.0
        decided = {
            "decision": float(f"{probability:.4g}"),
            "threshold": model.threshold,
            "quote_cosine": round(quote.cosine, 4) if quote else None,
        }
        if quote is not None and probability >= model.threshold:
            return quoted_verdict(quote, passages, {"direct_quote": True, **decided})
        if s.below_threshold == "suggest" and quote is not None:  # shown as what it is; the customer decides
            if s.suggest_sentences != s.quote_sentences:  # shorter windows, from more places
                windows = self.checker.evidence(query, passages, s.suggest_sentences, MAX_QUOTE_CHARS)
                quote = choose(windows, s.ranker) or quote
            shown = suggestion(windows, quote, s.suggest_windows, s.ranker, s.reader, query, passages)
            return suggested_verdict(shown, passages, decided)
        if s.below_threshold in ("handoff", "suggest"):  # below it the LLM's checked answers were wrong on dev
            return unsure_verdict(Outcome.UNSUPPORTED_ANSWER, quote, passages, decided)
        return None

    def _after_suggestion(self, conversation_id: str, message_id: int, turn: _Understood) -> Reply | None:
        """The customer's answer to "Did this answer your question?": yes confirms the suggestion (rated up),
        no (or asking for a person) hands over with reason `suggestion_declined` (rated down); anything
        else is a new question (None)."""
        last = self.store.conversations.last_reply(conversation_id, message_id)
        if last is None or last[1] != Outcome.SUGGESTED:
            return None
        if confirms(turn.question):
            self.store.conversations.add_feedback(conversation_id, last[0], 1, None)
            outcome = Outcome.CONFIRMED
        elif declines(turn.question):
            self.store.conversations.add_feedback(conversation_id, last[0], -1, None)
            outcome = Outcome.SUGGESTION_DECLINED
        else:
            return None
        return self._finish(conversation_id, turn.question, outcome, ANSWERS[outcome], [], turn.usage)

    def _retrieve(self, history: list[str], query: str, usage: Usage) -> tuple[list[Passage], Usage]:
        """The passages for the query, read with the conversation's earlier turns; metered."""
        started = time.perf_counter()
        passages = self.searcher.search(query, k=self.settings.k, context=history)
        return passages, replace(usage, retrieval_s=usage.retrieval_s + time.perf_counter() - started)

    def _generate_and_check(
        self,
        conversation_id: str,
        turn: _Understood,
        query: str,
        passages: list[Passage],
        quote: Window | None,
        usage: Usage,
    ) -> Iterator[Draft | Reply]:
        """Stream the LLM's draft, then keep only the sentences the sources support."""
        s = self.settings
        messages = build_messages(turn.question, passages, s.company, s.source_sentences, turn.image_text)
        started = time.perf_counter()
        pieces: list[str] = []
        shared_s = None  # this reply's measured share of a batch decoded with concurrent replies
        try:
            for token in self.llm.stream(messages, s.max_new_tokens):
                if token.done:
                    usage = replace(usage, prompt_tokens=token.prompt_tokens, completion_tokens=token.completion_tokens)
                    shared_s = token.compute_s
                else:
                    pieces.append(token.text)
                    yield Draft(token.text)
        except ChatbotError as exc:  # the LLM (server) failed or is down: a person answers, not an error page
            failed, grounding = Outcome.LLM_UNAVAILABLE, {"llm_error": str(exc)[:300]}
            yield self._finish(conversation_id, turn.question, failed, ANSWERS[failed], [], usage, grounding, passages)
            return
        usage = replace(usage, llm_s=time.perf_counter() - started if shared_s is None else shared_s)
        raw = "".join(pieces).strip()
        result = self.checker.check(raw, passages, query)
        grounding = {
            "raw_answer": raw,
            "claims": result.claims,
            "supported": len(result.supported),
            "dropped": result.dropped,
            "quote_cosine": round(quote.cosine, 4) if quote else None,
        }
        # most claims invented: the surviving fragment is not a trustworthy answer on its own
        if result.supported and len(result.supported) >= result.dropped and not result.declined:
            answer, cited = cite(result, passages)
            yield self._finish(
                conversation_id, turn.question, Outcome.ANSWERED, answer, cited, usage, grounding, passages
            )
            return
        if quotable(quote, query, s.evidence_answer_cosine):
            # the model's words failed the check, but a source sentence answers the question: say that
            verdict = quoted_verdict(quote, passages, {**grounding, "evidence_answer": True})
        else:
            verdict = unsure_verdict(
                Outcome.NO_KNOWLEDGE if result.declined else Outcome.UNSUPPORTED_ANSWER, quote, passages, grounding
            )
        yield self._finish_verdict(conversation_id, turn.question, verdict, usage, passages)

    def _finish_verdict(
        self, conversation_id: str, question: str, verdict: Verdict, usage: Usage, retrieved: Sequence[Passage]
    ) -> Reply:
        """`_finish` for a decided verdict."""
        return self._finish(
            conversation_id,
            question,
            verdict.outcome,
            verdict.answer,
            verdict.cited,
            usage,
            verdict.grounding,
            retrieved,
        )

    def _finish(
        self,
        conversation_id: str,
        question: str,
        outcome: Outcome,
        answer: str,
        cited: list[Passage],
        usage: Usage,
        grounding: dict | None = None,
        retrieved: Sequence[Passage] = (),
        personal: bool = False,
    ) -> Reply:
        """Store the reply, its sources, what it cost and any handoff (together or not at all), tell the desk
        about a handoff; return the reply."""
        grounding = grounding or {}
        cost = self.prices.price(usage)
        message_id = self.store.conversations.record_reply(  # the reply and all about it, in one transaction
            conversation_id,
            answer,
            outcome,
            {"grounding": grounding} if grounding else None,
            [StoredSource(p.doc_id, p.chunk.title, p.chunk.url, p.score) for p in cited],
            usage,
            cost,
            personal,
        )
        if outcome.hands_over:
            self.desk.hand_over(conversation_id, message_id, outcome)
        return Reply(
            conversation_id=conversation_id,
            answer=answer,
            sources=tuple(p.source for p in cited),
            handoff=Handoff(outcome.hands_over, outcome if outcome.hands_over else None),
            usage=usage,
            cost=cost,
            outcome=outcome,
            message_id=message_id,
            question=question,
            grounding={k: v for k, v in grounding.items() if k != "raw_answer"},
            retrieved=tuple(dict.fromkeys(p.doc_id for p in retrieved)),
        )
