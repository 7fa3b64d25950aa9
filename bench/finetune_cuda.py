"""Fine-tuning benchmark on a GPU (bf16): the CPU benchmark's run side by side, then a full-data run.

`run` (on a machine with CUDA) does, on the same Bitext splits as `bench/finetune.py`:
  1. the CPU benchmark's LoRA run unchanged (400 exchanges, 60 steps × 1), for a time ratio;
  2. LoRA on the whole train split (`--epochs` passes, batch `--batch-size`), saved as an adapter;
  3. token-level distillation of that model into a student with `--layers` decoder layers;
  4. replies of base, both fine-tuned models and the student to the held-out test exchanges, generated
     on CUDA by the serving backend (built by `chatbot.builder`), with ROUGE-L, latency and tokens/s.
It writes cuda.json, predictions.jsonl and the full-data adapter into --out.

`score` (anywhere) adds the MiniLM cosine to those predictions and writes cuda.md. The split is
because a device machine may be too small a transfer away for every model: the embedder does not
need the GPU, and the cosine is the same wherever it is computed.

What it does not know: the timings of a GPU shared with other jobs, or of another GPU model.
Usage: python bench/finetune_cuda.py run --data BITEXT.csv --out DIR
       python bench/finetune_cuda.py score --out DIR
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.config import load_config  # noqa: E402
from finetune.data import DataOptions, read_exchanges  # noqa: E402
from finetune.distill import DistillOptions, distill  # noqa: E402
from finetune.evaluate import EvalOptions, generate, keyword_coverage, keyword_sets, rouge_l, size_mb, stratified_limit  # noqa: E402
from finetune.loop import LoopOptions  # noqa: E402
from finetune.prompts import SourcePool  # noqa: E402
from finetune.train import EncodeOptions, FinetuneOptions, finetune  # noqa: E402

BITEXT = ROOT.parent / "shared/data/bitext-customer-support/Bitext_Sample_Customer_Support_Training_Dataset.csv"
LABELS = {
    "base": "SmolLM2-135M base",
    "same-as-cpu": "LoRA, the CPU run's settings (60 steps × 1)",
    "full": "LoRA, whole train split",
    "student": "distilled student",
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def merge_adapter(adapter: Path, target: Path) -> None:
    """A merged model folder from a LoRA adapter folder (the distillation teacher)."""
    import torch
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    model = AutoPeftModelForCausalLM.from_pretrained(str(adapter), dtype=torch.bfloat16)
    model.merge_and_unload().save_pretrained(target)
    AutoTokenizer.from_pretrained(str(adapter)).save_pretrained(target)


def run(args: argparse.Namespace) -> None:
    import torch

    from chatbot.builder import build_llm_for
    from chatbot.models import smollm2_path

    device = "cpu" if args.smoke else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark is for a GPU; bench/finetune.py is the CPU one")
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    # the serving config as bench/finetune.py uses it (defaults, company "our shop"), on this run's device
    config = load_config(
        None,
        {
            "company_name": "our shop",
            "models": {"device": device},
            "generation": {"max_new_tokens": args.max_new_tokens},
            "finetune": {"max_tokens": args.max_tokens},
        },
    )
    encode = EncodeOptions.from_config(config)
    runs: dict[str, dict] = {}
    began = time.perf_counter()

    log("1/4 the CPU benchmark's LoRA run on CUDA")
    runs["same-as-cpu"] = finetune(
        [args.data],
        work / "same-as-cpu",
        FinetuneOptions(
            max_examples=400,
            eval_examples=8,
            encode=encode,
            data=DataOptions(),
            loop=LoopOptions(
                max_steps=2 if args.smoke else 60,
                batch_size=1,
                learning_rate=5e-4,
                warmup_steps=6,
                checkpoint_every_steps=20,
            ),
        ),
        progress=log,
    )

    train_size = runs["same-as-cpu"]["data"]["splits"]["train"]
    batch = 1 if args.smoke else args.batch_size  # batch 16 of 384 tokens needs more memory than a CPU box has
    steps = 2 if args.smoke else max(1, args.epochs * train_size // batch)
    log(f"2/4 LoRA on all {train_size} training exchanges: {steps} steps × {batch}")
    runs["full"] = finetune(
        [args.data],
        work / "full-adapter",
        FinetuneOptions(
            adapter_only=True,
            eval_examples=64,
            encode=encode,
            data=DataOptions(),
            loop=_loop(steps, batch, args.learning_rate),
        ),
        progress=log,
    )
    merge_adapter(work / "full-adapter", work / "full")

    log(f"3/4 distilling the full-data model into {args.layers} layers, {steps} steps × {batch}")
    runs["student"] = distill(
        str(work / "full"),
        work / "student",
        [args.data],
        options=DistillOptions(
            layers=args.layers,
            mode="token",
            eval_examples=64,
            encode=encode,
            data=DataOptions(),
            loop=_loop(steps, batch, args.distill_learning_rate),
        ),
        progress=log,
    )

    test = read_exchanges(work / "full-adapter" / "data" / "test.jsonl")
    exchanges = stratified_limit(test, args.eval_examples)
    pool = SourcePool(test)
    options = EvalOptions.from_config(config)
    models = {
        "base": smollm2_path(log),
        "same-as-cpu": str(work / "same-as-cpu"),
        "full": str(work / "full"),
        "student": str(work / "student"),
    }
    keywords = keyword_sets([e.reply for e in exchanges])
    predictions, results = [], {}
    for key, path in models.items():
        log(f"4/4 replies of {key} on CUDA")
        model, _ = build_llm_for(config, path, log)
        model.warm_up()
        replies = generate(model, exchanges, pool, options, description=key)
        seconds = sum(r["seconds"] for r in replies)
        tokens = sum(r["completion_tokens"] for r in replies)
        results[key] = {
            "rougeL": round(sum(rouge_l(r["reply"], e.reply) for r, e in zip(replies, exchanges)) / len(exchanges), 4),
            "keyword_coverage": round(
                sum(keyword_coverage(r["reply"], k) for r, k in zip(replies, keywords)) / len(exchanges), 4
            ),
            "latency_s": round(seconds / len(replies), 3),
            "tokens_per_s": round(tokens / seconds, 1),
            "size_mb": size_mb(path),
            "device": model.device,
        }
        predictions += [
            {"model": key, "question": e.question, "intent": e.intent, "gold": e.reply, **r}
            for e, r in zip(exchanges, replies)
        ]
        del model
        if device == "cuda":
            torch.cuda.empty_cache()
    for report in runs.values():
        report.pop("losses", None)
    meta = {
        "gpu": torch.cuda.get_device_name(0) if device == "cuda" else "no GPU (smoke run)",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "eval_examples": len(exchanges),
        "max_new_tokens": args.max_new_tokens,
        "args": vars(args),
        "total_seconds": round(time.perf_counter() - began, 1),
    }
    (out / "cuda.json").write_text(json.dumps({"meta": meta, "models": results, "runs": runs}, indent=2) + "\n")
    (out / "predictions.jsonl").write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in predictions))
    adapter = out / "full-adapter"  # fp16, to travel light: half the size of peft's fp32 adapter
    adapter.mkdir(exist_ok=True)
    shutil.copy(work / "full-adapter" / "adapter_config.json", adapter / "adapter_config.json")
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(work / "full-adapter" / "adapter_model.safetensors"))
    save_file(
        {k: v.to(torch.float16).contiguous() for k, v in tensors.items()}, str(adapter / "adapter_model.safetensors")
    )
    log(f"done in {meta['total_seconds'] / 60:.1f} min")
    print(json.dumps(results, indent=2))


def score(args: argparse.Namespace) -> None:
    """Add MiniLM cosines to the predictions and write cuda.md."""
    import numpy as np

    from chatbot.builder import build_embedder
    from core.config import load_config

    out = Path(args.out)
    saved = json.loads((out / "cuda.json").read_text())
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    embed = build_embedder(load_config(None, {}), log).embed
    for key, scores in saved["models"].items():
        rows = [p for p in predictions if p["model"] == key]
        vectors = np.asarray(embed([p["reply"] for p in rows] + [p["gold"] for p in rows]))
        n = len(rows)
        scores["cosine"] = round(
            float(np.mean([vectors[i] @ vectors[n + i] if rows[i]["reply"] else 0.0 for i in range(n)])), 4
        )
    (out / "cuda.json").write_text(json.dumps(saved, indent=2) + "\n")
    meta, runs = saved["meta"], saved["runs"]
    lines = [
        f"{meta['gpu']}, torch {meta['torch']}, bf16. Bitext held-out test exchanges: {meta['eval_examples']}, "
        f"greedy, max {meta['max_new_tokens']} new tokens, generated by the serving backend on CUDA.",
        "",
        "| model | ROUGE-L | cosine | keywords | latency s | tokens/s | size MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, s in saved["models"].items():
        lines.append(
            f"| {LABELS.get(key, key)} | {s['rougeL']:.3f} | {s['cosine']:.3f} | {s['keyword_coverage']:.3f} "
            f"| {s['latency_s']:.2f} | {s['tokens_per_s']:.1f} | {s['size_mb']:.0f} |"
        )
    lines += [
        "",
        "| training run | steps × batch | sequences | time | s/step | loss, first → last 10 steps "
        "| validation loss | peak CUDA memory |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, r in runs.items():
        lines.append(
            f"| {LABELS.get(key, key)} | {r['steps']} × {r['batch_size']} | {r['train_sequences']} "
            f"| {r['train_seconds']:.0f} s | {r['seconds_per_step']:.3f} | {r['initial_loss']:.3f} → "
            f"{r['final_loss']:.3f} | {r['validation_loss_before']:.3f} → {r['validation_loss_after']:.3f} "
            f"| {(r.get('peak_cuda_mb') or 0) / 1024:.1f} GB |"
        )
    (out / "cuda.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    go = commands.add_parser("run", help="train, distil and generate on CUDA")
    go.add_argument("--data", default=str(BITEXT), help="support logs (default: the Bitext sample)")
    go.add_argument("--out", default=str(ROOT / "bench/results/cuda"), help="where results go")
    go.add_argument("--work", default="/tmp/finetune-cuda", help="models of this run")
    go.add_argument("--epochs", type=int, default=2, help="passes over the train split (full run and distillation)")
    go.add_argument("--batch-size", type=int, default=16)
    go.add_argument("--learning-rate", type=float, default=5e-4)
    go.add_argument("--distill-learning-rate", type=float, default=5e-4)
    go.add_argument("--layers", type=int, default=15, help="student decoder layers (SmolLM2 has 30)")
    go.add_argument("--max-tokens", type=int, default=384)
    go.add_argument("--eval-examples", type=int, default=30)
    go.add_argument("--max-new-tokens", type=int, default=48)
    go.add_argument("--smoke", action="store_true", help="2 steps per run, on CPU: checks the script, measures nothing")
    rate = commands.add_parser("score", help="add MiniLM cosines to a run's predictions, write cuda.md")
    rate.add_argument("--out", default=str(ROOT / "bench/results/cuda"))
    args = parser.parse_args()
    run(args) if args.command == "run" else score(args)


def _loop(steps: int, batch: int, learning_rate: float) -> LoopOptions:
    """The loop both runs share: `steps` at `batch`, a 5 % warm-up, one checkpoint at the end."""
    return LoopOptions(
        max_steps=steps,
        batch_size=batch,
        learning_rate=learning_rate,
        warmup_steps=max(1, steps // 20),
        checkpoint_every_steps=steps,
    )


if __name__ == "__main__":
    main()
