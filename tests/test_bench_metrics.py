"""The metrics the bench scripts report: WER (bench/voice.py) and the one shared percentile."""

import importlib.util

import numpy as np
from pathlib import Path

import pytest

from chatbot.reporting import analytics, report
from chatbot.reporting.report import percentile

ROOT = Path(__file__).resolve().parents[1]  # the checkout


def _bench(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_wer_counts_a_spelled_out_number_as_heard_right():
    voice = _bench("voice")
    assert voice.wer("Can I return it within thirty days?", "can I return it within 30 days") == (0, 7)
    assert voice.wer("Where is my order?", "Where is the order now?") == (2, 4)  # one substitution, one insertion
    assert voice.wer("Where is my order?", "") == (4, 4)


def test_one_percentile_interpolates_like_numpy_and_every_caller_uses_it():
    values = [1.0, 2.0, 3.0, 4.0, 10.0]
    assert percentile(values, 0.5) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5  # between the ranks, not the upper one
    assert percentile(values, 0.95) == pytest.approx(float(np.percentile(values, 95)))
    assert percentile([], 0.5) is None
    with pytest.raises(ValueError, match="between 0 and 1"):
        percentile(values, 95)
    assert analytics.percentile is report.percentile
    assert _bench("voice").percentile is report.percentile and _bench("answers").percentile is report.percentile
