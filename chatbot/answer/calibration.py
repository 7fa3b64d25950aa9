"""Training the answer / hand-over decision on the help centre itself, and calibrating its threshold.

Training data, read off the index alone (any help centre): each title, heading and FAQ question
(`knowledge.rerank.pseudo_questions`, no body sentences: a sentence would find itself) is searched
as a customer question would be, and its best evidence window (`chatbot.answer.quote`) is taken
- with every document retrievable: a positive when the window comes from the pseudo-question's own
  document, a negative when it comes from another;
- with its own document removed from the results: a negative, like a real question the help centre
  cannot answer (the evidence then looks plausible but answers something else).
A window counts as answering only when it comes from a chunk under the pseudo-question (its section
for a heading: chunk-level labels ranked Arduino dev answers better, AUC 0.74 against 0.68). A logistic
regression on the window's features learns P(the evidence answers). The examples are cached in
`<index>/decision-examples.npz` with a fingerprint of the documents and settings; the model goes into
`<index>/decision.json`, with the window ranker learned from the dev questions (`window_ranker`).

Calibration runs a question set's dev split through retrieval and the evidence choice (no LLM). Its
labelled questions are worded as customers write, which titles are not, so the decision also learns
from them: each one's best window joins the pseudo-questions' examples at a weight chosen by
cross-validation on the split (0, i.e. not at all, when that ranks the split's answers no better),
and the threshold is chosen on out-of-fold probabilities, never on a question the model was fitted
to. It is the lowest threshold whose answers reach the target precision (correct / answered), and
it goes into the index manifest, tied to the model it was chosen for. On the held-out splits this
ranked answers better (AUC 0.69 -> 0.75 on Arduino, 0.68 -> 0.83 on the demo shop, README
"Measured"). Never tune anything on the held-out split.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import re
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from chatbot.answer.decision import MANIFEST_KEY, MODEL_FILE, AnswerModel, is_vague
from chatbot.answer.quote import FEATURES, WINDOW_WEIGHTS, Window
from chatbot.answer.window_ranker import Candidates, WindowRanker, choose
from chatbot.answer.window_ranker import learn as learn_ranker
from core.errors import ChatbotError
from core.files import write_atomic

RECIPE_VERSION = 1  # bump when the examples or the model change: a cached decision model is retrained
SEED = 13
# the features the decision reads: all of them. Leaving out `cover_title` (which a title or heading
# pseudo-question gives away), or keeping only the retrieval ones, ranked the Arduino dev answers worse.
DECISION_FEATURES = FEATURES

EXAMPLES_FILE = "decision-examples.npz"  # the pseudo-questions' examples, cached beside the model
# a labelled question's weight against one pseudo-question's example, chosen among these by cross-validation
QUESTION_WEIGHTS = (0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0)
FOLDS = 5
MIN_LABELLED = 5  # right and wrong answers each, at least, for a question set to be learnt from

Progress = Callable[[str], None]


@dataclass(frozen=True)
class DecisionSettings:
    k: int  # passages searched, as the engine searches ([retrieval] k)
    max_claims: int  # a window's sentences ([grounding] quote_sentences)
    max_chars: int  # a window's characters (the pipeline's MAX_QUOTE_CHARS)
    max_questions: int  # pseudo-questions used, at most
    regularization: float = 1.0  # the logistic regression's C
    practice: bool = False  # also the practice questions a bigger model wrote (`chatbot.practice`)


def fingerprint(index, settings: DecisionSettings) -> str:
    """Changes when a document, the embedder, the chunking, the recipe, a setting or (used) the practice
    questions do (not when chunks are only renumbered: the examples store features, not chunk ids)."""
    from knowledge import practice
    from knowledge.index import manifest_fingerprint

    extra = {
        "recipe": RECIPE_VERSION,
        "features": DECISION_FEATURES,
        "weights": dict(WINDOW_WEIGHTS),
        "settings": settings.__dict__,
    }
    if settings.practice:
        extra["practice"] = practice.digest(practice.kept_questions(index.directory, index.chunks.values()))
    return manifest_fingerprint(index.manifest, extra)


def examples(
    searcher, checker, settings: DecisionSettings, progress: Progress = lambda m: None
) -> tuple[np.ndarray, np.ndarray]:
    """(features, labels) of the best windows for the help centre's pseudo-questions (module docstring)."""
    from knowledge.practice import kept_questions
    from knowledge.rerank import pseudo_questions

    index = searcher.index
    written = kept_questions(index.directory, index.chunks.values(), settings.practice)
    questions = pseudo_questions(
        index.chunks.values(), sentences_per_chunk=0, max_questions=settings.max_questions, seed=SEED, practice=written
    )
    used = f" ({sum(q.kind == 'practice' for q in questions)} of them practice questions)" if settings.practice else ""
    progress(f"training the answer decision on {len(questions)} pseudo-questions{used}")
    searcher, checker = _remembering(searcher, checker, [q.text for q in questions])
    rows, labels = [], []
    for q in questions:
        wide = searcher.search(q.text, k=settings.k * 6)
        for passages, own in (
            (wide[: settings.k], True),
            ([p for p in wide if p.doc_id != q.doc_id][: settings.k], False),
        ):
            window = choose(checker.evidence(q.text, passages, settings.max_claims, settings.max_chars))
            if window is None:
                continue
            rows.append([window.feature(n) for n in DECISION_FEATURES])
            labels.append(own and passages[window.source].chunk.chunk_id in q.positives)
    return np.array(rows, dtype=np.float64).reshape(-1, len(DECISION_FEATURES)), np.array(labels, dtype=bool)


