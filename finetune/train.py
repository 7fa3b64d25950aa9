"""LoRA fine-tuning of a causal LM on support exchanges, in the prompt format the assistant serves.

Each exchange becomes the serve-time chat (system + sources + question, see `finetune.prompts`)
followed by the agent's reply; the loss counts the reply tokens only (prompt tokens are labelled
-100). Any causal LM that transformers loads works: CUDA with bf16 when present, CPU fp32
otherwise. The output folder holds a merged model that `TransformersChatModel` loads (or, with
`adapter_only`, a peft adapter), the tokenizer, the scrubbed data splits (`data/`), checkpoints
(`checkpoints/`) and `train_report.json` (time, steps, losses, peak memory).

This module knows nothing about the command line or about evaluation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.config import DEFAULTS, Config, LoraConfig
from core.errors import BadInput, ChatbotError
from core.files import write_atomic
from chatbot.answer.llm import Message, pick_device, plain_prompt
from chatbot.answer.llm_ct2 import is_ctranslate2_model
from chatbot.models import LLMS, resolve
from finetune.data import DataOptions, Exchange, prepare_dataset
from finetune.loop import IGNORE_INDEX, Example, LoopOptions, mean_loss, reply_loss, run_report, train_loop
from finetune.prompts import SourcePool, exchange_messages

Progress = Callable[[str], None]
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")
MODEL_WEIGHT_GLOBS = ("model*.safetensors", "model*.safetensors.index.json", "pytorch_model*.bin")


# Every default below lives in core/config.py, with its meaning: [finetune], [finetune.lora], and for
# the prompt the serving settings (company_name, [generation], [models]).
_FT = DEFAULTS.finetune


@dataclass(frozen=True)
class LoraOptions:
    rank: int = _FT.lora.rank
    alpha: int = _FT.lora.alpha  # the update is scaled by alpha / rank; 0 = 2 x rank
    dropout: float = _FT.lora.dropout
    target_modules: str = _FT.lora.target_modules
    top_layers: int = _FT.lora.top_layers  # adapters in the top this-many decoder layers only; 0 = all

    def __post_init__(self) -> None:
        if not self.alpha:
            object.__setattr__(self, "alpha", 2 * self.rank)

    @classmethod
    def from_config(cls, lora: LoraConfig) -> LoraOptions:
        return cls(**lora.model_dump())


@dataclass(frozen=True)
class EncodeOptions:
    company: str = DEFAULTS.company_name  # the company name in the system prompt, as served
    source_sentences: int = DEFAULTS.generation.source_sentences  # sentences kept per source, as served
    max_tokens: int = _FT.max_tokens  # prompt + reply per sequence; a longer reply is cut, a longer prompt skipped
    seed: int = _FT.seed  # picks each exchange's distractor sources

    @classmethod
    def from_config(cls, config: Config) -> EncodeOptions:
        return cls(
            config.company_name, config.generation.source_sentences, config.finetune.max_tokens, config.finetune.seed
        )


@dataclass(frozen=True)
class FinetuneOptions:
    model: str = DEFAULTS.models.llm  # registered name, local folder or hub id
    device: str = DEFAULTS.models.device  # auto = CUDA (bf16) when present, else CPU (fp32)
    max_examples: int = _FT.max_examples
    eval_examples: int = _FT.eval_examples
    adapter_only: bool = _FT.adapter_only
    gradient_checkpointing: bool = _FT.gradient_checkpointing
    encode: EncodeOptions = field(default_factory=EncodeOptions)
    lora: LoraOptions = field(default_factory=LoraOptions)
    loop: LoopOptions = field(default_factory=LoopOptions)
    data: DataOptions = field(default_factory=DataOptions)

    @classmethod
    def from_config(cls, config: Config) -> FinetuneOptions:
        """The base model is [models] llm on [models] device; the rest is [finetune]."""
        f = config.finetune
        return cls(
            model=config.models.llm,
            device=config.models.device,
            max_examples=f.max_examples,
            eval_examples=f.eval_examples,
            adapter_only=f.adapter_only,
            gradient_checkpointing=f.gradient_checkpointing,
            encode=EncodeOptions.from_config(config),
            lora=LoraOptions.from_config(f.lora),
            loop=LoopOptions.from_config(f.loop, f.seed),
            data=DataOptions.from_config(f),
        )


def chat_dicts(messages: Sequence[Message]) -> list[dict]:
    return [{"role": m.role, "content": m.content} for m in messages]


def prompt_ids(tokenizer, messages: Sequence[Message]) -> list[int]:
    """The prompt exactly as `TransformersChatModel.stream` tokenizes it."""
    if tokenizer.chat_template:
        text = tokenizer.apply_chat_template(chat_dicts(messages), add_generation_prompt=True, tokenize=False)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return list(tokenizer(plain_prompt(list(messages)))["input_ids"])


def completion_ids(tokenizer, messages: Sequence[Message], reply: str) -> list[int]:
    """The reply as the chat template closes an assistant turn (end-of-turn token included)."""
    if tokenizer.chat_template:
        chat = chat_dicts(messages)
        prompt = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        full = tokenizer.apply_chat_template(chat + [{"role": "assistant", "content": reply}], tokenize=False)
        if not full.startswith(prompt):
            raise ChatbotError(
                "this model's chat template does not render a reply as a continuation of the "
                "prompt, so reply tokens cannot be separated; use a model with a plain chat template"
            )
        return list(tokenizer(full[len(prompt) :], add_special_tokens=False)["input_ids"])
    ids = list(tokenizer(" " + reply, add_special_tokens=False)["input_ids"])
    return ids + ([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])


def encode_example(
    tokenizer, messages: Sequence[Message], reply: str, max_tokens: int, min_reply_tokens: int = 16
) -> tuple[Example | None, bool]:
    """(example, reply_was_cut); no example when the prompt leaves under `min_reply_tokens`."""
    prompt = prompt_ids(tokenizer, messages)
    completion = completion_ids(tokenizer, messages, reply)
    room = max_tokens - len(prompt)
    if room < min(min_reply_tokens, len(completion)):
        return None, False
    cut = len(completion) > room
    completion = completion[:room]
    return Example(tuple(prompt + completion), tuple([IGNORE_INDEX] * len(prompt) + completion)), cut


@dataclass(frozen=True)
class Chat:
    """One supervised example: the serve-time messages and the reply to learn."""

    messages: tuple[Message, ...]
    reply: str


def encode_chats(tokenizer, chats: Sequence[Chat], max_tokens: int) -> tuple[list[Example], dict[str, int]]:
    """Token examples of `chats`; counts those skipped (prompt too long) and cut (reply too long)."""
    examples, skipped, cut = [], 0, 0
    for chat in chats:
        example, was_cut = encode_example(tokenizer, chat.messages, chat.reply, max_tokens)
        if example is None:
            skipped += 1
            continue
        cut += was_cut
        examples.append(example)
    return examples, {"examples": len(examples), "skipped_prompt_too_long": skipped, "reply_cut": cut}


def exchange_chats(
    exchanges: Sequence[Exchange], pool: SourcePool, options: EncodeOptions, replies: Sequence[str] | None = None
) -> list[Chat]:
    """Serve-time prompts with each gold reply (or `replies[i]` instead) as the target."""
    return [
        Chat(
            tuple(exchange_messages(e, pool, options.company, options.seed, options.source_sentences)),
            e.reply if replies is None else replies[i],
        )
        for i, e in enumerate(exchanges)
    ]


def encode_exchanges(
    tokenizer,
    exchanges: Sequence[Exchange],
    pool: SourcePool,
    options: EncodeOptions,
    replies: Sequence[str] | None = None,
) -> tuple[list[Example], dict[str, int]]:
    """Serve-time prompts with each gold reply (or `replies[i]` instead) as the supervised target."""
    return encode_chats(tokenizer, exchange_chats(exchanges, pool, options, replies), options.max_tokens)


def fingerprint(examples: Sequence[Example], settings: dict) -> str:
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode())
    for example in examples:
        digest.update(json.dumps([example.input_ids, example.labels]).encode())
    return digest.hexdigest()


def resolve_trainable_model(name: str, progress: Progress) -> str:
    path = resolve(name, LLMS, "LLM", progress)
    if is_ctranslate2_model(path):
        raise BadInput(
            f"{path} is a CTranslate2 export, which cannot be trained; give the transformers model "
            "folder it was exported from"
        )
    if (
        Path(path).is_dir()
        and any((Path(path) / f).is_file() for f in ADAPTER_FILES)
        and not (Path(path) / "config.json").is_file()
    ):
        raise BadInput(
            f"{path} holds only a LoRA adapter; train from a merged model folder (run 'chatbot finetune' "
            "without --adapter-only) or from its base model"
        )
    return path


def load_causal_lm(path: str, device: str):
    """(model, tokenizer) on `device`: bf16 weights on CUDA, fp32 on CPU."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise ChatbotError(
            f"cannot load the model '{path}' ({str(exc).splitlines()[0]}); give a local model "
            "folder, or run 'chatbot setup' for the offline default"
        ) from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device), tokenizer


