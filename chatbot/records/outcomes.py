"""The ways a turn can end, named once: the engine decides them, the store and analytics count them.

A `StrEnum`, so a member is stored and serialised as its plain name ("answered", ...): the
`--json` and REST shapes and the rows already in a database are unchanged.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    ANSWERED = "answered"  # supported sentences citing their sources, or a quoted source sentence
    CLARIFY = "clarify"  # too vague to answer: one clarifying question, no handoff
    OFF_TOPIC = "off_topic"  # nothing in the help centre is even close: a polite refusal, no handoff
    NO_KNOWLEDGE = "no_knowledge"  # retrieval too weak, or the model declined: handoff
    UNSUPPORTED_ANSWER = "unsupported_answer"  # no claim survived the grounding check: handoff
    CUSTOMER_REQUEST = "customer_request"  # the customer asked for a person: handoff
    INTERRUPTED = "interrupted"  # the server stopped before replying (found at its next start): handoff
    WITH_AGENT = "with_agent"  # a person holds the conversation: the message goes to them, the bot is silent
    SUGGESTED = "suggested"  # below the decision's threshold: the closest window shown, "Did this answer it?"
    CONFIRMED = "confirmed"  # the customer said the suggestion (or answer) before answered their question
    SUGGESTION_DECLINED = "suggestion_declined"  # the customer said it did not: handoff
    LLM_UNAVAILABLE = "llm_unavailable"  # the LLM (server) failed or was down mid-turn: handoff, not an error
    # actions in the company's systems (chatbot/actions/)
    ACTION_ASK = "action_ask"  # a value the action needs (or the customer's verification) asked for
    ACTION_CONFIRM = "action_confirm"  # a write repeated back: "Cancel order ...? yes / no"
    ACTION_DONE = "action_done"  # the system did it (or answered); the reply is written from its JSON: resolved
    ACTION_REFUSED = "action_refused"  # the system said no (e.g. already shipped): its reason, a person offered
    ACTION_CANCELLED = "action_cancelled"  # the customer said no to the confirmation: nothing changed
    ACTION_FAILED = "action_failed"  # the system failed, or verification failed too often: handoff with the packet

    @property
    def hands_over(self) -> bool:
        """True when a person must take the conversation over."""
        return self in HANDOFF_OUTCOMES

    @property
    def unanswered(self) -> bool:
        """True when the customer's question got no answer from the help centre."""
        return self in (
            Outcome.OFF_TOPIC,
            Outcome.NO_KNOWLEDGE,
            Outcome.UNSUPPORTED_ANSWER,
            Outcome.SUGGESTION_DECLINED,
        )


HANDOFF_OUTCOMES = frozenset(
    {
        Outcome.NO_KNOWLEDGE,
        Outcome.UNSUPPORTED_ANSWER,
        Outcome.CUSTOMER_REQUEST,
        Outcome.INTERRUPTED,
        Outcome.SUGGESTION_DECLINED,
        Outcome.ACTION_FAILED,
        Outcome.LLM_UNAVAILABLE,
    }
)
ACTION_OUTCOMES = frozenset(o for o in Outcome if o.value.startswith("action_"))
