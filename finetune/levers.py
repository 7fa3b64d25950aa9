"""What LoRA saves against full fine-tuning, measured once on the round's own data (`chatbot improve`).

Each way trains the same first batch of the round's chats for `STEPS` optimizer steps in a fresh process
(spawned, so neither inherits the other's memory): LoRA as configured (`[finetune.lora]`), and every
parameter trainable. Each reports its trainable parameters, seconds per step (the last step: the first
also allocates) and the peak memory the steps added over the loaded model. The result is cached under
OUT/levers/ by model, LoRA settings, sequence length and device, so later rounds read it;
`chatbot.reporting.ownership` reads it from the round's work record. It knows nothing of prices.
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from core.files import write_atomic
from finetune.improve_gate import digest_of
from finetune.train import Chat, FinetuneOptions

Progress = Callable[[str], None]
STEPS = 2


def lora_vs_full(options: FinetuneOptions, chats: Sequence[Chat], out: Path, progress: Progress) -> dict:
    """{"lora": figures, "full": figures, "speedup", "memory_ratio", "trainable_share", "measured": True}."""
    from finetune.train import resolve_trainable_model

    base = resolve_trainable_model(options.model, progress)
    batch = list(chats[: options.loop.batch_size * 8])  # the first `batch_size` of these that fit are trained
    key = digest_of(
        base, options.lora, options.encode, options.loop.batch_size, options.device, [c.reply for c in batch]
    )
    key = key[:16]
    cached = out / "levers" / f"lora_vs_full-{key}.json"
    if cached.is_file():
        return json.loads(cached.read_text(encoding="utf-8"))
    progress(f"measuring LoRA against full fine-tuning: {STEPS} steps each on one batch of the round's chats")
    figures = {way: _in_fresh_process(way, base, options, batch) for way in ("lora", "full")}
    lora, full = figures["lora"], figures["full"]
    if not lora or not full:
        return {"measured": False, "why": f"none of the first chats fits in {options.encode.max_tokens} tokens"}
    result = {
        **figures,
        "speedup": round(full["seconds_per_step"] / lora["seconds_per_step"], 2),
        "memory_ratio": round(full["added_memory_mb"] / max(lora["added_memory_mb"], 1.0), 2),
        "trainable_share": round(lora["trainable_parameters"] / full["trainable_parameters"], 4),
        "measured": True,
    }
    write_atomic(cached, json.dumps(result, indent=2) + "\n")
    return result


def _in_fresh_process(way: str, base: str, options: FinetuneOptions, chats: list[Chat]) -> dict:
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(_measure, (way, base, options, chats))


def _rss_mb() -> float:
    import resource

    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:  # not Linux: the peak so far stands in for the current size
        from finetune.loop import peak_rss_mb

        return peak_rss_mb()


def _measure(way: str, base: str, options: FinetuneOptions, chats: list[Chat]) -> dict:
    """In the spawned process: `STEPS` steps of `way` ("lora" or "full") on the first `batch_size` of `chats`
    that fit in `max_tokens`, as one batch; {} when none does."""
    import time

    from chatbot.answer.llm import pick_device
    from finetune.loop import _optimizer, _optimizer_step, collate, peak_rss_mb, reply_loss
    from finetune.train import _with_lora, encode_chats, load_causal_lm

    device = pick_device(options.device)
    model, tokenizer = load_causal_lm(base, device)
    examples = encode_chats(tokenizer, chats, options.encode.max_tokens)[0][: options.loop.batch_size]
    if not examples:
        return {}
    if way == "lora":
        model = _with_lora(model, replace(options, gradient_checkpointing=False))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer, scheduler = _optimizer(params, options.loop)
    batch = collate(examples, tokenizer.pad_token_id, device)
    loaded_mb = _rss_mb()
    seconds = 0.0
    for _ in range(STEPS):  # the training loop's own step: autocast on CUDA, clipping, schedule
        began = time.perf_counter()
        _optimizer_step(model, batch, reply_loss, params, optimizer, scheduler, options.loop, device)
        seconds = time.perf_counter() - began
    return {
        "trainable_parameters": sum(p.numel() for p in params),
        "seconds_per_step": round(seconds, 3),
        "added_memory_mb": round(max(peak_rss_mb() - loaded_mb, 0.0), 1),
        "sequences": len(examples),
        "tokens": int(batch["attention_mask"].sum()),
        "device": device,
    }
