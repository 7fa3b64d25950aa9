"""The promotion gate of the improvement loop (`finetune.improve`): `chatbot eval` totals of a model on the gate's
questions, and the comparison that decides whether a candidate replaces the serving model.

An evaluation is cached in OUT/eval/ under a digest of the model (its name and the fingerprint in its
model card), the questions, the documents, the engine's settings and the engine's own code, so a second
round with nothing changed answers nothing again. This module knows nothing about training, exporting,
installing a model or the command line.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.config import Config
from core.errors import BadInput
from core.files import write_atomic
from chatbot.builder import MODEL_CARD, build_pipeline
from chatbot.reporting.evaluation import evaluate, load_questions, select

Progress = Callable[[str], None]


def digest_of(*parts: object) -> str:
    """A SHA-1 of `parts` as sorted JSON: the fingerprints and cache keys of the improvement loop."""
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _engine_code_digest() -> str:
    """A digest of the engine's own source (chatbot/, knowledge/, core/): a cached evaluation made by other
    code is not reused."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha1()
    for package in ("chatbot", "knowledge", "core"):
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def model_card(folder: Path) -> dict:
    """The model card (`chatbot_model.json`) in `folder`; empty when it has none."""
    path = folder / MODEL_CARD
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


@dataclass(frozen=True)
class GateSet:
    """What every evaluation of one round shares, read once: the gate's questions and what the cache key of
    an evaluation depends on besides the model."""

    questions: tuple  # the `split` of the question file (`EvalQuestion`s)
    path: str  # the question file
    key: str  # digest of the questions, the documents, the engine's settings and its code
    split: str = "dev"  # which of the file's questions: `[finetune.improve] split`, or "all"


def gate_set(config: Config, questions_path: str, index, split: str | None = None) -> GateSet:
    """The gate's questions and cache key under `config` (`split`: default `[finetune.improve] split`);
    refuses a question file without the split's questions."""
    split = split or config.finetune.improve.split
    # action questions are scored on routing, which no model changes: the gate's answers skip them
    questions = tuple(q for q in select(load_questions(questions_path), split) if q.action is None)
    if not questions:
        raise BadInput(f"{questions_path} has no '{split}' questions to evaluate on")
    engine = {key: getattr(config, key).model_dump() for key in ("retrieval", "generation", "grounding")}
    key = digest_of(
        [q.__dict__ for q in questions],
        index.manifest.get("documents"),
        engine,
        config.company_name,
        _engine_code_digest(),
    )
    return GateSet(questions, str(questions_path), key, split)


def independent_set(config: Config, index) -> GateSet | None:
    """Every question of `[finetune.improve] independent_questions` (a set written by other people than the
    gate's, never tuned on), or None when none is set; refuses a missing or empty file before any training."""
    path = config.finetune.improve.independent_questions
    return gate_set(config, path, index, split="all") if path else None


def evaluate_model(
    config: Config, model: str, name: str, gate_questions: GateSet, out: Path, progress: Progress
) -> dict:
    """`chatbot eval` totals of `model` (a registered name or folder) on the gate's questions; cached."""
    questions, split = gate_questions.questions, gate_questions.split
    key = digest_of(name, model_card(Path(model)).get("fingerprint"), gate_questions.key)[:16]
    cached = out / "eval" / f"{key}.json"
    if cached.is_file():
        progress(f"evaluation of {name} on {len(questions)} {split} questions: cached")
        return json.loads(cached.read_text(encoding="utf-8"))
    db = out / "eval" / f"{key}.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    db.unlink(missing_ok=True)  # an interrupted run's conversations
    served = config.with_overrides(
        {"db_url": f"sqlite:///{db}", "models": {"llm": model, "llm_backend": "transformers", "promoted_dir": ""}}
    )
    pipeline = build_pipeline(served, progress)
    pipeline.warm_up()
    progress(f"evaluating {name} on {len(questions)} {split} questions")
    report = evaluate(pipeline, questions, progress, workers=config.generation.parallel_batches)  # a core a reply
    report["totals"]["model"] = name
    write_atomic(cached, json.dumps(report, ensure_ascii=False) + "\n")
    return report


def gate(candidate: dict, serving: dict) -> tuple[bool, str]:
    """Promote only when the candidate's correct rate is not lower and its wrong rate not higher."""
    c_ok, s_ok = candidate["correct_rate"] or 0.0, serving["correct_rate"] or 0.0
    c_bad, s_bad = candidate["wrong_rate"] or 0.0, serving["wrong_rate"] or 0.0
    figures = f"correct {c_ok:.3f} vs {s_ok:.3f}, wrong {c_bad:.3f} vs {s_bad:.3f}"
    if c_ok >= s_ok and c_bad <= s_bad:
        return True, f"not worse than the serving model ({figures})"
    return False, f"worse than the serving model ({figures})"


def verdict(totals: dict, serving: dict, writes: dict, serving_writes: dict) -> tuple[bool, str]:
    """The gate twice: through the engine as it serves, and with the LLM writing every answer it can."""
    served_ok, served = gate(totals, serving)
    writing_ok, writing = gate(writes, serving_writes)
    return served_ok and writing_ok, f"{served}; where the LLM writes, {writing}"


def independent_check(
    config: Config, independent: GateSet, candidate: tuple[str, str], serving: tuple[str, str], out: Path, progress
) -> dict:
    """The candidate and the serving model (each `(model, name)`) on the independent questions, through the whole
    engine; `passes` when the candidate is not worse there either (`gate`): a model that helps only on the questions
    the gate's split shares authors with is not promoted."""
    totals = evaluate_model(config, candidate[0], candidate[1], independent, out, progress)["totals"]
    before = (
        totals
        if candidate == serving
        else evaluate_model(config, serving[0], serving[1], independent, out, progress)["totals"]
    )
    passes, why = gate(totals, before)
    return {
        "questions": independent.path,
        "candidate": rates(totals),
        "serving_before": rates(before),
        "passes": passes,
        "reason": f"on the independent questions, {why}",
    }


def writes_evaluator(
    config: Config, questions_path: str, index, out: Path, progress: Progress
) -> Callable[[str, str], dict]:
    """`writes(folder, label)`: evaluate a model with `[grounding] trained_decision` off."""
    writing = config.with_overrides({"grounding": {"trained_decision": False}})
    writing_set = gate_set(writing, questions_path, index)

    def writes(folder: str, label: str) -> dict:
        """Totals with the LLM writing every answer it can: the calibrated engine may rarely call it at all."""
        return evaluate_model(writing, folder, label, writing_set, out, progress)["totals"]

    return writes


RATES = (
    "resolution_rate",
    "correct_rate",
    "wrong_rate",
    "wrong_of_answered",
    "out_of_scope_refused",
    "likely_resolved",
    "asserted_wrong",
    "persons_needed",
)


def rates(totals: dict) -> dict:
    """The rates of `chatbot eval` totals that the loop reports."""
    return {k: totals.get(k) for k in RATES}
