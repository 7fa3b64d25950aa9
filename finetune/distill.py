"""Knowledge distillation of a (fine-tuned) teacher into a smaller student.

- Token-level KD when teacher and student share a vocabulary: on the reply tokens, the student
  matches the teacher's temperature-softened distribution (KL, times T^2, weight `alpha`) and the
  gold reply (cross-entropy, weight 1 - alpha).
- Sequence-level KD when they do not: the teacher writes a reply to each training prompt (greedy)
  and the student learns those replies with cross-entropy, each through its own chat template.

By default the student is cut from the teacher (`finetune.student_cut`); the token-level loss is in
`finetune.distill_loss`. The student trains all its weights (fp32 master weights, bf16 autocast on
CUDA); the teacher is frozen, in bf16 on CUDA. Nothing depends on the model's size or family beyond
it having one list of decoder layers. This module knows nothing about the command line or evaluation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.config import DEFAULTS, Config
from core.errors import BadInput
from core.files import write_atomic
from chatbot.answer.llm import pick_device
from finetune.data import DataOptions, Exchange, prepare_dataset, read_exchanges
from finetune.distill_loss import kd_loss as kd_loss  # re-exported: its home was here
from finetune.distill_loss import token_kd_loss
from finetune.loop import LoopOptions, LoopResult, mean_loss, progress_bar, reply_loss, run_report, train_loop
from finetune.prompts import SourcePool, exchange_messages
from finetune.student_cut import cut_student
from finetune.student_cut import decoder_layers as decoder_layers  # re-exported: their home was here
from finetune.student_cut import kept_layers as kept_layers
from finetune.train import (
    EncodeOptions,
    encode_chats,
    encode_exchanges,
    fingerprint,
    load_causal_lm,
    prompt_ids,
    resolve_trainable_model,
)

Progress = Callable[[str], None]
MODES = ("auto", "token", "sequence")


_KD = DEFAULTS.finetune.distill  # every default lives in core/config.py ([finetune.distill]), with its meaning


@dataclass(frozen=True)
class DistillOptions:
    layers: int = _KD.layers
    student: str = _KD.student
    mode: str = _KD.mode
    temperature: float = _KD.temperature
    alpha: float = _KD.alpha
    teacher_max_new_tokens: int = _KD.teacher_max_new_tokens
    generation_batch_size: int = _KD.generation_batch_size
    device: str = DEFAULTS.models.device
    max_examples: int = DEFAULTS.finetune.max_examples  # distil on at most this many training exchanges; 0 = all
    eval_examples: int = DEFAULTS.finetune.eval_examples  # validation exchanges scored (gold-reply loss)
    encode: EncodeOptions = field(default_factory=EncodeOptions)
    loop: LoopOptions = field(default_factory=lambda: LoopOptions(learning_rate=_KD.learning_rate))
    data: DataOptions = field(default_factory=DataOptions)

    @classmethod
    def from_config(cls, config: Config) -> DistillOptions:
        """[finetune.distill] on [models] device; steps, batches and data as [finetune] and [finetune.loop]."""
        f, kd = config.finetune, config.finetune.distill
        return cls(
            layers=kd.layers,
            student=kd.student,
            mode=kd.mode,
            temperature=kd.temperature,
            alpha=kd.alpha,
            teacher_max_new_tokens=kd.teacher_max_new_tokens,
            generation_batch_size=kd.generation_batch_size,
            device=config.models.device,
            max_examples=f.max_examples,
            eval_examples=f.eval_examples,
            encode=EncodeOptions.from_config(config),
            data=DataOptions.from_config(f),
            loop=LoopOptions.from_config(f.loop, f.seed, learning_rate=kd.learning_rate),
        )


def same_vocabulary(teacher_tokenizer, student_tokenizer) -> bool:
    return teacher_tokenizer.get_vocab() == student_tokenizer.get_vocab()


def save_student(student, tokenizer, out: Path, device: str) -> None:
    import torch

    out.mkdir(parents=True, exist_ok=True)
    student.to(torch.bfloat16 if device == "cuda" else torch.float32).save_pretrained(out)
    tokenizer.save_pretrained(out)


def _load_teacher(path: str, device: str, progress: Progress):
    """(teacher, its tokenizer): loaded on `device`, in eval mode and frozen."""
    progress(f"loading teacher {path} on {device}")
    teacher, tokenizer = load_causal_lm(path, device)
    teacher.eval().requires_grad_(False)
    return teacher, tokenizer


def _trainable_on(student, device: str):
    """`student` on `device`, every weight trainable."""
    student = student.to(device)
    student.requires_grad_(True)
    return student


def _kd_settings(options: DistillOptions) -> dict:
    """The options a checkpoint's fingerprint covers in every distillation: a resumed run must not change them."""
    return {
        "temperature": options.temperature,
        "alpha": options.alpha,
        "batch_size": options.loop.batch_size,
        "seed": options.loop.seed,
        "learning_rate": options.loop.learning_rate,
    }


