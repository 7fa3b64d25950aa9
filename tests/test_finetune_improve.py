"""The improvement loop: grounded training chats from a help centre, the promotion gate, serving the
promoted model, and one whole cached round on a tiny model (e2e: MiniLM, CTranslate2, the engine)."""

import json

import pytest

from chatbot.builder import PROMOTION, build_llm, build_searcher, promoted_model
from core.config import load_config
from finetune.grounded import DECLINE, GroundedOptions, grounded_chat, grounded_chats, reply_sentences
from finetune.improve import gate
from knowledge.index import KnowledgeIndex
from knowledge.ingest import iter_documents
from knowledge.rerank import PseudoQuestion
from knowledge.testing import HashEmbedder

OPTIONS = GroundedOptions(
    company="Lumen & Oak", k=3, source_sentences=4, max_chats=100, seed=1, reply_words=45, decline_every=8
)


@pytest.fixture
def index(write, tmp_path):
    write(
        "kb/returns.md",
        "---\nid: R\ntitle: Returns\n---\nLearn how to send something back.\n\n"
        "## How long do I have\nYou can return items within 30 days of delivery. UK returns are free.\n\n"
        "## Refunds for gift cards\nGift cards are refunded to a new gift card within five days.",
    )
    write(
        "kb/shipping.md",
        "---\nid: S\ntitle: Shipping\n---\nStandard delivery costs 3.95 pounds in the UK.\n\n"
        "## Missing parcels\nA parcel that shows delivered but is missing can be reported after two days.",
    )
    write("kb/account.md", "---\nid: A\ntitle: Account\n---\nReset your password from the sign-in page.")
    index = KnowledgeIndex(tmp_path / "ix", HashEmbedder(dimension=32))
    index.ingest(iter_documents([str(tmp_path / "kb")]), max_chars=300, overlap_chars=0)
    return index.load()


def searcher(index):
    return build_searcher(load_config(None), index)


def heading_question(index, heading: str) -> PseudoQuestion:
    ids = tuple(c.chunk_id for c in index.chunks.values() if heading in c.headings)
    return PseudoQuestion(heading, index.chunks[ids[0]].doc_id, ids, "heading")


def test_a_grounded_reply_quotes_the_answering_sentences_and_cites_their_source(index):
    chat = grounded_chat(heading_question(index, "How long do I have"), index, searcher(index), OPTIONS)
    sources = chat.messages[1].content
    number = int(chat.reply.rsplit("[", 1)[1].rstrip("]"))
    cited = [line for line in sources.splitlines() if line.startswith(f"[{number}] ")][0]
    assert "How long do I have" in cited
    assert chat.reply.startswith("You can return items within 30 days of delivery.")
    assert "Learn how" not in chat.reply  # a meta sentence is never a reply
    assert chat.messages[1].content.endswith("Question: How long do I have")


def test_the_answering_passage_is_put_among_the_sources_when_search_misses_it(index):
    class Missing:  # a searcher that never finds the answering chunk
        def search(self, query, k=5, context=()):
            return [p for p in searcher(index).search("delivery parcel password", k=5) if p.doc_id != "R"][:k]

    chat = grounded_chat(heading_question(index, "Refunds for gift cards"), index, Missing(), OPTIONS)
    lines = [line for line in chat.messages[1].content.splitlines() if line.startswith("[")]
    assert len(lines) == OPTIONS.k and "Refunds for gift cards" in lines[-1]
    assert chat.reply.endswith(f"[{OPTIONS.k}]") and "five days" in chat.reply


def test_a_declining_chat_has_no_passage_of_the_answering_article(index):
    chat = grounded_chat(heading_question(index, "How long do I have"), index, searcher(index), OPTIONS, decline=True)
    assert chat.reply == DECLINE
    assert "30 days" not in chat.messages[1].content and "Returns" not in chat.messages[1].content


def test_every_title_and_heading_becomes_a_chat_and_some_decline(index):
    chats, counts = grounded_chats(index, searcher(index), GroundedOptions(**{**OPTIONS.__dict__, "decline_every": 2}))
    assert counts["chats"] == len(chats) == counts["pseudo_questions"] - counts["skipped_nothing_quotable"]
    assert 0 < counts["declining"] < len(chats)
    assert all(c.reply == DECLINE or c.reply.rstrip().endswith("]") for c in chats)


def test_reply_sentences_stay_within_the_word_budget_but_keep_one_long_sentence(index):
    passage = searcher(index).search("How long do I have", k=1)[0]
    assert len(reply_sentences("How long do I have", passage, 4, max_words=12)) == 1
    assert len(reply_sentences("How long do I have", passage, 4, max_words=60)) == 2


