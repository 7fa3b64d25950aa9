"""Evidence windows, the trained answer / hand-over decision, its calibration and its use in the engine."""

import json

import numpy as np
import pytest

from chatbot.answer.calibration import (
    DecisionSettings,
    Judged,
    Scored,
    calibrate,
    choose_threshold,
    fingerprint,
    fit,
    pseudo_examples,
)
from chatbot.answer.decision import MANIFEST_KEY, AnswerModel, load_answer_model
from chatbot.answer.grounding import GroundingChecker
from chatbot.answer.quote import FEATURES, best_window, windows
from chatbot.builder import build_searcher, build_settings
from chatbot.answer.replies import MAX_QUOTE_CHARS, quoted
from chatbot.reporting.evaluation import EvalQuestion
from chatbot.testing import ScriptedChatModel, scripted_pipeline
from core.config import load_config
from knowledge.index import KnowledgeIndex
from knowledge.ingest import iter_documents
from knowledge.testing import HashEmbedder
from knowledge.types import Chunk, Passage


def _passage(chunk_id, doc_id, sentences, cosines, dense, score, lexical=1.0, title="T"):
    """A passage whose stored sentence vectors sit at the given cosines to the question vector e0."""
    vectors = np.zeros((len(sentences), 8), dtype=np.float32)
    for row, cosine in enumerate(cosines):
        vectors[row, 0], vectors[row, 1 + row % 7] = cosine, np.sqrt(1 - cosine**2)
    chunk = Chunk(chunk_id, doc_id, title, "", (), " ".join(sentences), tuple(sentences), vectors)
    return Passage(chunk, score, dense, lexical)


QUESTION = "Is VAT included in the price shown in the shop?"
QUESTION_VECTOR = np.eye(8, dtype=np.float32)[0]


def test_the_quote_comes_from_the_passage_retrieval_trusts_and_carries_the_question_words():
    gold = _passage(
        1,
        "vat",
        [
            "Prices for customers in the EU are shown in euros.",
            "The VAT is included in the price shown in the shop at checkout.",
        ],
        [0.50, 0.55],
        dense=0.80,
        score=0.03,
        title="VAT and prices",
    )
    other = _passage(
        2,
        "duties",
        ["Customs duties may apply to orders shipped outside the union."],
        [0.60],
        dense=0.45,
        score=0.01,
        title="Customs",
    )
    found = windows(
        QUESTION, QUESTION_VECTOR, [gold, other], [gold.sentence_vectors, other.sentence_vectors], 3, MAX_QUOTE_CHARS
    )
    closest = max(found, key=lambda w: w.cosine)
    assert closest.source == 1  # the single closest sentence is from the lower-ranked passage
    chosen = best_window(found)
    assert chosen.source == 0 and "VAT is included" in " ".join(chosen.sentences)
    assert len(chosen.features) == len(FEATURES) and chosen.feature("rank_inv") == 1.0


def test_a_window_runs_on_past_the_first_sentence_and_stops_at_a_sentence_about_the_article():
    p = _passage(
        1,
        "d",
        [
            "Open the Settings page of your account.",
            "1.",
            "Choose Delete account and confirm.",
            "Learn more about accounts in this article.",
        ],
        [0.7, 0.1, 0.3, 0.2],
        dense=0.7,
        score=1.0,
    )
    (first, *_) = windows("How do I delete my account?", QUESTION_VECTOR, [p], [p.sentence_vectors], 3, 420)
    # the bare list number is skipped; the article pointer ends the window
    assert first.sentences == ("Open the Settings page of your account.", "Choose Delete account and confirm.")


def test_evidence_embeds_only_the_question_when_sentences_are_stored(write, tmp_path):
    write("kb/r.md", "---\nid: R\ntitle: Returns\n---\nYou can return items within 30 days. Refunds take five days.")
    embedder = HashEmbedder()
    index = KnowledgeIndex(tmp_path / "ix", embedder)
    index.ingest(iter_documents([str(tmp_path / "kb")]), 300, 50)
    passages = [Passage(c, 1.0, 0.9, 1.0) for c in index.chunks.values()]
    embedder.calls = embedder.embedded = 0
    found = GroundingChecker(embedder, 0.5, 0.3, 2).evidence("How long do refunds take?", passages, 3, 420)
    assert (embedder.calls, embedder.embedded) == (1, 1) and found