def _kd_report(teacher, student, options: DistillOptions) -> dict:
    """The report fields every distillation shares about the two models: their sizes and the softening."""
    return {
        "teacher_parameters": sum(p.numel() for p in teacher.parameters()),
        "student_parameters": sum(p.numel() for p in student.parameters()),
        "temperature": options.temperature,
        "alpha": options.alpha,
    }


def _train_student(
    student,
    tokenizer,
    examples: list,
    eval_examples: list,
    loss_fn: Callable,
    options: DistillOptions,
    device: str,
    out: Path,
    *,
    resume: bool,
    settings: dict,
    description: str,
) -> tuple[LoopResult, float | None]:
    """Train `student` (checkpoints in `out`), save it with `tokenizer` into `out`; returns the loop's result and
    the validation loss after (the loss before is in the result's meta, unless the run resumed)."""
    pad = tokenizer.pad_token_id
    meta = {} if resume else {"validation_loss_before": mean_loss(student, eval_examples, pad, device)}
    result = train_loop(
        student,
        examples,
        loss_fn,
        options.loop,
        pad_id=pad,
        device=device,
        checkpoint_dir=out / "checkpoints",
        resume=resume,
        fingerprint=fingerprint(examples, settings),
        meta=meta,
        description=description,
    )
    validation_after = mean_loss(student, eval_examples, pad, device)
    save_student(student, tokenizer, out, device)
    return result, validation_after


