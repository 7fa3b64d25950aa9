"""The REST API beside the UI, for a website widget and integrations. A thin adapter.

- `POST /api/chat`: JSON `{"message", "conversation_id"?}` or a multipart form with the fields
  `message`, `conversation_id` and the files `audio`, `image`; returns the `chatbot ask --json` shape.
- `POST /api/feedback`: `{"conversation_id", "message_id"?, "rating": 1|-1, "comment"?}` -> `{"ok"}`; a thumbs
  down on the latest reply when it was a suggestion hands over and adds `"reply"` (the `ask` shape).
- `GET /api/conversations/{id}`: that conversation's transcript. The id is a random 128-bit
  value handed only to the customer who started the conversation: it is their key to it.
- `GET /api/analytics`: totals and per-day trends, for operators only (HTTP Basic or Bearer
  with the operator password; 401 without).
- Live handoff, for operators (HTTP Basic `user:password` of a named operator, or as above; 401
  without): `GET /api/handoffs` (the queue, oldest first, with handoff packets), `POST
  /api/conversations/{id}/claim` (with the copilot's `draft` and `summary`), `.../reply` `{"text",
  "draft_used"?}`, `.../resolve` `{"return_to_bot"}` (409
  when another person holds it), `GET /api/knowledge/gaps` (unanswered questions as topics). An agent
  sees and claims the conversations waiting for a person and those they hold; an admin, all
  (`ui.access`). While a person holds a conversation, `POST /api/chat` stores the message and
  answers `"outcome": "with_agent"` with an empty `answer`.
- Help-centre answers (`chatbot.faq_review`): `POST /api/knowledge/faq` `{"question", "answer",
  "conversation_id"?}` -> `{"doc_id", "status": "live"|"pending", "live", "personal_data"}` (redacted;
  an agent's waits for review), `GET /api/knowledge/faq` (`{"entries": [...]}`), `GET
  /api/knowledge/faq/{doc_id}/history`, `POST /api/knowledge/faq/{doc_id}/approve` and `.../remove`
  (403 when the review rule does not let this person, 400 while it holds redacted personal data).
- Actions (`chatbot.actions`), for admins: `GET /api/actions` (each with its runs, success rate, share
  resolved, latency), `POST /api/actions/{name}` `{"enabled": false}` switches one off.
- State-changing calls (POST) take JSON only (415 otherwise; `/api/chat` also takes its multipart
  form), and a request from a page on another site (its `Origin`) is refused with 403 unless that
  origin is in `[server] cors_origins` (`ui.guard.SameSite`).
Every body is validated by a request model (`ChatRequest`, `FeedbackRequest`); every error is one
line in `{"error": ...}`: 400 bad input, 401 operator credentials, 404 unknown conversation or
reply, 403 not allowed, 409 conflict, 413 body too large, 415 not JSON, 429 too many requests (with `Retry-After`), 503 database unavailable.
Never a 500 for anything a client sends.
"""

from __future__ import annotations

import base64
import re
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from chatbot.handoff import HandoffState
from chatbot.pipeline import Pipeline, Turn
from chatbot.faq import MAX_ANSWER_CHARS as MAX_FAQ_ANSWER_CHARS, MAX_QUESTION_CHARS as MAX_FAQ_QUESTION_CHARS
from chatbot.records.store import MAX_COMMENT_CHARS, MAX_MESSAGE_CHARS, Conflict, StoreUnavailable
from core.errors import BadInput, Busy, ChatbotError, Forbidden, NotFound
from ui.shapes import action_json, change_json, conversation_json, faq_json
from ui.access import NotSignedIn, require_admin, require_claimable, visible_queue
from ui.guard import LoginGuard, Operator, Operators, RateLimited, RateLimiter, client_key