def _model(threshold=None, fingerprint="f", coef=None):
    coef = coef if coef is not None else [0.0] * len(FEATURES)
    return AnswerModel(
        FEATURES, (0.0,) * len(FEATURES), (1.0,) * len(FEATURES), tuple(coef), 0.0, fingerprint, threshold
    )


def test_a_stored_model_gets_the_threshold_calibrated_for_it_and_no_other(tmp_path):
    (tmp_path / "decision.json").write_text(json.dumps(_model(fingerprint="abc").to_json()))
    assert load_answer_model(tmp_path, {}).threshold is None  # trained, not calibrated
    assert load_answer_model(tmp_path, {MANIFEST_KEY: {"model": "abc", "threshold": 0.4}}).threshold == 0.4
    assert load_answer_model(tmp_path, {MANIFEST_KEY: {"model": "old", "threshold": 0.4}}).threshold is None
    assert load_answer_model(tmp_path / "none", {}) is None


def test_the_threshold_is_the_lowest_that_reaches_the_target_precision():
    scored = [
        Scored("a", 0.9, True),
        Scored("b", 0.8, True),
        Scored("c", 0.7, False),
        Scored("d", 0.6, True),
        Scored("e", 0.5, True),
        Scored("f", 0.4, False),
        Scored("g", 0.3, False),
        Scored("v", 0.0, None),
    ]
    chosen = choose_threshold(scored, target_precision=0.8, min_answered=2)
    assert (chosen["threshold"], chosen["answered"], chosen["correct"]) == (0.5, 5, 4)
    assert chosen["questions"] == 7  # the vague question (None) is clarified, not scored
    unreachable = choose_threshold(scored, target_precision=1.0, min_answered=3)
    assert unreachable["reached_target"] is False and unreachable["threshold"] == 0.5  # the most precise: 4 of 5


@pytest.fixture
def kb(write, tmp_path):
    write(
        "kb/returns.md",
        "---\nid: R\ntitle: Returns and refunds\n---\nYou can return most items within 30 days of "
        "delivery for a full refund.\n\n## Refund times\nRefunds reach your card within five working days.\n\n"
        "## Return labels\nUK orders get a free return label printed from your account page.",
    )
    write(
        "kb/shipping.md",
        "---\nid: S\ntitle: Shipping costs\n---\nStandard delivery costs 3.95 pounds in the UK.\n\n"
        "## Express delivery\nExpress delivery arrives the next working day and costs 7.50 pounds.",
    )
    write(
        "kb/account.md",
        "---\nid: A\ntitle: Your account\n---\nReset your password from the login page.\n\n"
        "## Deleting an account\nWrite to support to delete your account and its order history.",
    )
    write(
        "kb/faq.csv",
        "question,answer\nDo you ship to Canada?,Not yet. We ship to the UK and the EU only.\n"
        "Can I pay with PayPal?,Yes. PayPal and all major cards are accepted at checkout.\n",
    )
    return tmp_path / "kb"


@pytest.fixture
def parts(kb, tmp_path):
    embedder = HashEmbedder()
    index = KnowledgeIndex(tmp_path / "ix", embedder)
    index.ingest(iter_documents([str(kb)]), 300, 50)
    index.load()
    config = load_config(None, {"retrieval": {"k": 2}})
    return index, build_searcher(config, index), GroundingChecker(embedder, 0.5, 0.3, 2)


SETTINGS = DecisionSettings(k=2, max_claims=3, max_chars=MAX_QUOTE_CHARS, max_questions=100)