class _Remembered:
    """An embedder that embeds the pseudo-questions in one batched call up front (a search and two
    evidence choices would embed each of them three times, one at a time)."""

    def __init__(self, embedder, texts: Sequence[str]):
        self.name, self.dimension = embedder.name, embedder.dimension
        self._embedder = embedder
        unique = list(dict.fromkeys(texts))
        self._known = dict(zip(unique, embedder.embed(unique))) if unique else {}

    def warm_up(self) -> None:
        self._embedder.warm_up()

    def embed(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._known]
        if missing:
            self._known.update(zip(missing, self._embedder.embed(missing)))
        return np.stack([self._known[t] for t in texts]) if texts else np.zeros((0, self.dimension), np.float32)


def _remembering(searcher, checker, texts: Sequence[str]):
    """Copies of the searcher and the checker that read `texts`' vectors from one batched call."""
    inner = getattr(searcher, "searcher", None)  # a reranking searcher: its hybrid searcher embeds
    base = copy.copy(inner if inner is not None else searcher)
    base.embedder = _Remembered(base.embedder, texts)
    if inner is not None:
        searcher = copy.copy(searcher)
        searcher.searcher = base
    else:
        searcher = base
    checker = copy.copy(checker)
    checker.embedder = base.embedder
    return searcher, checker


def pseudo_examples(
    searcher, checker, settings: DecisionSettings, progress: Progress = lambda m: None
) -> tuple[np.ndarray, np.ndarray, bool]:
    """The pseudo-questions' (features, labels), cached in `<index>/decision-examples.npz` for these
    documents and settings; returns them with True when computed now."""
    path = Path(searcher.index.directory) / EXAMPLES_FILE
    wanted = fingerprint(searcher.index, settings)
    try:
        with np.load(path) as cached:
            if str(cached["fingerprint"]) == wanted:
                return cached["features"], cached["labels"], False
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        pass  # none yet, or unreadable: searched again and rewritten
    x, y = examples(searcher, checker, settings, progress)
    if len(set(y.tolist())) < 2:
        raise ChatbotError(
            "the help centre has too few titles and headings to train the answer decision on; "
            "add articles, or keep the thresholds of [grounding]"
        )
    buffer = io.BytesIO()
    np.savez(buffer, features=x, labels=y, fingerprint=np.array(wanted))
    write_atomic(path, buffer.getvalue())
    return x, y, True


