import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from core.errors import ChatbotError, ConfigError
from chatbot.answer.llm import Message, OpenAIChatModel, pick_device


def test_auto_device_picks_cuda_when_torch_sees_a_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto") == "cuda" and pick_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") == "cpu"
    with pytest.raises(ConfigError, match="no GPU"):
        pick_device("cuda")
    with pytest.raises(ConfigError, match="auto, cpu or cuda"):
        pick_device("tpu")


class _FakeOpenAI(BaseHTTPRequestHandler):
    """A loopback stand-in for an OpenAI-compatible server streaming server-sent events."""

    seen: list[dict] = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _FakeOpenAI.seen.append(body)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for piece in ["Returns ", "take 30 days."]:
            self.wfile.write(f"data: {json.dumps({'choices': [{'delta': {'content': piece}}]})}\n\n".encode())
        self.wfile.write(f"data: {json.dumps({'choices': [], 'usage': {'prompt_tokens': 42, 'completion_tokens': 5}})}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")

    def log_message(self, *args):
        pass


def test_openai_backend_streams_text_and_reports_usage():
    server = HTTPServer(("127.0.0.1", 0), _FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        model = OpenAIChatModel(f"http://127.0.0.1:{server.server_port}/v1", "served-model")
        tokens = list(model.stream([Message("user", "hi")], max_new_tokens=16))
    finally:
        server.shutdown()
    assert "".join(t.text for t in tokens) == "Returns take 30 days."
    assert tokens[-1].done and (tokens[-1].prompt_tokens, tokens[-1].completion_tokens) == (42, 5)
    request = _FakeOpenAI.seen[-1]
    assert request["model"] == "served-model" and request["max_tokens"] == 16 and request["stream"] is True


def test_openai_backend_down_is_a_clear_error():
    model = OpenAIChatModel("http://127.0.0.1:9/v1", "m", timeout_s=2)
    with pytest.raises(ChatbotError, match="check that it is running"):
        list(model.stream([Message("user", "hi")], 4))
