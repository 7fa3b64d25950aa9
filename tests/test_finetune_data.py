"""Support logs to a training set: reading, scrubbing, deduplication, stratified split, prompts."""

import json
from collections import Counter

import pytest

from core.errors import BadInput, NotFound
from finetune.data import (
    DataOptions,
    Exchange,
    PiiScrubber,
    deduplicate,
    luhn_valid,
    prepare_dataset,
    read_conversations,
    read_exchanges,
    split_exchanges,
    to_exchanges,
)
from finetune.prompts import SourcePool, exchange_messages, topic_title


def scrub(*texts, profile=None):
    return PiiScrubber(profile).scrub(list(texts))


@pytest.mark.parametrize(
    "text, kind, leaked",
    [
        ("write to jane.doe+shop@mail.example please", "email", "jane.doe+shop@mail.example"),
        ("call me on 07700 900123", "phone", "07700 900123"),
        ("my number is +44 7700 900123", "phone", "7700 900123"),
        ("office (020) 7946 0958", "phone", "7946 0958"),
        ("US line +1 415 555 0100", "phone", "555 0100"),
        ("card 4111 1111 1111 1111 was charged", "card", "4111 1111 1111 1111"),
        ("amex 3782 822463 10005", "card", "822463"),
        ("send it to 27 Marlborough Street, Bath BA1 2LY thanks", "address", "Marlborough"),
        ("postcode BS8 2PY", "address", "BS8 2PY"),
        ("Hi, my name is Lucy Adams and I need help", "name", "Adams"),
        ("I'm Oliver Grant, order 4005", "name", "Grant"),
        ("bill from Mr. Jones please", "name", "Jones"),
        ("The lamp flickers.\nKind regards,\nPeter Parker", "name", "Parker"),
    ],
)
def test_scrubber_replaces_each_kind_of_personal_data(text, kind, leaked):
    (out,), counts = scrub(text)
    assert leaked not in out
    assert counts[kind] >= 1
    assert "{{" in out


def test_scrubber_keeps_order_numbers_and_luhn_invalid_digits():
    (out,), counts = scrub("order 00004587345 and 113542617735902, card 4111 1111 1111 1112")
    assert out == "order 00004587345 and 113542617735902, card 4111 1111 1111 1112"
    assert sum(counts.values()) == 0
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")


def test_a_detected_name_is_scrubbed_in_every_turn_of_the_conversation():
    (question, reply), counts = scrub("Hi this is Chloe Bennett, where is my lamp?", "Thanks, Chloe! It ships today.")
    assert "Chloe" not in question + reply and "Bennett" not in question
    assert reply.startswith("Thanks, {{Name}}!")
    assert counts["name"] == 2


def test_placeholders_are_kept_or_filled_from_the_profile_and_profile_values_are_not_scrubbed():
    profile = {"Website Name": "lumenandoak.example", "Support Email": "help@lumenandoak.example"}
    (out,), counts = scrub(
        "Log in to {{Website Name}}, see {{Order Number}}, or email help@lumenandoak.example "
        "or {{Support Email}}; I'm at jo@mail.example",
        profile=profile,
    )
    assert out == (
        "Log in to lumenandoak.example, see {{Order Number}}, or email help@lumenandoak.example "
        "or help@lumenandoak.example; I'm at {{Email}}"
    )
    assert counts == Counter({"email": 1})


def test_bitext_csv_with_line_breaks_inside_quoted_fields_reads_every_row(shared_data):
    conversations = read_conversations(
        shared_data / "bitext-customer-support" / "Bitext_Sample_Customer_Support_Training_Dataset.csv"
    )
    assert len(conversations) == 4514
    first = to_exchanges(conversations[0])[0]
    assert first.intent == "cancel_order" and first.category == "ORDER"
    assert "\n2. Spot the {{Order Details}} section." in first.reply and "\r" not in first.reply


def test_crlf_csv_and_question_answer_columns(write):
    path = write("logs.csv", 'question,answer,intent\r\n"two\r\nlines","reply one\r\nreply two",a\r\nq,,b\r\n')
    assert read_exchanges(path) == [Exchange("two\nlines", "reply one\nreply two", "a", "")]


def test_transcripts_become_one_exchange_per_customer_then_agent_run(write):
    transcript = {
        "intent": "track_order",
        "turns": [
            {"role": "user", "text": "Hello"},
            {"role": "user", "text": "where is my parcel?"},
            {"role": "assistant", "text": "It ships today."},
            {"role": "customer", "text": "Thanks!"},
            {"role": "agent", "content": "You're welcome."},
            {"role": "customer", "text": "bye"},
        ],
    }
    path = write("t.jsonl", json.dumps(transcript) + "\n\n")
    assert read_exchanges(path) == [
        Exchange("Hello where is my parcel?", "It ships today.", "track_order"),
        Exchange("Thanks!", "You're welcome.", "track_order"),
    ]


