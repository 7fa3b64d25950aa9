"""The LLM benchmark: our serving path (CTranslate2 int8 through the `ChatModel` seam) against what a user
would otherwise run (transformers fp32 `generate`), on the same 450-token RAG prompt, in one process.

Time to first token is the wall time to the first piece of text; decode speed is the tokens after the
first over the time after it. The machine's read bandwidth is measured in the same run (numpy reading
a 256 MB array), and η = tokens/s × bytes of weights read per token ÷ that bandwidth: how near the
memory limit decoding runs (1.0 = every token reads all weights at full bandwidth). It knows nothing
about retrieval or grounding; the prompt is help-centre text, not a served turn.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from chatbot.answer.llm import ChatModel, Message

PROMPT_TOKENS = 450
ANSWER_TOKENS = 64


def read_bandwidth_gbps(megabytes: int = 256, repeats: int = 3) -> float:
    """GB/s reading a `megabytes` array once (best of `repeats`): the ceiling memory-bound decoding meets."""
    data = np.ones(megabytes * 2**20 // 8, dtype=np.float64)
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        data.sum()
        best = min(best, time.perf_counter() - began)
    return data.nbytes / best / 1e9


def rag_prompt(text: str, count_tokens, tokens: int = PROMPT_TOKENS) -> list[Message]:
    """A RAG prompt of about `tokens` tokens: instructions, help-centre text as sources, a question."""
    system = "You answer customers using only the sources. If they do not answer the question, say so."
    question = "\n\nQuestion: how long do I have to send something back, and who pays for the return?"
    words = text.split()
    low, high = 1, len(words)
    while low < high:  # the most source words that keep the prompt within `tokens`
        middle = (low + high + 1) // 2
        if count_tokens(system + "Sources:\n" + " ".join(words[:middle]) + question) <= tokens:
            low = middle
        else:
            high = middle - 1
    return [Message("system", system), Message("user", "Sources:\n" + " ".join(words[:low]) + question)]


def measure_stream(llm: ChatModel, messages: list[Message], max_new_tokens: int = ANSWER_TOKENS) -> dict:
    """Time to first token and decode tokens/s of one reply through the `ChatModel` seam."""
    began = time.perf_counter()
    first = None
    done = None
    for token in llm.stream(messages, max_new_tokens):
        if first is None and token.text:
            first = time.perf_counter()
        if token.done:
            done = token
    end = time.perf_counter()
    generated = done.completion_tokens if done else 0
    first = first or end
    return {
        "ttft_s": first - began,
        "tokens_per_s": (generated - 1) / (end - first) if generated > 1 and end > first else None,
        "tokens": generated,
        "prompt_tokens": done.prompt_tokens if done else 0,
    }


def measure_generate(model_dir: str, messages: list[Message], max_new_tokens: int = ANSWER_TOKENS) -> dict:
    """The baseline: transformers fp32 `generate` (greedy) on CPU; TTFT from a one-token generation, decode
    speed from the extra tokens of a `max_new_tokens` one (forced to that length)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    chat = [{"role": m.role, "content": m.content} for m in messages]
    ids = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    timings = {}
    with torch.inference_mode():
        model.generate(**ids, max_new_tokens=2, do_sample=False)  # warm-up
        for n in (1, max_new_tokens):
            began = time.perf_counter()
            model.generate(**ids, max_new_tokens=n, min_new_tokens=n, do_sample=False)
            timings[n] = time.perf_counter() - began
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    return {
        "ttft_s": timings[1],
        "tokens_per_s": (max_new_tokens - 1) / max(timings[max_new_tokens] - timings[1], 1e-9),
        "weight_bytes": weights,
        "prompt_tokens": int(ids["input_ids"].shape[1]),
    }


def folder_bytes(path: str) -> int:
    """Bytes of a model folder's weight files (what decoding reads per token, at most)."""
    files = [p for p in Path(path).glob("*") if p.suffix in (".bin", ".safetensors") or p.name == "model.bin"]
    return sum(p.stat().st_size for p in files)


def llm_bench(ours: ChatModel, ours_dir: str, baseline_dir: str, text: str, tokens: int = ANSWER_TOKENS) -> dict:
    """Ours beside the baseline on the same prompt; `tokens` answer tokens each."""
    ours.warm_up()
    messages = rag_prompt(text, ours.count_tokens)  # type: ignore[attr-defined]
    measure_stream(ours, messages, 4)  # warm-up: the first call pays one-off costs
    mine = measure_stream(ours, messages, tokens)
    base = measure_generate(baseline_dir, messages, tokens)
    bandwidth = read_bandwidth_gbps()
    ours_bytes = folder_bytes(ours_dir)

    def eta(tokens_per_s: float | None, weight_bytes: int) -> float | None:
        return round(tokens_per_s * weight_bytes / (bandwidth * 1e9), 3) if tokens_per_s else None

    return {
        "model": ours.name,
        "prompt_tokens": mine["prompt_tokens"],
        "tokens_per_s": _round(mine["tokens_per_s"]),
        "baseline_tokens_per_s": _round(base["tokens_per_s"]),
        "speedup": _round(mine["tokens_per_s"] / base["tokens_per_s"]) if mine["tokens_per_s"] else None,
        "ttft_s": _round(mine["ttft_s"], 3),
        "baseline_ttft_s": _round(base["ttft_s"], 3),
        "bandwidth_gbps": _round(bandwidth),
        "weight_mb": round(ours_bytes / 1e6, 1),
        "baseline_weight_mb": round(base["weight_bytes"] / 1e6, 1),
        "eta": eta(mine["tokens_per_s"], ours_bytes),
        "baseline_eta": eta(base["tokens_per_s"], base["weight_bytes"]),
    }


def _round(value: float | None, digits: int = 2) -> float | None:
    return round(value, digits) if value is not None else None
