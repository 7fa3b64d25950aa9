"""`chatbot finetune | distill | evaluate | export | improve`: thin adapters from flags to this package.

Each option that has a default overrides one key of the config tree when given (`--lora-rank` is `[finetune.lora] rank`,
see core/config.py), so each default lives there once; `chatbot.cli.config_from_args` applies them. The flags and
their help texts are declared in `finetune.cli_options`; this module checks their values and runs the commands.
`register(subparsers)` is called by `chatbot.cli`; each command returns an exit code and raises a
`ChatbotError` for bad input (one line on stderr, exit 2). torch, peft and ctranslate2 are
imported inside the commands, so `chatbot --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from chatbot.cli import config_from_args
from core.errors import BadInput
from core.files import write_atomic
from finetune.cli_options import distill_parser, evaluate_parser, export_parser, finetune_parser, improve_parser


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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
    from chatbot.work_meter import metered, work_device
    from finetune.train import FinetuneOptions, finetune

    config = config_from_args(args)
    _check_training(config, config.finetune.loop.learning_rate)
    _positive("--lora-rank", "finetune.lora.rank", config.finetune.lora.rank)
    _positive("--lora-alpha", "finetune.lora.alpha", config.finetune.lora.alpha, allow_zero=True)
    options = FinetuneOptions.from_config(config)
    with metered(config.db_url, "finetune", work_device(config), {"model": options.model}):
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
    from chatbot.work_meter import metered, work_device
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
    with metered(config.db_url, "distill", work_device(config)):
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


def _independent_lines(check: dict | None) -> list[str]:
    """The candidate and the serving model on the independent questions, one line each (none when not set)."""
    if not check:
        return []
    c, s = check["candidate"], check["serving_before"]
    return [
        f"on {check['questions']}: candidate correct {c['correct_rate']}, wrong {c['wrong_rate']}, likely resolved "
        f"{c['likely_resolved']}; serving correct {s['correct_rate']}, wrong {s['wrong_rate']}, likely resolved "
        f"{s['likely_resolved']}"
    ]


def cmd_improve(args: argparse.Namespace) -> int:
    from chatbot.work_meter import metered, work_device
    from finetune.improve import improve

    config = config_from_args(args)
    _positive("--max-steps", "finetune.improve.max_steps", config.finetune.improve.max_steps)
    with metered(config.db_url, "improve", work_device(config)) as run:
        summary = improve(config, args.questions, args.logs, args.out, _progress)
        run.update(serving=summary["serving"], promoted=summary["promoted"], **summary["levers"])
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
                *_independent_lines(summary.get("independent")),
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


def register(subparsers) -> None:
    """Add the commands, each with the function that runs it (`finetune.cli_options` defines their flags)."""
    # the order here is the order `chatbot --help` lists the commands in
    finetune_parser(subparsers).set_defaults(func=cmd_finetune)
    distill_parser(subparsers).set_defaults(func=cmd_distill)
    evaluate_parser(subparsers).set_defaults(func=cmd_evaluate)
    improve_parser(subparsers).set_defaults(func=cmd_improve)
    export_parser(subparsers).set_defaults(func=cmd_export)