def test_the_decision_is_trained_on_the_help_centre_cached_and_retrained_when_a_document_changes(parts, kb, write):
    index, searcher, checker = parts
    x, y, computed = pseudo_examples(searcher, checker, SETTINGS)
    assert computed and x.shape == (len(y), len(FEATURES)) and 0 < y.sum() < len(y)
    model = fit(x, y, fingerprint(index, SETTINGS), 1.0)
    assert model.features == FEATURES and any(c != 0 for c in model.coef)
    again_x, again_y, computed = pseudo_examples(searcher, checker, SETTINGS)
    assert not computed and (again_x == x).all() and (again_y == y).all()  # read from the cache
    assert fit(again_x, again_y, model.fingerprint, 1.0) == model
    for damaged in (b"PK\x03\x04 cut short", b"not an archive"):  # an interrupted or foreign file: searched again
        (index.directory / "decision-examples.npz").write_bytes(damaged)
        assert pseudo_examples(searcher, checker, SETTINGS)[2]
    write("kb/account.md", "---\nid: A\ntitle: Your account\n---\nReset your password from the settings page.")
    index.ingest(iter_documents([str(kb)]), 300, 50)
    assert pseudo_examples(searcher, checker, SETTINGS)[2]  # new documents: searched again


def test_calibrate_stores_the_threshold_in_the_manifest_and_the_engine_then_uses_it(parts, tmp_path):
    index, searcher, checker = parts
    questions = [
        EvalQuestion("1", "How long do refunds take to reach my card?", ("R",), ("five working days",), True),
        EvalQuestion("2", "How much does express delivery cost?", ("S",), ("7.50",), True),
        EvalQuestion("3", "What is the weather on Mars?", (), (), False),
    ]
    stored = calibrate(
        searcher,
        checker,
        SETTINGS,
        questions,
        0.5,
        "dev",
        "q.jsonl",
        lambda window, passages: quoted(*window.sentences),
    )
    manifest = json.loads((index.directory / "manifest.json").read_text())
    assert manifest[MANIFEST_KEY]["threshold"] == stored["threshold"] and stored["trained"]
    assert manifest[MANIFEST_KEY]["model"] == json.loads((index.directory / "decision.json").read_text())["fingerprint"]
    config = load_config(None, {"retrieval": {"k": 2}})
    assert build_settings(config, index).answer_model.threshold == stored["threshold"]
    assert build_settings(config.with_overrides({"grounding": {"trained_decision": False}}), index).answer_model is None


def _engine(index, tmp_path, model, below="handoff", windows=2, sentences=3, reader=None):
    from dataclasses import replace

    llm = ScriptedChatModel("Refunds arrive within five working days.")
    config = load_config(
        None,
        {
            "retrieval": {"k": 2},
            "grounding": {
                "min_retrieval_cosine": 0.05,
                "off_topic_cosine": 0.01,
                "below_threshold": below,
                "suggest_windows": windows,
                "suggest_sentences": sentences,
            },
            "handoff": {"copilot": False},  # its background draft would prompt the same stand-in LLM
        },
    )
    settings = replace(build_settings(config), answer_model=model, reader=reader)
    return scripted_pipeline(config, index, llm, f"sqlite:///{tmp_path}/db.sqlite", settings), llm


def test_above_the_calibrated_threshold_the_evidence_answers_without_an_llm_call(parts, tmp_path):
    index = parts[0]
    pipeline, llm = _engine(index, tmp_path, _model(threshold=0.5))  # every window scores 0.5
    reply = pipeline.ask("How long do refunds take to reach my card?")
    assert reply.outcome == "answered" and reply.answer.startswith("Our help centre says:")
    assert llm.prompts == [] and reply.grounding["decision"] == 0.5 and reply.grounding["direct_quote"]


def test_below_the_calibrated_threshold_the_turn_is_handed_over_or_tried_by_the_llm(parts, tmp_path):
    index = parts[0]
    pipeline, llm = _engine(index, tmp_path, _model(threshold=0.9))
    reply = pipeline.ask("How long do refunds take to reach my card?")
    assert reply.outcome == "unsupported_answer" and reply.handoff.needed and llm.prompts == []
    assert reply.grounding["threshold"] == 0.9 and "not certain" in reply.answer

    pipeline, llm = _engine(index, tmp_path / "llm", _model(threshold=0.9), below="llm")
    pipeline.ask("How long do refunds take to reach my card?")
    assert llm.prompts  # the LLM tried


