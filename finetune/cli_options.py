"""The flags and help texts of `chatbot finetune | distill | evaluate | improve | export`.

Each `*_parser(subparsers)` adds one subcommand with its description and options and returns its parser;
an option that has a default overrides one config key when given, and its help ends with that default
and key (read from core/config.py). This module knows nothing about what the commands do: `finetune.cli`
attaches each command to its parser and checks the values.
"""

from __future__ import annotations

import argparse

from chatbot.cli import add_common, config_dest


def _default(key: str) -> str:
    """'default from config: X (key)' for a help text; X is the default in code (core/config.py)."""
    from core.config import default

    value = default(key)
    shown = str(value).lower() if isinstance(value, bool) else repr(value) if value == "" else value
    return f"default from config: {shown} ({key})"


def _flag(p: argparse.ArgumentParser, flag: str, key: str, help: str, **kwargs) -> None:
    """A flag that overrides config key `key` when given; its help ends with the default from config."""
    if kwargs.get("action") is None and "metavar" not in kwargs and "choices" not in kwargs:
        kwargs["metavar"] = key.rsplit(".", 1)[-1].upper()
    p.add_argument(flag, dest=config_dest(key), help=f"{help}; {_default(key)}", **kwargs)


def _training_options(p: argparse.ArgumentParser, learning_rate_key: str) -> None:
    """The flags `finetune` and `distill` share: the run, then the data and prompt."""
    _loop_options(p, learning_rate_key)
    _data_options(p)


def _loop_options(p: argparse.ArgumentParser, learning_rate_key: str) -> None:
    """Steps, batches, learning rate, sequence and example counts, checkpoints, resume, device."""
    _flag(
        p,
        "--max-steps",
        "finetune.loop.max_steps",
        "optimizer steps in total, counting steps before a --resume",
        type=int,
        metavar="N",
    )
    _flag(p, "--batch-size", "finetune.loop.batch_size", "sequences per step", type=int, metavar="N")
    _flag(p, "--learning-rate", learning_rate_key, "peak learning rate, after warm-up", type=float, metavar="LR")
    _flag(
        p,
        "--max-tokens",
        "finetune.max_tokens",
        "prompt + reply tokens per sequence; longer replies are cut",
        type=int,
        metavar="N",
    )
    _flag(
        p,
        "--max-examples",
        "finetune.max_examples",
        "train on at most N exchanges of the train split (0: all)",
        type=int,
        metavar="N",
    )
    _flag(
        p,
        "--eval-examples",
        "finetune.eval_examples",
        "validation exchanges whose loss is reported before and after (0: none)",
        type=int,
        metavar="N",
    )
    _flag(
        p,
        "--checkpoint-every",
        "finetune.loop.checkpoint_every_steps",
        "save a checkpoint every N steps, and at the end",
        type=int,
        metavar="N",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the last checkpoint in OUT/checkpoints (same data and options)",
    )
    p.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        help=f"auto: CUDA with bf16 when present, else CPU fp32; {_default('models.device')}",
    )


def _data_options(p: argparse.ArgumentParser) -> None:
    """The company in the prompt, the profile filling the logs, the held-out fractions and the seed."""
    _flag(p, "--company", "company_name", "company name in the system prompt", metavar="NAME")
    _flag(
        p,
        "--profile",
        "finetune.profile",
        'JSON object filling {{placeholders}} in the logs, e.g. {"Website Name": "shop.example"}; '
        "its values (your public email, phone) are never scrubbed",
        metavar="FILE",
    )
    _flag(
        p,
        "--validation-fraction",
        "finetune.validation_fraction",
        "share of each intent held out for validation",
        type=float,
        metavar="F",
    )
    _flag(
        p,
        "--test-fraction",
        "finetune.test_fraction",
        "share of each intent held out in OUT/data/test.jsonl for 'chatbot evaluate'",
        type=float,
        metavar="F",
    )
    _flag(
        p,
        "--seed",
        "finetune.seed",
        "fixes the split, the distractor sources and the training order",
        type=int,
        metavar="N",
    )