def clear_weights(out: Path, globs: Sequence[str]) -> None:
    """Remove weight files a previous save left, so a folder never holds both a merged model and an adapter."""
    for pattern in globs:
        for path in out.glob(pattern):
            path.unlink()


def finetune(
    data_paths: Sequence[str | Path],
    out_dir: str | Path,
    options: FinetuneOptions = FinetuneOptions(),
    resume: bool = False,
    progress: Progress = lambda m: None,
) -> dict:
    """Prepare the data, train LoRA, save the model; returns the training report (also written)."""
    resolve_trainable_model(options.model, progress)  # a wrong name fails before any work
    out = Path(out_dir)
    splits, data_report = prepare_dataset(data_paths, out / "data", options.data)
    progress(
        f"data: {data_report.splits} exchanges after scrubbing ({data_report.scrubbed}) and "
        f"removing {data_report.duplicates_removed} duplicates; splits in {out / 'data'}"
    )
    train = list(splits.train[: options.max_examples] if options.max_examples > 0 else splits.train)
    if not train:
        raise BadInput("the train split is empty; give more exchanges or lower the held-out fractions")
    chats = exchange_chats(train, SourcePool(train), options.encode)
    eval_chats = exchange_chats(
        splits.validation[: options.eval_examples], SourcePool(splits.validation), options.encode
    )
    return train_chats(chats, eval_chats, out, options, resume, progress, {"data": data_report.to_json()})


