"""`chatbot finetune | distill | evaluate | export | improve`: thin adapters from flags to this package.

Each option that has a default overrides one key of the config tree when given (`--lora-rank` is `[finetune.lora] rank`,
see core/config.py), so each default lives there once; `chatbot.cli.config_from_args` applies them.
`register(subparsers)` is called by `chatbot.cli`; each command returns an exit code and raises a
`ChatbotError` for bad input (one line on stderr, exit 2). torch, peft and ctranslate2 are
imported inside the commands, so `chatbot --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from chatbot.cli import add_common, config_dest, config_from_args
from core.errors import BadInput
from core.files import write_atomic


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _default(key: str) -> str:
    """'default from config: X (key)' for a help text; X is the default in code (core/config.py)."""
    from core.config import default

    value = default(key)
    shown = str(value).lower() if isinstance(value, bool) else repr(value) if value == "" else value
    return f"default from config: {shown} ({key})"


def _positive(flag: str, key: str, value: int, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise BadInput(f"{flag} must be {'0 or more' if allow_zero else 'at least 1'}, not {value} (config key {key})")


def _check_training(config, learning_rate: float) -> None:
    """Values a training run cannot start with, whether they came from a flag or the TOML file."""
    f = config.finetune
    _positive("--max-steps", "finetune.loop.max_steps", f.loop.max_steps)
    _positive("--batch-size", "finetune.loop.batch_size", f.loop.batch_size)
    _positive("--checkpoint-every", "finetune.loop.checkpoint_every_steps", f.loop.checkpoint_every_steps)
    _positive("--max-tokens", "finetune.max_tokens", f.max_tokens)
    _positive("--max-examples", "finetune.max_examples", f.max_examples, allow_zero=True)
    _positive("--eval-examples", "finetune.eval_examples", f.eval_examples, allow_zero=True)
    if learning_rate <= 0:
        from core.config import default

        raise BadInput(
            f"--learning-rate must be positive, not {learning_rate}; e.g. {default('finetune.loop.learning_rate')}"
        )


def _print_report(args: argparse.Namespace, report: dict, summary: str) -> None:
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print(summary)


def cmd_finetune(args: argparse.Namespace) -> int:
    from finetune.train import FinetuneOptions, finetune

    config = config_from_args(args)
    _check_training(config, config.finetune.loop.learning_rate)
    _positive("--lora-rank", "finetune.lora.rank", config.finetune.lora.rank)
    _positive("--lora-alpha", "finetune.lora.alpha", config.finetune.lora.alpha, allow_zero=True)
    options = FinetuneOptions.from_config(config)
    report = finetune(args.data, args.out, options, resume=args.resume, progress=_progress)
    report.pop("losses")
    _print_report(
        args,
        report,
        (
            f"fine-tuned {options.model} for {report['steps']} steps in {report['train_seconds']:.0f} s on "
            f"{report['device']}: loss {report['initial_loss']} -> {report['final_loss']}, validation loss "
            f"{report['validation_loss_before']} -> {report['validation_loss_after']}, peak memory "
            f"{report['peak_rss_mb']:.0f} MB\n{report['output']} model in {args.out} (splits in {Path(args.out) / 'data'})"
        ),
    )
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from finetune.distill import DistillOptions, distill

    config = config_from_args(args)
    kd = config.finetune.distill
    _check_training(config, kd.learning_rate)
    _positive("--layers", "finetune.distill.layers", kd.layers, allow_zero=True)
    if not 0 <= kd.alpha <= 1 or kd.temperature <= 0:
        raise BadInput(
            f"--alpha must be in [0, 1] and --temperature positive, not {kd.alpha} and {kd.temperature} "
            "(config keys finetune.distill.alpha, finetune.distill.temperature)"
        )
    options = DistillOptions.from_config(config)
    report = distill(args.teacher, args.out, args.data or (), options, resume=args.resume, progress=_progress)
    report.pop("losses")
    _print_report(
        args,
        report,
        (
            f"distilled ({report['mode']}-level) {report['teacher_layers']} -> {report['student_layers']} layers, "
            f"{report['teacher_parameters'] / 1e6:.0f}M -> {report['student_parameters'] / 1e6:.0f}M parameters, "
            f"{report['steps']} steps in {report['train_seconds']:.0f} s: loss {report['initial_loss']} -> "
            f"{report['final_loss']}, validation loss {report['validation_loss_before']} -> "
            f"{report['validation_loss_after']}\nstudent in {args.out}"
        ),
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from chatbot.builder import build_embedder
    from finetune.data import read_exchanges
    from finetune.evaluate import EvalOptions, evaluate, model_path, promote, stratified_limit, table

    config = config_from_args(args)
    _positive("--limit", "finetune.evaluate.limit", config.finetune.evaluate.limit, allow_zero=True)
    _positive("--max-new-tokens", "generation.max_new_tokens", config.generation.max_new_tokens)
    for arg in args.models:  # a wrong model fails before any work
        model_path(arg, _progress)
    everything = [e for path in args.data for e in read_exchanges(path)]
    exchanges = stratified_limit(everything, config.finetune.evaluate.limit)
    options = EvalOptions.from_config(config)
    embedder = build_embedder(config, _progress)
    _progress(f"scoring {len(args.models)} model(s) on {len(exchanges)} exchanges")
    results, predictions = evaluate(args.models, exchanges, options, embedder.embed, everything, _progress)
    out = {
        "data": [str(p) for p in args.data],
        "examples": len(exchanges),
        "max_new_tokens": options.max_new_tokens,
        "models": {arg: asdict(scores) for arg, scores in results.items()},
    }
    if args.promote_to:
        out["promotion"] = promote(results, args.promote_to, exchanges, options, embedder.embed, everything, _progress)
    if args.predictions:
        write_atomic(args.predictions, "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in predictions))
    if args.json:
        print(json.dumps(out, ensure_ascii=False))
    else:
        print(table(results))
        if args.promote_to:
            p = out["promotion"]
            print(
                f"{'promoted' if p['promoted'] else 'not promoted'}: {p['candidate']} -> {args.promote_to} "
                f"({p['reason']})"
            )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from chatbot.answer.export import export_ctranslate2

    record = export_ctranslate2(args.model, args.out, args.quantization, force=args.force)
    _print_report(
        args,
        record,
        f"exported {args.model} to {args.out} ({record['quantization']}, "
        f'{record["size_mb"]:.0f} MB); serve it with [models] llm = "{args.out}"',
    )
    return 0


def cmd_improve(args: argparse.Namespace) -> int:
    from finetune.improve import improve

    config = config_from_args(args)
    _positive("--max-steps", "finetune.improve.max_steps", config.finetune.improve.max_steps)
    summary = improve(config, args.questions, args.logs, args.out, _progress)
    c, s, student = summary["candidate"], summary["serving_before"], summary.get("student")
    lines = []
    if student and "writing" in student:  # judged this round (not when already serving)
        w, t = student["writing"], student["teacher_writing"]
        lines.append(
            f"student {student['name']} ({student['layers']} layers): correct {student['correct_rate']}, "
            f"wrong {student['wrong_rate']}; where the LLM writes: correct {w['correct_rate']} vs "
            f"{t['correct_rate']}, wrong {w['wrong_rate']} vs {t['wrong_rate']} (its teacher)"
        )
    _print_report(
        args,
        summary,
        "\n".join(
            [
                *lines,
                f"candidate {c['name']}: correct {c['correct_rate']}, wrong {c['wrong_rate']}, "
                f"resolution {c['resolution_rate']}",
                f"serving   {s['name']}: correct {s['correct_rate']}, wrong {s['wrong_rate']}, "
                f"resolution {s['resolution_rate']}",
                f"{'promoted' if summary['promoted'] else 'not promoted'}: {summary['reason']}",
                f"serving now: {summary['serving']}"
                + (
                    ""
                    if config.models.promoted_dir
                    else f' (set [models] promoted_dir = "{summary["target"]}" to serve it)'
                ),
            ]
        ),
    )
    return 0


def _flag(p: argparse.ArgumentParser, flag: str, key: str, help: str, **kwargs) -> None:
    """A flag that overrides config key `key` when given; its help ends with the default from config."""
    if kwargs.get("action") is None and "metavar" not in kwargs and "choices" not in kwargs:
        kwargs["metavar"] = key.rsplit(".", 1)[-1].upper()
    p.add_argument(flag, dest=config_dest(key), help=f"{help}; {_default(key)}", **kwargs)


def _training_options(p: argparse.ArgumentParser, learning_rate_key: str) -> None:
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


def _register_finetune(subparsers) -> None:
    """Add the `finetune` subcommand."""
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
    p.set_defaults(func=cmd_finetune)


def _register_distill(subparsers) -> None:
    """Add the `distill` subcommand."""
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
    p.set_defaults(func=cmd_distill)


def _register_evaluate(subparsers) -> None:
    """Add the `evaluate` subcommand."""
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
    p.set_defaults(func=cmd_evaluate)


def _register_improve(subparsers) -> None:
    """Add the `improve` subcommand."""
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
    add_common(p, index=True, db=True)
    p.set_defaults(func=cmd_improve)


def _register_export(subparsers) -> None:
    """Add the `export` subcommand."""
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
    p.set_defaults(func=cmd_export)


def register(subparsers) -> None:
    # the order here is the order `chatbot --help` lists the commands in
    _register_finetune(subparsers)
    _register_distill(subparsers)
    _register_evaluate(subparsers)
    _register_improve(subparsers)
    _register_export(subparsers)