def fit(
    x: np.ndarray, y: np.ndarray, fingerprint: str, regularization: float, weights: np.ndarray | None = None
) -> AnswerModel:
    """A logistic regression on standardised features (`weights`: per example, default 1)."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(0), x.std(0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=regularization, max_iter=3000).fit((x - mean) / scale, y, sample_weight=weights)
    return AnswerModel(
        DECISION_FEATURES,
        tuple(mean.tolist()),
        tuple(scale.tolist()),
        tuple(model.coef_[0].tolist()),
        float(model.intercept_[0]),
        fingerprint,
    )


# ---- calibration on a question set ------------------------------------------------------------------
@dataclass(frozen=True)
class Scored:
    """One question of the set: the probability the decision gives its best window, and whether that
    window's quote would be a correct answer (None: the engine never asks the decision about it: a
    vague question is clarified, one with retrieval under `min_cosine` refused or handed over)."""

    id: str
    probability: float
    correct: bool | None


@dataclass(frozen=True)
class Judged:
    """One question of the set as the engine would answer it: its best window's features (None when
    there is no window) and whether that window's quote is a correct answer (None: see `Scored`)."""

    id: str
    features: tuple[float, ...] | None
    correct: bool | None


def judge_questions(
    searcher,
    checker,
    questions: Sequence,
    k: int,
    max_claims: int,
    max_chars: int,
    quote: Callable[[Window, list], str],
    min_cosine: float = -1.0,
    ranker: WindowRanker | None = None,
    candidates: list[Candidates] | None = None,
) -> list[Judged]:
    """Each question through retrieval and the evidence choice (`ranker`'s, else the fixed rule's), as the
    engine answers it (no LLM; the earlier turns of a follow-up are its context, without the replies
    they got). `candidates`: filled with every answerable question's windows and which of them are right."""
    out = []
    for q in questions:
        passages = searcher.search(q.question, k=k, context=list(q.turns))
        if is_vague(q.question, list(q.turns)) or max((p.dense_cosine for p in passages), default=-1.0) < min_cosine:
            out.append(Judged(q.id, None, None))
            continue
        windows = checker.evidence(q.question, passages, max_claims, max_chars)
        if candidates is not None and q.in_scope and q.doc_ids:
            right = tuple(_right(q, quote(w, passages), passages[w.source].doc_id) for w in windows)
            candidates.append(Candidates(tuple(windows), right))
        window = choose(windows, ranker)
        if window is None:
            out.append(Judged(q.id, None, False if q.in_scope else None))
            continue
        correct = _right(q, quote(window, passages), passages[window.source].doc_id)
        out.append(Judged(q.id, tuple(window.feature(n) for n in DECISION_FEATURES), correct))
    return out


def _right(q, answer: str, cited: str) -> bool:
    """`answer` (quoted from `cited`) is right for `q`: in scope, not vague, a gold document and a key fact."""
    if not q.in_scope or not q.doc_ids:
        return False
    fact = any(re.search(p, answer, re.I) for p in q.answer_contains) if q.answer_contains else True
    return cited in q.doc_ids and fact


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


def _labelled(judged: Sequence[Judged]) -> tuple[list[Judged], np.ndarray, np.ndarray]:
    """The judged questions with a window and a verdict, with their features and labels as arrays."""
    labelled = [j for j in judged if j.features is not None and j.correct is not None]
    xq = np.array([j.features for j in labelled], dtype=np.float64).reshape(-1, len(DECISION_FEATURES))
    yq = np.array([bool(j.correct) for j in labelled])
    return labelled, xq, yq


def _refit(
    x: np.ndarray,
    y: np.ndarray,
    xq: np.ndarray,
    yq: np.ndarray,
    rows: np.ndarray,
    weight: float,
    regularization: float,
    fingerprint: str = "",
) -> AnswerModel:
    """The pseudo-questions' examples and the labelled questions' `rows`, each of those worth `weight`."""
    return fit(
        np.vstack([x, xq[rows]]),
        np.concatenate([y, yq[rows]]),
        fingerprint,
        regularization,
        np.concatenate([np.ones(len(y)), np.full(len(rows), weight)]),
    )


