"""The window ranker calibration learns from labelled questions: kept only when it beats the fixed rule out
of fold, stored with the decision, and used to choose the quoted window."""

import random

from chatbot.answer.decision import AnswerModel
from chatbot.answer.quote import FEATURES, Window, window_score
from chatbot.answer.window_ranker import MIN_QUESTIONS, Candidates, WindowRanker, choose, learn

NUMBER = FEATURES.index("number")


def _window(n: int, number: float, cos: float) -> Window:
    features = [0.0] * len(FEATURES)
    features[FEATURES.index("cos_start")] = cos
    features[NUMBER] = number
    return Window(0, n, (f"sentence {n}",), cos, tuple(features))


def _question(rng: random.Random) -> Candidates:
    """Four windows; the fixed rule prefers the closest, but the right one is the one holding a number."""
    windows = [_window(n, 0.0, 0.6 + rng.random() * 0.3) for n in range(3)] + [
        _window(3, 1.0, 0.4 + rng.random() * 0.1)
    ]
    rng.shuffle(windows)
    return Candidates(tuple(windows), tuple(w.feature("number") == 1.0 for w in windows))


def test_a_ranker_that_beats_the_fixed_rule_out_of_fold_is_learned_and_chooses_the_right_window():
    rng = random.Random(3)
    rows = [_question(rng) for _ in range(40)]
    ranker, report = learn(rows)
    assert report["fixed_right"] == 0 and ranker is not None and report["learned"]
    assert report["out_of_fold_right"] > report["fixed_right"]
    fresh = _question(random.Random(99))
    assert choose(fresh.windows, ranker).feature("number") == 1.0
    assert choose(fresh.windows) == max(fresh.windows, key=window_score)  # without one: the fixed rule


def test_too_few_labelled_questions_keep_the_fixed_rule():
    rng = random.Random(3)
    ranker, report = learn([_question(rng) for _ in range(MIN_QUESTIONS - 1)])
    assert ranker is None and not report["learned"] and "too few" in report["why"]


def test_no_gain_out_of_fold_keeps_the_fixed_rule():
    rng = random.Random(5)
    rows = []
    for _ in range(40):  # the fixed rule's choice (the closest window) is the right one already
        windows = tuple(_window(n, 0.0, 0.3 + 0.2 * n + rng.random() * 0.05) for n in range(3))
        rows.append(Candidates(windows, tuple(w == max(windows, key=window_score) for w in windows)))
    ranker, report = learn(rows)
    assert ranker is None and report["fixed_right"] == 40


def test_the_ranker_is_stored_with_the_decision_and_read_back():
    ranker = WindowRanker(
        tuple([0.0] * len(FEATURES)), tuple([1.0] * len(FEATURES)), tuple([0.5] * len(FEATURES)), 0.1, 0.25
    )
    model = AnswerModel(
        FEATURES, (0.0,) * len(FEATURES), (1.0,) * len(FEATURES), (0.0,) * len(FEATURES), 0.0, "fp", ranker=ranker
    )
    again = AnswerModel.from_json(model.to_json())
    assert again.ranker == ranker and AnswerModel.from_json({**model.to_json(), "ranker": None}).ranker is None
    stale = {**model.to_json(), "ranker": {**ranker.to_json(), "features": ["cos_start"]}}
    assert AnswerModel.from_json(stale).ranker is None  # learned on other features: the fixed rule chooses
