"""Evaluation metrics, the scoring of models on held-out exchanges, and the promotion rule."""

import json
from dataclasses import replace

import pytest

from finetune.data import Exchange
from finetune.evaluate import (
    EvalOptions,
    ModelScores,
    beats,
    evaluate,
    install_model,
    keyword_coverage,
    keyword_sets,
    lcs_length,
    promote,
    rouge_l,
    stratified_limit,
)
from finetune.testing import support_logs, tiny_llama
from knowledge.testing import HashEmbedder

EXCHANGES = [Exchange(r["instruction"], r["response"], r["intent"]) for r in support_logs(per_intent=2)]


def scores(rouge, cosine, path="x"):
    return ModelScores(
        path=path,
        backend="transformers",
        device="cpu",
        examples=1,
        rougeL=rouge,
        cosine=cosine,
        keyword_coverage=0,
        latency_s=0,
        first_token_s=0,
        tokens_per_s=0,
        completion_tokens=0,
        empty_replies=0,
        size_mb=0,
    )


def test_rouge_l_on_known_strings():
    assert lcs_length("a b c d".split(), "a c d b".split()) == 3
    assert rouge_l("the cat sat on the mat", "the cat sat on the mat") == 1.0
    assert rouge_l("The cat, on the mat!", "the cat sat on the mat") == pytest.approx(2 * 1 * (5 / 6) / (1 + 5 / 6))
    assert rouge_l("dogs bark loudly", "the cat sat") == 0.0
    assert rouge_l("", "the cat") == 0.0
    # LCS is in order: "b a" against "a b" shares one word in sequence.
    assert rouge_l("b a", "a b") == pytest.approx(0.5)


def test_rouge_l_is_the_reference_implementation_with_stemming():
    from rouge_score import rouge_scorer

    # inflections match ("ships"/"shipping"), as in published ROUGE-L scores
    assert rouge_l("It ships today", "It is shipping today") == pytest.approx(2 * 1 * (3 / 4) / (1 + 3 / 4))
    reply, gold = "Refunds reach your card within 5 working days.", "Your refund reaches the card in 5 days"
    expected = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True).score(gold, reply)["rougeL"].fmeasure
    assert rouge_l(reply, gold) == pytest.approx(expected)


def test_keywords_are_the_distinctive_words_of_each_gold_reply():
    golds = [
        "Refunds reach your card within 5 days.",
        "Your parcel ships within 2 days.",
        "Reset your password from the sign-in page.",
    ]
    keywords = keyword_sets(golds, per_reply=3)
    assert "password" in keywords[2] and "day" not in keywords[2]
    assert keyword_coverage("Use the sign-in page to reset the password", keywords[2]) == 1.0
    assert keyword_coverage("no idea", keywords[2]) == 0.0


def test_limit_takes_exchanges_round_robin_across_intents():
    picked = stratified_limit(EXCHANGES, 5)
    assert len(picked) == 5 and len({e.intent for e in picked}) == 4
    assert stratified_limit(EXCHANGES, 0) == EXCHANGES


def test_promotion_needs_a_win_on_both_rouge_and_cosine():
    assert beats(scores(0.3, 0.7), None)
    assert beats(scores(0.3, 0.7), scores(0.2, 0.6))
    assert not beats(scores(0.3, 0.5), scores(0.2, 0.6))
    assert not beats(scores(0.3, 0.6), scores(0.3, 0.5))


def test_models_are_scored_and_keyed_as_given_and_promotion_keeps_the_previous(tmp_path, tokenizer_dir):
    a = tiny_llama(tmp_path / "a", tokenizer_dir, layers=1, seed=1)
    b = tiny_llama(tmp_path / "b", tokenizer_dir, layers=1, seed=2)
    options = EvalOptions(max_new_tokens=3, device="cpu")
    embed = HashEmbedder().embed
    results, predictions = evaluate([str(a), str(b)], EXCHANGES[:3], options, embed, EXCHANGES)
    assert list(results) == [str(a), str(b)]
    for s in results.values():
        assert s.examples == 3 and s.backend == "transformers" and s.size_mb > 0 and s.tokens_per_s > 0
        assert 0 <= s.rougeL <= 1 and -1 <= s.cosine <= 1 and 0 <= s.keyword_coverage <= 1
    assert len(predictions) == 6 and {"reply", "gold", "rougeL", "cosine"} <= set(predictions[0])
    # the same seeded prompts: a model answers the same way twice
    again, _ = evaluate([str(a)], EXCHANGES[:3], options, embed, EXCHANGES)
    assert again[str(a)].rougeL == results[str(a)].rougeL

    target = tmp_path / "serving"
    first = promote(results, target, EXCHANGES[:3], options, embed, EXCHANGES)
    assert first["promoted"] and first["reason"] == "no current model"
    assert (target / "model.safetensors").is_file() and json.loads((target / "promotion.json").read_text())["promoted"]
    # a candidate that does not win on both metrics leaves the current model in place
    best = max(results, key=lambda k: (results[k].rougeL, results[k].cosine))
    worse = {"w": replace(results[best], rougeL=-1.0, path=str(b))}
    second = promote(worse, target, EXCHANGES[:3], options, embed, EXCHANGES)
    assert not second["promoted"] and "does not beat" in second["reason"]
    assert not (tmp_path / "serving.previous").exists()
    better = {"c": replace(results[best], rougeL=2.0, cosine=2.0, path=str(b))}
    assert promote(better, target, EXCHANGES[:3], options, embed, EXCHANGES)["promoted"]
    assert (tmp_path / "serving.previous" / "promotion.json").is_file()
    assert json.loads((target / "promotion.json").read_text())["candidate"] == "c"


def test_install_model_copies_files_but_not_checkpoints(tmp_path):
    source = tmp_path / "model"
    (source / "checkpoints" / "step-1").mkdir(parents=True)
    (source / "config.json").write_text("{}")
    install_model(str(source), tmp_path / "target", {"candidate": "m"})
    assert sorted(p.name for p in (tmp_path / "target").iterdir()) == ["config.json", "promotion.json"]
