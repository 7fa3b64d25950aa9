"""The web server: REST API at /api, operator panel at /operator, customer chat at /.

`create_app(pipeline, ...)` is what `chatbot serve` runs under uvicorn and what tests launch on
loopback. The operator password comes from $CHATBOT_OPERATOR_PASSWORD or [server]
operator_password; without one the operator panel and /api/analytics refuse everyone.
"""

from __future__ import annotations

import os

import gradio as gr
from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from core.config import Config
from chatbot.pipeline import Pipeline
from chatbot.builder import build_voice_out
from ui.api import build_router
from ui.chat import CSS, build_chat
from ui.operator import build_operator

WIDGET = """<!doctype html><html><head><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{company} help</title></head><body style="margin:0">
<iframe src="/" title="{company} help" style="border:0;width:100%;height:100vh" allow="microphone"></iframe>
</body></html>"""


def operator_password(config: Config) -> str:
    return os.environ.get("CHATBOT_OPERATOR_PASSWORD") or config.server.operator_password


def create_app(pipeline: Pipeline, config: Config) -> FastAPI:
    app = FastAPI(title="chatbot", docs_url="/api/docs", openapi_url="/api/openapi.json")
    user = config.server.operator_user
    app.include_router(build_router(pipeline, user, lambda: operator_password(config)))

    @app.get("/widget", response_class=HTMLResponse)
    def widget() -> str:
        """A page that embeds the chat; copy its iframe into any web page."""
        return WIDGET.format(company=config.company_name)

    @app.get("/healthz")
    def healthz() -> dict:
        return {"ok": True, "documents": pipeline.document_count()}

    def check(username: str, password: str) -> bool:
        expected = operator_password(config)
        return bool(expected) and username == user and password == expected

    panel = build_operator(pipeline, config.server.uploads_dir)
    app = gr.mount_gradio_app(app, panel, path="/operator", auth=check,
                              auth_message="Operator sign-in (user and CHATBOT_OPERATOR_PASSWORD).")
    voice_out = build_voice_out(config)
    if voice_out is not None:
        voice_out.warm_up()  # fail at start, with the fix, rather than at the first reply
    chat = build_chat(pipeline, config.company_name, voice_out)
    return gr.mount_gradio_app(app, chat, path="/", css=CSS, max_file_size="25mb")