def distill_chats(
    teacher_dir: str | Path,
    chats: Sequence,
    eval_chats: Sequence,
    out_dir: str | Path,
    options: DistillOptions,
    progress: Progress = lambda m: None,
    extra_report: dict | None = None,
) -> dict:
    """Token-level distillation of the model in `teacher_dir` into a student cut from it (`options.layers`
    decoder layers; 0 = half), on chats as they are served (`finetune.train.Chat`, e.g. the improvement
    loop's grounded chats, `finetune.improve`); the student and `distill_report.json` go into `out_dir`."""
    out = Path(out_dir)
    device = pick_device(options.device)
    teacher, tokenizer = _load_teacher(str(teacher_dir), device, progress)
    total = teacher.config.num_hidden_layers
    layers = options.layers or max(1, total // 2)
    if not 0 < layers < total:
        raise BadInput(f"a student cut from a {total}-layer teacher needs 1 to {total - 1} layers, not {layers}")
    student, keep = cut_student(teacher, layers)
    student = _trainable_on(student, device)
    examples, stats = encode_chats(tokenizer, chats, options.encode.max_tokens)
    eval_examples, _ = encode_chats(tokenizer, eval_chats, options.encode.max_tokens)
    if not examples:
        raise BadInput(f"none of the {len(chats)} chats fits in {options.encode.max_tokens} tokens to distil on")
    progress(f"token-level distillation on {len(examples)} chats: teacher {total} layers -> student {layers}")
    loss_fn = token_kd_loss(teacher, len(tokenizer), options)
    settings = {"teacher": str(teacher_dir), "layers": keep, **_kd_settings(options)}
    result, validation_after = _train_student(
        student,
        tokenizer,
        examples,
        eval_examples,
        loss_fn,
        options,
        device,
        out,
        resume=False,
        settings=settings,
        description="distilling",
    )
    report = {
        "teacher_path": str(teacher_dir),
        "mode": "token",
        "device": device,
        "kept_layers": keep,
        "teacher_layers": total,
        "student_layers": layers,
        **_kd_report(teacher, student, options),
        **run_report(result, options.loop, examples, stats, eval_examples, validation_after, device),
        **(extra_report or {}),
    }
    write_atomic(out / "distill_report.json", json.dumps(report, indent=2) + "\n")
    return report


def teacher_replies(
    teacher,
    tokenizer,
    exchanges: Sequence[Exchange],
    pool: SourcePool,
    options: DistillOptions,
    device: str,
    cache: Path,
) -> list[str]:
    """The teacher's greedy reply to each exchange's serve-time prompt; cached by question in `cache`."""
    import torch

    done: dict[str, str] = {}
    if cache.is_file():
        for line in cache.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            done[row["question"]] = row["reply"]
    todo = [e for e in exchanges if e.question not in done]
    tokenizer.padding_side = "left"
    size = max(1, options.generation_batch_size)
    with cache.open("a", encoding="utf-8") as handle, torch.inference_mode():
        for start in progress_bar(range(0, len(todo), size), desc="teacher replies", unit="batch"):
            part = todo[start : start + size]
            prompts = [
                prompt_ids(
                    tokenizer,
                    exchange_messages(
                        e, pool, options.encode.company, options.encode.seed, options.encode.source_sentences
                    ),
                )
                for e in part
            ]
            width = max(map(len, prompts))
            ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(p)) + p for p in prompts], device=device)
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
            out = teacher.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=options.teacher_max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
            for exchange, row in zip(part, out[:, width:].tolist()):
                reply = tokenizer.decode(row, skip_special_tokens=True).strip()
                done[exchange.question] = reply
                handle.write(json.dumps({"question": exchange.question, "reply": reply}, ensure_ascii=False) + "\n")
    return [done[e.question] for e in exchanges]


def _splits(teacher_dir: Path, data_paths: Sequence[str | Path], out: Path, options: DistillOptions):
    """(train, validation): from `data_paths` (scrubbed and split like fine-tuning) or the teacher's `data/`."""
    if data_paths:
        splits, _ = prepare_dataset(data_paths, out / "data", options.data)
        return list(splits.train), list(splits.validation)
    train_file = teacher_dir / "data" / "train.jsonl"
    if not train_file.is_file():
        raise BadInput(
            f"{teacher_dir} has no data/train.jsonl (it was not made by 'chatbot finetune'); "
            "pass --data FILE with the support logs to distil on"
        )
    validation_file = teacher_dir / "data" / "validation.jsonl"
    validation = read_exchanges(validation_file) if validation_file.is_file() else []
    return read_exchanges(train_file), validation


