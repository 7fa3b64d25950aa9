"""Which kind of reply a turn deserves: is the question too vague, and does the evidence answer it?

A message such as "it doesn't work" or "upload failed" names no product, setting or symptom that
could pick one article over another; answering it invents a context and handing it over wastes a
person's time. Such a message, with no earlier turn to read it by, gets one short clarifying
question that offers the closest help-centre topics (`is_vague`, a rule on the message's words).

Otherwise the evidence decides: `AnswerModel` gives the probability that the best evidence window
(`chatbot.answer.quote`) answers the question, a logistic regression trained on the help centre's
own pseudo-questions (`chatbot.answer.calibration`); at or above the threshold calibrated on a dev
split the window is the answer, below it the turn is handed over. Knows nothing about storage
beyond reading the model file and the manifest entry it is given.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from chatbot.answer.quote import FEATURES, Window
from chatbot.answer.window_ranker import WindowRanker
from knowledge.lexical import tokenize

# words that say something is wrong or that help is wanted, but not what: they do not make a
# message specific ("my board is broken help" says no more than "board")
_GENERIC = frozenset(
    tokenize(
        "work works working worked broken broke break problem problems issue issues help helps error errors "
        "fail fails failed failing failure wrong bad trouble hi hello hey thanks please thing things stuff again "
        "need needs want get getting got do does doing done happen happened happening anything something "
        "someone somebody question questions fix fixed sort sorted support assist assistance urgent asap "
        "still keep keeps anymore properly right able",
        keep_stopwords=True,
    )
)
CLARIFY = (
    "Could you tell me a little more, so I can find the right answer? Which product, order or "
    "service is it about, what were you trying to do, and what happened (an error message helps)?"
)
CLARIFY_TOPICS = " It might be one of these: {topics}."


def is_vague(question: str, history: Sequence[str] = ()) -> bool:
    """True when the message names at most one specific thing and no earlier turn gives it a context."""
    if history:
        return False  # a short follow-up is read with the conversation so far
    specific = [w for w in tokenize(question) if w not in _GENERIC and not w.isdigit()]
    return len(specific) <= 1


def clarifying_question(titles: Sequence[str]) -> str:
    """The clarifying reply; the closest article titles, when there are any, are offered as topics."""
    topics = list(dict.fromkeys(t for t in titles if t))[:3]
    return CLARIFY + (CLARIFY_TOPICS.format(topics="; ".join(topics)) if topics else "")


# ---- the trained answer / hand-over decision --------------------------------------------------------
# Whether the best evidence window answers the question: a logistic regression on the window's
# features (`chatbot.answer.quote.FEATURES`), trained on the help centre's own pseudo-questions
# (`chatbot.answer.calibration`), stored in `<index>/decision.json`. Its threshold is chosen on a
# question set's dev split for a target precision (`chatbot calibrate`) and stored in the index
# manifest under "decision", tied to the model it was chosen for.
MODEL_FILE = "decision.json"
MANIFEST_KEY = "decision"


@dataclass(frozen=True)
class AnswerModel:
    """P(the window answers the question) = sigmoid(coef . (features - mean) / scale + intercept)."""

    features: tuple[str, ...]  # names, in the order of the coefficients
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    fingerprint: str  # of the documents and settings it was trained on
    threshold: float | None = None  # answer at or above; None until calibrated on a dev split
    ranker: WindowRanker | None = None  # which window to quote, when calibration learned one (window_ranker.py)

    def probability(self, window: Window) -> float:
        return self.probability_of([window.feature(n) for n in self.features])

    def probability_of(self, features: Sequence[float]) -> float:
        """The probability for feature values in the order of `features`."""
        x = (np.asarray(features, dtype=np.float64) - np.array(self.mean)) / np.array(self.scale)
        return float(1.0 / (1.0 + np.exp(-(float(np.dot(self.coef, x)) + self.intercept))))

    def to_json(self) -> dict:
        out = asdict(self)
        out.pop("threshold")  # the threshold lives in the manifest, with the dev split it was chosen on
        out["ranker"] = self.ranker.to_json() if self.ranker else None
        return out

    @classmethod
    def from_json(cls, data: dict, threshold: float | None = None) -> AnswerModel:
        return cls(
            tuple(data["features"]),
            tuple(data["mean"]),
            tuple(data["scale"]),
            tuple(data["coef"]),
            float(data["intercept"]),
            str(data["fingerprint"]),
            threshold,
            WindowRanker.from_json(data.get("ranker")),
        )


def load_answer_model(index_dir: str | Path, manifest: dict) -> AnswerModel | None:
    """The model in `<index_dir>/decision.json` with the threshold the manifest holds for it (None when
    not calibrated, or calibrated for another model), or None when there is no readable model."""
    try:
        data = json.loads((Path(index_dir) / MODEL_FILE).read_text(encoding="utf-8"))
        model = AnswerModel.from_json(data)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if any(name not in FEATURES for name in model.features):
        return None  # trained on features this version does not compute
    calibrated = manifest.get(MANIFEST_KEY) or {}
    if calibrated.get("model") == model.fingerprint and calibrated.get("threshold") is not None:
        return replace(model, threshold=float(calibrated["threshold"]))
    return model
