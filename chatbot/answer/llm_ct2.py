"""A chat model served by CTranslate2: an int8 export of a transformers model, for fast CPU serving.

`CTranslate2ChatModel` implements the `ChatModel` seam of `chatbot.answer.llm`: the prompt is the
tokenizer's chat template (as `TransformersChatModel` builds it), decoding is greedy with the same
repetition penalty, and `stream` yields text pieces as `Generator.generate_tokens` produces them,
then a final `Token(done=True)` with the token counts. Concurrent replies go through
`chatbot.answer.batching`: on CPU `parallel_batches` of them are decoded side by side, one core each,
and on CUDA up to `max_batch` are decoded together; the final token carries each reply's measured
share of the machine. On 2 CPU cores batching does not pay (8 equal-length replies together: 1.06x
the tokens/s of one at a time on one thread; of different lengths: 0.68x), so `max_batch` 0 (auto)
means 1 on CPU and 8 on CUDA.
Export a model with `chatbot export`.
The generator loads on first use or `warm_up()`; importing this module imports neither
ctranslate2 nor torch. It knows nothing about retrieval, prompts or grounding.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from core.errors import ChatbotError
from core.lazy import Lazy
from chatbot.answer.batching import GenerationBatcher, Generated
from chatbot.answer.llm import Message, Token, pick_device, plain_prompt

MARKER = "ctranslate2.json"  # written by `chatbot export` beside model.bin


def is_ctranslate2_model(path: str | Path) -> bool:
    """A folder with a CTranslate2 `model.bin` and no transformers `config.json` (one with `architectures`)."""
    folder = Path(str(path)).expanduser()
    if not (folder / "model.bin").is_file():
        return False
    if (folder / MARKER).is_file():
        return True
    config = folder / "config.json"
    if not config.is_file():
        return True
    try:
        return "architectures" not in json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


def ct2_generator(path: str, device: str, compute_type: str, inter: int, intra: int):
    """A `ctranslate2.Generator`, with torch's thread count as it was: CTranslate2 sets the OpenMP threads it
    shares with torch (the embedder's runtime, in the same process) to `intra` (1 with two replies side by
    side), which left embeddings on one core process-wide (`chatbot bench`)."""
    import ctranslate2
    import torch

    torch_threads = torch.get_num_threads()
    generator = ctranslate2.Generator(
        path, device=device, compute_type=compute_type, inter_threads=inter, intra_threads=intra
    )
    torch.set_num_threads(torch_threads)
    return generator


def pick_ct2_device(requested: str = "auto") -> str:
    def sees_cuda() -> bool:
        import ctranslate2

        return ctranslate2.get_cuda_device_count() > 0

    return pick_device(requested, sees_cuda, "CTranslate2")


class CTranslate2ChatModel:
    def __init__(
        self,
        path: str,
        name: str,
        device: str,
        threads: int,
        repetition_penalty: float,
        compute_type: str = "default",
        max_batch: int = 1,
        max_waiting: int = 0,
        parallel_batches: int = 1,
    ):
        self.path = path
        self.name = name
        self.requested_device = device  # "auto", "cpu" or "cuda"
        self.device = "cpu" if device == "auto" else device  # settled by warm_up()
        self.threads = threads  # 0: CTranslate2's default
        self.repetition_penalty = repetition_penalty
        self.compute_type = compute_type  # "default" keeps the export's quantization (int8)
        self._loaded = Lazy(self._load)  # (tokenizer, generator, end token names)
        # concurrent replies decoded together, up to max_batch (0: 1 on CPU, 8 on CUDA); over max_waiting queued: Busy
        self.max_batch, self.max_waiting = max_batch, max_waiting
        # on CPU, batches decoded at once, each on its share of `threads` (CTranslate2's inter_threads)
        self.parallel_batches = max(1, parallel_batches)
        self._batcher = Lazy(self._make_batcher)

    def _load(self):
        if not is_ctranslate2_model(self.path):
            raise ChatbotError(
                f"{self.path} is not a CTranslate2 model folder; export one with 'chatbot export --model DIR --out DIR'"
            )
        try:
            import ctranslate2  # noqa: F401  (installed? the error below says how)
            from transformers import AutoTokenizer
        except ImportError:
            raise ChatbotError(
                "the ctranslate2 backend needs the ctranslate2 package: pip install ctranslate2"
            ) from None
        self.device = pick_ct2_device(self.requested_device)
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.path)
            generator = ct2_generator(self.path, self.device, self.compute_type, *self._thread_split())
        except (OSError, ValueError, RuntimeError) as exc:
            raise ChatbotError(
                f"cannot load the CTranslate2 model '{self.path}' ({str(exc).splitlines()[0]}); "
                "export it again with 'chatbot export'"
            ) from None
        return tokenizer, generator, self._end_token_names(tokenizer)

    def _thread_split(self) -> tuple[int, int]:
        """(batches decoded at once, threads each). On CPU `threads` (0: every core) are split among
        `parallel_batches`: on 2 cores one thread per batch decodes a 450-token prompt's 48 tokens in 1.7 s
        against 2.1 s on both, and two such batches run side by side (README "Many customers at once").
        On CUDA one batch at a time."""
        if self.device != "cpu":
            return 1, max(0, self.threads)
        cores = self.threads if self.threads > 0 else (os.cpu_count() or 1)
        inter = min(self.parallel_batches, cores)
        return inter, max(1, cores // inter)

    def _batch_size(self) -> int:
        """Replies decoded together, at most: `max_batch`, or with 0 what measured fastest for the device."""
        if self.max_batch > 0:
            return self.max_batch
        return 1 if self.device == "cpu" else 8

    def _queued(self) -> bool:
        """Do replies go through the batcher (batched, or side by side), or straight to the generator?"""
        return self._batch_size() > 1 or self._thread_split()[0] > 1

    def warm_up(self) -> None:
        self._loaded.get()

    def _end_token_names(self, tokenizer) -> list[str]:
        """The tokenizer's end-of-sequence token plus any in the exported generation config."""
        ids: list[int] = []
        generation = Path(self.path) / "generation_config.json"
        if generation.is_file():
            eos = json.loads(generation.read_text(encoding="utf-8")).get("eos_token_id")
            ids.extend(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        names = [tokenizer.eos_token] if tokenizer.eos_token else []
        names += [t for t in tokenizer.convert_ids_to_tokens(ids) if t and t not in names]
        return names

    def count_tokens(self, text: str) -> int:
        tokenizer, _, _ = self._loaded.get()
        return len(tokenizer(text)["input_ids"])

    def _prompt_ids(self, messages: list[Message]) -> list[int]:
        tokenizer = self._loaded.get()[0]
        if tokenizer.chat_template:
            chat = [{"role": m.role, "content": m.content} for m in messages]
            text = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
            return list(tokenizer(text, add_special_tokens=False)["input_ids"])
        return list(tokenizer(plain_prompt(messages))["input_ids"])

    def _make_batcher(self) -> GenerationBatcher:
        tokenizer, generator, end_tokens = self._loaded.get()
        end_ids = set(tokenizer.convert_tokens_to_ids(end_tokens))

        def generate(prompts, max_new_tokens, on_token) -> None:
            generator.generate_batch(
                list(prompts),
                max_length=max_new_tokens,
                sampling_topk=1,
                include_prompt_in_result=False,
                repetition_penalty=self.repetition_penalty,
                end_token=end_tokens or None,
                callback=lambda step: on_token(step.batch_id, step.token_id),
            )

        return GenerationBatcher(
            generate, self._batch_size(), self.max_waiting, is_end=end_ids.__contains__, workers=self._thread_split()[0]
        )

    def _token_ids(self, prompt: list[int], max_new_tokens: int) -> Iterator[int | Generated]:
        """The reply's token ids, alone or in a batch with other replies (then a `Generated` last)."""
        tokenizer, generator, end_tokens = self._loaded.get()
        if self._queued():
            yield from self._batcher.get().submit(tokenizer.convert_ids_to_tokens(prompt), max_new_tokens)
            return
        steps = generator.generate_tokens(
            tokenizer.convert_ids_to_tokens(prompt),
            max_length=max_new_tokens,
            sampling_topk=1,
            repetition_penalty=self.repetition_penalty,
            end_token=end_tokens or None,
        )
        for step in steps:
            if step.token in end_tokens:
                return
            yield step.token_id

    def stream(self, messages: list[Message], max_new_tokens: int) -> Iterator[Token]:
        tokenizer = self._loaded.get()[0]
        prompt = self._prompt_ids(messages)
        ids: list[int] = []
        shown = ""
        compute_s = None
        for token_id in self._token_ids(prompt, max_new_tokens):
            if isinstance(token_id, Generated):
                compute_s = token_id.compute_s
                break
            ids.append(token_id)
            text = tokenizer.decode(ids, skip_special_tokens=True)
            if text.endswith("\ufffd"):  # a multi-byte character is not complete yet
                continue
            if len(text) > len(shown) and text.startswith(shown):
                yield Token(text[len(shown) :])
            shown = text
        yield Token("", done=True, prompt_tokens=len(prompt), completion_tokens=len(ids), compute_s=compute_s)
