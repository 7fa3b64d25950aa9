"""The REST API beside the UI, for a website widget and integrations. A thin adapter.

- `POST /api/chat`: JSON `{"message", "conversation_id"?}` or a multipart form with the fields
  `message`, `conversation_id` and the files `audio`, `image`; returns the `chatbot ask --json` shape.
- `POST /api/feedback`: `{"conversation_id", "message_id"?, "rating": 1|-1, "comment"?}`.
- `GET /api/conversations/{id}`: that conversation's transcript. The id is a random 128-bit
  value handed only to the customer who started the conversation: it is their key to it.
- `GET /api/analytics`: totals and per-day trends, for operators only (HTTP Basic or Bearer
  with the operator password; 401 without).
Customer-safe errors become 400 (bad input) or 404 (unknown conversation) with `{"error": ...}`.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from chatbot.pipeline import Pipeline, Turn
from core.errors import BadInput, ChatbotError, NotFound

MAX_UPLOAD_BYTES = 25 * 1024 * 1024


def operator_ok(request: Request, user: str, password: str) -> bool:
    """True for HTTP Basic `user:password` or `Bearer password`; never without a password set."""
    if not password:
        return False
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return hmac.compare_digest(value.strip().encode(), password.encode())
    if scheme.lower() == "basic":
        try:
            given_user, _, given_password = base64.b64decode(value).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return hmac.compare_digest(given_user.encode(), user.encode()) and \
            hmac.compare_digest(given_password.encode(), password.encode())
    return False


def _error(exc: ChatbotError) -> JSONResponse:
    status = 404 if isinstance(exc, NotFound) else 400
    return JSONResponse({"error": str(exc)}, status_code=status)


def conversation_json(pipeline: Pipeline, conversation_id: str) -> dict:
    conv = pipeline.conversation(conversation_id)
    return {
        "conversation_id": conv.id, "created_at": conv.created_at.isoformat(),
        "handoff": {"needed": conv.handoff_needed, "reason": conv.handoff_reason},
        "messages": [{
            "id": m.id, "role": m.role, "content": m.content, "created_at": m.created_at.isoformat(),
            "outcome": m.outcome,
            "sources": [{"doc_id": s.doc_id, "title": s.title, "url": s.url} for s in m.sources],
            **({"transcript": m.extra["transcript"]["text"]} if "transcript" in m.extra else {}),
        } for m in conv.messages],
    }


def build_router(pipeline: Pipeline, operator_user: str, operator_password: Callable[[], str]) -> APIRouter:
    router = APIRouter(prefix="/api")

    @router.post("/chat")
    async def chat(request: Request):
        content_type = request.headers.get("content-type", "")
        audio = image = None
        try:
            if content_type.startswith("application/json"):
                try:
                    body = await request.json()
                except ValueError:
                    raise BadInput("the request body is not valid JSON") from None
                if not isinstance(body, dict):
                    raise BadInput('send a JSON object: {"message": "...", "conversation_id": "..."}')
                message, conversation_id = body.get("message"), body.get("conversation_id")
            elif content_type.startswith("multipart/form-data"):
                form = await request.form()
                message, conversation_id = form.get("message") or "", form.get("conversation_id") or None
                audio = await _upload(form.get("audio"), "audio")
                image = await _upload(form.get("image"), "image")
            else:
                raise BadInput("send JSON (application/json) or a multipart form")
            if message is not None and not isinstance(message, str):
                raise BadInput("message must be text")
            if conversation_id is not None and not isinstance(conversation_id, str):
                raise BadInput("conversation_id must be text")
            if not message and audio is None and image is None:
                raise BadInput("the message is empty; type a question")
            from starlette.concurrency import run_in_threadpool

            turn = Turn(message or "", audio=audio, image=image, conversation_id=conversation_id, channel="api")
            reply = await run_in_threadpool(pipeline.ask, turn)
        except ChatbotError as exc:
            return _error(exc)
        return {**reply.to_json(), "message_id": reply.message_id}

    @router.post("/feedback")
    async def post_feedback(request: Request):
        try:
            try:
                body = await request.json()
            except ValueError:
                raise BadInput("the request body is not valid JSON") from None
            rating = body.get("rating") if isinstance(body, dict) else None
            if rating not in (1, -1) or not isinstance(body.get("conversation_id"), str):
                raise BadInput('send {"conversation_id": "...", "rating": 1 or -1}')
            pipeline.feedback(body["conversation_id"], body.get("message_id"), rating, body.get("comment"))
        except ChatbotError as exc:
            return _error(exc)
        return {"ok": True}

    @router.get("/conversations/{conversation_id}")
    def get_conversation(conversation_id: str):
        try:
            return conversation_json(pipeline, conversation_id)
        except ChatbotError as exc:
            return _error(exc)

    @router.get("/analytics")
    def analytics(request: Request, days: int = 30):
        if not operator_ok(request, operator_user, operator_password()):
            return JSONResponse({"error": "operator credentials required"}, status_code=401,
                                headers={"WWW-Authenticate": 'Basic realm="chatbot operators"'})
        return pipeline.analytics(days)

    return router


async def _upload(value, kind: str) -> bytes | None:
    if value is None or isinstance(value, str):
        return None
    data = await value.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise BadInput(f"the {kind} file is over {MAX_UPLOAD_BYTES // 2**20} MB")
    return data or None