MAX_UPLOAD_BYTES = 8 * 1024 * 1024  # default; `[server] max_upload_mb` sets it
MAX_JSON_BYTES = 64 * 1024  # a JSON body: a question, a rating
CONVERSATION_ID = r"^[0-9A-Za-z_-]{1,64}$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ChatRequest(_Body):
    """`POST /api/chat`: a question, in a new conversation or in the customer's own."""

    message: str | None = Field(None, max_length=MAX_MESSAGE_CHARS)  # the engine refuses > 2,000 with a hint
    conversation_id: str | None = Field(None, pattern=CONVERSATION_ID)  # None starts a new conversation


class AgentReplyRequest(_Body):
    """`POST /api/conversations/{id}/reply`: a person's message to the customer."""

    text: str = Field(max_length=MAX_MESSAGE_CHARS)
    draft_used: Literal["unchanged", "edited", "discarded"] | None = None  # the copilot's draft: kept, edited, not


class ResolveRequest(_Body):
    """`POST /api/conversations/{id}/resolve`: close a person's handoff; the bot answers again if true."""

    return_to_bot: bool = True


class FaqRequest(_Body):
    """`POST /api/knowledge/faq`: a help-centre entry, live at once or waiting for review (`chatbot.faq_review`)."""

    question: str = Field(max_length=MAX_FAQ_QUESTION_CHARS)
    answer: str = Field(max_length=MAX_FAQ_ANSWER_CHARS)
    conversation_id: str | None = Field(None, pattern=CONVERSATION_ID)  # the conversation it came from


class ActionSwitchRequest(_Body):
    enabled: bool


class FeedbackRequest(_Body):
    """`POST /api/feedback`: a thumbs up (1) or down (-1) on one reply of the customer's conversation."""

    conversation_id: str = Field(pattern=CONVERSATION_ID)
    message_id: int | None = Field(None, ge=1, le=2**63 - 1)  # the reply rated; None rates the conversation
    rating: Literal[1, -1]
    comment: str | None = Field(None, max_length=MAX_COMMENT_CHARS)

    @field_validator("rating", mode="before")
    @classmethod
    def _not_a_bool(cls, value):
        if isinstance(value, bool):  # True == 1 in Python; `true` is not a rating
            raise PydanticCustomError("literal_error", "must be 1 or -1")
        return value


_PROBLEMS = {
    "string_type": "must be text",
    "int_type": "must be a whole number",
    "missing": "is required",
    "literal_error": "must be 1 or -1",
    "string_pattern_mismatch": "is not a valid id",
    "greater_than_equal": "is too small",
    "less_than_equal": "is too large",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "bool_type": "must be true or false",
}


def problem(exc: ValidationError | RequestValidationError, example: str = "") -> str:
    """A validation error as one line a customer can act on."""
    error = exc.errors()[0]
    kind, name = error["type"], ".".join(str(p) for p in error["loc"] if p not in ("body", "query"))
    if kind == "json_invalid":
        return "the request body is not valid JSON"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"send a JSON object: {example}" if example else "send a JSON object"
    if kind == "extra_forbidden":
        return f"unknown field '{name}'" + (f"; send {example}" if example else "")
    if kind == "string_too_long":
        return f"{name} is longer than {error.get('ctx', {}).get('max_length')} characters"
    if kind in ("greater_than_equal", "less_than_equal"):
        bound = error.get("ctx", {})
        return (
            f"{name} must be at least {bound['ge']}" if "ge" in bound else f"{name} must be at most {bound.get('le')}"
        )
    return f"{name} {_PROBLEMS.get(kind, 'is not valid')}"


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's validation errors (query parameters) as 400 with one line, like the rest of the API."""
    return JSONResponse({"error": problem(exc)}, status_code=400)


async def chatbot_error(request: Request, exc: ChatbotError) -> JSONResponse:
    """A route's `ChatbotError` as `{"error"}` with its status (`_error`): the routes raise, the app maps."""
    return _error(exc)


