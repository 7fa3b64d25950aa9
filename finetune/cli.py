"""`chatbot finetune | distill | evaluate | export`: thin adapters from flags to this package.

`register(subparsers)` is called by `chatbot.cli`; each command returns an exit code and raises a
`ChatbotError` for bad input (one line on stderr, exit 2). torch, peft and ctranslate2 are
imported inside the commands, so `chatbot --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.errors import BadInput


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def config_from_args(args: argparse.Namespace):
    from core.config import load_config

    return load_config(getattr(args, "config", None))


def _positive(name: str, value: int, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise BadInput(f"{name} must be {'0 or more' if allow_zero else 'at least 1'}, not {value}")


def _loop_options(args: argparse.Namespace, defaults):
    from dataclasses import replace

    _positive("--max-steps", args.max_steps)
    _positive("--batch-size", args.batch_size)
    _positive("--checkpoint-every", args.checkpoint_every)
    if args.learning_rate is not None and args.learning_rate <= 0:
        raise BadInput("--learning-rate must be positive, e.g. 2e-4")
    return replace(defaults, max_steps=args.max_steps, batch_size=args.batch_size, seed=args.seed,
                   checkpoint_every_steps=args.checkpoint_every, warmup_steps=min(defaults.warmup_steps, args.max_steps // 5),
                   learning_rate=args.learning_rate or defaults.learning_rate)


def _data_options(args: argparse.Namespace):
    from finetune.data import DataOptions, load_profile

    return DataOptions(validation_fraction=args.validation_fraction, test_fraction=args.test_fraction,
                       seed=args.seed, profile=load_profile(args.profile))


def _encode_options(args: argparse.Namespace, config):
    from finetune.train import EncodeOptions

    _positive("--max-tokens", args.max_tokens)
    return EncodeOptions(company=args.company or config.company_name,
                         source_sentences=config.generation.source_sentences, max_tokens=args.max_tokens,
                         seed=args.seed)


def _print_report(args: argparse.Namespace, report: dict, summary: str) -> None:
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print(summary)


def cmd_finetune(args: argparse.Namespace) -> int:
    from finetune.loop import LoopOptions
    from finetune.train import FinetuneOptions, LoraOptions, finetune

    config = config_from_args(args)
    _positive("--lora-rank", args.lora_rank)
    _positive("--max-examples", args.max_examples, allow_zero=True)
    options = FinetuneOptions(
        model=args.model or config.models.llm, device=args.device or config.models.device,
        max_examples=args.max_examples, eval_examples=args.eval_examples, adapter_only=args.adapter_only,
        gradient_checkpointing=args.gradient_checkpointing, encode=_encode_options(args, config),
        lora=LoraOptions(rank=args.lora_rank, alpha=args.lora_alpha or 2 * args.lora_rank, dropout=args.lora_dropout),
        loop=_loop_options(args, LoopOptions()), data=_data_options(args),
    )
    report = finetune(args.data, args.out, options, resume=args.resume, progress=_progress)
    report.pop("losses")
    _print_report(args, report, (
        f"fine-tuned {options.model} for {report['steps']} steps in {report['train_seconds']:.0f} s on "
        f"{report['device']}: loss {report['initial_loss']} -> {report['final_loss']}, validation loss "
        f"{report['validation_loss_before']} -> {report['validation_loss_after']}, peak memory "
        f"{report['peak_rss_mb']:.0f} MB\n{report['output']} model in {args.out} (splits in {Path(args.out) / 'data'})"))
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from finetune.distill import DistillOptions, distill
    from finetune.loop import LoopOptions

    config = config_from_args(args)
    _positive("--layers", args.layers, allow_zero=True)
    if not 0 <= args.alpha <= 1 or args.temperature <= 0:
        raise BadInput("--alpha must be in [0, 1] and --temperature positive")
    options = DistillOptions(
        layers=args.layers, student=args.student or "", mode=args.mode, temperature=args.temperature,
        alpha=args.alpha, device=args.device or config.models.device, max_examples=args.max_examples,
        eval_examples=args.eval_examples, encode=_encode_options(args, config),
        loop=_loop_options(args, LoopOptions(learning_rate=1e-4)), data=_data_options(args),
    )
    report = distill(args.teacher, args.out, args.data or (), options, resume=args.resume, progress=_progress)
    report.pop("losses")
    _print_report(args, report, (
        f"distilled ({report['mode']}-level) {report['teacher_layers']} -> {report['student_layers']} layers, "
        f"{report['teacher_parameters'] / 1e6:.0f}M -> {report['student_parameters'] / 1e6:.0f}M parameters, "
        f"{report['steps']} steps in {report['train_seconds']:.0f} s: loss {report['initial_loss']} -> "
        f"{report['final_loss']}, validation loss {report['validation_loss_before']} -> "
        f"{report['validation_loss_after']}\nstudent in {args.out}"))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from chatbot.builder import build_embedder
    from finetune.data import read_exchanges
    from finetune.evaluate import EvalOptions, evaluate, model_path, promote, stratified_limit, table

    config = config_from_args(args)
    _positive("--limit", args.limit, allow_zero=True)
    _positive("--max-new-tokens", args.max_new_tokens or 1)
    for arg in args.model:  # a wrong model fails before any work
        model_path(arg, _progress)
    everything = [e for path in args.data for e in read_exchanges(path)]
    exchanges = stratified_limit(everything, args.limit)
    options = EvalOptions(
        company=args.company or config.company_name, source_sentences=config.generation.source_sentences,
        max_new_tokens=args.max_new_tokens or config.generation.max_new_tokens,
        repetition_penalty=config.generation.repetition_penalty, seed=args.seed,
        device=args.device or config.models.device, threads=config.models.threads,
    )
    embedder = build_embedder(config, _progress)
    _progress(f"scoring {len(args.model)} model(s) on {len(exchanges)} exchanges")
    results, predictions = evaluate(args.model, exchanges, options, embedder.embed, everything, _progress)
    out = {"data": [str(p) for p in args.data], "examples": len(exchanges), "max_new_tokens": options.max_new_tokens,
           "models": {arg: asdict(scores) for arg, scores in results.items()}}
    if args.promote_to:
        out["promotion"] = promote(results, args.promote_to, exchanges, options, embedder.embed, everything, _progress)
    if args.predictions:
        path = Path(args.predictions)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in predictions), encoding="utf-8")
    if args.json:
        print(json.dumps(out, ensure_ascii=False))
    else:
        print(table(results))
        if args.promote_to:
            p = out["promotion"]
            print(f"{'promoted' if p['promoted'] else 'not promoted'}: {p['candidate']} -> {args.promote_to} "
                  f"({p['reason']})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from chatbot.answer.export import export_ctranslate2

    record = export_ctranslate2(args.model, args.out, args.quantization, force=args.force)
    _print_report(args, record, f"exported {args.model} to {args.out} ({record['quantization']}, "
                                f"{record['size_mb']:.0f} MB); serve it with [models] llm = \"{args.out}\"")
    return 0


def _training_options(p: argparse.ArgumentParser, steps: int, batch: int, lr_help: str) -> None:
    p.add_argument("--max-steps", type=int, default=steps, metavar="N",
                   help=f"optimizer steps in total, counting steps before a --resume (default {steps})")
    p.add_argument("--batch-size", type=int, default=batch, metavar="N", help=f"sequences per step (default {batch})")
    p.add_argument("--learning-rate", type=float, metavar="LR", help=lr_help)
    p.add_argument("--max-tokens", type=int, default=768, metavar="N",
                   help="prompt + reply tokens per sequence; longer replies are cut (default 768)")
    p.add_argument("--max-examples", type=int, default=0, metavar="N",
                   help="train on at most N exchanges of the train split (default 0: all)")
    p.add_argument("--eval-examples", type=int, default=32, metavar="N",
                   help="validation exchanges whose loss is reported before and after (default 32; 0: none)")
    p.add_argument("--checkpoint-every", type=int, default=50, metavar="N",
                   help="save a checkpoint every N steps, and at the end (default 50)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the last checkpoint in OUT/checkpoints (same data and options)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"],
                   help="auto: CUDA with bf16 when present, else CPU fp32 (default from config: auto)")
    p.add_argument("--company", help="company name in the system prompt (default from config: company_name)")
    p.add_argument("--profile", metavar="FILE",
                   help="JSON object filling {{placeholders}} in the logs, e.g. {\"Website Name\": \"shop.example\"}; "
                        "its values (your public email, phone) are never scrubbed")
    p.add_argument("--validation-fraction", type=float, default=0.1, metavar="F",
                   help="share of each intent held out for validation (default 0.1)")
    p.add_argument("--test-fraction", type=float, default=0.1, metavar="F",
                   help="share of each intent held out in OUT/data/test.jsonl for 'chatbot evaluate' (default 0.1)")
    p.add_argument("--seed", type=int, default=13,
                   help="fixes the split, the distractor sources and the training order (default 13)")


def register(subparsers) -> None:
    from chatbot.cli import add_common
    from chatbot.answer.export import QUANTIZATIONS

    p = subparsers.add_parser(
        "finetune", help="LoRA fine-tune the LLM on support logs (scrubbed, split by intent)",
        description="Scrub personal data from support logs, split them by intent into OUT/data/, and LoRA "
                    "fine-tune the LLM on the train split in the prompt format the assistant serves. OUT "
                    "receives a merged model (serve it with [models] llm = \"OUT\"), train_report.json and "
                    "checkpoints/.")
    p.add_argument("--data", action="append", required=True, metavar="FILE",
                   help="support logs, CSV or JSONL: instruction/response(/intent/category) rows or "
                        "{\"turns\": [{\"role\", \"text\"}]} transcripts; repeat for several files")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder for the model, data splits and report")
    p.add_argument("--model", metavar="M",
                   help="base model: a registered name, local folder or hub id (default from config: [models] llm)")
    p.add_argument("--lora-rank", type=int, default=16, metavar="R", help="LoRA rank (default 16)")
    p.add_argument("--lora-alpha", type=int, metavar="A", help="LoRA alpha; the update is scaled by alpha/rank "
                                                                "(default 2 x rank)")
    p.add_argument("--lora-dropout", type=float, default=0.05, metavar="P", help="LoRA dropout (default 0.05)")
    p.add_argument("--adapter-only", action="store_true",
                   help="save only the LoRA adapter (small) instead of a merged model")
    p.add_argument("--gradient-checkpointing", action="store_true",
                   help="recompute activations to save memory on big models (slower)")
    _training_options(p, steps=200, batch=4, lr_help="peak learning rate (default 2e-4)")
    add_common(p)
    p.set_defaults(func=cmd_finetune)

    p = subparsers.add_parser(
        "distill", help="distil a fine-tuned model into a smaller student",
        description="Train a student on the teacher's outputs: token-level KD (softened KL + cross-entropy) "
                    "when the vocabularies match, sequence-level KD (the teacher writes the targets) when "
                    "they do not. By default the student is the teacher with fewer decoder layers.")
    p.add_argument("--teacher", required=True, metavar="DIR", help="teacher model folder (e.g. made by 'chatbot finetune')")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder for the student and distill_report.json")
    p.add_argument("--layers", type=int, default=0, metavar="N",
                   help="decoder layers of the student cut from the teacher, evenly spaced (default: half)")
    p.add_argument("--student", metavar="M", help="distil into this model (name or folder) instead of cutting the teacher")
    p.add_argument("--data", action="append", metavar="FILE",
                   help="support logs to distil on, scrubbed and split like 'finetune' (default: the teacher's "
                        "data/train.jsonl)")
    p.add_argument("--mode", choices=["auto", "token", "sequence"], default="auto",
                   help="auto: token-level when the vocabularies match, else sequence-level (default auto)")
    p.add_argument("--temperature", type=float, default=2.0, metavar="T", help="softening temperature (default 2)")
    p.add_argument("--alpha", type=float, default=0.5, metavar="A",
                   help="weight of the KL term; cross-entropy on the gold reply gets 1 - A (default 0.5)")
    _training_options(p, steps=200, batch=4, lr_help="peak learning rate (default 1e-4)")
    add_common(p)
    p.set_defaults(func=cmd_distill)

    p = subparsers.add_parser(
        "evaluate", help="score models on held-out exchanges; optionally promote the best",
        description="Each model answers held-out questions from the serve-time prompt; replies are scored "
                    "against the agent's reply (ROUGE-L, MiniLM cosine, keyword coverage) with latency, "
                    "tokens/s and size. --promote-to copies the best model there only if it beats the "
                    "model already there on both ROUGE-L and cosine.")
    p.add_argument("--data", action="append", required=True, metavar="FILE",
                   help="held-out exchanges, CSV or JSONL in the log formats (e.g. OUT/data/test.jsonl); repeatable")
    p.add_argument("--model", action="append", required=True, metavar="DIR",
                   help="model folder (transformers or CTranslate2 export), a registered name, or 'default' for "
                        "the offline default base model; repeat to compare")
    p.add_argument("--limit", type=int, default=0, metavar="N",
                   help="score N exchanges, taken round-robin across intents (default 0: all)")
    p.add_argument("--max-new-tokens", type=int, metavar="N",
                   help="longest reply (default from config: generation.max_new_tokens, as served)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default from config: auto")
    p.add_argument("--company", help="company name in the system prompt (default from config: company_name)")
    p.add_argument("--seed", type=int, default=13, help="picks the distractor sources, as in training (default 13)")
    p.add_argument("--promote-to", metavar="DIR",
                   help="copy the best model here if it beats the current one there on ROUGE-L and cosine "
                        "(the replaced one is kept in DIR.previous)")
    p.add_argument("--predictions", metavar="FILE", help="write every reply with its scores to this JSONL file")
    add_common(p)
    p.set_defaults(func=cmd_evaluate)

    p = subparsers.add_parser(
        "export", help="export a model to CTranslate2 (int8) for fast serving",
        description="Convert a transformers model folder to CTranslate2 with the tokenizer beside it. "
                    "Serve it by naming the folder in [models] llm: the CTranslate2 backend is picked by itself.")
    p.add_argument("--model", required=True, metavar="DIR", help="transformers model folder (merged, not an adapter)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder for the CTranslate2 model")
    p.add_argument("--quantization", default="int8", choices=QUANTIZATIONS, help="weight type (default int8: ~4x smaller, fastest on CPU)")
    p.add_argument("--force", action="store_true", help="replace OUT if it is not empty")
    add_common(p)
    p.set_defaults(func=cmd_export)