def _save_model(model, tokenizer, out: Path, adapter_only: bool) -> None:
    """Save the LoRA adapter alone, or the model with it merged in, and the tokenizer into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    if adapter_only:
        clear_weights(out, (*MODEL_WEIGHT_GLOBS, "config.json"))
        model.save_pretrained(out)
    else:
        clear_weights(out, (*MODEL_WEIGHT_GLOBS, *ADAPTER_FILES))
        merged = model.merge_and_unload()
        merged.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _encode_for_training(
    tokenizer, chats: Sequence[Chat], eval_chats: Sequence[Chat], encode: EncodeOptions, progress: Progress
) -> tuple[list[Example], dict[str, int], list[Example]]:
    """(training examples, their counts, validation examples); refuses chats of which none fits."""
    examples, encode_stats = encode_chats(tokenizer, chats, encode.max_tokens)
    eval_examples, _ = encode_chats(tokenizer, eval_chats, encode.max_tokens)
    if not examples:
        raise BadInput(
            f"none of the {len(chats)} training chats fits in {encode.max_tokens} tokens; "
            "raise [finetune] max_tokens or show fewer source sentences"
        )
    progress(
        f"{len(examples)} training sequences ({encode_stats['reply_cut']} replies cut to "
        f"{encode.max_tokens} tokens, {encode_stats['skipped_prompt_too_long']} skipped)"
    )
    return examples, encode_stats, eval_examples


def _with_lora(model, options: FinetuneOptions):
    """`model` wrapped by peft with fresh LoRA adapters (seeded), gradient checkpointing on when asked."""
    import torch
    from peft import LoraConfig, get_peft_model

    lora = options.lora
    torch.manual_seed(options.loop.seed)  # LoRA's A matrices start random: a seed makes a run repeatable
    model = get_peft_model(
        model,
        LoraConfig(
            r=lora.rank,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            task_type="CAUSAL_LM",
            **_lora_targets(model, lora),
        ),
    )
    if options.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    return model


def _lora_targets(model, lora: LoraOptions) -> dict:
    """peft's target arguments: every linear layer named (or peft's shorthand) in every decoder layer, or in
    the top `lora.top_layers` only (peft then needs the modules' names, not the shorthand)."""
    import torch

    layers = model.config.num_hidden_layers
    if lora.top_layers <= 0 or lora.top_layers >= layers:
        return {"target_modules": lora.target_modules}
    names: str | list[str] = lora.target_modules
    if names != "all-linear":
        names = [n.strip() for n in names.split(",")]  # peft takes a list of names beside layers_to_transform
    else:
        output = model.get_output_embeddings()
        names = sorted(
            {
                n.rsplit(".", 1)[-1]
                for n, m in model.named_modules()
                if isinstance(m, torch.nn.Linear) and m is not output
            }
        )
    return {"target_modules": names, "layers_to_transform": list(range(layers - lora.top_layers, layers))}


def _run_settings(base: str, options: FinetuneOptions) -> dict:
    """What a checkpoint's fingerprint covers besides the examples: a resumed run must not change them."""
    return {
        "model": base,
        "lora": dataclasses.asdict(options.lora),
        "encode": dataclasses.asdict(options.encode),
        "batch_size": options.loop.batch_size,
        "learning_rate": options.loop.learning_rate,
        "seed": options.loop.seed,
        "warmup_steps": options.loop.warmup_steps,
    }


def train_chats(
    chats: Sequence[Chat],
    eval_chats: Sequence[Chat],
    out_dir: str | Path,
    options: FinetuneOptions,
    resume: bool = False,
    progress: Progress = lambda m: None,
    extra_report: dict | None = None,
) -> dict:
    """Train LoRA on `options.model` with `chats`, report the loss on `eval_chats` before and after, and save
    the model (merged, or the adapter) in `out_dir`; returns the training report (also written there)."""
    out = Path(out_dir)
    base = resolve_trainable_model(options.model, progress)
    device = pick_device(options.device)
    progress(f"loading {base} on {device}")
    model, tokenizer = load_causal_lm(base, device)
    examples, encode_stats, eval_examples = _encode_for_training(tokenizer, chats, eval_chats, options.encode, progress)
    total_params = sum(p.numel() for p in model.parameters())
    model = _with_lora(model, options)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    meta = {}
    if not resume:
        meta["validation_loss_before"] = mean_loss(model, eval_examples, tokenizer.pad_token_id, device)
    result = train_loop(
        model,
        examples,
        reply_loss,
        options.loop,
        pad_id=tokenizer.pad_token_id,
        device=device,
        checkpoint_dir=out / "checkpoints",
        resume=resume,
        fingerprint=fingerprint(examples, _run_settings(base, options)),
        meta=meta,
        description="fine-tuning",
    )
    validation_after = mean_loss(model, eval_examples, tokenizer.pad_token_id, device)

    _save_model(model, tokenizer, out, options.adapter_only)
    report = {
        "model": options.model,
        "base_path": base,
        "device": device,
        "dtype": "bfloat16" if device == "cuda" else "float32",
        "output": "adapter" if options.adapter_only else "merged",
        "out": str(out),
        "lora": dataclasses.asdict(options.lora),
        "trainable_parameters": trainable,
        "total_parameters": total_params,
        "max_tokens": options.encode.max_tokens,
        "target_tokens_this_run": result.target_tokens,
        **run_report(result, options.loop, examples, encode_stats, eval_examples, validation_after, device),
        **(extra_report or {}),
    }
    write_atomic(out / "train_report.json", json.dumps(report, indent=2) + "\n")
    return report