def _error(exc: ChatbotError) -> JSONResponse:
    if isinstance(exc, Forbidden):
        return JSONResponse({"error": str(exc)}, status_code=403)
    if isinstance(exc, NotSignedIn):
        challenge = {"WWW-Authenticate": 'Basic realm="chatbot operators"'} if exc.status == 401 else {}
        return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=challenge)
    if isinstance(exc, RateLimited):
        return JSONResponse({"error": str(exc)}, status_code=429, headers={"Retry-After": str(exc.retry_after_s)})
    if isinstance(exc, Busy):  # the model's queue is full: come back soon
        return JSONResponse({"error": str(exc)}, status_code=503, headers={"Retry-After": str(exc.retry_after_s)})
    if isinstance(exc, Conflict):  # another person holds the conversation, or it is not claimed
        return JSONResponse({"error": str(exc)}, status_code=409)
    status = 404 if isinstance(exc, NotFound) else 503 if isinstance(exc, StoreUnavailable) else 400
    return JSONResponse({"error": str(exc)}, status_code=status)


async def _json_body(request: Request, model: type[_Body], example: str) -> _Body:
    """The request body validated by `model` (pydantic's JSON parser: no recursion limit to hit)."""
    raw = await request.body()
    if len(raw) > MAX_JSON_BYTES:
        raise BadInput(f"the request body is over {MAX_JSON_BYTES // 1024} KB")
    try:
        return model.model_validate_json(raw or b"null")
    except ValidationError as exc:
        raise BadInput(problem(exc, example)) from None


class OperatorAuth:
    """Operator sign-in as FastAPI dependencies, parsed once per request: `operator` (any signed-in
    person, 401 otherwise) and `admin` (403 for an agent). HTTP Basic `user:password` of a named
    operator, or `Bearer PASSWORD` (the operator user); roles come from `ui.guard.Operators` alone,
    and wrong passwords lock the client's address out (`LoginGuard`)."""

    def __init__(self, operators: Operators, logins: LoginGuard):
        self.operators = operators
        self.logins = logins

    def operator(self, request: Request) -> Operator:
        key = client_key(request)
        self.logins.check(key)
        who = operator_from(request, self.operators)
        if who is None:
            if request.headers.get("authorization"):
                self.logins.failed(key)
            raise NotSignedIn("operator credentials required", 401)
        self.logins.succeeded(key)
        return who

    def admin(self, request: Request) -> Operator:
        return require_admin(self.operator(request), "this call")


def build_router(
    pipeline: Pipeline,
    operators: Operators,
    limiter: RateLimiter | None = None,
    logins: LoginGuard | None = None,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
) -> APIRouter:
    """The routes under /api; `limiter` counts chat turns and ratings per client, `logins` locks out wrong
    passwords, `operators` signs in named operators with their roles."""
    router = APIRouter(prefix="/api")
    auth = OperatorAuth(operators, logins or LoginGuard(5, 60.0))
    router.include_router(customer_routes(pipeline, limiter or RateLimiter(30), max_upload_bytes))
    router.include_router(handoff_routes(pipeline, auth))
    router.include_router(knowledge_routes(pipeline, auth))
    router.include_router(action_routes(pipeline, auth))
    return router


def action_routes(pipeline: Pipeline, auth: OperatorAuth) -> APIRouter:
    """The company's actions with their runs, and the admin's switch (`chatbot.actions`)."""
    router = APIRouter(prefix="/actions")
    admin = Depends(auth.admin)

    @router.get("")
    def actions(who: Operator = admin):
        """Each action: risk, on or off, runs, success rate, share resolved, latency."""
        return {"actions": [action_json(*row) for row in pipeline.action_list()]}

    @router.post("/{name}", openapi_extra=_schema(ActionSwitchRequest))
    async def switch_action(name: str, request: Request, who: Operator = admin):
        """Turn an action off (or on again) for every conversation from now on."""
        body = await _json_body(request, ActionSwitchRequest, '{"enabled": false}')
        pipeline.switch_action(name, body.enabled, who.name)
        return {"name": name, "enabled": body.enabled}

    return router


