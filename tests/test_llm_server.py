"""`llm_backend = "openai"` against a real OpenAI-compatible server: llama.cpp serving SmolLM2
(tests/llama_server.py), as a replica that loads no LLM weights uses it. Streaming, the cost meter's
token counts (llama-cpp-python streams no usage: the prompt is counted through its tokenizer route),
a prompt over its context, and a server that is down (a handoff, not a 500).
"""

import httpx
import pytest

from chatbot.answer.llm import Message, OpenAIChatModel
from core.errors import ChatbotError
from tests.llama_server import MODEL_NAME
from tests.handoff_app import serve

pytestmark = pytest.mark.e2e
ASKED = [
    Message("system", "You answer customers of a lamp shop in one sentence."),
    Message("user", "How long do I have to return a lamp?"),
]


def test_a_streamed_reply_is_metered_with_the_servers_own_token_counts(llm_server):
    tokens = list(OpenAIChatModel(llm_server.base_url, MODEL_NAME, device="cpu").stream(ASKED, 40))
    *pieces, last = tokens
    assert len(pieces) > 3 and "".join(t.text for t in pieces).strip() and last.done
    counted = httpx.post(  # the same request unstreamed: the server's usage
        f"{llm_server.base_url}/chat/completions",
        json={"model": MODEL_NAME, "messages": [m.__dict__ for m in ASKED], "max_tokens": 40, "temperature": 0},
        timeout=60,
    ).json()["usage"]
    assert last.completion_tokens == counted["completion_tokens"]
    assert abs(last.prompt_tokens - counted["prompt_tokens"]) <= 6, (last.prompt_tokens, counted)


def test_a_prompt_over_the_servers_context_is_an_error_not_an_empty_reply(llm_server):
    long = [Message("user", "lamp shade " * 6000)]  # ~12k tokens, over the 4k context
    with pytest.raises(ChatbotError, match="ended before the reply did"):
        list(OpenAIChatModel(llm_server.base_url, MODEL_NAME, device="cpu", max_retries=0).stream(long, 20))


def test_over_rest_the_reply_is_metered_and_a_server_that_is_down_is_a_handoff(llm_server, tmp_path):
    pipeline, client = serve(tmp_path)  # the stand-in app, its scripted LLM replaced by the real server
    pipeline.llm = OpenAIChatModel(llm_server.base_url, MODEL_NAME, device="cpu", timeout_s=60)
    reply = client.post("/api/chat", json={"message": "How many days do I have to return an item?"})
    assert reply.status_code == 200
    usage = reply.json()["usage"]
    assert usage["prompt_tokens"] > 20 and usage["completion_tokens"] > 0, usage
    stored = pipeline.store.conversations.conversation(reply.json()["conversation_id"])
    assert stored.cost_usd > 0
    pipeline.llm = OpenAIChatModel("http://127.0.0.1:9/v1", MODEL_NAME, device="cpu", timeout_s=5, max_retries=0)
    down = client.post("/api/chat", json={"message": "Can I return a lamp I bought in a sale?"})
    assert down.status_code == 200 and down.json()["handoff"]["needed"], down.json()
