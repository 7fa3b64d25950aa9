"""The optimisation loop that fine-tuning and distillation share: batches, AdamW, checkpoints, resume.

Given a model whose trainable parameters have `requires_grad`, tokenised examples and a loss
function, it runs `max_steps` optimizer steps with a tqdm bar. Batch `s` is a pure function of the
seed and `s` (a seeded shuffle per epoch) and dropout is reseeded per step, so a run resumed from a
checkpoint takes exactly the steps an uninterrupted run would have. A checkpoint holds only the
trainable tensors (a LoRA adapter, or a whole student), the optimizer and the step history.
On CUDA the forward pass runs under bf16 autocast.

This module knows nothing about prompts, LoRA or teachers.
"""

from __future__ import annotations

import json
import math
import random
import resource
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.config import DEFAULTS, LoopConfig
from core.errors import BadInput, NotFound
from core.files import build_folder_atomic

IGNORE_INDEX = -100  # label of a token the loss skips (the prompt, padding)


@dataclass(frozen=True)
class Example:
    """One tokenised training sequence; `labels` is `IGNORE_INDEX` on every prompt token."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]

    @property
    def target_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


_LOOP = DEFAULTS.finetune.loop  # every default lives in core/config.py ([finetune.loop]), with its meaning


@dataclass(frozen=True)
class LoopOptions:
    max_steps: int = _LOOP.max_steps
    batch_size: int = _LOOP.batch_size
    learning_rate: float = _LOOP.learning_rate
    warmup_steps: int = _LOOP.warmup_steps
    weight_decay: float = _LOOP.weight_decay
    max_grad_norm: float = _LOOP.max_grad_norm
    checkpoint_every_steps: int = _LOOP.checkpoint_every_steps
    keep_checkpoints: int = _LOOP.keep_checkpoints  # a checkpoint is written to a temporary folder first
    seed: int = DEFAULTS.finetune.seed

    @classmethod
    def from_config(cls, loop: LoopConfig, seed: int, learning_rate: float | None = None) -> LoopOptions:
        """`[finetune.loop]` (warm-up cut to a fifth of the steps); `learning_rate` replaces its own."""
        return cls(
            **{
                **loop.model_dump(),
                "warmup_steps": min(loop.warmup_steps, loop.max_steps // 5),
                "seed": seed,
                "learning_rate": learning_rate or loop.learning_rate,
            }
        )


@dataclass(frozen=True)
class LoopResult:
    steps: int  # total optimizer steps done, earlier runs included
    resumed_from_step: int  # 0 for a fresh run
    losses: tuple[float, ...]  # one per step, earlier runs included
    train_seconds: float  # wall time of the steps, earlier runs included
    target_tokens: int  # supervised tokens seen by this run
    meta: dict = field(default_factory=dict)  # what the caller stored with the first checkpoint


def progress_bar(iterable=None, **kwargs):
    """A tqdm bar on stderr; redirected to a file (a CI log) it writes a line every 30 s instead."""
    from tqdm.auto import tqdm

    interactive = sys.stderr.isatty()
    return tqdm(
        iterable, file=sys.stderr, mininterval=0.5 if interactive else 30.0, dynamic_ncols=interactive, **kwargs
    )


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports kilobytes)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def batch_indices(n_examples: int, step: int, batch_size: int, seed: int) -> list[int]:
    """The examples of step `step`: epoch `e` walks a permutation seeded by (seed, e)."""
    per_epoch = max(1, math.ceil(n_examples / batch_size))
    epoch, position = divmod(step, per_epoch)
    order = list(range(n_examples))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order[position * batch_size : (position + 1) * batch_size]


def collate(examples: Sequence[Example], pad_id: int, device):
    """Left-padded tensors: input_ids, attention_mask, position_ids (counting from each row's first real
    token, so padding changes nothing the model computes), labels (padding is ignored by the loss). Every
    reply ends the batch, so a loss needs the logits of its last few positions only (`tail_logits`)."""
    import torch

    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        ids[row, width - n :] = torch.tensor(example.input_ids)
        labels[row, width - n :] = torch.tensor(example.labels)
        mask[row, width - n :] = 1
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    return {
        "input_ids": ids.to(device),
        "attention_mask": mask.to(device),
        "position_ids": positions.to(device),
        "labels": labels.to(device),
    }


def tail_logits(model, batch: dict):
    """(logits, labels) of the batch's last positions, from the one before its first supervised token to
    the end: all a loss on the replies needs. The language-model head then skips the prompts, a fifth of
    a small model's compute and most of its memory (a 49k-word vocabulary at every prompt position)."""
    labelled = batch["labels"] != IGNORE_INDEX
    width = labelled.shape[1]
    firsts = labelled.int().argmax(1)[labelled.any(1)]
    keep = width - int(firsts.min()) + 1 if len(firsts) else 1
    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"],
        logits_to_keep=min(keep, width),
    )
    return out.logits, batch["labels"][:, -min(keep, width) :]


