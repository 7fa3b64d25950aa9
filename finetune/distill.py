"""Knowledge distillation of a (fine-tuned) teacher into a smaller student.

- Token-level KD when teacher and student share a vocabulary: on the reply tokens, the student
  matches the teacher's temperature-softened distribution (KL, times T^2, weight `alpha`) and the
  gold reply (cross-entropy, weight 1 - alpha).
- Sequence-level KD when they do not: the teacher writes a reply to each training prompt (greedy)
  and the student learns those replies with cross-entropy, each through its own chat template.

By default the student is cut from the teacher: the same config with fewer decoder layers, evenly
spaced from first to last, initialised with those layers' weights (every other layer for half).
The student trains all its weights (fp32 master weights, bf16 autocast on CUDA); the teacher is
frozen, in bf16 on CUDA. Nothing depends on the model's size or family beyond it having one list
of decoder layers. This module knows nothing about the command line or evaluation.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.config import DEFAULTS, Config
from core.errors import BadInput, ChatbotError
from core.files import write_atomic
from chatbot.answer.llm import pick_device
from finetune.data import DataOptions, Exchange, prepare_dataset, read_exchanges
from finetune.loop import IGNORE_INDEX, LoopOptions, mean_loss, progress_bar, run_report, train_loop
from finetune.prompts import SourcePool, exchange_messages
from finetune.train import (
    EncodeOptions,
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


def decoder_layers(model) -> tuple[str, object]:
    """(qualified name, ModuleList) of the model's stack of `num_hidden_layers` decoder layers."""
    import torch

    count = model.config.num_hidden_layers
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == count:
            return name, module
    raise ChatbotError(
        f"cannot find the {count} decoder layers of {type(model).__name__}; pass --student "
        "with a ready student model instead of cutting one"
    )


def kept_layers(total: int, keep: int) -> list[int]:
    """`keep` layer indices spread evenly over `total`, first and last included."""
    if not 1 <= keep < total:
        raise BadInput(f"--layers must be between 1 and {total - 1} for a teacher with {total} layers")
    if keep == 1:
        return [total - 1]
    return sorted({round(i * (total - 1) / (keep - 1)) for i in range(keep)})


def cut_student(teacher, layers: int):
    """A student with `layers` of the teacher's decoder layers and all its other weights, in fp32."""
    import torch
    from transformers import AutoModelForCausalLM

    total = teacher.config.num_hidden_layers
    keep = kept_layers(total, layers)
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = len(keep)
    layer_types = getattr(config, "layer_types", None)
    if isinstance(layer_types, list) and len(layer_types) == total:
        config.layer_types = [layer_types[i] for i in keep]
    student = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    prefix, _ = decoder_layers(teacher)
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.(.+)$")
    new_index = {old: new for new, old in enumerate(keep)}
    state = {}
    for key, value in teacher.state_dict().items():
        match = pattern.match(key)
        if match:
            old = int(match.group(1))
            if old not in new_index:
                continue
            key = f"{prefix}.{new_index[old]}.{match.group(2)}"
        state[key] = value.detach().to("cpu", torch.float32)
    missing, unexpected = student.load_state_dict(state, strict=False)
    tied = set(getattr(student, "_tied_weights_keys", None) or ())
    if unexpected or [k for k in missing if k not in tied]:
        raise ChatbotError(f"cutting the student lost weights (missing {missing[:3]}, unexpected {unexpected[:3]})")
    student.tie_weights()
    return student, keep


def same_vocabulary(teacher_tokenizer, student_tokenizer) -> bool:
    return teacher_tokenizer.get_vocab() == student_tokenizer.get_vocab()


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


def token_kd_loss(teacher, vocab_size: int, options: DistillOptions):
    """The training loss of token-level distillation: `kd_loss` against the frozen teacher's logits."""
    import torch

    def loss_fn(model, batch):
        with torch.no_grad():
            teacher_logits = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        student_logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return kd_loss(student_logits, teacher_logits, batch["labels"], options.temperature, options.alpha, vocab_size)

    return loss_fn