def _student(
    teacher, teacher_tokenizer, teacher_path: str, options: DistillOptions, device: str, progress: Progress
) -> tuple[object, object, str, list[int] | None]:
    """(student on `device`, trainable; its tokenizer; its path; the teacher layers kept, when cut from it)."""
    if options.student:
        student_path = resolve_trainable_model(options.student, progress)
        student, student_tokenizer = load_causal_lm(student_path, "cpu")
        student = student.float()
        keep = None
    else:
        layers = options.layers or max(1, teacher.config.num_hidden_layers // 2)
        student, keep = cut_student(teacher, layers)
        student_tokenizer, student_path = teacher_tokenizer, f"{teacher_path} (layers {keep})"
    return _trainable_on(student, device), student_tokenizer, student_path, keep


def _training_examples(
    mode: str,
    teacher,
    teacher_tokenizer,
    student_tokenizer,
    train: Sequence[Exchange],
    options: DistillOptions,
    device: str,
    out: Path,
) -> tuple[list, dict, Callable]:
    """(examples, stats, loss_fn) for `mode`: the teacher's own replies learnt with cross-entropy (sequence), or
    the gold replies scored against the teacher's logits (token)."""
    pool = SourcePool(train)
    if mode == "sequence":
        out.mkdir(parents=True, exist_ok=True)
        replies = teacher_replies(
            teacher, teacher_tokenizer, train, pool, options, device, out / "teacher_replies.jsonl"
        )
        examples, stats = encode_exchanges(student_tokenizer, train, pool, options.encode, replies=replies)

        loss_fn = reply_loss
    else:
        examples, stats = encode_exchanges(student_tokenizer, train, pool, options.encode)
        loss_fn = token_kd_loss(teacher, len(student_tokenizer), options)
    return examples, stats, loss_fn


def _exchanges(teacher_dir: Path, data_paths: Sequence[str | Path], out: Path, options: DistillOptions):
    """(train, validation) to distil on (`_splits`), the train split cut to `options.max_examples`; never empty."""
    train, validation = _splits(teacher_dir, data_paths, out, options)
    if options.max_examples > 0:
        train = train[: options.max_examples]
    if not train:
        raise BadInput("no training exchanges to distil on; pass --data FILE with support logs")
    return train, validation


def _mode(options: DistillOptions, shared_vocabulary: bool) -> str:
    """The distillation mode `options.mode` names, "auto" resolved; token-level needs a shared vocabulary."""
    mode = options.mode if options.mode != "auto" else ("token" if shared_vocabulary else "sequence")
    if mode == "token" and not shared_vocabulary:
        raise BadInput(
            "token-level distillation needs the teacher's and student's vocabularies to match; "
            "use --mode sequence (or auto)"
        )
    return mode


def distill(
    teacher_name: str,
    out_dir: str | Path,
    data_paths: Sequence[str | Path] = (),
    options: DistillOptions = DistillOptions(),
    resume: bool = False,
    progress: Progress = lambda m: None,
) -> dict:
    """Distil the teacher into a student saved in `out_dir`; returns the report (also written)."""
    if options.mode not in MODES:
        raise BadInput(f"--mode must be one of {', '.join(MODES)}, not '{options.mode}'")
    out = Path(out_dir)
    teacher_path = resolve_trainable_model(teacher_name, progress)
    train, validation = _exchanges(Path(teacher_path), data_paths, out, options)
    device = pick_device(options.device)
    teacher, teacher_tokenizer = _load_teacher(teacher_path, device, progress)
    student, student_tokenizer, student_path, keep = _student(
        teacher, teacher_tokenizer, teacher_path, options, device, progress
    )
    mode = _mode(options, same_vocabulary(teacher_tokenizer, student_tokenizer))
    progress(
        f"{mode}-level distillation: teacher {teacher.config.num_hidden_layers} layers -> student "
        f"{student.config.num_hidden_layers} layers"
    )

    examples, stats, loss_fn = _training_examples(
        mode, teacher, teacher_tokenizer, student_tokenizer, train, options, device, out
    )
    eval_examples, _ = encode_exchanges(
        student_tokenizer, validation[: options.eval_examples], SourcePool(validation), options.encode
    )
    settings = {"teacher": teacher_path, "student": student_path, "mode": mode, **_kd_settings(options)}
    result, validation_after = _train_student(
        student,
        student_tokenizer,
        examples,
        eval_examples,
        loss_fn,
        options,
        device,
        out,
        resume=resume,
        settings=settings,
        description=f"distilling ({mode})",
    )
    report = {
        "teacher": teacher_name,
        "teacher_path": teacher_path,
        "student": options.student or "cut from teacher",
        "mode": mode,
        "device": device,
        "kept_layers": keep,
        "teacher_layers": teacher.config.num_hidden_layers,
        "student_layers": student.config.num_hidden_layers,
        **_kd_report(teacher, student, options),
        **run_report(result, options.loop, examples, stats, eval_examples, validation_after, device),
    }
    write_atomic(out / "distill_report.json", json.dumps(report, indent=2) + "\n")
    return report