def test_demo_logs_read_and_lose_their_personal_data(tmp_path, repo_root):
    paths = [repo_root / "demo/support-logs.jsonl", repo_root / "demo/support-transcripts.jsonl"]
    if not paths[1].is_file():
        pytest.skip("demo transcripts not present")
    splits, report = prepare_dataset(
        paths, tmp_path, DataOptions(profile={"Support Email": "help@lumenandoak.example"})
    )
    written = "".join((tmp_path / f"{name}.jsonl").read_text() for name in ("train", "validation", "test"))
    for secret in ("07700 900", "4111 1111 1111 1111", "Marlborough Street", "Chloe", "h.okafor@mailbox.example"):
        assert secret not in written
    assert "help@lumenandoak.example" in written
    assert report.scrubbed["email"] > 0 and report.scrubbed["phone"] > 0 and report.scrubbed["card"] > 0
    assert report.scrubbed["address"] > 0 and report.scrubbed["name"] > 0


def test_bad_log_files_say_what_to_do(write, tmp_path):
    with pytest.raises(NotFound, match="does not exist"):
        read_exchanges(tmp_path / "missing.jsonl")
    with pytest.raises(BadInput, match="not valid JSON"):
        read_exchanges(write("bad.jsonl", "{oops\n"))
    with pytest.raises(BadInput, match="instruction/question"):
        read_exchanges(write("cols.csv", "foo,bar\n1,2\n"))
    with pytest.raises(BadInput, match="unknown turn role"):
        read_exchanges(write("role.jsonl", json.dumps({"turns": [{"role": "robot", "text": "x"}]}) + "\n"))
    with pytest.raises(BadInput, match=".csv or .jsonl"):
        read_exchanges(write("logs.txt", "x"))


def test_duplicates_differing_only_in_case_and_spaces_are_removed():
    a = Exchange("Where is my order?", "It ships today.", "t")
    b = Exchange("where is  my order?", "It ships\ntoday.", "t")
    c = Exchange("Where is my order?", "It shipped.", "t")
    assert deduplicate([a, b, c]) == [a, c]


def _exchanges(counts: dict[str, int]) -> list[Exchange]:
    return [
        Exchange(f"{intent} question {i}", f"{intent} reply {i}", intent)
        for intent, n in counts.items()
        for i in range(n)
    ]


def test_split_is_stratified_by_intent():
    counts = {"big": 100, "mid": 30, "small": 5, "tiny": 2}
    splits = split_exchanges(_exchanges(counts), 0.1, 0.2, seed=3)
    per = {name: Counter(e.intent for e in part) for name, part in splits.items()}
    assert per["test"]["big"] == 20 and per["validation"]["big"] == 10 and per["train"]["big"] == 70
    assert per["test"]["mid"] == 6 and per["validation"]["mid"] == 3
    assert per["test"]["small"] == 1 and per["validation"]["small"] == 1 and per["train"]["small"] == 3
    assert per["train"]["tiny"] == 2 and per["test"]["tiny"] == 0
    assert sum(len(p) for _, p in splits.items()) == sum(counts.values())


def test_split_is_deterministic_for_a_seed_and_independent_of_file_order():
    exchanges = _exchanges({"a": 40, "b": 25})
    first = split_exchanges(exchanges, seed=7)
    again = split_exchanges(list(reversed(exchanges)), seed=7)
    assert set(first.test) == set(again.test) and set(first.validation) == set(again.validation)
    assert split_exchanges(exchanges, seed=7) == first
    assert set(split_exchanges(exchanges, seed=8).test) != set(first.test)


def test_prepared_dataset_reports_counts_and_reads_back(tmp_path, write):
    rows = [
        {"instruction": f"q{i} from me@mail.example", "response": f"r{i}", "intent": "ab"[i % 2]} for i in range(20)
    ] + [{"instruction": "q0 from me@mail.example", "response": "r0", "intent": "a"}]
    path = write("logs.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    splits, report = prepare_dataset([path], tmp_path / "data", DataOptions(seed=1))
    assert report.exchanges == 21 and report.duplicates_removed == 1 and report.scrubbed["email"] == 21
    assert report.splits == {"train": 16, "validation": 2, "test": 2}
    assert report.intents["a"] == {"train": 8, "validation": 1, "test": 1}
    assert read_exchanges(tmp_path / "data" / "test.jsonl") == list(splits.test)
    assert json.loads((tmp_path / "data" / "report.json").read_text())["splits"]["train"] == 16


def test_sources_hold_the_gold_reply_among_one_to_three_shuffled_distractors_of_other_intents():
    exchanges = _exchanges({"track_order": 3, "cancel_order": 3, "return_item": 3, "reset_password": 3, "x": 3})
    pool = SourcePool(exchanges)
    positions, sizes = set(), set()
    for exchange in exchanges:
        sources = pool.sources(exchange, seed=5)
        texts = [p.chunk.text for p in sources]
        assert texts.count(exchange.reply) == 1
        assert len({p.chunk.title for p in sources}) == len(sources)  # distinct intents
        positions.add(texts.index(exchange.reply))
        sizes.add(len(sources))
        assert pool.sources(exchange, seed=5) == sources  # repeatable
    assert sizes <= {2, 3, 4} and len(sizes) > 1 and len(positions) > 1
    messages = exchange_messages(exchanges[0], pool, "Lumen & Oak", seed=5)
    assert [m.role for m in messages] == ["system", "user"] and "Lumen & Oak" in messages[0].content
    assert messages[1].content.startswith("Sources:\n[1] ") and messages[1].content.endswith(exchanges[0].question)
    assert topic_title("track_order") == "Track order"