def save_student(student, tokenizer, out: Path, device: str) -> None:
    import torch

    out.mkdir(parents=True, exist_ok=True)
    student.to(torch.bfloat16 if device == "cuda" else torch.float32).save_pretrained(out)
    tokenizer.save_pretrained(out)


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
    from finetune.train import encode_chats

    out = Path(out_dir)
    device = pick_device(options.device)
    progress(f"loading teacher {teacher_dir} on {device}")
    teacher, tokenizer = load_causal_lm(str(teacher_dir), device)
    teacher.eval().requires_grad_(False)
    total = teacher.config.num_hidden_layers
    layers = options.layers or max(1, total // 2)
    if not 0 < layers < total:
        raise BadInput(f"a student cut from a {total}-layer teacher needs 1 to {total - 1} layers, not {layers}")
    student, keep = cut_student(teacher, layers)
    student = student.to(device)
    student.requires_grad_(True)
    examples, stats = encode_chats(tokenizer, chats, options.encode.max_tokens)
    eval_examples, _ = encode_chats(tokenizer, eval_chats, options.encode.max_tokens)
    if not examples:
        raise BadInput(f"none of the {len(chats)} chats fits in {options.encode.max_tokens} tokens to distil on")
    progress(f"token-level distillation on {len(examples)} chats: teacher {total} layers -> student {layers}")
    pad = tokenizer.pad_token_id
    settings = {
        "teacher": str(teacher_dir),
        "layers": keep,
        "temperature": options.temperature,
        "alpha": options.alpha,
        "batch_size": options.loop.batch_size,
        "seed": options.loop.seed,
        "learning_rate": options.loop.learning_rate,
    }
    result = train_loop(
        student,
        examples,
        token_kd_loss(teacher, len(tokenizer), options),
        options.loop,
        pad_id=pad,
        device=device,
        checkpoint_dir=out / "checkpoints",
        resume=False,
        fingerprint=fingerprint(examples, settings),
        meta={"validation_loss_before": mean_loss(student, eval_examples, pad, device)},
        description="distilling",
    )
    validation_after = mean_loss(student, eval_examples, pad, device)
    save_student(student, tokenizer, out, device)
    report = {
        "teacher_path": str(teacher_dir),
        "mode": "token",
        "device": device,
        "kept_layers": keep,
        "teacher_layers": total,
        "student_layers": layers,
        "teacher_parameters": sum(p.numel() for p in teacher.parameters()),
        "student_parameters": sum(p.numel() for p in student.parameters()),
        "temperature": options.temperature,
        "alpha": options.alpha,
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
    student = student.to(device)
    student.requires_grad_(True)
    return student, student_tokenizer, student_path, keep


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

        def loss_fn(model, batch):
            return model(**batch).loss
    else:
        examples, stats = encode_exchanges(student_tokenizer, train, pool, options.encode)
        loss_fn = token_kd_loss(teacher, len(student_tokenizer), options)
    return examples, stats, loss_fn


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
    train, validation = _splits(Path(teacher_path), data_paths, out, options)
    if options.max_examples > 0:
        train = train[: options.max_examples]
    if not train:
        raise BadInput("no training exchanges to distil on; pass --data FILE with support logs")
    device = pick_device(options.device)
    progress(f"loading teacher {teacher_path} on {device}")
    teacher, teacher_tokenizer = load_causal_lm(teacher_path, device)
    teacher.eval().requires_grad_(False)
    student, student_tokenizer, student_path, keep = _student(
        teacher, teacher_tokenizer, teacher_path, options, device, progress
    )
    shared = same_vocabulary(teacher_tokenizer, student_tokenizer)
    mode = options.mode if options.mode != "auto" else ("token" if shared else "sequence")
    if mode == "token" and not shared:
        raise BadInput(
            "token-level distillation needs the teacher's and student's vocabularies to match; "
            "use --mode sequence (or auto)"
        )
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
    pad = student_tokenizer.pad_token_id
    meta = {} if resume else {"validation_loss_before": mean_loss(student, eval_examples, pad, device)}
    settings = {
        "teacher": teacher_path,
        "student": student_path,
        "mode": mode,
        "temperature": options.temperature,
        "alpha": options.alpha,
        "batch_size": options.loop.batch_size,
        "seed": options.loop.seed,
        "learning_rate": options.loop.learning_rate,
    }
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
        description=f"distilling ({mode})",
    )
    validation_after = mean_loss(student, eval_examples, pad, device)

    save_student(student, student_tokenizer, out, device)
    report = {
        "teacher": teacher_name,
        "teacher_path": teacher_path,
        "student": options.student or "cut from teacher",
        "mode": mode,
        "device": device,
        "kept_layers": keep,
        "teacher_layers": teacher.config.num_hidden_layers,
        "student_layers": student.config.num_hidden_layers,
        "teacher_parameters": sum(p.numel() for p in teacher.parameters()),
        "student_parameters": sum(p.numel() for p in student.parameters()),
        "temperature": options.temperature,
        "alpha": options.alpha,
        **run_report(result, options.loop, examples, stats, eval_examples, validation_after, device),
    }
    write_atomic(out / "distill_report.json", json.dumps(report, indent=2) + "\n")
    return report
