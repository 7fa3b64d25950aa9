"""End to end on the real SmolLM2-135M and MiniLM: fine-tune on a slice of Bitext, then evaluate.

Small on purpose (40 exchanges, 10 steps, 5 held-out replies) so it runs in about a minute on
two CPU cores; `bench/finetune.py` is the full-size run.
"""

import csv
import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def chatbot(repo_root):
    """Runs `python -m chatbot ARGS...` from the checkout; a failure shows the end of stderr."""

    def run(*args: str) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-m", "chatbot", *args], capture_output=True, text=True, cwd=repo_root, timeout=600
        )
        if result.returncode != 0:
            raise AssertionError(f"chatbot {' '.join(args)} exited {result.returncode}: {result.stderr[-2000:]}")
        return result

    return run


@pytest.fixture(scope="module")
def bitext_slice(tmp_path_factory, shared_data):
    """The first 4 rows of each of the 27 intents: 2 train, 1 validation, 1 test per intent after the split."""
    bitext = shared_data / "bitext-customer-support" / "Bitext_Sample_Customer_Support_Training_Dataset.csv"
    with bitext.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    taken: dict[str, int] = {}
    picked = []
    for row in rows:
        if taken.get(row["intent"], 0) < 4:
            taken[row["intent"]] = taken.get(row["intent"], 0) + 1
            picked.append(row)
    path = tmp_path_factory.mktemp("bitext") / "slice.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(picked)
    return path


def test_smollm2_fine_tuned_on_bitext_lowers_its_loss_and_is_scored_against_the_base(bitext_slice, tmp_path, chatbot):
    out = tmp_path / "ft"
    report = json.loads(
        chatbot(
            "finetune",
            "--data",
            str(bitext_slice),
            "--out",
            str(out),
            "--max-examples",
            "40",
            "--max-steps",
            "10",
            "--batch-size",
            "1",
            "--max-tokens",
            "384",
            "--learning-rate",
            "1e-3",
            "--eval-examples",
            "4",
            "--json",
        ).stdout
    )
    assert report["steps"] == 10 and report["data"]["splits"] == {"train": 54, "validation": 27, "test": 27}
    assert report["validation_loss_after"] < report["validation_loss_before"]
    assert report["final_loss"] < report["initial_loss"]
    assert report["peak_rss_mb"] > 100 and report["train_seconds"] > 0
    assert (out / "model.safetensors").is_file() and (out / "train_report.json").is_file()

    scored = json.loads(
        chatbot(
            "evaluate",
            "--data",
            str(out / "data" / "test.jsonl"),
            "--model",
            "default",
            "--model",
            str(out),
            "--limit",
            "5",
            "--max-new-tokens",
            "24",
            "--json",
        ).stdout
    )
    assert list(scored["models"]) == ["default", str(out)] and scored["examples"] == 5
    for scores in scored["models"].values():
        assert {"rougeL", "cosine", "keyword_coverage", "tokens_per_s", "latency_s", "size_mb"} <= set(scores)
        assert 0 < scores["rougeL"] < 1 and 0 < scores["cosine"] <= 1 and scores["tokens_per_s"] > 0
        assert scores["size_mb"] > 100  # 135M parameters in fp32
