"""Score models on held-out support exchanges, and promote the best one only when it wins.

Every model answers each exchange's question from the serve-time prompt (`finetune.prompts`, the
same seeded sources as training) by greedy decoding through its serving backend (transformers, or
CTranslate2 for an export). A reply is scored against the agent's gold reply:

- `rougeL`: F1 of the longest common subsequence of lower-cased, stemmed words (rouge-score);
- `cosine`: MiniLM embedding cosine (0 for an empty reply);
- `keyword_coverage`: share of the gold reply's distinctive keywords (its top TF-IDF content
  words, IDF over all gold replies scored) that the reply contains;

and the model by `latency_s` (mean seconds per reply), `first_token_s`, `tokens_per_s` (completion
tokens over generation seconds) and `size_mb` (its weight files on disk).

Promotion: the candidate is the model with the best ROUGE-L (cosine breaks ties). It replaces the
model in the promotion folder only if it beats that model on both ROUGE-L and cosine on the same
exchanges (an empty folder is always filled). The old folder is kept as `<folder>.previous`.
This module knows nothing about training.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from core.config import DEFAULTS, Config
from core.errors import BadInput, NotFound
from core.files import build_folder_atomic
from chatbot.answer.llm import ChatModel
from chatbot.models import LLMS, resolve
from finetune.data import Exchange
from finetune.prompts import SourcePool, exchange_messages
from knowledge.lexical import tokenize

Progress = Callable[[str], None]
DEFAULT_MODEL = "default"  # --model default: the offline default base model
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")
KEYWORDS_PER_REPLY = 8


@dataclass(frozen=True)
class EvalOptions:
    """Models answer as served: the defaults are the serving settings in core/config.py."""

    company: str = DEFAULTS.company_name  # company name in the system prompt
    source_sentences: int = DEFAULTS.generation.source_sentences
    max_new_tokens: int = DEFAULTS.generation.max_new_tokens
    repetition_penalty: float = DEFAULTS.generation.repetition_penalty
    seed: int = DEFAULTS.finetune.seed  # picks each exchange's distractor sources, as in training
    device: str = DEFAULTS.models.device
    threads: int = DEFAULTS.models.threads  # CPU threads; 0 = the backend's default

    @classmethod
    def from_config(cls, config: Config) -> EvalOptions:
        g, m = config.generation, config.models
        return cls(
            company=config.company_name,
            source_sentences=g.source_sentences,
            max_new_tokens=g.max_new_tokens,
            repetition_penalty=g.repetition_penalty,
            seed=config.finetune.seed,
            device=m.device,
            threads=m.threads,
        )


@dataclass(frozen=True)
class ModelScores:
    path: str
    backend: str  # "transformers" or "ctranslate2"
    device: str
    examples: int
    rougeL: float  # noqa: N815 (the metric's usual name)
    cosine: float
    keyword_coverage: float
    latency_s: float  # mean seconds per reply, prompt processing included
    first_token_s: float  # mean seconds to the first streamed piece
    tokens_per_s: float  # completion tokens / generation seconds
    completion_tokens: float  # mean per reply
    empty_replies: int
    size_mb: float  # weight files only


def words(text: str) -> list[str]:
    return tokenize(text, keep_stopwords=True)


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Longest common subsequence, O(len(a) * len(b)) time, O(len(b)) memory."""
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


@lru_cache(maxsize=1)
def _rouge_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 by Google's `rouge-score` (the reference implementation: lower-cased ASCII
    alphanumeric tokens, Porter-stemmed), so scores compare with published ones. It knows English
    only: other scripts tokenise to nothing and score 0."""
    return float(_rouge_scorer().score(reference, candidate)["rougeL"].fmeasure)


def keyword_sets(references: Sequence[str], per_reply: int = KEYWORDS_PER_REPLY) -> list[set[str]]:
    """Each reference's `per_reply` content words of highest TF-IDF (IDF over `references`)."""
    docs = [Counter(tokenize(r)) for r in references]
    df = Counter(w for d in docs for w in d)
    n = len(docs)
    out = []
    for d in docs:
        scored = sorted(d, key=lambda w: (-d[w] * math.log((1 + n) / (1 + df[w])), w))
        out.append(set(scored[:per_reply]))
    return out


def keyword_coverage(candidate: str, keywords: set[str]) -> float:
    if not keywords:
        return 1.0
    return len(keywords & set(tokenize(candidate))) / len(keywords)