@pytest.mark.parametrize(
    "candidate, serving, promoted",
    [
        ({"correct_rate": 0.5, "wrong_rate": 0.1}, {"correct_rate": 0.5, "wrong_rate": 0.1}, True),
        ({"correct_rate": 0.6, "wrong_rate": 0.1}, {"correct_rate": 0.5, "wrong_rate": 0.2}, True),
        ({"correct_rate": 0.7, "wrong_rate": 0.2}, {"correct_rate": 0.5, "wrong_rate": 0.1}, False),  # more wrong
        ({"correct_rate": 0.4, "wrong_rate": 0.0}, {"correct_rate": 0.5, "wrong_rate": 0.1}, False),  # fewer right
        ({"correct_rate": None, "wrong_rate": None}, {"correct_rate": 0.0, "wrong_rate": 0.0}, True),
    ],
)
def test_the_gate_promotes_only_when_correct_is_not_lower_and_wrong_not_higher(candidate, serving, promoted):
    assert gate(candidate, serving)[0] is promoted


def test_a_promoted_model_serves_only_over_the_base_it_was_promoted_over(tmp_path, tokenizer_dir):
    from finetune.testing import tiny_llama

    folder = tiny_llama(tmp_path / "serving", tokenizer_dir, layers=1, hidden_size=16)
    assert promoted_model("base-a", str(folder)) is None  # no promotion record
    (folder / PROMOTION).write_text(json.dumps({"base": "base-a", "name": "base-a-grounded-int8"}))
    assert promoted_model("base-a", str(folder)) == (str(folder), "base-a-grounded-int8")
    assert promoted_model("base-b", str(folder)) is None
    assert promoted_model("base-a", "") is None
    config = load_config(None, {"models": {"llm": "base-a", "promoted_dir": str(folder)}})
    assert build_llm(config).name == "base-a-grounded-int8"


def _round_setup(tmp_path, tokenizer_dir, demo_docs, repo_root, layers: int, **improve_settings):
    """A tiny base model, two dev questions of the demo shop and its help centre ingested; returns
    (config, questions file, logs)."""
    from chatbot.builder import build_index
    from finetune.testing import tiny_llama
    from knowledge.ingest import iter_documents as documents

    base = str(tiny_llama(tmp_path / "base", tokenizer_dir, layers=layers, hidden_size=32))
    questions = tmp_path / "q.jsonl"
    lines = [line for line in (repo_root / "demo/questions.jsonl").read_text().splitlines() if '"dev"' in line]
    questions.write_text("\n".join(lines[:2]) + "\n")
    config = load_config(
        None,
        {
            "index_dir": str(tmp_path / "ix"),
            "db_url": f"sqlite:///{tmp_path / 'prod.db'}",
            "company_name": "Lumen & Oak",
            "generation": {"max_new_tokens": 8},
            "models": {"llm": base, "device": "cpu", "promoted_dir": str(tmp_path / "models/serving")},
            "finetune": {
                "max_tokens": 512,
                "improve": {"max_chats": 12, "max_steps": 1, "validation_chats": 2, **improve_settings},
                "loop": {"batch_size": 2, "warmup_steps": 0},
            },
        },
    )
    build_index(config).ingest(documents([str(demo_docs)]), max_chars=900, overlap_chars=150)
    return config, str(questions), [str(repo_root / "demo/support-logs.jsonl")]


