"""Chat LLM backends behind one seam: `ChatModel.stream(messages, max_new_tokens)`.

- `TransformersChatModel`: a local causal LM through transformers; CUDA (bf16) when present,
  else CPU (fp32). Weights load on first use or `warm_up()`.
- `OpenAIChatModel`: any OpenAI-compatible `/v1/chat/completions` server (vLLM, llama.cpp
  server, ...), streamed through the `openai` SDK, which retries connection errors, 408/409/429
  and 5xx answers with backoff (`max_retries`). A stream cut mid-reply is not retried: the
  customer has already seen its first words.

Both yield `Token`s: text pieces, then one final `Token(done=True)` carrying the token counts.
This module knows nothing about retrieval, prompts or grounding.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from core.errors import ChatbotError, ConfigError
from core.lazy import Lazy


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
    # on the final token of a backend that decodes concurrent replies together: this reply's measured share
    # of the batch's seconds; None = the reply had the device to itself (the caller's wall clock is its cost)
    compute_s: float | None = None


def plain_prompt(messages: list[Message]) -> str:
    """The prompt for a base model without a chat template (every backend and training use it)."""
    return "\n\n".join(m.content for m in messages) + "\n\nAnswer:"


class ChatModel(Protocol):
    """What the pipeline and the fine-tuning evaluation use; `chatbot.testing.ChatModelContract` tests it."""

    name: str  # recorded with each turn
    device: str  # "cpu" or "cuda": which hardware price the cost meter applies (settled by warm_up)

    def warm_up(self) -> None: ...  # load the model now rather than on the first reply

    def stream(self, messages: list[Message], max_new_tokens: int) -> Iterator[Token]:
        """Text pieces, then exactly one `Token(done=True)` with the prompt and completion token counts."""
        ...


def _torch_sees_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def pick_device(
    requested: str = "auto", sees_cuda: Callable[[], bool] = _torch_sees_cuda, runtime: str = "torch"
) -> str:
    """ "auto" is CUDA when the runtime (torch unless told otherwise) sees a GPU, else CPU."""
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
    def __init__(self, path: str, name: str, device: str, threads: int, repetition_penalty: float):
        self.path = path
        self.name = name
        self.requested_device = device  # "auto", "cpu" or "cuda"
        self.device = "cpu" if device == "auto" else device  # settled by warm_up()
        self.threads = threads  # 0: torch's default
        self.repetition_penalty = repetition_penalty
        self._loaded = Lazy(self._load)  # (tokenizer, model)

    def _load(self):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = pick_device(self.requested_device)
        if self.threads > 0:
            torch.set_num_threads(self.threads)
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.path)
            model = AutoModelForCausalLM.from_pretrained(self.path, dtype=dtype)
        except (OSError, ValueError) as exc:
            raise ChatbotError(
                f"cannot load the LLM '{self.path}' ({str(exc).splitlines()[0]}); give a local model "
                "folder in [models] llm, or run 'chatbot setup' for the offline default"
            ) from None
        return tokenizer, model.to(self.device).eval()

    def warm_up(self) -> None:
        self._loaded.get()

    def count_tokens(self, text: str) -> int:
        tokenizer, _ = self._loaded.get()
        return len(tokenizer(text)["input_ids"])

    def stream(self, messages: list[Message], max_new_tokens: int) -> Iterator[Token]:
        tokenizer, model = self._loaded.get()
        import torch
        from transformers import TextIteratorStreamer

        chat = [{"role": m.role, "content": m.content} for m in messages]
        if tokenizer.chat_template:
            inputs = tokenizer.apply_chat_template(
                chat, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
        else:  # a base model: plain text prompt
            inputs = tokenizer(plain_prompt(messages), return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        prompt_tokens = int(inputs["input_ids"].shape[1])
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
        result: dict = {}

        def generate() -> None:
            try:
                with torch.inference_mode():
                    out = model.generate(
                        **inputs,
                        max_new_tokens=max_new_tokens,
                        do_sample=False,
                        repetition_penalty=self.repetition_penalty,
                        streamer=streamer,
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

    def __init__(
        self,
        base_url: str,
        model: str,
        device: str = "cuda",
        api_key_env: str = "CHATBOT_LLM_API_KEY",
        timeout_s: float = 120.0,
        max_retries: int = 2,
    ):
        if not base_url:
            raise ConfigError("models.llm_backend 'openai' needs models.llm_base_url, e.g. http://127.0.0.1:8000/v1")
        import openai

        self.base_url = base_url.rstrip("/")
        self.name = model
        self.device = device
        self.api_key_env = api_key_env
        self.api_key = os.environ.get(api_key_env, "")
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        # a local server wants no key, but the SDK refuses to start without one
        self._client = openai.OpenAI(
            base_url=self.base_url, api_key=self.api_key or "not-needed", max_retries=max_retries, timeout=timeout_s
        )

    def warm_up(self) -> None:
        pass

    def stream(self, messages: list[Message], max_new_tokens: int) -> Iterator[Token]:
        import openai

        prompt_tokens = completion_tokens = 0
        pieces, finished = 0, False
        try:
            events = self._client.chat.completions.create(
                model=self.name,
                messages=[{"role": m.role, "content": m.content} for m in messages],
                max_tokens=max_new_tokens,
                temperature=0,
                stream=True,
                stream_options={"include_usage": True},
            )
            for event in events:
                if event.usage:
                    prompt_tokens = int(event.usage.prompt_tokens or 0)
                    completion_tokens = int(event.usage.completion_tokens or 0)
                for choice in event.choices or []:
                    finished = finished or bool(choice.finish_reason)
                    text = choice.delta.content if choice.delta else None
                    if text:
                        pieces += 1
                        yield Token(text)
            if not finished:  # llama-cpp-python ends a stream it failed (a prompt over its context) with nothing
                raise ValueError("the reply stream ended before the reply did (a prompt over its context size?)")
        except openai.AuthenticationError as exc:
            raise ChatbotError(
                f"the LLM server at {self.base_url} refused the API key ({exc.status_code}); "
                f"set it in the {self.api_key_env} environment variable"
            ) from None
        except openai.NotFoundError:
            raise ChatbotError(
                f"the LLM server at {self.base_url} has no model '{self.name}' or no "
                "/chat/completions route; check models.llm and models.llm_base_url (it usually "
                "ends in /v1)"
            ) from None
        except openai.APIStatusError as exc:
            retried = exc.status_code >= 500 or exc.status_code in (408, 409, 429)
            raise ChatbotError(
                f"the LLM server at {self.base_url} answered {exc.status_code} ({exc.message})"
                f"{f' after {self.max_retries} retries' if retried else ''}; check its log"
            ) from None
        except (openai.APIError, OSError, ValueError) as exc:  # refused, timed out, a cut or malformed stream
            raise ChatbotError(
                f"the LLM server at {self.base_url} failed ({type(exc).__name__}: {exc}); check that it is running"
            ) from None
        prompt_tokens = prompt_tokens or self._count_prompt(messages)  # the stream carried no usage
        yield Token("", done=True, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens or pieces)

    def _count_prompt(self, messages: list[Message]) -> int:
        """The prompt's tokens when a server streams no usage (llama-cpp-python ignores `include_usage`):
        its `/extras/tokenize/count` over the messages' text, plus the 4 tokens of role markers ChatML puts
        around each (so within a few tokens of the templated prompt); 0 when the server has no such route."""
        import httpx

        root = self.base_url.removesuffix("/v1")
        text = "\n".join(f"{m.role}\n{m.content}" for m in messages)
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            reply = httpx.post(f"{root}/extras/tokenize/count", json={"input": text}, headers=headers, timeout=10)
            return int(reply.json()["count"]) + 4 * len(messages) if reply.status_code == 200 else 0
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return 0