def customer_routes(pipeline: Pipeline, limiter: RateLimiter, max_upload_bytes: int) -> APIRouter:
    """What a customer's browser or widget calls: chat, feedback, their own conversation."""
    router = APIRouter()
    chat_example, feedback_example = (
        '{"message": "...", "conversation_id": "..."}',
        '{"conversation_id": "...", "message_id": 7, "rating": 1 or -1, "comment": "..."}',
    )

    @router.post("/chat", openapi_extra=_schema(ChatRequest))
    async def chat(request: Request):
        body, audio, image = await _chat_body(request, chat_example, max_upload_bytes)
        if not body.message and audio is None and image is None:
            raise BadInput("the message is empty; type a question")
        client = client_key(request)
        limiter.hit(client)
        turn = Turn(
            body.message or "",
            audio=audio,
            image=image,
            conversation_id=body.conversation_id,
            channel="api",
            client=client,
        )
        reply = await run_in_threadpool(pipeline.ask, turn)
        return {**reply.to_json(), "message_id": reply.message_id}

    @router.post("/feedback", openapi_extra=_schema(FeedbackRequest))
    async def post_feedback(request: Request):
        body = await _json_body(request, FeedbackRequest, feedback_example)
        limiter.hit(client_key(request), "ratings")
        handed_over = pipeline.feedback(body.conversation_id, body.message_id, body.rating, body.comment)
        if handed_over is None:
            return {"ok": True}
        return {"ok": True, "reply": {**handed_over.to_json(), "message_id": handed_over.message_id}}

    @router.get("/conversations/{conversation_id}")
    def get_conversation(conversation_id: str):
        return conversation_json(pipeline, conversation_id)

    return router


def handoff_routes(pipeline: Pipeline, auth: OperatorAuth) -> APIRouter:
    """The people's side: analytics (admins), the queue, claim, reply, resolve (`ui.access` rules)."""
    router = APIRouter()
    operator, admin = Depends(auth.operator), Depends(auth.admin)

    @router.get("/analytics")
    def analytics(who: Operator = admin, days: int = Query(30, ge=1, le=366)):
        return pipeline.analytics(days)

    @router.get("/handoffs")
    def handoffs(who: Operator = operator):
        """The people's queue as this person may see it, oldest first, with the handoff packets."""
        return {"handoffs": [entry.to_json() for entry in visible_queue(pipeline, who)]}

    @router.post("/conversations/{conversation_id}/claim")
    def claim(conversation_id: str, who: Operator = operator):
        pipeline.claim(require_claimable(pipeline, who, conversation_id_ok(conversation_id)), who.name)
        assist = pipeline.assist(conversation_id, wait=True)  # the copilot's draft and summary, for the person
        return {"conversation_id": conversation_id, "state": HandoffState.AGENT, "agent": who.name, **assist}

    @router.post("/conversations/{conversation_id}/reply", openapi_extra=_schema(AgentReplyRequest))
    async def agent_reply(conversation_id: str, request: Request, who: Operator = operator):
        body = await _json_body(request, AgentReplyRequest, '{"text": "..."}')
        message_id = pipeline.agent_reply(conversation_id_ok(conversation_id), who.name, body.text, body.draft_used)
        return {"conversation_id": conversation_id, "message_id": message_id}

    @router.post("/conversations/{conversation_id}/resolve", openapi_extra=_schema(ResolveRequest))
    async def resolve(conversation_id: str, request: Request, who: Operator = operator):
        body = await _json_body(request, ResolveRequest, '{"return_to_bot": true}')
        return pipeline.resolve(conversation_id_ok(conversation_id), who.name, body.return_to_bot, override=who.admin)

    return router


