"""Fine-tuning benchmark: base vs LoRA fine-tuned vs distilled student vs CTranslate2 int8 exports.

On Bitext customer-support exchanges (../shared/data, CDLA-Sharing-1.0), split 80/10/10 by intent:
fine-tune SmolLM2-135M-Instruct with LoRA on `--train-examples` training exchanges, distil it into
a student with half the decoder layers, export both to int8, then score every model on
`--eval-examples` held-out test exchanges (taken round-robin across intents) with ROUGE-L, MiniLM
cosine, keyword coverage, latency, tokens/s and size. Writes finetune.json, finetune.md and
finetune.svg into --out; the run's models stay in --work.
Usage: nice -n 10 .venv/bin/python bench/finetune.py [--train-examples 400] [--steps 60] [--eval-examples 30]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.config import load_config  # noqa: E402
from finetune.data import DataOptions, read_exchanges  # noqa: E402
from finetune.distill import DistillOptions, distill  # noqa: E402
from finetune.evaluate import DEFAULT_MODEL, EvalOptions, evaluate, stratified_limit, table  # noqa: E402
from chatbot.answer.export import export_ctranslate2  # noqa: E402
from finetune.loop import LoopOptions  # noqa: E402
from finetune.train import EncodeOptions, FinetuneOptions, finetune  # noqa: E402

BITEXT = ROOT.parent / "shared/data/bitext-customer-support/Bitext_Sample_Customer_Support_Training_Dataset.csv"
LABELS = {
    "base": "SmolLM2-135M base",
    "finetuned": "LoRA fine-tuned (merged)",
    "student": "distilled student",
    "finetuned-int8": "fine-tuned, CTranslate2 int8",
    "student-int8": "student, CTranslate2 int8",
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def markdown(results: dict, runs: dict, meta: dict) -> str:
    lines = [
        f"Bitext held-out test exchanges: {meta['eval_examples']} (round-robin over intents), greedy, "
        f"max {meta['max_new_tokens']} new tokens, {meta['machine']}.",
        "",
        "| model | ROUGE-L | cosine | keywords | latency s | tokens/s | size MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, s in results.items():
        lines.append(
            f"| {LABELS.get(key, key)} | {s['rougeL']:.3f} | {s['cosine']:.3f} | {s['keyword_coverage']:.3f} "
            f"| {s['latency_s']:.2f} | {s['tokens_per_s']:.1f} | {s['size_mb']:.0f} |"
        )
    ft, kd = runs["finetune"], runs["distill"]
    lines += [
        "",
        "| training run | steps × batch | sequences | time | s/step | loss, first → last 10 steps | validation loss "
        "(gold replies) | peak RSS (process) |",
        "|---|---|---|---|---|---|---|---|",
        f"| LoRA r={ft['lora']['rank']} on SmolLM2-135M | {ft['steps']} × {ft['batch_size']} | {ft['train_sequences']} "
        f"| {ft['train_seconds'] / 60:.1f} min | {ft['seconds_per_step']:.1f} | {ft['initial_loss']:.3f} → "
        f"{ft['final_loss']:.3f} | {ft['validation_loss_before']:.3f} → {ft['validation_loss_after']:.3f} "
        f"| {ft['peak_rss_mb'] / 1024:.1f} GB |",
        f"| {kd['mode']}-level KD into {kd['student_layers']} of {kd['teacher_layers']} layers "
        f"| {kd['steps']} × {kd['batch_size']} | {kd['train_sequences']} | {kd['train_seconds'] / 60:.1f} min "
        f"| {kd['seconds_per_step']:.1f} | {kd['initial_loss']:.3f} → {kd['final_loss']:.3f} "
        f"| {kd['validation_loss_before']:.3f} → {kd['validation_loss_after']:.3f} | {kd['peak_rss_mb'] / 1024:.1f} GB |",
    ]
    if "finetuned-int8" in results and "finetuned" in results:
        a, b = results["finetuned"], results["finetuned-int8"]
        lines += [
            "",
            f"int8 export of the fine-tuned model: {b['rougeL'] / max(a['rougeL'], 1e-9):.0%} of its ROUGE-L, "
            f"{b['cosine'] / max(a['cosine'], 1e-9):.0%} of its cosine, "
            f"{b['tokens_per_s'] / max(a['tokens_per_s'], 1e-9):.1f}× its tokens/s, "
            f"{b['size_mb'] / max(a['size_mb'], 1e-9):.0%} of its size.",
        ]
    return "\n".join(lines) + "\n"


def svg_chart(results: dict) -> str:
    """Two panels of horizontal bars: quality (ROUGE-L, cosine) and speed (tokens/s)."""
    names = list(results)
    row, label_w, bar_w, top = 34, 210, 260, 40
    height = top + row * len(names) + 30
    width = label_w + 2 * bar_w + 80
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
        f'font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="{label_w}" y="20" font-weight="bold">ROUGE-L (dark) and cosine (light)</text>',
        f'<text x="{label_w + bar_w + 40}" y="20" font-weight="bold">tokens/s</text>',
    ]
    fastest = max(s["tokens_per_s"] for s in results.values()) or 1.0
    for i, name in enumerate(names):
        s, y = results[name], top + i * row
        out.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">{LABELS.get(name, name)}</text>')
        for j, (metric, colour) in enumerate((("rougeL", "#1f4e79"), ("cosine", "#8fb8de"))):
            w = max(0.0, s[metric]) * bar_w
            out.append(f'<rect x="{label_w}" y="{y + j * 11}" width="{w:.1f}" height="10" fill="{colour}"/>')
            out.append(f'<text x="{label_w + w + 4:.1f}" y="{y + j * 11 + 9}" font-size="10">{s[metric]:.2f}</text>')
        w = s["tokens_per_s"] / fastest * (bar_w - 40)
        x = label_w + bar_w + 40
        out.append(f'<rect x="{x}" y="{y}" width="{w:.1f}" height="21" fill="#e07b39"/>')
        out.append(f'<text x="{x + w + 4:.1f}" y="{y + 15}" font-size="10">{s["tokens_per_s"]:.0f}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(BITEXT), help="support logs (default: the Bitext sample)")
    parser.add_argument("--out", default=str(ROOT / "bench/results"), help="where finetune.{json,md,svg} go")
    parser.add_argument("--work", default=str(ROOT / "bench/results/finetune-run"), help="models of this run")
    parser.add_argument("--train-examples", type=int, default=400)
    parser.add_argument("--steps", type=int, default=60, help="LoRA steps")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--max-tokens", type=int, default=384, help="prompt + reply tokens per training sequence")
    parser.add_argument("--distill-steps", type=int, default=60)
    parser.add_argument("--distill-learning-rate", type=float, default=2e-4)
    parser.add_argument("--layers", type=int, default=15, help="student decoder layers (SmolLM2 has 30)")
    parser.add_argument("--eval-examples", type=int, default=30)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--resume", action="store_true", help="reuse the trained models already in --work")
    parser.add_argument("--render-only", action="store_true", help="rewrite finetune.md/.svg from finetune.json")
    args = parser.parse_args()
    if args.render_only:
        saved = json.loads((Path(args.out) / "finetune.json").read_text())
        (Path(args.out) / "finetune.md").write_text(markdown(saved["models"], saved["runs"], saved["meta"]))
        (Path(args.out) / "finetune.svg").write_text(svg_chart(saved["models"]))
        print((Path(args.out) / "finetune.md").read_text())
        return

    config = load_config(
        None,
        {
            "company_name": "our shop",
            "generation": {"max_new_tokens": args.max_new_tokens},
            "finetune": {"max_tokens": args.max_tokens},
        },
    )
    work, out = Path(args.work), Path(args.out)
    encode = EncodeOptions.from_config(config)
    data = DataOptions()  # 80/10/10 by intent, seed 13
    began = time.perf_counter()
    runs: dict[str, dict] = {}

    finetuned = work / "finetuned"
    if args.resume and (finetuned / "train_report.json").is_file():
        runs["finetune"] = json.loads((finetuned / "train_report.json").read_text())
    else:
        log(f"fine-tuning on {args.train_examples} Bitext exchanges, {args.steps} steps")
        runs["finetune"] = finetune(
            [args.data],
            finetuned,
            FinetuneOptions(
                max_examples=args.train_examples,
                eval_examples=8,
                encode=encode,
                data=data,
                loop=LoopOptions(
                    max_steps=args.steps,
                    batch_size=args.batch_size,
                    learning_rate=args.learning_rate,
                    warmup_steps=max(1, args.steps // 10),
                    checkpoint_every_steps=20,
                ),
            ),
            progress=log,
        )
    student = work / "student"
    if args.resume and (student / "distill_report.json").is_file():
        runs["distill"] = json.loads((student / "distill_report.json").read_text())
    else:
        log(f"distilling into {args.layers} layers, {args.distill_steps} steps")
        runs["distill"] = distill(
            str(finetuned),
            student,
            options=DistillOptions(
                layers=args.layers,
                max_examples=args.train_examples,
                eval_examples=8,
                encode=encode,
                data=data,
                loop=LoopOptions(
                    max_steps=args.distill_steps,
                    batch_size=args.batch_size,
                    learning_rate=args.distill_learning_rate,
                    warmup_steps=max(1, args.distill_steps // 10),
                    checkpoint_every_steps=20,
                ),
            ),
            progress=log,
        )
    exports = {}
    for name, source in (("finetuned-int8", finetuned), ("student-int8", student)):
        target = work / name
        if not (args.resume and (target / "model.bin").is_file()):
            log(f"exporting {source.name} to CTranslate2 int8")
            exports[name] = export_ctranslate2(source, target, "int8", force=True)

    test = read_exchanges(finetuned / "data" / "test.jsonl")
    exchanges = stratified_limit(test, args.eval_examples)
    models = {
        "base": DEFAULT_MODEL,
        "finetuned": str(finetuned),
        "student": str(student),
        "finetuned-int8": str(work / "finetuned-int8"),
        "student-int8": str(work / "student-int8"),
    }
    from chatbot.builder import build_embedder

    embedder = build_embedder(config, log)
    options = EvalOptions.from_config(config)
    log(f"evaluating {len(models)} models on {len(exchanges)} held-out exchanges")
    scored, predictions = evaluate(list(models.values()), exchanges, options, embedder.embed, test, log)
    results = {key: asdict(scored[arg]) for key, arg in models.items()}
    print(table({key: scored[arg] for key, arg in models.items()}), file=sys.stderr)

    meta = {
        "eval_examples": len(exchanges),
        "max_new_tokens": args.max_new_tokens,
        "data": args.data,
        "machine": f"{platform.machine()} CPU, {__import__('os').cpu_count()} cores, shared",
        "total_seconds": round(time.perf_counter() - began, 1),
        "args": vars(args),
    }
    for report in runs.values():
        report.pop("losses", None)
    out.mkdir(parents=True, exist_ok=True)
    (out / "finetune.json").write_text(
        json.dumps({"meta": meta, "models": results, "runs": runs, "exports": exports}, indent=2) + "\n"
    )
    (out / "finetune.md").write_text(markdown(results, runs, meta))
    (out / "finetune.svg").write_text(svg_chart(results))
    (work / "predictions.jsonl").write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in predictions))
    log(f"done in {meta['total_seconds'] / 60:.1f} min: {out / 'finetune.md'}")
    print((out / "finetune.md").read_text())


if __name__ == "__main__":
    main()