def size_mb(path: str) -> float:
    """Weight files (.safetensors, .bin, .pt, .gguf) at the top of a model folder, in MB."""
    folder = Path(path)
    if not folder.is_dir():
        return 0.0
    total = sum(p.stat().st_size for p in folder.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    return round(total / 1e6, 1)


def stratified_limit(exchanges: Sequence[Exchange], limit: int) -> list[Exchange]:
    """Up to `limit` exchanges taken round-robin across intents (file order within an intent)."""
    if limit <= 0 or limit >= len(exchanges):
        return list(exchanges)
    by_intent: dict[str, list[Exchange]] = {}
    for exchange in exchanges:
        by_intent.setdefault(exchange.intent, []).append(exchange)
    queues = [by_intent[i] for i in sorted(by_intent)]
    out: list[Exchange] = []
    depth = 0
    while len(out) < limit:
        for queue in queues:
            if depth < len(queue) and len(out) < limit:
                out.append(queue[depth])
        depth += 1
    return out


def model_path(arg: str, progress: Progress = lambda m: None) -> str:
    """A --model value to a folder: "default" is the offline default LLM; else a name or folder."""
    name = DEFAULTS.models.llm if arg == DEFAULT_MODEL else arg
    path = resolve(name, LLMS, "LLM", progress)
    if not Path(path).is_dir():
        raise NotFound(
            f"model '{arg}' is not a local folder; evaluate local model folders, 'default', "
            f"or one of: {', '.join(sorted(LLMS))}"
        )
    return path


def load_chat_model(path: str, options: EvalOptions, progress: Progress = lambda m: None) -> tuple[ChatModel, str]:
    """(model, backend name) as the assistant would serve the folder: the builder picks the backend
    (CTranslate2 for an export, else transformers); device, threads and penalty come from `options`."""
    from chatbot.builder import build_llm_for

    serving = DEFAULTS.with_overrides(
        {
            "models": {"device": options.device, "threads": options.threads},
            "generation": {"repetition_penalty": options.repetition_penalty},
        }
    )
    return build_llm_for(serving, path, progress)


def generate(
    model: ChatModel, exchanges: Sequence[Exchange], pool: SourcePool, options: EvalOptions, description: str
) -> list[dict]:
    """Each exchange's reply with its timing: {"reply", "seconds", "first_token_s", "completion_tokens"}."""
    from finetune.loop import progress_bar

    out = []
    for exchange in progress_bar(exchanges, desc=description, unit="reply"):
        messages = exchange_messages(exchange, pool, options.company, options.seed, options.source_sentences)
        pieces, first, completion = [], None, 0
        began = time.perf_counter()
        for token in model.stream(messages, options.max_new_tokens):
            if token.done:
                completion = token.completion_tokens
            elif token.text:
                first = first if first is not None else time.perf_counter() - began
                pieces.append(token.text)
        seconds = time.perf_counter() - began
        out.append(
            {
                "reply": "".join(pieces).strip(),
                "seconds": seconds,
                "first_token_s": first if first is not None else seconds,
                "completion_tokens": completion,
            }
        )
    return out


def score_replies(
    replies: Sequence[str], golds: Sequence[str], embed: Callable[[list[str]], object]
) -> dict[str, list[float]]:
    """Per-reply rougeL, cosine and keyword_coverage against the gold replies."""
    import numpy as np

    keywords = keyword_sets(golds)
    vectors = np.asarray(embed(list(replies) + list(golds)))
    n = len(replies)
    cosines = [float(vectors[i] @ vectors[n + i]) if replies[i] else 0.0 for i in range(n)]
    return {
        "rougeL": [rouge_l(r, g) for r, g in zip(replies, golds)],
        "cosine": cosines,
        "keyword_coverage": [keyword_coverage(r, k) for r, k in zip(replies, keywords)],
    }


def evaluate_model(
    arg: str,
    exchanges: Sequence[Exchange],
    pool: SourcePool,
    options: EvalOptions,
    embed: Callable[[list[str]], object],
    progress: Progress = lambda m: None,
) -> tuple[ModelScores, list[dict]]:
    """Scores of one model, and its per-exchange predictions."""
    path = model_path(arg, progress)
    model, backend = load_chat_model(path, options, progress)
    model.warm_up()
    results = generate(model, exchanges, pool, options, description=f"evaluating {arg}")
    replies = [r["reply"] for r in results]
    scores = score_replies(replies, [e.reply for e in exchanges], embed)
    seconds = sum(r["seconds"] for r in results)
    tokens = sum(r["completion_tokens"] for r in results)
    summary = ModelScores(
        path=path,
        backend=backend,
        device=model.device,
        examples=len(results),
        rougeL=round(statistics.fmean(scores["rougeL"]), 4),
        cosine=round(statistics.fmean(scores["cosine"]), 4),
        keyword_coverage=round(statistics.fmean(scores["keyword_coverage"]), 4),
        latency_s=round(seconds / len(results), 3),
        first_token_s=round(statistics.fmean(r["first_token_s"] for r in results), 3),
        tokens_per_s=round(tokens / seconds, 2) if seconds > 0 else 0.0,
        completion_tokens=round(tokens / len(results), 1),
        empty_replies=sum(1 for r in replies if not r),
        size_mb=size_mb(path),
    )
    predictions = [
        {
            "model": arg,
            "question": e.question,
            "intent": e.intent,
            "gold": e.reply,
            **r,
            **{k: round(v[i], 4) for k, v in scores.items()},
        }
        for i, (e, r) in enumerate(zip(exchanges, results))
    ]
    del model
    return summary, predictions


def evaluate(
    model_args: Sequence[str],
    exchanges: Sequence[Exchange],
    options: EvalOptions,
    embed: Callable[[list[str]], object],
    pool_exchanges: Sequence[Exchange] | None = None,
    progress: Progress = lambda m: None,
) -> tuple[dict[str, ModelScores], list[dict]]:
    """Scores keyed by each model argument as given; distractor sources come from `pool_exchanges`."""
    if not model_args:
        raise BadInput("give at least one --model DIR (or --model default)")
    if not exchanges:
        raise BadInput("no exchanges to evaluate on; pass --data with held-out support exchanges")
    pool = SourcePool(pool_exchanges if pool_exchanges is not None else exchanges)
    results: dict[str, ModelScores] = {}
    predictions: list[dict] = []
    for arg in model_args:
        if arg in results:
            continue
        results[arg], preds = evaluate_model(arg, exchanges, pool, options, embed, progress)
        predictions.extend(preds)
        progress(
            f"{arg}: rougeL {results[arg].rougeL:.3f}, cosine {results[arg].cosine:.3f}, "
            f"{results[arg].tokens_per_s:.1f} tokens/s"
        )
    return results, predictions


def best_model(results: dict[str, ModelScores]) -> str:
    return max(results, key=lambda arg: (results[arg].rougeL, results[arg].cosine))


def beats(candidate: ModelScores, current: ModelScores | None) -> bool:
    """The promotion rule: strictly better on ROUGE-L and on cosine (anything beats nothing)."""
    return current is None or (candidate.rougeL > current.rougeL and candidate.cosine > current.cosine)


def holds_model(folder: Path) -> bool:
    return (folder / "config.json").is_file() or (folder / "model.bin").is_file()


def install_model(source: str, target: Path, record: dict) -> None:
    """Copy a model folder's files (not checkpoints or data) to `target`; the old one becomes `.previous`."""
    source_dir = Path(source)

    def copy(tmp: Path) -> None:
        for path in source_dir.iterdir():
            if path.is_file() and not path.name.startswith("."):
                shutil.copy2(path, tmp / path.name)
        (tmp / "promotion.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")

    build_folder_atomic(target, copy, existing="backup")


def promote(
    results: dict[str, ModelScores],
    target: str | Path,
    exchanges: Sequence[Exchange],
    options: EvalOptions,
    embed: Callable[[list[str]], object],
    pool_exchanges: Sequence[Exchange] | None = None,
    progress: Progress = lambda m: None,
) -> dict:
    """Apply the promotion rule to the best of `results` against the model now in `target`."""
    target = Path(target)
    candidate = best_model(results)
    current = None
    if target.exists() and not target.is_dir():
        raise BadInput(f"--promote-to {target} is a file; give a folder")
    if target.is_dir() and holds_model(target):
        if Path(results[candidate].path).resolve() == target.resolve():
            return {
                "candidate": candidate,
                "promoted": False,
                "reason": "the candidate is already the current model",
                "target": str(target),
            }
        pool = SourcePool(pool_exchanges if pool_exchanges is not None else exchanges)
        current, _ = evaluate_model(str(target), exchanges, pool, options, embed, progress)
    elif target.is_dir() and any(target.iterdir()):
        raise BadInput(f"--promote-to {target} holds files but no model; give an empty or a model folder")
    chosen = results[candidate]
    promoted = beats(chosen, current)
    if current is None:
        reason = "no current model"
    elif promoted:
        reason = (
            f"beats the current model on ROUGE-L ({chosen.rougeL:.4f} > {current.rougeL:.4f}) "
            f"and cosine ({chosen.cosine:.4f} > {current.cosine:.4f})"
        )
    else:
        reason = (
            f"does not beat the current model on both ROUGE-L ({chosen.rougeL:.4f} vs {current.rougeL:.4f}) "
            f"and cosine ({chosen.cosine:.4f} vs {current.cosine:.4f})"
        )
    record = {
        "candidate": candidate,
        "candidate_path": chosen.path,
        "promoted": promoted,
        "reason": reason,
        "target": str(target),
        "candidate_scores": asdict(chosen),
        "current_scores": asdict(current) if current else None,
        "examples": len(exchanges),
    }
    if promoted:
        install_model(chosen.path, target, record)
    return record


def table(results: dict[str, ModelScores]) -> str:
    """A plain-text table, one row per model."""
    header = ("model", "rougeL", "cosine", "keywords", "latency s", "tokens/s", "size MB", "backend")
    rows = [
        (
            arg,
            f"{s.rougeL:.3f}",
            f"{s.cosine:.3f}",
            f"{s.keyword_coverage:.3f}",
            f"{s.latency_s:.2f}",
            f"{s.tokens_per_s:.1f}",
            f"{s.size_mb:.0f}",
            s.backend,
        )
        for arg, s in results.items()
    ]
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in (header, *rows))
