"""The copilot judged by what people send: a model's drafts for held-out support-log messages, written as the
copilot writes them for a person (`chatbot.copilot`: the served prompt over the help centre's passages),
against the agents' logged replies to the same messages.

Per model, means over the exchanges:
- `rougeL` and `cosine`: how close a draft is to what the agent really sent;
- `facts_kept`: the share of the logged reply's facts in the draft: its numbers, and its distinctive
  words (names and policy words: the reply's top TF-IDF content words, `finetune.evaluate.keyword_sets`);
- `unsupported_share`: the share of the draft's claims that neither the help-centre passages (the
  grounding check, `chatbot.answer.grounding`) nor the logged reply (half of a claim's content words
  in it) support: what a person would have to catch.
Cached per model fingerprint and exchanges under OUT/copilot/. `copilot_gate` is the rule a copilot
model is promoted by, apart from the gate of the model that writes to customers. It does not know how
long a person takes with a draft: the panel measures that.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from core.config import Config
from core.files import write_atomic
from finetune.data import Exchange
from finetune.evaluate import keyword_coverage, keyword_sets, rouge_l
from knowledge.lexical import tokenize
from finetune.improve_gate import digest_of, model_card

Progress = Callable[[str], None]
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")


def copilot_scores(
    config: Config, index, model: str, name: str, exchanges: Sequence[Exchange], out: Path, progress: Progress
) -> dict:
    """The module's figures for `model` (a registered name or folder) on `exchanges`; cached."""
    key = digest_of(name, model_card(Path(model)).get("fingerprint"), [e.to_json() for e in exchanges])[:16]
    cached = out / "copilot" / f"{key}.json"
    if cached.is_file():
        progress(f"copilot drafts of {name} on {len(exchanges)} held-out log messages: cached")
        return json.loads(cached.read_text(encoding="utf-8"))
    from chatbot.builder import build_checker, build_llm_for, build_searcher
    from chatbot.copilot import Copilot

    llm, _ = build_llm_for(config, model, progress)
    searcher = build_searcher(config, index)
    checker = build_checker(config, index.embedder)
    copilot = Copilot(llm, config.company_name, lambda q: searcher.search(q, k=config.retrieval.k), background=False)
    progress(f"drafting as the copilot with {name}: {len(exchanges)} held-out log messages")
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, config.generation.parallel_batches)) as pool:  # a core a draft
        drafts = list(pool.map(lambda e: copilot.draft_for([e.question]), exchanges))
    unsupported = []
    for exchange, draft in zip(exchanges, drafts):
        passages = searcher.search(exchange.question, k=config.retrieval.k)
        unsupported.append(unsupported_share(checker.check(draft, passages, exchange.question), exchange.reply))
    scores = _closeness(drafts, [e.reply for e in exchanges], index.embedder.embed)
    figures = {
        "model": name,
        "exchanges": len(exchanges),
        **{k: round(statistics.fmean(v), 4) for k, v in scores.items()},
        "unsupported_share": round(statistics.fmean(unsupported), 4),
        "seconds_per_draft": round((time.perf_counter() - started) / max(1, len(exchanges)), 3),
        "examples": [{"message": e.question, "logged": e.reply, "draft": d} for e, d in zip(exchanges[:5], drafts)],
    }
    write_atomic(cached, json.dumps(figures, ensure_ascii=False) + "\n")
    return figures


def _closeness(drafts: list[str], golds: list[str], embed) -> dict[str, list[float]]:
    import numpy as np

    vectors = np.asarray(embed(drafts + golds))
    n = len(drafts)
    keywords = keyword_sets(golds)
    return {
        "rougeL": [rouge_l(d, g) for d, g in zip(drafts, golds)],
        "cosine": [float(vectors[i] @ vectors[n + i]) if drafts[i] else 0.0 for i in range(n)],
        "facts_kept": [facts_kept(d, g, k) for d, g, k in zip(drafts, golds, keywords)],
    }


def facts_kept(draft: str, logged: str, keywords: set[str]) -> float:
    """The share of the logged reply's numbers and distinctive words that the draft has too."""
    numbers = set(_NUMBER.findall(logged))
    found = len(numbers & set(_NUMBER.findall(draft)))
    words = keyword_coverage(draft, keywords) * len(keywords)
    total = len(numbers) + len(keywords)
    return (found + words) / total if total else 1.0


def unsupported_share(result, logged: str) -> float:
    """The share of the draft's claims supported neither by the passages nor by the logged reply."""
    claims = [s for s in result.sentences if s.claim]
    if not claims:
        return 0.0
    reply_words = set(tokenize(logged))
    unsupported = 0
    for sentence in claims:
        if sentence.supported:
            continue
        words = set(tokenize(sentence.text))
        if not words or len(words & reply_words) / len(words) < 0.5:
            unsupported += 1
    return unsupported / len(claims)


def copilot_gate(candidate: dict, serving: dict) -> tuple[bool, str]:
    """A copilot model replaces the serving one for people when its drafts are closer to what agents sent
    (ROUGE-L) and keep at least as many of their facts, without more unsupported claims."""
    if candidate["rougeL"] <= serving["rougeL"]:
        return False, f"drafts no closer to the agents' replies (ROUGE-L {candidate['rougeL']} vs {serving['rougeL']})"
    if candidate["facts_kept"] < serving["facts_kept"]:
        return False, f"keeps fewer of the replies' facts ({candidate['facts_kept']} vs {serving['facts_kept']})"
    if candidate["unsupported_share"] > serving["unsupported_share"]:
        return False, (f"more unsupported claims ({candidate['unsupported_share']} vs {serving['unsupported_share']})")
    return True, (
        f"drafts closer to the agents' replies (ROUGE-L {candidate['rougeL']} vs {serving['rougeL']}), "
        f"facts kept {candidate['facts_kept']} vs {serving['facts_kept']}"
    )