def reply_loss(model, batch: dict):
    """Mean cross-entropy on the supervised (reply) tokens, as `model(**batch).loss`, from `tail_logits`."""
    import torch

    logits, labels = tail_logits(model, batch)
    logits = logits[:, :-1]
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX
    )


def autocast(device: str):
    """bf16 autocast on CUDA; nothing on CPU (fp32 there)."""
    import contextlib

    import torch

    if device == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def mean_loss(model, examples: Sequence[Example], pad_id: int, device: str, batch_size: int = 4) -> float | None:
    """Token-weighted cross-entropy of `model` on the supervised tokens of `examples`."""
    import torch

    if not examples:
        return None
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad(), autocast(device):
        for start in range(0, len(examples), batch_size):
            part = examples[start : start + batch_size]
            batch = collate(part, pad_id, device)
            n = sum(1 for e in part for label in e.labels[1:] if label != IGNORE_INDEX)  # the model shifts by one
            loss = reply_loss(model, batch)
            total += float(loss) * n
            count += n
    model.train(was_training)
    return total / max(count, 1)


def _trainable(model) -> dict:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def _checkpoints(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("step-*") if (p / "state.json").is_file())


def latest_checkpoint(directory: str | Path) -> Path | None:
    found = _checkpoints(Path(directory))
    return found[-1] if found else None


def _save(
    directory: Path,
    step: int,
    model,
    optimizer,
    scheduler,
    losses: list[float],
    seconds: float,
    fingerprint: str,
    meta: dict,
    keep: int,
) -> None:
    import torch

    def write(tmp: Path) -> None:
        torch.save({name: p.detach().cpu() for name, p in _trainable(model).items()}, tmp / "trainable.pt")
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / "optimizer.pt")
        (tmp / "state.json").write_text(
            json.dumps(
                {"step": step, "losses": losses, "train_seconds": seconds, "fingerprint": fingerprint, "meta": meta}
            )
            + "\n"
        )

    build_folder_atomic(directory / f"step-{step:07d}", write)
    for old in _checkpoints(directory)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def _load(checkpoint: Path, model, optimizer, scheduler, fingerprint: str) -> dict:
    import torch

    state = json.loads((checkpoint / "state.json").read_text())
    if state["fingerprint"] != fingerprint:
        raise BadInput(
            f"checkpoint {checkpoint} was trained on other data or settings; resume with the same "
            "--data and options, or start afresh in another --out folder"
        )
    tensors = torch.load(checkpoint / "trainable.pt", map_location="cpu")
    params = _trainable(model)
    if set(tensors) != set(params):
        raise BadInput(
            f"checkpoint {checkpoint} does not match this model's trainable weights; resume with the "
            "same --model and LoRA options"
        )
    with torch.no_grad():
        for name, value in tensors.items():
            params[name].copy_(value.to(params[name].device, params[name].dtype))
    saved = torch.load(checkpoint / "optimizer.pt", map_location="cpu", weights_only=False)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    return state


def _starting_point(
    directory: Path, resume: bool, model, optimizer, scheduler, fingerprint: str, meta: dict
) -> tuple[int, list[float], float, dict]:
    """(first step, step losses so far, seconds so far, meta): restored from the last checkpoint on `resume`."""
    if resume:
        checkpoint = latest_checkpoint(directory)
        if checkpoint is None:
            raise NotFound(f"no checkpoint in {directory} to resume from; run without --resume to start")
        state = _load(checkpoint, model, optimizer, scheduler, fingerprint)
        # the caller's meta fills only keys the first run did not store: a resumed run reports as the first did
        meta = {**state.get("meta", {}), **{k: v for k, v in meta.items() if k not in state.get("meta", {})}}
        return state["step"], list(state["losses"]), float(state["train_seconds"]), meta
    if latest_checkpoint(directory) is not None:
        raise BadInput(
            f"{directory} holds checkpoints of an earlier run; pass --resume to continue it, "
            "or choose another --out folder"
        )
    return 0, [], 0.0, meta


def _check_run(examples: Sequence[Example], options: LoopOptions) -> None:
    """Refuse a run with no examples to train on, no steps or empty batches."""
    if not examples:
        raise BadInput("no training examples left; give more exchanges or raise --max-tokens")
    if options.max_steps < 1 or options.batch_size < 1:
        raise BadInput("--max-steps and --batch-size must be at least 1")


