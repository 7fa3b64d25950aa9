"""Who may see and do what: one set of rules for the REST API and the operator panel alike.

- Every operator (agent or admin) works the queue: they see the conversations waiting for a person
  and those they hold themselves, claim, reply, resolve and save help-centre answers.
- An admin also sees every conversation, the analytics and people's cost, manages documents, and
  approves or removes help-centre answers (`chatbot.faq_review` holds the approval rule itself).

`NotSignedIn` carries the HTTP status: 401 without credentials, 403 for an agent where an admin is
needed or for a conversation they may not see. Knows nothing of how people sign in (`ui.guard`)
nor of how refusals are shown.
"""

from __future__ import annotations

from chatbot.handoff import HandoffState
from chatbot.pipeline import Pipeline
from core.errors import ChatbotError
from ui.guard import Operator, Operators


class NotSignedIn(ChatbotError):
    """No operator credentials (401, with the Basic challenge), or not allowed to this person (403)."""

    def __init__(self, message: str, status: int):
        self.status = status
        super().__init__(message)


def operator_named(operators: Operators, username: str | None) -> Operator:
    """The operator a signed-in session belongs to (the panel's Gradio username); 401 without one."""
    if not username:
        raise NotSignedIn("operator credentials required", 401)
    return operators.named(username)


def require_admin(who: Operator, what: str = "this") -> Operator:
    """`who` when they are an admin; `NotSignedIn` (403) otherwise, naming what needs one."""
    if not who.admin:
        raise NotSignedIn(f"an admin's credentials are required for {what}", 403)
    return who


def visible_ids(pipeline: Pipeline, who: Operator) -> set[str] | None:
    """The conversations `who` may see: None for an admin (all of them), else those waiting for a person
    and those `who` holds."""
    if who.admin:
        return None
    # the open handoffs as recorded: the queue's packets (a search each) are not needed to decide
    return {h.conversation_id for h in pipeline.store.live.open_handoffs() if h.agent in (None, who.name)}


def require_visible(pipeline: Pipeline, who: Operator, conversation_id: str) -> str:
    """`conversation_id` when `who` may see it; `NotSignedIn` (403) otherwise."""
    ids = visible_ids(pipeline, who)
    if ids is not None and conversation_id not in ids:
        raise NotSignedIn(
            "that conversation is neither waiting for a person nor yours; an admin sees every conversation", 403
        )
    return conversation_id


def require_claimable(pipeline: Pipeline, who: Operator, conversation_id: str) -> str:
    """`conversation_id` when `who` may claim it: an admin any conversation (to join it), an agent one in
    the queue (held by another person: the desk's `Conflict`, 409); `NotSignedIn` (403) otherwise."""
    pipeline.store.conversations.require_conversation(conversation_id)  # NotFound (404) for an unknown id
    if not who.admin and pipeline.handoff_state(conversation_id) not in (HandoffState.WAITING, HandoffState.AGENT):
        raise NotSignedIn("that conversation is not waiting for a person; an admin can join any conversation", 403)
    return conversation_id


def visible_queue(pipeline: Pipeline, who: Operator) -> list:
    """The people's queue as `who` may see it (`visible_ids`), oldest first."""
    return [e for e in pipeline.handoff_queue() if who.admin or e.agent in (None, who.name)]


def visible_conversations(pipeline: Pipeline, who: Operator) -> list[dict]:
    """The conversation list (`Pipeline.conversations`) as `who` may see it."""
    ids = visible_ids(pipeline, who)
    return [r for r in pipeline.conversations() if ids is None or r["id"] in ids]
