import pytest

from core.errors import ChatbotError, ConfigError
from chatbot.answer.llm import Message, OpenAIChatModel, pick_device
from chatbot.testing import FakeOpenAIServer


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


def test_openai_backend_streams_text_and_reports_usage():
    with FakeOpenAIServer("Returns take 30 days.", prompt_tokens=42) as server:
        model = OpenAIChatModel(server.url, "served-model")
        tokens = list(model.stream([Message("user", "hi")], max_new_tokens=16))
    assert "".join(t.text for t in tokens) == "Returns take 30 days."
    assert tokens[-1].done and (tokens[-1].prompt_tokens, tokens[-1].completion_tokens) == (42, 4)
    request = server.requests[-1]
    assert request["model"] == "served-model" and request["max_tokens"] == 16 and request["stream"] is True


def test_openai_backend_retries_a_503_and_then_streams():
    with FakeOpenAIServer("Returns take 30 days.", fail_first=1) as server:
        model = OpenAIChatModel(server.url, "served-model", timeout_s=5)
        tokens = list(model.stream([Message("user", "hi")], max_new_tokens=16))
    assert len(server.requests) == 2
    assert "".join(t.text for t in tokens) == "Returns take 30 days." and tokens[-1].done


def test_openai_backend_down_is_a_clear_error():
    model = OpenAIChatModel("http://127.0.0.1:9/v1", "m", timeout_s=2)
    with pytest.raises(ChatbotError, match="check that it is running"):
        list(model.stream([Message("user", "hi")], 4))