@pytest.mark.e2e
def test_one_round_trains_exports_gates_promotes_and_a_second_round_is_cached(
    tmp_path, tokenizer_dir, demo_docs, repo_root
):
    from chatbot.records.store import Store
    from finetune.copilot_eval import copilot_gate
    from finetune.improve import improve

    independent = tmp_path / "independent.jsonl"  # stands in for a set written by other people: held-out questions
    held_out = [line for line in (repo_root / "demo/questions.jsonl").read_text().splitlines() if '"heldout"' in line]
    independent.write_text("\n".join(held_out[:2]) + "\n")
    config, questions, logs = _round_setup(
        tmp_path, tokenizer_dir, demo_docs, repo_root, layers=1, independent_questions=str(independent)
    )
    messages = []
    first = improve(config, questions, logs, tmp_path / "models", messages.append)
    assert first["chats"]["chats"] > 0 and first["chats"]["log_chats"] > 0 and first["train"]["steps"] == 1
    assert (tmp_path / "models/candidate-int8/model.bin").is_file() and "student" not in first
    card = json.loads((tmp_path / "models/candidate-int8/chatbot_model.json").read_text())
    assert first["candidate"]["name"] == card["name"] and card["base"] == config.models.llm
    c, s, check = first["candidate"], first["serving_before"], first["independent"]
    assert (
        check["questions"] == str(independent)
        and check["passes"] == gate(check["candidate"], check["serving_before"])[0]
    )
    assert {"likely_resolved", "asserted_wrong", "persons_needed"} <= set(check["candidate"])
    assert "on the independent questions" in first["reason"]
    # served, writing, and on the independent questions
    assert first["promoted"] == (gate(c, s)[0] and gate(c["writing"], s["writing"])[0] and check["passes"])
    if first["promoted"]:
        assert build_llm(config).name == card["name"]  # the builder now serves it
    serving = first["serving"]
    assert Store(config.db_url).stats.latest_eval_runs(serving)["dev"]["model"] == serving  # for report and panel
    copilot = first["copilot"]  # drafts judged on held-out support logs, for both models
    for figures in (copilot["serving"], copilot["candidate"]):
        assert figures["exchanges"] > 0 and {"rougeL", "cosine", "facts_kept", "unsupported_share"} <= set(figures)
    assert copilot["promoted"] == copilot_gate(copilot["candidate"], copilot["serving"])[0]
    lever = first["levers"]["lora_vs_full"]  # measured on the round's own batch, each way in its own process
    lora, full = lever["lora"], lever["full"]
    assert lever["measured"] and 0 < lora["trainable_parameters"] < full["trainable_parameters"]
    assert lever["trainable_share"] == round(lora["trainable_parameters"] / full["trainable_parameters"], 4)
    assert lora["tokens"] == full["tokens"] > 0 and lora["seconds_per_step"] > 0 and full["seconds_per_step"] > 0

    messages.clear()
    again = improve(config, questions, logs, tmp_path / "models", messages.append)
    assert any("up to date" in m for m in messages) and not any(m.startswith("loading ") for m in messages)
    assert not any(m.startswith("evaluating ") for m in messages)  # every evaluation came from the cache
    assert again["serving"] == serving and again["levers"] == first["levers"]  # measured once
    assert not any(m.startswith("measuring LoRA") for m in messages)


def test_a_missing_independent_question_file_fails_before_any_training(tmp_path, tokenizer_dir, demo_docs, repo_root):
    from core.errors import NotFound
    from finetune.improve import improve

    missing = tmp_path / "nowhere.jsonl"
    config, questions, logs = _round_setup(
        tmp_path, tokenizer_dir, demo_docs, repo_root, layers=1, independent_questions=str(missing)
    )
    with pytest.raises(NotFound, match="nowhere.jsonl does not exist"):
        improve(config, questions, logs, tmp_path / "models", lambda m: None)
    assert not (tmp_path / "models").exists()  # nothing trained, exported or evaluated


@pytest.mark.e2e
def test_a_student_distilled_from_the_fine_tuned_model_is_gated_against_its_teacher(
    tmp_path, tokenizer_dir, demo_docs, repo_root
):
    from finetune.improve import improve

    config, questions, logs = _round_setup(
        tmp_path, tokenizer_dir, demo_docs, repo_root, layers=2, distill_layers=1, measure_levers=False
    )
    messages = []
    first = improve(config, questions, logs, tmp_path / "models", messages.append)
    report = json.loads((tmp_path / "models/student/distill_report.json").read_text())
    assert report["teacher_layers"] == 2 and report["student_layers"] == 1 and report["steps"] == 1
    student = first["student"]
    card = json.loads((tmp_path / "models/student-int8/chatbot_model.json").read_text())
    assert student["name"] == card["name"] and "student1" in card["name"]
    assert {"writing", "teacher_writing", "eligible", "reason"} <= set(student)
    serving = first["serving_before"]
    assert student["eligible"] == (
        gate(student, serving)[0]
        and gate(student["writing"], serving["writing"])[0]
        and gate(student["writing"], student["teacher_writing"])[0]
    )
    if student["eligible"]:
        assert first["promoted"] and first["serving"] == student["name"] == build_llm(config).name

    messages.clear()
    again = improve(config, questions, logs, tmp_path / "models", messages.append)
    assert any(m.startswith("distilled student") and "up to date" in m for m in messages)
    assert not any(m.startswith("evaluating ") or m.startswith("loading teacher") for m in messages)
    assert again["serving"] == first["serving"]