def test_below_the_threshold_the_closest_window_is_suggested_and_the_customer_confirms_or_declines(parts, tmp_path):
    index = parts[0]
    pipeline, llm = _engine(index, tmp_path, _model(threshold=0.9), below="suggest")
    reply = pipeline.ask("How long do refunds take to reach my card?")
    assert reply.outcome == "suggested" and not reply.handoff.needed and llm.prompts == []
    assert reply.to_json()["suggestion"] is True and reply.answer.endswith("Did this answer your question?")
    first, second = reply.answer.split("[1]")  # the closest window, then the next one of another passage
    assert "five working days" in first and "[2]" in second and "five working days" not in second
    assert [s.doc_id for s in reply.sources] == ["R", "R"]  # [1] and [2]: two passages of its one document
    confirmed = pipeline.ask("yes, thanks!", reply.conversation_id)
    assert confirmed.outcome == "confirmed" and not confirmed.handoff.needed
    conversation = pipeline.conversation(reply.conversation_id)
    assert pipeline.store.stats.totals()["ratings"] == {1: 1} and conversation.handoff_reason is None

    second = pipeline.ask("How long do refunds take to reach my card?")
    declined = pipeline.ask("No, talk to a person", second.conversation_id)
    assert declined.outcome == "suggestion_declined" and declined.handoff.needed
    assert [(e.conversation_id, e.reason) for e in pipeline.handoff_queue()] == [
        (second.conversation_id, "suggestion_declined")
    ]
    button = pipeline.ask("How long do refunds take to reach my card?")
    pressed = pipeline.request_handoff(button.conversation_id)  # "Talk to a person" right after it
    assert pressed.outcome == "suggestion_declined" and pressed.handoff.needed
    third = pipeline.ask("How long do refunds take to reach my card?")
    follow_up = pipeline.ask("Where do I print a return label?", third.conversation_id)  # a new question
    assert follow_up.outcome in ("suggested", "answered") and pipeline.handoff_state(third.conversation_id) == "bot"


def test_a_reader_in_the_settings_picks_the_suggested_windows(parts, tmp_path):
    class LastFirst:  # a stand-in reader: the fixed rule's order reversed
        def __init__(self):
            self.questions = []

        def scores(self, question, windows):
            self.questions.append(question)
            return list(range(len(windows)))

    reader = LastFirst()
    pipeline, _ = _engine(parts[0], tmp_path, _model(threshold=0.9), below="suggest", windows=1, reader=reader)
    reply = pipeline.ask("How long do refunds take to reach my card?")
    assert reply.outcome == "suggested" and reader.questions == ["How long do refunds take to reach my card?"]
    assert "five working days" not in reply.answer  # the rule's closest window is not the reader's pick


def test_a_suggestion_of_one_window_quotes_only_the_closest(parts, tmp_path):
    pipeline, _ = _engine(parts[0], tmp_path, _model(threshold=0.9), below="suggest", windows=1)
    reply = pipeline.ask("How long do refunds take to reach my card?")
    assert reply.outcome == "suggested" and "five working days" in reply.answer and "[2]" not in reply.answer
    assert reply.answer.startswith("I'm not sure, but this part of our help centre") and len(reply.sources) == 1


def test_each_suggested_window_quotes_suggest_sentences(write, tmp_path):
    import re

    from knowledge.chunking import split_sentences

    care = "Dust the shade with a dry cloth. Never use water on the fabric. Bulbs up to 40 W fit every lamp."
    cables = "Keep the cable away from heaters. A frayed cable must be replaced. New cables cost 6 pounds."
    write("care/care.md", f"---\nid: C\ntitle: Lamp care\n---\n{care}\n\n## Cables\n{cables}")
    index = KnowledgeIndex(tmp_path / "care-ix", HashEmbedder())
    index.ingest(iter_documents([str(tmp_path / "care")]), 120, 0)
    lengths = {}
    for sentences in (1, 3):
        (folder := tmp_path / str(sentences)).mkdir()
        pipeline, _ = _engine(index.load(), folder, _model(threshold=0.9), below="suggest", sentences=sentences)
        reply = pipeline.ask("How should I dust the shade of my lamp, with a cloth?")
        quotes = re.findall("\u201c(.*?)\u201d", reply.answer)
        assert reply.outcome == "suggested" and len(quotes) == 2, reply.answer
        lengths[sentences] = [len(split_sentences(q)) for q in quotes]
    assert lengths[1] == [1, 1] and max(lengths[3]) > 1, lengths


