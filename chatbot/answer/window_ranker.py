"""Which evidence window to quote, learned from a question set's dev split where that beats the fixed rule.

`chatbot.answer.quote.window_score` ranks a turn's windows by fixed weights. On Arduino most quotes
that miss the key fact still come from the right document, and a window that holds it was among the
candidates for 75 of 93 dev questions while the fixed rule picked one for 43. So calibration also
fits a logistic regression on the windows of the labelled dev questions (a window is right when its
quote cites a gold document and holds the key fact), and the ranking becomes `window_score + blend ×
that score`. The blend (learned score alone, 1, or 0.25) is chosen by 5-fold cross-validation on the
dev questions, and the learned ranking is kept only when its out-of-fold picks are right more often
than the fixed rule's: a company with few labelled questions keeps the fixed rule. It is stored with
the decision (`decision.json`). It knows nothing about retrieval or thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from chatbot.answer.quote import FEATURES, Window, best_window, window_score

FOLDS = 5
BLENDS = (None, 1.0, 0.25)  # None: the learned score alone; else window_score + blend x it
MIN_QUESTIONS = 20  # labelled questions with a right window among their candidates, at least


@dataclass(frozen=True)
class WindowRanker:
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    blend: float | None  # None: the learned score alone

    def learned(self, window: Window) -> float:
        x = (np.asarray(window.features, dtype=np.float64) - np.array(self.mean)) / np.array(self.scale)
        return float(np.dot(self.coef, x)) + self.intercept

    def score(self, window: Window) -> float:
        return self.learned(window) if self.blend is None else window_score(window) + self.blend * self.learned(window)

    def to_json(self) -> dict:
        return {**asdict(self), "features": list(FEATURES)}

    @classmethod
    def from_json(cls, data: dict | None) -> WindowRanker | None:
        if not data or data.get("features") != list(FEATURES):
            return None  # none learned, or learned on features this version does not compute
        blend = data["blend"]
        return cls(
            tuple(data["mean"]),
            tuple(data["scale"]),
            tuple(data["coef"]),
            float(data["intercept"]),
            None if blend is None else float(blend),
        )


def ranked(candidates: Sequence[Window], ranker: WindowRanker | None = None) -> list[Window]:
    """The windows best first, as `choose` ranks them (the earliest first on a tie)."""
    return sorted(candidates, key=ranker.score if ranker else window_score, reverse=True)


def choose(candidates: Sequence[Window], ranker: WindowRanker | None = None) -> Window | None:
    """The window to quote: the ranker's best (the earliest on a tie), or the fixed rule's without one."""
    return max(candidates, key=ranker.score, default=None) if ranker else best_window(candidates)


def alternatives(
    candidates: Sequence[Window], chosen: Window, count: int, ranker: WindowRanker | None = None
) -> list[Window]:
    """Up to `count` more windows to show beside `chosen`, ranked as `choose` ranks, each from another
    passage than `chosen` and than each other (a suggestion offers other places, not the next sentences)."""
    seen, picked = {chosen.source}, []
    for window in ranked(candidates, ranker):
        if len(picked) >= count:
            break
        if window.source not in seen:
            seen.add(window.source)
            picked.append(window)
    return picked


@dataclass(frozen=True)
class Candidates:
    """One labelled question's windows and whether each one's quote would be a right answer."""

    windows: tuple[Window, ...]
    right: tuple[bool, ...]


def fit(rows: Sequence[Candidates], blend: float | None, regularization: float = 1.0) -> WindowRanker:
    from sklearn.linear_model import LogisticRegression

    x = np.array([w.features for r in rows for w in r.windows], dtype=np.float64)
    y = np.array([ok for r in rows for ok in r.right], dtype=bool)
    mean, scale = x.mean(0), x.std(0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=regularization, max_iter=3000).fit((x - mean) / scale, y)
    return WindowRanker(
        tuple(mean.tolist()), tuple(scale.tolist()), tuple(model.coef_[0].tolist()), float(model.intercept_[0]), blend
    )


def _rights(rows: Sequence[Candidates], ranker: WindowRanker | None) -> int:
    """How many questions get a right window when `ranker` (None: the fixed rule) chooses."""
    total = 0
    for r in rows:
        best = choose(r.windows, ranker)
        total += best is not None and r.right[r.windows.index(best)]
    return total


def learn(rows: Sequence[Candidates]) -> tuple[WindowRanker | None, dict]:
    """The ranker whose out-of-fold choices on `rows` are right most often, when that beats the fixed
    rule; else None. Returns it with what was compared (counts of right choices)."""
    usable = [r for r in rows if r.windows and any(r.right) and not all(r.right)]
    fixed = _rights(usable, None)
    report: dict = {"questions": len(usable), "fixed_right": fixed}
    if len(usable) < MIN_QUESTIONS:
        return None, {**report, "learned": False, "why": "too few labelled questions to learn from"}
    best_blend, best_right = None, -1
    for blend in BLENDS:
        right = 0
        for fold in range(FOLDS):
            train = [r for i, r in enumerate(usable) if i % FOLDS != fold]
            test = [r for i, r in enumerate(usable) if i % FOLDS == fold]
            right += _rights(test, fit(train, blend))
        report[f"out_of_fold_right_blend_{blend}"] = right
        if right > best_right:
            best_blend, best_right = blend, right
    if best_right <= fixed:
        return None, {**report, "learned": False, "why": "no better than the fixed rule out of fold"}
    return fit(usable, best_blend), {**report, "learned": True, "blend": best_blend, "out_of_fold_right": best_right}
