"""`chatbot bench`: its parts' arithmetic on stand-ins, and one quick run of the real thing (as CI runs it),
whose figures the cost of ownership then reads. Speed itself is never asserted."""

import json
import subprocess
import sys

import pytest

from chatbot.answer.llm import Message
from chatbot.benchmarks import PARTS, table
from chatbot.benchmarks.llm_bench import measure_stream, rag_prompt, read_bandwidth_gbps
from chatbot.benchmarks.search_bench import retrieval_bench
from chatbot.reporting.report import percentile
from chatbot.testing import ScriptedChatModel
from knowledge.testing import HashEmbedder


def test_the_rag_prompt_fills_its_token_budget_without_passing_it():
    text = " ".join(f"word{n}" for n in range(2000))
    count = lambda s: len(s.split())  # noqa: E731 - a token is a word here
    messages = rag_prompt(text, count, tokens=300)
    assert 290 <= count(messages[0].content + "Sources:\n" + messages[1].content.removeprefix("Sources:\n")) <= 300
    assert messages[1].content.endswith("who pays for the return?")


def test_a_streamed_reply_is_timed_from_its_first_token():
    figures = measure_stream(ScriptedChatModel("one two three four five"), [Message("user", "hi")], 5)
    assert figures["tokens"] == 5 and figures["tokens_per_s"] > 0 and figures["ttft_s"] >= 0
    empty = measure_stream(ScriptedChatModel(""), [Message("user", "hi")], 5)
    assert empty["tokens"] == 0 and empty["tokens_per_s"] is None


def test_retrieval_latency_is_measured_at_each_size_and_percentiles_are_ordered():
    texts = [f"returns take {n} days and shipping costs {n} pounds" for n in range(50)]
    out = retrieval_bench(HashEmbedder(), texts, ["how long do returns take", "shipping cost"], (100, 1000))
    assert set(out) == {"100", "1000"}
    assert all(0 < f["p50_ms"] <= f["p99_ms"] and f["queries"] == 2 for f in out.values())
    assert percentile([1, 2, 3, 4, 100], 0.5) == 3 and percentile([1, 2, 3, 4, 100], 0.99) > 90  # the project's one
    assert read_bandwidth_gbps(megabytes=8, repeats=1) > 0


def test_the_table_shows_each_part_beside_its_baseline():
    results = {
        "llm": {
            "prompt_tokens": 450,
            "tokens_per_s": 20.0,
            "baseline_tokens_per_s": 8.0,
            "speedup": 2.5,
            "ttft_s": 0.4,
            "baseline_ttft_s": 1.0,
            "eta": 0.3,
            "baseline_eta": 0.5,
            "bandwidth_gbps": 9.0,
        },
        "turn": {"quoted": {"p50_s": 0.2, "p95_s": 0.3, "turns": 4}, "index": "ix"},
    }
    text = table(results)
    assert "| 20.0 (int8) | 8.0 (fp32 generate) | 2.5x |" in text and "turn (quoted)" in text and "index" not in text


def test_an_unknown_part_is_refused_before_anything_runs(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "chatbot", "bench", "--only", "llm,gpu", "--db", f"sqlite:///{tmp_path / 'b.db'}"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "not gpu" in out.stderr and not (tmp_path / "b.db").exists()


@pytest.mark.e2e
def test_a_quick_bench_runs_every_part_with_the_real_models_and_the_bill_reads_its_lever(tmp_path):
    db = f"sqlite:///{tmp_path / 'bench.db'}"
    env_index = str(tmp_path / "no-index")  # no index configured: the turn part builds the demo's
    run = subprocess.run(
        [sys.executable, "-m", "chatbot", "bench", "--quick", "--json", "--db", db, "--index", env_index],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    results = json.loads(run.stdout)
    assert set(PARTS) <= set(results) and results["quick"] is True
    llm = results["llm"]
    assert llm["tokens_per_s"] > 0 and llm["baseline_tokens_per_s"] > 0 and llm["bandwidth_gbps"] > 0
    assert results["asr"]["rtf"] > 0 and results["asr"]["baseline_rtf"] > 0
    assert results["embed"]["sentences"] == 128 and results["ingest"]["documents"] > 0
    assert {"answered", "voice"} <= set(results["turn"]) or {"suggested", "voice"} <= set(results["turn"])
    report = subprocess.run(
        [sys.executable, "-m", "chatbot", "report", "--db", db, "--json"], capture_output=True, text=True, check=True
    )
    lever = json.loads(report.stdout)["ownership"]["levers"]["int8_vs_fp32"]
    assert lever["measured"] is True
    assert lever["speedup"] == pytest.approx(llm["tokens_per_s"] / llm["baseline_tokens_per_s"])


def test_the_chart_draws_each_measured_pair_with_its_numbers():
    from xml.etree import ElementTree

    from chatbot.benchmarks.chart import svg

    drawing = svg(
        {"llm": {"tokens_per_s": 20.0, "baseline_tokens_per_s": 8.0}, "asr": {"rtf": 0.25, "baseline_rtf": 0.5}}
    )
    root = ElementTree.fromstring(drawing)
    bars = [e for e in root.iter() if e.tag.endswith("rect")]
    assert len(bars) == 4 and float(bars[0].get("width")) > float(bars[1].get("width"))  # ours 20 vs 8
    assert "ours: 20 tokens/s" in drawing and "baseline: 2 x real time" in drawing
