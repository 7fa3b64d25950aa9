"""The loss of token-level distillation: the student's softened distribution against the teacher's, and the gold reply.

`kd_loss` scores one batch's logits; `token_kd_loss` turns a frozen teacher into the `loss_fn` that
`finetune.loop.train_loop` calls. This module knows nothing about how a student is made, how examples are
encoded, or where anything is saved.
"""

from __future__ import annotations

from typing import Protocol

from finetune.loop import IGNORE_INDEX, tail_logits


class Softening(Protocol):
    """What the loss reads of `finetune.distill.DistillOptions`."""

    temperature: float  # softens both distributions
    alpha: float  # weight of the KL term; the cross-entropy on the gold reply gets 1 - alpha


def kd_loss(student_logits, teacher_logits, labels, temperature: float, alpha: float, vocab_size: int):
    """alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, labels), on the reply tokens.

    Logits predict the next token, so position t is scored against label t + 1. Both are cut to the
    tokenizer's `vocab_size` (a model may pad its output layer)."""
    import torch.nn.functional as F

    targets = labels[:, 1:]
    mask = targets != IGNORE_INDEX
    student = student_logits[:, :-1, :vocab_size][mask].float()
    teacher = teacher_logits[:, :-1, :vocab_size][mask].float()
    kl = (
        F.kl_div(
            F.log_softmax(student / temperature, dim=-1),
            F.log_softmax(teacher / temperature, dim=-1),
            log_target=True,
            reduction="batchmean",
        )
        * temperature**2
    )
    ce = F.cross_entropy(student, targets[mask])
    return alpha * kl + (1 - alpha) * ce


def token_kd_loss(teacher, vocab_size: int, options: Softening):
    """The training loss of token-level distillation: `kd_loss` against the frozen teacher's logits."""
    import torch

    def loss_fn(model, batch):
        with torch.no_grad():
            teacher_logits, _ = tail_logits(teacher, batch)
        student_logits, labels = tail_logits(model, batch)
        return kd_loss(student_logits, teacher_logits, labels, options.temperature, options.alpha, vocab_size)

    return loss_fn