def finetune_parser(subparsers) -> argparse.ArgumentParser:
    """The `finetune` subcommand's parser: its flags and help texts, with no command to run yet."""
    p = subparsers.add_parser(
        "finetune",
        help="LoRA fine-tune the LLM on support logs (scrubbed, split by intent)",
        description="Scrub personal data from support logs, split them by intent into OUT/data/, and LoRA "
        "fine-tune the LLM on the train split in the prompt format the assistant serves. OUT "
        'receives a merged model (serve it with [models] llm = "OUT"), train_report.json and '
        "checkpoints/.",
    )
    p.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="FILE",
        help="support logs, CSV or JSONL: instruction/response(/intent/category) rows or "
        '{"turns": [{"role", "text"}]} transcripts; repeat for several files',
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder for the model, data splits and report")
    p.add_argument(
        "--model", metavar="M", help=f"base model: a registered name, local folder or hub id; {_default('models.llm')}"
    )
    _flag(p, "--lora-rank", "finetune.lora.rank", "LoRA rank", type=int, metavar="R")
    _flag(
        p,
        "--lora-alpha",
        "finetune.lora.alpha",
        "LoRA alpha; the update is scaled by alpha/rank (0: 2 x rank)",
        type=int,
        metavar="A",
    )
    _flag(p, "--lora-dropout", "finetune.lora.dropout", "LoRA dropout", type=float, metavar="P")
    _flag(
        p,
        "--adapter-only",
        "finetune.adapter_only",
        "save only the LoRA adapter (small) instead of a merged model",
        action=argparse.BooleanOptionalAction,
    )
    _flag(
        p,
        "--gradient-checkpointing",
        "finetune.gradient_checkpointing",
        "recompute activations to save memory on big models (slower)",
        action=argparse.BooleanOptionalAction,
    )
    _training_options(p, "finetune.loop.learning_rate")
    add_common(p)
    return p


def distill_parser(subparsers) -> argparse.ArgumentParser:
    """The `distill` subcommand's parser: its flags and help texts, with no command to run yet."""
    p = subparsers.add_parser(
        "distill",
        help="distil a fine-tuned model into a smaller student",
        description="Train a student on the teacher's outputs: token-level KD (softened KL + cross-entropy) "
        "when the vocabularies match, sequence-level KD (the teacher writes the targets) when "
        "they do not. By default the student is the teacher with fewer decoder layers.",
    )
    p.add_argument(
        "--teacher", required=True, metavar="DIR", help="teacher model folder (e.g. made by 'chatbot finetune')"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder for the student and distill_report.json")
    _flag(
        p,
        "--layers",
        "finetune.distill.layers",
        "decoder layers of the student cut from the teacher, evenly spaced (0: half)",
        type=int,
        metavar="N",
    )
    _flag(
        p,
        "--student",
        "finetune.distill.student",
        "distil into this model (name or folder) instead of cutting the teacher",
        metavar="M",
    )
    p.add_argument(
        "--data",
        action="append",
        metavar="FILE",
        help="support logs to distil on, scrubbed and split like 'finetune' (default: the teacher's data/train.jsonl)",
    )
    _flag(
        p,
        "--mode",
        "finetune.distill.mode",
        "auto: token-level when the vocabularies match, else sequence-level",
        choices=["auto", "token", "sequence"],
    )
    _flag(p, "--temperature", "finetune.distill.temperature", "softening temperature", type=float, metavar="T")
    _flag(
        p,
        "--alpha",
        "finetune.distill.alpha",
        "weight of the KL term; cross-entropy on the gold reply gets 1 - A",
        type=float,
        metavar="A",
    )
    _training_options(p, "finetune.distill.learning_rate")
    add_common(p)
    return p


def evaluate_parser(subparsers) -> argparse.ArgumentParser:
    """The `evaluate` subcommand's parser: its flags and help texts, with no command to run yet."""
    p = subparsers.add_parser(
        "evaluate",
        help="score models on held-out exchanges; optionally promote the best",
        description="Each model answers held-out questions from the serve-time prompt; replies are scored "
        "against the agent's reply (ROUGE-L, MiniLM cosine, keyword coverage) with latency, "
        "tokens/s and size. --promote-to copies the best model there only if it beats the "
        "model already there on both ROUGE-L and cosine.",
    )
    p.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="FILE",
        help="held-out exchanges, CSV or JSONL in the log formats (e.g. OUT/data/test.jsonl); repeatable",
    )
    p.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="DIR",
        dest="models",
        help="model folder (transformers or CTranslate2 export), a registered name, or 'default' for "
        "the offline default base model; repeat to compare",
    )
    _flag(
        p,
        "--limit",
        "finetune.evaluate.limit",
        "score N exchanges, taken round-robin across intents (0: all)",
        type=int,
        metavar="N",
    )
    _flag(p, "--max-new-tokens", "generation.max_new_tokens", "longest reply, as served", type=int, metavar="N")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help=_default("models.device"))
    _flag(p, "--company", "company_name", "company name in the system prompt", metavar="NAME")
    _flag(p, "--seed", "finetune.seed", "picks the distractor sources, as in training", type=int, metavar="N")
    p.add_argument(
        "--promote-to",
        metavar="DIR",
        help="copy the best model here if it beats the current one there on ROUGE-L and cosine "
        "(the replaced one is kept in DIR.previous)",
    )
    p.add_argument("--predictions", metavar="FILE", help="write every reply with its scores to this JSONL file")
    add_common(p)
    return p


