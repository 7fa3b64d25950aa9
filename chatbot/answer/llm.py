"""Chat LLM backends behind one seam: `ChatModel.stream(messages, max_new_tokens)`.

- `TransformersChatModel`: a local causal LM through transformers; CUDA (bf16) when present,
  else CPU (fp32). Weights load on first use or `warm_up()`.
- `OpenAIChatModel`: any OpenAI-compatible `/v1/chat/completions` server (vLLM, llama.cpp
  server, ...), streamed over HTTP with the standard library.

Both yield `Token`s: text pieces, then one final `Token(done=True)` carrying the token counts.
This module knows nothing about retrieval, prompts or grounding.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from core.errors import ChatbotError, ConfigError


@dataclass(frozen=True)
class Message:
    role: str  # "system", "user" or "assistant"
    content: str


@dataclass(frozen=True)
class Token:
    text: str
    done: bool = False
    prompt_tokens: int = 0  # set on the final token
    completion_tokens: int = 0  # set on the final token


class ChatModel(Protocol):
    name: str
    device: str  # "cpu" or "cuda": which hardware price the cost meter applies

    def stream(self, messages: list[Message], max_new_tokens: int) -> Iterator[Token]: ...


def _torch_sees_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def pick_device(requested: str = "auto", sees_cuda: Callable[[], bool] = _torch_sees_cuda,
                runtime: str = "torch") -> str:
    """"auto" is CUDA when the runtime (torch unless told otherwise) sees a GPU, else CPU."""
    if requested not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"models.device must be auto, cpu or cuda, not '{requested}'")
    if requested == "cpu":
        return "cpu"
    if sees_cuda():
        return "cuda"
    if requested == "cuda":
        raise ConfigError(f"models.device is 'cuda' but {runtime} sees no GPU; use 'auto' or 'cpu'")
    return "cpu"


class TransformersChatModel:
    def __init__(self, path: str, name: str, device: str = "auto", threads: int = 0,
                 repetition_penalty: float = 1.05):
        self.path = path
        self.name = name
        self.requested_device = device
        self.device = "cpu" if device == "auto" else device  # settled by warm_up()
        self.threads = threads
        self.repetition_penalty = repetition_penalty
        self._model = None
        self._tokenizer = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            self.device = pick_device(self.requested_device)
            if self.threads > 0:
                torch.set_num_threads(self.threads)
            dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
            try:
                self._tokenizer = AutoTokenizer.from_pretrained(self.path)
                model = AutoModelForCausalLM.from_pretrained(self.path, dtype=dtype)
            except (OSError, ValueError) as exc:
                raise ChatbotError(
                    f"cannot load the LLM '{self.path}' ({str(exc).splitlines()[0]}); give a local model "
                    "folder in [models] llm, or run 'chatbot setup' for the offline default"
                ) from None
            self._model = model.to(self.device).eval()

    def count_tokens(self, text: str) -> int:
        self.warm_up()
        return len(self._tokenizer(text)["input_ids"])

    def stream(self, messages: list[Message], max_new_tokens: int) -> Iterator[Token]:
        self.warm_up()
        import torch
        from transformers import TextIteratorStreamer

        tokenizer, model = self._tokenizer, self._model
        chat = [{"role": m.role, "content": m.content} for m in messages]
        if tokenizer.chat_template:
            inputs = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        else:  # a base model: plain text prompt
            text = "\n\n".join(m.content for m in messages) + "\n\nAnswer:"
            inputs = tokenizer(text, return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        prompt_tokens = int(inputs["input_ids"].shape[1])
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
        result: dict = {}

        def generate() -> None:
            try:
                with torch.inference_mode():
                    out = model.generate(
                        **inputs, max_new_tokens=max_new_tokens, do_sample=False,
                        repetition_penalty=self.repetition_penalty, streamer=streamer,
                        pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
                    )
                result["completion_tokens"] = int(out.shape[1]) - prompt_tokens
            except BaseException as exc:  # re-raised in the consumer's thread
                result["error"] = exc
                streamer.end()

        worker = threading.Thread(target=generate, daemon=True)
        worker.start()
        for piece in streamer:
            if piece:
                yield Token(piece)
        worker.join()
        if "error" in result:
            raise result["error"]
        yield Token("", done=True, prompt_tokens=prompt_tokens, completion_tokens=result["completion_tokens"])


class OpenAIChatModel:
    """A model served by an OpenAI-compatible server; the cost meter prices its time as `device`."""

    def __init__(self, base_url: str, model: str, device: str = "cuda", api_key_env: str = "CHATBOT_LLM_API_KEY",
                 timeout_s: float = 120.0):
        if not base_url:
            raise ConfigError("models.llm_backend 'openai' needs models.llm_base_url, e.g. http://127.0.0.1:8000/v1")
        self.base_url = base_url.rstrip("/")
        self.name = model
        self.device = device
        self.api_key = os.environ.get(api_key_env, "")
        self.timeout_s = timeout_s

    def warm_up(self) -> None:
        pass

    def stream(self, messages: list[Message], max_new_tokens: int) -> Iterator[Token]:
        body = json.dumps({
            "model": self.name, "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": max_new_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True},
        }).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(f"{self.base_url}/chat/completions", data=body, headers=headers)
        prompt_tokens = completion_tokens = 0
        pieces = 0
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                for raw in response:
                    line = raw.decode("utf-8").strip()
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    event = json.loads(data)
                    if event.get("usage"):
                        prompt_tokens = int(event["usage"].get("prompt_tokens", 0))
                        completion_tokens = int(event["usage"].get("completion_tokens", 0))
                    for choice in event.get("choices") or []:
                        text = (choice.get("delta") or {}).get("content")
                        if text:
                            pieces += 1
                            yield Token(text)
        except (urllib.error.URLError, OSError, json.JSONDecodeError) as exc:
            raise ChatbotError(f"the LLM server at {self.base_url} failed ({exc}); check that it is running") from None
        yield Token("", done=True, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens or pieces)