def knowledge_routes(pipeline: Pipeline, auth: OperatorAuth) -> APIRouter:
    """Help-centre answers people save (reviewed: `chatbot.faq_review`) and the knowledge gaps."""
    router = APIRouter(prefix="/knowledge")
    operator = Depends(auth.operator)

    @router.post("/faq", openapi_extra=_schema(FaqRequest))
    async def save_faq(request: Request, who: Operator = operator):
        """A help-centre entry (question and answer), redacted; live at once or waiting for review."""
        body = await _json_body(request, FaqRequest, '{"question": "...", "answer": "..."}')
        saved = await run_in_threadpool(
            pipeline.save_faq, body.question, body.answer, who.name, body.conversation_id, who.admin
        )
        return saved.to_json()

    @router.get("/faq")
    def faq_entries(who: Operator = operator):
        """Every help-centre answer people saved, with its status (live, pending, removed)."""
        return {"entries": [faq_json(e) for e in pipeline.faq.entries()]}

    @router.get("/faq/{doc_id}/history")
    def faq_history(doc_id: str, who: Operator = operator):
        """Who saved, edited, approved and removed the entry, and when, oldest first."""
        return {"doc_id": doc_id, "history": [change_json(c) for c in pipeline.faq.history(doc_id_ok(doc_id))]}

    @router.post("/faq/{doc_id}/approve")
    async def approve_faq(doc_id: str, who: Operator = operator):
        """Publish a waiting entry (who may: `[handoff] faq_review`); it is indexed and cited from then on."""
        return faq_json(await run_in_threadpool(pipeline.faq.approve, doc_id_ok(doc_id), who.name, who.admin))

    @router.post("/faq/{doc_id}/remove")
    async def remove_faq(doc_id: str, who: Operator = operator):
        """Take an entry out of the help centre and the index (an admin, or the author of a waiting one)."""
        return faq_json(await run_in_threadpool(pipeline.faq.remove, doc_id_ok(doc_id), who.name, who.admin))

    @router.get("/gaps")
    def gaps(who: Operator = operator):
        """Unanswered and handed-over questions as topics, largest first, with the answers saved for them."""
        return {"topics": [t.to_json() for t in pipeline.gap_topics()]}

    return router


async def _chat_body(request: Request, example: str, max_upload_bytes: int):
    """`POST /api/chat`'s body: JSON, or a multipart form with a recording and a screenshot."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        return await _json_body(request, ChatRequest, example), None, None
    if not content_type.startswith("multipart/form-data"):
        raise BadInput("send JSON (application/json) or a multipart form")
    form = await _form(request)
    fields = {k: form.get(k) or None for k in ("message", "conversation_id")}
    try:
        body = ChatRequest.model_validate(fields)
    except ValidationError as exc:
        raise BadInput(problem(exc)) from None
    return (
        body,
        await _upload(form.get("audio"), "audio", max_upload_bytes),
        await _upload(form.get("image"), "image", max_upload_bytes),
    )


def conversation_id_ok(conversation_id: str) -> str:
    if not re.fullmatch(CONVERSATION_ID, conversation_id):
        raise BadInput("the conversation id is not valid")
    return conversation_id


def doc_id_ok(doc_id: str) -> str:
    if not re.fullmatch(r"FAQ-[0-9a-f]{10}", doc_id):
        raise BadInput("not a help-centre answer's id; they look like FAQ-0123456789")
    return doc_id


def operator_from(request: Request, operators: Operators) -> Operator | None:
    """The operator named by HTTP Basic `user:password`, or `Bearer PASSWORD` (the operator user); None."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return operators.bearer(value.strip())
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return operators.check(user, password)
    return None


def _schema(model: type[BaseModel]) -> dict:
    """The request model in the OpenAPI document (bodies are read by hand to answer in one line)."""
    return {"requestBody": {"content": {"application/json": {"schema": model.model_json_schema()}}}}


async def _form(request: Request):
    """The multipart form: the fields `message`, `conversation_id` and the files `audio`, `image`."""
    try:
        return await request.form(max_files=2, max_fields=4)
    except HTTPException as exc:  # Starlette's own refusal of a malformed or oversized form
        raise BadInput(f"the form cannot be read: {exc.detail}") from None


async def _upload(value, kind: str, max_bytes: int) -> bytes | None:
    if value is None or isinstance(value, str):
        return None
    data = await value.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise BadInput(
            f"the {kind} file is over {max_bytes / 2**20:g} MB; send a shorter recording or a smaller screenshot"
        )
    return data or None
