"""One LoRA step three ways, side by side in one process on the same batch, the steps interleaved:
- `old`: right-padded batch, the language-model head at every position (`model(**batch).loss`), adapters in
  every layer (the loop before this session's change);
- `tail`: the loop now: left-padded, the head on the replies' positions only (`finetune.loop.reply_loss`);
- `tail_top`: the same with adapters in the top half of the layers (`[finetune.lora] top_layers`).

SmolLM2-135M, 4 sequences of 480-660 random tokens whose last 40 are the reply. Prints each step and the
medians (the first round is a warm-up). Measured on the quiet 2-core CPU, 3 rounds: old 21.2 s a step, tail
14.6 s (1.45x), tail_top 8.6 s (2.47x); the three losses agree (12.78466, printed first).

    .venv/bin/python bench/train_step.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REPLY = 40


def batches(lengths: list[int]):
    """(right-padded old batch, left-padded batch from `finetune.loop.collate`) of the same sequences."""
    import torch

    from finetune.loop import IGNORE_INDEX, Example, collate

    rng = random.Random(0)
    examples = []
    for n in lengths:
        ids = tuple(rng.randint(10, 40000) for _ in range(n))
        examples.append(Example(ids, tuple([IGNORE_INDEX] * (n - REPLY)) + ids[-REPLY:]))
    width = max(lengths)
    right = {k: torch.full((len(examples), width), v) for k, v in (("input_ids", 0), ("attention_mask", 0))}
    right["labels"] = torch.full((len(examples), width), IGNORE_INDEX)
    for row, e in enumerate(examples):
        right["input_ids"][row, : len(e.input_ids)] = torch.tensor(e.input_ids)
        right["attention_mask"][row, : len(e.input_ids)] = 1
        right["labels"][row, : len(e.labels)] = torch.tensor(e.labels)
    return right, collate(examples, 0, "cpu")


def main() -> None:
    import torch

    from chatbot.models import smollm2_path
    from finetune.loop import reply_loss
    from finetune.train import FinetuneOptions, _with_lora, load_causal_lm

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    path = smollm2_path(print)
    options = FinetuneOptions(model=path, device="cpu")
    top = replace(options, lora=replace(options.lora, top_layers=15))
    right, left = batches([random.Random(1).randint(480, 660) for _ in range(4)])
    ways = {
        "old": (_with_lora(load_causal_lm(path, "cpu")[0], options), right, lambda m, b: m(**b).loss),
        "tail": (_with_lora(load_causal_lm(path, "cpu")[0], options), left, reply_loss),
        "tail_top": (_with_lora(load_causal_lm(path, "cpu")[0], top), left, reply_loss),
    }
    with torch.no_grad():
        print("losses:", {name: round(float(fn(m, b)), 5) for name, (m, b, fn) in ways.items()})
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    for step in range(args.rounds):
        for name, (model, batch, fn) in ways.items():
            model.train()
            optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
            began = time.perf_counter()
            fn(model, batch).backward()
            optimizer.step()
            seconds[name].append(time.perf_counter() - began)
            print(step, name, round(seconds[name][-1], 2), flush=True)
    old = statistics.median(seconds["old"][1:] or seconds["old"])
    for name, values in seconds.items():
        median = statistics.median(values[1:] or values)
        print(f"{name}: median {median:.2f} s a step, {old / median:.2f}x the old loop")


if __name__ == "__main__":
    main()