def _best_weight(
    x: np.ndarray, y: np.ndarray, xq: np.ndarray, yq: np.ndarray, base_scores: np.ndarray, regularization: float
) -> tuple[float, float, np.ndarray]:
    """(AUC, weight, out-of-fold probabilities) of the `QUESTION_WEIGHTS` weight ranking the answers best."""
    from sklearn.model_selection import StratifiedKFold

    folds = list(StratifiedKFold(FOLDS, shuffle=True, random_state=SEED).split(xq, yq))
    best = (_auc(base_scores, yq), 0.0, base_scores)
    for weight in QUESTION_WEIGHTS[1:]:
        scores = np.zeros(len(yq))
        for train_rows, test_rows in folds:
            fold = _refit(x, y, xq, yq, train_rows, weight, regularization)
            scores[test_rows] = [fold.probability_of(f) for f in xq[test_rows]]
        auc = _auc(scores, yq)
        if auc > best[0] + 1e-9:
            best = (auc, weight, scores)
    return best


def learn_from_questions(
    x: np.ndarray,
    y: np.ndarray,
    judged: Sequence[Judged],
    base: AnswerModel,
    regularization: float,
    progress: Progress = lambda m: None,
) -> tuple[AnswerModel, dict[str, float], dict]:
    """The decision refitted with the labelled questions' windows added at the weight (of
    `QUESTION_WEIGHTS`) whose out-of-fold probabilities rank the questions' answers best; weight 0 (the
    pseudo-question model `base`) wins ties and is kept when the set is too small to learn from.
    Returns the model, each judged question's out-of-fold probability (by id) and what was chosen."""
    labelled, xq, yq = _labelled(judged)
    base_scores = np.array([base.probability_of(f) for f in xq])
    rights = int(yq.sum())
    if min(rights, len(yq) - rights) < max(MIN_LABELLED, FOLDS):
        progress(
            f"too few right and wrong answers among the {len(yq)} questions to learn from; "
            "the decision keeps to the pseudo-questions"
        )
        return base, dict(zip((j.id for j in labelled), base_scores.tolist())), {"question_weight": 0.0}
    auc, weight, scores = _best_weight(x, y, xq, yq, base_scores, regularization)
    chosen = {
        "question_weight": weight,
        "learned_from": len(yq),
        "auc_out_of_fold": round(auc, 4),
        "learned_ids": [j.id for j in labelled] if weight else [],
    }
    progress(
        f"the decision learns from {len(yq)} labelled questions at weight {weight:g} "
        f"(out-of-fold AUC {auc:.3f}, pseudo-questions alone {_auc(base_scores, yq):.3f})"
    )
    if weight == 0.0:
        return base, dict(zip((j.id for j in labelled), scores.tolist())), chosen
    digest = hashlib.sha256(base.fingerprint.encode() + xq.tobytes() + yq.tobytes() + str(weight).encode())
    model = _refit(x, y, xq, yq, np.arange(len(yq)), weight, regularization, digest.hexdigest())
    return model, dict(zip((j.id for j in labelled), scores.tolist())), chosen