def _optimizer(params: list, options: LoopOptions) -> tuple:
    """(AdamW over `params`, its schedule): linear warm-up, then a linear decay to a tenth of the peak rate."""
    import torch

    optimizer = torch.optim.AdamW(params, lr=options.learning_rate, weight_decay=options.weight_decay)

    def schedule(step: int) -> float:
        if step < options.warmup_steps:
            return (step + 1) / (options.warmup_steps + 1)
        span = max(1, options.max_steps - options.warmup_steps)
        return max(0.1, 1.0 - 0.9 * (step - options.warmup_steps) / span)

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def _optimizer_step(
    model, batch: dict, loss_fn: Callable, params: list, optimizer, scheduler, options: LoopOptions, device: str
) -> float:
    """One forward and backward pass on `batch` and one optimizer step; returns the step's loss, rounded."""
    import torch

    with autocast(device):
        loss = loss_fn(model, batch)
    loss.backward()
    if options.max_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(params, options.max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return round(float(loss.detach()), 6)


def train_loop(
    model,
    examples: Sequence[Example],
    loss_fn: Callable,
    options: LoopOptions,
    *,
    pad_id: int,
    device: str,
    checkpoint_dir: str | Path,
    resume: bool = False,
    fingerprint: str = "",
    meta: dict | None = None,
    description: str = "training",
) -> LoopResult:
    """Run steps `resumed_from_step .. max_steps`; `loss_fn(model, batch) -> scalar tensor`."""
    import torch

    _check_run(examples, options)
    params = list(_trainable(model).values())
    assert params, "the model has no trainable parameters"
    optimizer, scheduler = _optimizer(params, options)
    directory = Path(checkpoint_dir)
    start, losses, seconds, meta = _starting_point(
        directory, resume, model, optimizer, scheduler, fingerprint, dict(meta or {})
    )
    model.train()
    tokens = 0
    keep = max(1, options.keep_checkpoints)
    bar = progress_bar(total=options.max_steps, initial=start, desc=description, unit="step")
    for step in range(start, options.max_steps):
        began = time.perf_counter()
        torch.manual_seed(options.seed * 7919 + step)  # dropout masks do not depend on where a run resumed
        batch_examples = [examples[i] for i in batch_indices(len(examples), step, options.batch_size, options.seed)]
        batch = collate(batch_examples, pad_id, device)
        losses.append(_optimizer_step(model, batch, loss_fn, params, optimizer, scheduler, options, device))
        tokens += sum(e.target_tokens for e in batch_examples)
        seconds += time.perf_counter() - began
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
        done = step + 1
        if done % max(1, options.checkpoint_every_steps) == 0 or done == options.max_steps:
            _save(directory, done, model, optimizer, scheduler, losses, seconds, fingerprint, meta, keep)
    bar.close()
    return LoopResult(
        steps=max(start, options.max_steps),
        resumed_from_step=start,
        losses=tuple(losses),
        train_seconds=round(seconds, 3),
        target_tokens=tokens,
        meta=meta,
    )


def loss_summary(losses: Sequence[float], window: int = 10) -> tuple[float | None, float | None]:
    """(mean of the first `window` step losses, mean of the last `window`)."""
    if not losses:
        return None, None
    w = max(1, min(window, len(losses) // 2 or 1))
    return round(sum(losses[:w]) / w, 6), round(sum(losses[-w:]) / w, 6)


def run_report(
    result: LoopResult,
    options: LoopOptions,
    examples: Sequence,
    stats: dict,
    eval_examples: Sequence,
    validation_after: float | None,
    device: str,
) -> dict:
    """The fields a fine-tuning and a distillation report share: steps, time, losses, memory."""
    import torch

    initial, final = loss_summary(result.losses)
    return {
        "steps": result.steps,
        "resumed_from_step": result.resumed_from_step,
        "batch_size": options.batch_size,
        "learning_rate": options.learning_rate,
        "train_sequences": len(examples),
        **{k: v for k, v in stats.items() if k != "examples"},
        "train_seconds": result.train_seconds,
        "seconds_per_step": round(result.train_seconds / max(1, len(result.losses)), 3),
        "initial_loss": initial,
        "final_loss": final,
        "losses": list(result.losses),
        "validation_examples": len(eval_examples),
        "validation_loss_before": result.meta.get("validation_loss_before"),
        "validation_loss_after": validation_after,
        "peak_rss_mb": peak_rss_mb(),
        "peak_cuda_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if device == "cuda" else None,
    }