def test_a_thumbs_down_on_the_latest_suggestion_hands_over_and_one_on_an_older_reply_does_not(parts, tmp_path):
    index = parts[0]
    pipeline, _ = _engine(index, tmp_path, _model(threshold=0.9), below="suggest")
    first = pipeline.ask("How long do refunds take to reach my card?")
    later = pipeline.ask("Where do I print a return label?", first.conversation_id)
    assert pipeline.feedback(first.conversation_id, first.message_id, -1) is None  # not the latest reply
    handed = pipeline.feedback(first.conversation_id, later.message_id, -1)
    assert handed is not None and handed.outcome == "suggestion_declined" and handed.handoff.needed
    assert pipeline.handoff_state(first.conversation_id) == "waiting"
    assert pipeline.feedback(first.conversation_id, later.message_id, -1) is None  # already declined


def test_an_unknown_below_threshold_choice_lists_the_valid_ones():
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match="suggest, handoff, llm"):
        build_settings(load_config(None, {"grounding": {"below_threshold": "guess"}}))


def test_calibrate_command_refuses_a_target_precision_outside_0_1(write, tmp_path, capsys):
    from chatbot.cli import main

    questions = write(
        "q.jsonl",
        '{"question": "How long do refunds take?", "doc_ids": ["R"], '
        '"answer_contains": [], "in_scope": true, "split": "dev"}\n',
    )
    assert (
        main(["calibrate", "--questions", str(questions), "--index", str(tmp_path / "ix"), "--target-precision", "1.5"])
        == 2
    )
    assert "--target-precision" in capsys.readouterr().err


QUESTION_SET = (
    "\n".join(
        json.dumps(q)
        for q in [
            {
                "question": "How long do refunds take to reach my card?",
                "doc_ids": ["R"],
                "answer_contains": ["five working"],
                "in_scope": True,
                "split": "dev",
            },
            {
                "question": "How much does express delivery cost?",
                "doc_ids": ["S"],
                "answer_contains": ["7.50"],
                "in_scope": True,
                "split": "dev",
            },
            {
                "question": "What is the weather on Mars?",
                "doc_ids": [],
                "answer_contains": [],
                "in_scope": False,
                "split": "dev",
            },
            {
                "question": "Can I delete my account?",
                "doc_ids": ["A"],
                "answer_contains": ["support"],
                "in_scope": True,
                "split": "heldout",
            },
        ]
    )
    + "\n"
)


def test_calibration_is_kept_while_documents_and_questions_stay_and_redone_when_either_changes(parts, kb, write):
    from chatbot.builder import calibrate_decision

    index = parts[0]
    questions = write("q.jsonl", QUESTION_SET)
    config = load_config(None, {"retrieval": {"k": 2}, "grounding": {"target_precision": 0.5}})
    first = calibrate_decision(config, index, questions, only_if_stale=True)
    assert not first["up_to_date"] and first["trained"] and first["split"] == "dev"
    stored = json.loads((index.directory / "manifest.json").read_text())[MANIFEST_KEY]
    assert stored["questions_sha256"] == first["questions_sha256"] and stored["target_precision"] == 0.5
    assert calibrate_decision(config, index, questions, only_if_stale=True)["up_to_date"]
    assert not calibrate_decision(config, index, questions)["up_to_date"]  # by hand: always chosen again

    write("q.jsonl", QUESTION_SET.replace("7.50", "7[.]50"))
    assert not calibrate_decision(config, index, questions, only_if_stale=True)["up_to_date"]
    write("kb/account.md", "---\nid: A\ntitle: Your account\n---\nReset your password from the settings page.")
    index.ingest(iter_documents([str(kb)]), 300, 50)
    again = calibrate_decision(config, index, questions, only_if_stale=True)
    assert not again["up_to_date"] and again["trained"]  # new documents: a new model and threshold
    assert build_settings(config, index).answer_model.threshold == again["threshold"]