def calibrate(
    searcher,
    checker,
    settings: DecisionSettings,
    questions: Sequence,
    target_precision: float,
    split: str,
    source: str,
    quote: Callable[[Window, list], str],
    min_cosine: float = -1.0,
    progress: Progress = lambda m: None,
    extra: dict | None = None,
    learn: bool = True,
    learn_windows: bool = False,
) -> dict:
    """Train (or reuse) the decision on the help centre, let it learn from `questions` (`learn`; `learn_windows`:
    which window to quote too), choose its threshold on them for `target_precision`, save the model and store
    the threshold in the index manifest (with `extra`, e.g. the question file's digest); returns what was
    stored, with `trained` (True when the pseudo-questions' examples were computed now)."""
    x, y, trained = pseudo_examples(searcher, checker, settings, progress)
    base = fit(x, y, fingerprint(searcher.index, settings), settings.regularization)
    progress(f"scoring {len(questions)} questions ({split}) for a precision of {target_precision:.0%}")
    judging = (searcher, checker, questions, settings.k, settings.max_claims, settings.max_chars, quote, min_cosine)
    rows: list[Candidates] = []
    judged = judge_questions(*judging, candidates=rows if learn_windows else None)
    ranker, ranked = learn_ranker(rows) if learn_windows else (None, {"learned": False, "why": "off"})
    if ranker is not None:  # the decision and its threshold judge the windows the ranker picks
        judged = judge_questions(*judging, ranker=ranker)
    if learn:
        model, out_of_fold, learned = learn_from_questions(x, y, judged, base, settings.regularization, progress)
    else:
        model, learned = base, {"question_weight": 0.0}
        out_of_fold = {j.id: base.probability_of(j.features) for j in judged if j.features is not None}
    scored = [Scored(j.id, out_of_fold.get(j.id, 0.0), j.correct) for j in judged]
    chosen = choose_threshold(scored, target_precision)
    model = replace(model, ranker=ranker)
    write_atomic(Path(searcher.index.directory) / MODEL_FILE, json.dumps(model.to_json(), indent=1))
    entry = {**chosen, **learned, "window_ranker": ranked, "help_centre_model": base.fingerprint, **(extra or {})}
    return {**store_threshold(searcher.index, model, entry, split, source), "trained": trained}


def choose_threshold(scored: Sequence[Scored], target_precision: float, min_answered: int = 5) -> dict:
    """The lowest threshold at which the answered questions (probability >= it) reach the target
    precision, counting only thresholds with at least `min_answered` answers; when none does, the one
    with the best precision. Returns the threshold and what it gives on these questions."""
    judged = sorted((s for s in scored if s.correct is not None), key=lambda s: -s.probability)
    if not judged:
        raise ChatbotError("no question to calibrate on: give in-scope questions with doc_ids")
    best = None
    correct = 0
    for n, s in enumerate(judged, start=1):
        correct += bool(s.correct)
        if n < len(judged) and judged[n].probability == s.probability:
            continue  # a threshold cannot split ties
        row = {
            "threshold": float(s.probability),
            "answered": n,
            "correct": correct,
            "precision": round(correct / n, 4),
            "coverage": round(n / len(judged), 4),
        }
        if n >= min_answered and row["precision"] >= target_precision:
            best = row  # the lowest such threshold answers the most
    if best is None:  # the target is out of reach: the most precise threshold with enough answers
        rows, correct = [], 0
        for n, s in enumerate(judged, start=1):
            correct += bool(s.correct)
            if n >= min(min_answered, len(judged)):
                rows.append(
                    {
                        "threshold": float(s.probability),
                        "answered": n,
                        "correct": correct,
                        "precision": round(correct / n, 4),
                        "coverage": round(n / len(judged), 4),
                    }
                )
        best = max(rows, key=lambda r: (r["precision"], r["answered"]))
        best["reached_target"] = False
    return {**best, "questions": len(judged), "target_precision": target_precision}


def fitted_ids(manifest: dict) -> frozenset[str]:
    """The ids of the questions the index's decision learned from (`chatbot eval` on them is in-sample
    and flatters the engine); empty when it learned from none."""
    stored = manifest.get(MANIFEST_KEY) or {}
    return frozenset(stored.get("learned_ids", ())) if stored.get("question_weight") else frozenset()


def store_threshold(index, model: AnswerModel, chosen: dict, split: str, source: str) -> dict:
    """Write the chosen threshold into the index manifest (under "decision"), tied to `model`."""
    entry = {"model": model.fingerprint, "split": split, "questions_file": source, **chosen}
    index.set_manifest_entry(MANIFEST_KEY, entry)  # the index owns its manifest file
    return entry
