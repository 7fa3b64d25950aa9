"""Which windows a suggestion shows: the fixed rule's, or a reader model's (chatbot/answer/window_reader.py)."""

import math

import pytest

from chatbot.answer.quote import FEATURES, Window
from chatbot.answer.window_reader import PER_PASSAGE, POOL, CTranslate2Reader, reader_for, suggestion
from knowledge.types import Chunk, Passage


def _window(source: int, start: int, score: float, length: int = 2) -> Window:
    """A window whose fixed-rule score is `score` (only cos_start set)."""
    features = tuple(score if name == "cos_start" else 0.0 for name in FEATURES)
    return Window(source, start, tuple(f"p{source} s{start + i}." for i in range(length)), score, features)


PASSAGES = [Passage(Chunk(j, f"D{j}", f"Title {j}", "", (), "text"), 1.0, 0.5, 1.0) for j in range(4)]


class PrefersText:
    """A stand-in reader: scores a window by whether its text holds `wanted`, and records what it read."""

    def __init__(self, *wanted: str):
        self.wanted, self.read = wanted, []

    def scores(self, question, windows):
        self.read.append((question, list(windows)))
        return [float(sum(w in text for w in self.wanted)) for _, text in windows]


def test_without_a_reader_the_best_window_comes_first_then_the_best_of_other_passages():
    windows = [_window(0, 0, 0.9), _window(0, 3, 0.8), _window(1, 0, 0.7), _window(2, 0, 0.6)]
    shown = suggestion(windows, windows[0], 3, None, None, "q", PASSAGES)
    assert [(w.source, w.start) for w in shown] == [(0, 0), (1, 0), (2, 0)]


def test_a_reader_picks_among_the_best_windows_at_most_two_a_passage_and_none_overlapping():
    windows = [_window(0, start, 0.9 - start / 100) for start in range(6)]  # overlapping runs of one passage
    windows += [_window(1, 0, 0.5), _window(2, 0, 0.4)]
    reader = PrefersText("p0 s5.", "p0 s3.", "p0 s1.", "p2 s0.")
    shown = suggestion(windows, windows[0], 3, None, reader, "how do I?", PASSAGES)
    question, read = reader.read[0]
    starts = [(w.source, w.start) for w in shown]
    assert question == "how do I?" and read[0] == ("Title 0", "p0 s0. p0 s1.")  # title and text, best first
    assert all(not (a.source == b.source and abs(a.start - b.start) < 2) for a in shown for b in shown if a is not b)
    assert sum(w.source == 0 for w in shown) == PER_PASSAGE and (2, 0) in starts  # the reader's, not the rule's
    assert starts[0][0] == 0 and (1, 0) not in starts


def test_the_reader_scores_at_most_the_pool_and_falls_back_to_the_quote_when_nothing_is_left():
    windows = [_window(j % 4, 10 * j, 1.0 - j / 100) for j in range(20)]
    reader = PrefersText()
    suggestion(windows, windows[0], 3, None, reader, "q", PASSAGES)
    assert len(reader.read[0][1]) == POOL
    assert suggestion([], windows[0], 3, None, reader, "q", PASSAGES) == [windows[0]]


def test_no_reader_is_built_without_a_name_and_an_unknown_one_names_the_choices():
    from core.errors import ConfigError

    assert reader_for("") is None
    with pytest.raises(ConfigError, match="qwen2.5-coder-1.5b-instruct-int8"):
        reader_for("no-such-model")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tokenizer_dir):
    """A tiny random model exported to CTranslate2 int8, with its tokenizer: the reader's real runtime."""
    from chatbot.answer.export import export_ctranslate2
    from finetune.testing import tiny_llama

    tiny = tiny_llama(tmp_path_factory.mktemp("tiny") / "model", tokenizer_dir, layers=2, hidden_size=64, seed=3)
    out = tmp_path_factory.mktemp("ct2") / "int8"
    export_ctranslate2(tiny, out, "int8")
    return out


def test_the_ctranslate2_reader_scores_each_window_by_the_questions_log_likelihood(exported):
    reader = CTranslate2Reader(str(exported), "cpu", threads=1)
    windows = [("Returns", "Send it back within 30 days."), ("Shipping", "We ship in 2 days."), ("Returns", "x")]
    scores = reader.scores("How long do I have to return it?", windows)
    assert len(scores) == 3 and all(math.isfinite(s) and s < 0 for s in scores)  # mean log-probabilities
    again = reader.scores("How long do I have to return it?", [windows[1], windows[0]])
    assert again == pytest.approx([scores[1], scores[0]], abs=1e-4)  # each window read on its own
    assert reader.scores("anything", []) == []


def test_settings_rebuilt_for_the_same_model_share_one_reader(exported):
    first = reader_for(str(exported), "cpu", 1)
    assert isinstance(first, CTranslate2Reader) and reader_for(str(exported), "cpu", 1) is first
    assert reader_for(str(exported), "cpu", 2) is not first


def test_the_default_reader_is_named_at_build_and_loaded_only_at_the_first_suggestion():
    from chatbot.answer import window_reader
    from chatbot.builder import build_settings
    from core.config import load_config

    window_reader._loaded_once.cache_clear()  # a reader an earlier test in this process loaded is not reused
    reader = build_settings(load_config(None, {})).reader
    assert isinstance(reader, CTranslate2Reader) and reader.path == "qwen2.5-coder-1.5b-instruct-int8"
    assert not reader._loaded.loaded  # building settings neither provisions nor loads the 1.6 GB model
    assert build_settings(load_config(None, {"grounding": {"suggest_reader": ""}})).reader is None


@pytest.mark.e2e  # the real default reader: Qwen2.5-Coder-1.5B-Instruct int8, provisioned by `chatbot setup`
def test_the_default_reader_ranks_the_window_that_answers_above_one_that_does_not():
    from core.config import load_config

    reader = reader_for(load_config(None, {}).grounding.suggest_reader, "cpu")
    windows = [
        ("Shipping", "We ship to the UK and the EU with DHL. Orders placed before noon leave the same day."),
        ("Refunds", "Refunds reach your card within five working days of the return arriving at our warehouse."),
        ("Accounts", "You can change your password from the account page. Two-step sign-in is optional."),
    ]
    scores = reader.scores("how long until my refund shows up on my card??", windows)
    assert max(range(3), key=lambda i: scores[i]) == 1, scores