@pytest.mark.e2e
def test_ingest_calibrates_on_the_configured_question_set_and_a_rebuild_keeps_it_calibrated(
    kb, write, tmp_path, capsys
):
    from chatbot.cli import main

    questions = write("q.jsonl", QUESTION_SET)
    config = write("chatbot.toml", f'[grounding]\ncalibration_questions = "{questions}"\ntarget_precision = 0.5\n')
    index = str(tmp_path / "real-ix")

    def ingest(*extra):
        assert main(["--config", str(config), "ingest", str(kb), "--index", index, "--json", *extra]) == 0
        return json.loads(capsys.readouterr().out)["calibration"]

    assert not ingest()["up_to_date"]
    assert ingest()["up_to_date"]  # nothing changed: nothing trained or scored again
    rebuilt = ingest("--rebuild")  # a rebuilt manifest starts without a threshold; ingest chooses it again
    assert not rebuilt["up_to_date"]
    assert (
        json.loads((tmp_path / "real-ix" / "manifest.json").read_text())[MANIFEST_KEY]["threshold"]
        == rebuilt["threshold"]
    )


def _judged(rng, n, signal):
    """n questions whose best windows are right exactly when feature `signal` is positive."""
    features = rng.normal(size=(n, len(FEATURES)))
    return [Judged(str(i), tuple(row), bool(row[signal] > 0)) for i, row in enumerate(features)]


def test_the_decision_learns_what_the_labelled_questions_teach_and_the_pseudo_questions_do_not():
    from chatbot.answer.calibration import learn_from_questions

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, len(FEATURES)))
    y = x[:, 0] > 0  # the pseudo-questions' answers follow feature 0 ...
    base = fit(x, y, "help-centre", 1.0)
    judged = _judged(rng, 60, signal=1)  # ... the customers' follow feature 1
    judged.append(Judged("vague", None, None))
    model, out_of_fold, chosen = learn_from_questions(x, y, judged, base, 1.0)
    assert chosen["question_weight"] > 0 and chosen["auc_out_of_fold"] > 0.8 and chosen["learned_from"] == 60
    assert model.fingerprint != base.fingerprint and abs(model.coef[1]) > abs(base.coef[1])
    assert set(out_of_fold) == {str(i) for i in range(60)}  # the vague question is not scored
    # a set too small to cross-validate leaves the help centre's model as it is
    small, _, chosen = learn_from_questions(x, y, _judged(rng, 8, signal=1), base, 1.0)
    assert small == base and chosen["question_weight"] == 0.0
    # questions the help centre's model already ranks perfectly teach nothing: weight 0 wins the tie
    agreeing = [
        Judged(str(i), (v,) + (0.0,) * (len(FEATURES) - 1), v > 0) for i, v in enumerate(np.linspace(-2, 2, 40))
    ]
    same, _, chosen = learn_from_questions(x, y, agreeing, base, 1.0)
    assert chosen["question_weight"] == 0.0 and chosen["auc_out_of_fold"] == 1.0 and same == base


def test_eval_knows_when_the_decision_was_fitted_to_the_questions_it_scores(parts, tmp_path):
    from chatbot.answer.calibration import fitted_ids, learn_from_questions
    from chatbot.reporting.evaluation import evaluate

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, len(FEATURES)))
    y = x[:, 0] > 0
    _, _, chosen = learn_from_questions(x, y, _judged(rng, 60, signal=1), fit(x, y, "h", 1.0), 1.0)
    assert chosen["question_weight"] > 0 and chosen["learned_ids"] == [str(i) for i in range(60)]
    learned = {MANIFEST_KEY: chosen}
    assert fitted_ids(learned) == frozenset(str(i) for i in range(60))
    assert (
        fitted_ids({MANIFEST_KEY: {**chosen, "question_weight": 0.0}}) == frozenset() and fitted_ids({}) == frozenset()
    )

    pipeline, _ = _engine(parts[0], tmp_path, _model(threshold=0.5))
    asked = [EvalQuestion("7", "How long do refunds take to reach my card?", ("R",), ("five working",), True)]
    pipeline.index.manifest[MANIFEST_KEY] = chosen  # the decision learned from questions "0" to "59"
    assert evaluate(pipeline, asked)["totals"]["decision_fitted_to_these"]
    pipeline.index.manifest[MANIFEST_KEY] = {**chosen, "learned_ids": ["8"]}
    assert not evaluate(pipeline, asked)["totals"]["decision_fitted_to_these"]