def improve_parser(subparsers) -> argparse.ArgumentParser:
    """The `improve` subcommand's parser: its flags and help texts, with no command to run yet."""
    p = subparsers.add_parser(
        "improve",
        help="fine-tune on the help centre and logs, export, evaluate, promote (one round)",
        description="One round of the improvement loop: LoRA fine-tune [models] llm for grounded answering on "
        "questions read off the help centre in the index (with the passages search really returns) "
        "and on support logs, export it int8, run 'chatbot eval' on the dev split with it and with "
        "the serving model, and promote it into [models] promoted_dir only if its correct rate is "
        "not lower and its wrong rate not higher. Each step is cached in OUT: a second run with "
        "nothing changed does no work. The held-out split is never used.",
    )
    p.add_argument(
        "--questions",
        required=True,
        metavar="FILE",
        help="question set (JSONL, as for 'chatbot eval'); its dev split is the promotion gate",
    )
    p.add_argument(
        "--logs",
        action="append",
        default=[],
        metavar="FILE",
        help="support logs (CSV or JSONL), repeatable; scrubbed before use",
    )
    p.add_argument(
        "--out",
        default=".chatbot/models",
        metavar="DIR",
        help="work folder: candidate/, candidate-int8/, eval/, serving/ (default .chatbot/models)",
    )
    _flag(p, "--max-steps", "finetune.improve.max_steps", "optimizer steps of the LoRA run", type=int, metavar="N")
    _flag(
        p,
        "--independent-questions",
        "finetune.improve.independent_questions",
        "a second question set written by other people (all its questions are asked; never tuned on): its "
        "figures are reported beside the gate's, and the candidate must not be worse there either",
        metavar="FILE",
    )
    add_common(p, index=True, db=True)
    return p


def export_parser(subparsers) -> argparse.ArgumentParser:
    """The `export` subcommand's parser: its flags and help texts, with no command to run yet."""
    from chatbot.answer.export import QUANTIZATIONS

    p = subparsers.add_parser(
        "export",
        help="export a model to CTranslate2 (int8) for fast serving",
        description="Convert a transformers model folder to CTranslate2 with the tokenizer beside it. "
        "Serve it by naming the folder in [models] llm: the CTranslate2 backend is picked by itself.",
    )
    p.add_argument("--model", required=True, metavar="DIR", help="transformers model folder (merged, not an adapter)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder for the CTranslate2 model")
    p.add_argument(
        "--quantization",
        default="int8",
        choices=QUANTIZATIONS,
        help="weight type (default int8: ~4x smaller, fastest on CPU)",
    )
    p.add_argument("--force", action="store_true", help="replace OUT if it is not empty")
    add_common(p)
    return p
