"""The web server: REST API at /api, operator panel at /operator, customer chat at /.

`create_app(pipeline, ...)` is what `chatbot serve` runs under uvicorn and what tests launch on
loopback. The operator password comes from $CHATBOT_OPERATOR_PASSWORD or [server]
operator_password (plain or a `python -m ui.guard` hash); without one the operator panel and
/api/analytics refuse everyone.

In front of strangers (`ui.guard`): chat turns, handoffs and ratings are limited per client
address (`[server] chat_requests_per_minute`, 429 beyond; the address is the TCP peer's unless
`[server] trusted_proxies` lists the proxy in front), wrong operator passwords lock the
address out, request bodies and uploads have a size limit (413), cross-origin calls are refused
unless the origin is in `[server] cors_origins` and state-changing REST calls take JSON only,
the panel's own routes answer only a signed-in session, session cookies are SameSite=Lax, and files
uploaded to the operator panel live in a folder the customer app does not serve. At start the
database must take writes, and conversations left unanswered by a crash are handed to a person.
"""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from http.cookies import CookieError, SimpleCookie
from pathlib import Path

import gradio as gr
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from gradio.utils import get_upload_folder
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Mount

from core.config import Config
from core.errors import ChatbotError
from chatbot.pipeline import Pipeline
from chatbot.builder import build_voice_out
from ui.api import MAX_JSON_BYTES, build_router, chatbot_error, invalid_request
from ui.guard import EdgeMiddleware, LoginGuard, Operators, SameSite
from ui.guard_redis import build_guards
from ui.panel_sessions import share as share_sessions
from ui.chat import CSS, build_chat
from ui.operator import build_operator

STALE_BEATS = 3  # a server run unseen for this many heartbeats died: its unanswered turns go to a person
WIDGET = """<!doctype html><html><head><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{company} help</title></head><body style="margin:0">
<iframe src="/" title="{company} help" style="border:0;width:100%;height:100vh" allow="microphone"></iframe>
</body></html>"""


def operator_password(config: Config) -> str:
    return os.environ.get("CHATBOT_OPERATOR_PASSWORD") or config.server.operator_password


@contextmanager
def _gradio_files_in(folder: Path):
    """Gradio reads GRADIO_TEMP_DIR when a Blocks and its app are made: the operator panel gets its own
    folder (inside the usual one, where Gradio's checks expect uploads) that the customer app blocks."""
    before = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = before


def panel_signed_in(gradio_app, scope: dict) -> bool:
    """True when the request carries a session cookie the operator panel's Gradio app signed in."""
    cookies = SimpleCookie()
    for name, value in scope.get("headers") or []:
        if name == b"cookie":
            try:
                cookies.load(value.decode("latin-1"))
            except CookieError:
                return False
    tokens = getattr(gradio_app, "tokens", {})
    return any(name.startswith("access-token") and morsel.value in tokens for name, morsel in cookies.items())


def uvicorn_options(config: Config) -> dict:
    """How uvicorn must read client addresses: from the TCP peer, unless `[server] trusted_proxies` names
    the reverse proxies whose `X-Forwarded-For` counts (uvicorn otherwise trusts it from loopback)."""
    proxies = list(config.server.trusted_proxies)
    return {"proxy_headers": bool(proxies), "forwarded_allow_ips": ",".join(proxies) or None}


def build_operators(config: Config) -> Operators:
    """Who may sign in to the panel and the operator API: `[server] operator_user` (an admin, password from
    $CHATBOT_OPERATOR_PASSWORD or the config) and each `[handoff.agents]` account with its role."""
    return Operators(
        config.server.operator_user,
        lambda: operator_password(config),
        {name: (a.password, a.role) for name, a in config.handoff.agents.items()},
    )


def create_app(pipeline: Pipeline, config: Config) -> FastAPI:
    """The whole server. Checks the database takes writes (`ChatbotError` otherwise) and hands
    conversations a crash left unanswered to a person, before anything is served."""
    server = config.server
    pipeline.recover(STALE_BEATS * server.heartbeat_s)
    app = FastAPI(title="chatbot", docs_url="/api/docs", openapi_url="/api/openapi.json")
    limiter, logins = build_guards(server)  # in Redis with [server] redis_url: the same on every replica
    max_upload = int(server.max_upload_mb * 2**20)
    operators = build_operators(config)
    app.include_router(build_router(pipeline, operators, limiter, logins, max_upload))
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(ChatbotError, chatbot_error)  # every /api route's errors: 400/401/403/404/409/429/503
    panel_app: list = []  # the operator panel's Gradio app, once mounted: it knows the signed-in sessions
    _guard(app, config, logins, max_upload, lambda scope: bool(panel_app) and panel_signed_in(panel_app[0], scope))

    @app.get("/widget", response_class=HTMLResponse)
    def widget() -> str:
        """A page that embeds the chat; copy its iframe into any web page."""
        return WIDGET.format(company=config.company_name)

    @app.get("/healthz")
    def healthz() -> dict:
        """Liveness and readiness: the documents and the version of the index this replica serves."""
        return {"ok": True, "documents": pipeline.document_count(), "index_version": pipeline.index.version()}

    retention = (max(60, server.upload_retention_s // 4), server.upload_retention_s)  # (every, older than) s
    operator_files = Path(get_upload_folder()) / f"operator-{secrets.token_hex(8)}"
    operator_files.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _gradio_files_in(operator_files):
        panel = build_operator(pipeline, server.uploads_dir, delete_cache=retention, operators=operators)
        app = gr.mount_gradio_app(
            app,
            panel,
            path="/operator",
            max_file_size=max_upload * 4,
            auth=lambda user, password: operators.check(user, password) is not None,
            auth_message="Operator sign-in (user and CHATBOT_OPERATOR_PASSWORD).",
        )
    panel_app.extend(r.app for r in app.routes if isinstance(r, Mount) and r.path == "/operator")
    share_sessions(panel_app[0], server.redis_url)  # with Redis: signed in on one replica, on every one
    voice_out = build_voice_out(config)
    if voice_out is not None:
        voice_out.warm_up()  # fail at start, with the fix, rather than at the first reply
    chat = build_chat(
        pipeline, config.company_name, voice_out, limiter, delete_cache=retention, poll_s=config.handoff.poll_s
    )
    return gr.mount_gradio_app(
        app,
        chat,
        path="/",
        css=CSS,
        max_file_size=max_upload,
        blocked_paths=[str(operator_files), str(Path(server.uploads_dir).resolve())],
    )


def _guard(app: FastAPI, config: Config, logins: LoginGuard, max_upload: int, panel_session) -> None:
    """The middleware in front of every route (`ui.guard`): body sizes, the panel's sign-in lock-out and
    session, same-site JSON-only writes, CORS for listed origins."""

    def body_limit(path: str) -> int | None:
        if path.startswith("/api/chat"):
            return 2 * max_upload + MAX_JSON_BYTES  # a voice message and a screenshot in one form
        return MAX_JSON_BYTES if path.startswith("/api/") else None  # Gradio limits its own uploads

    origins = list(config.server.cors_origins)
    app.add_middleware(SameSite, allowed_origins=origins, form_paths=("/api/chat",))
    app.add_middleware(
        EdgeMiddleware, max_body_bytes=body_limit, login_path="/operator/login", logins=logins, signed_in=panel_session
    )
    # same-origin by default; a widget on another site needs its origin listed. No cookies cross origins:
    # the REST API takes none, and the operator panel's session must never ride on another site's request.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_credentials=False,
        allow_methods=["GET", "POST"],
        allow_headers=["content-type", "authorization"],
    )
