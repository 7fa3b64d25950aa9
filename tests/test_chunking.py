from knowledge.chunking import chunk_text, split_sentences


def test_chunks_follow_headings_and_keep_the_heading_path():
    text = "Intro line.\n\n## Shipping\nShips fast.\n\n### Express\nNext day.\n\n## Returns\n30 days."
    pieces = chunk_text(text, 900, 150)
    assert [(p.headings, p.text) for p in pieces] == [
        ((), "Intro line."),
        (("Shipping",), "Ships fast."),
        (("Shipping", "Express"), "Next day."),
        (("Returns",), "30 days."),
    ]


def test_long_sections_are_split_under_the_limit_with_overlap():
    sentences = [f"Sentence number {i} says something useful about returns." for i in range(60)]
    pieces = chunk_text("## Long\n" + " ".join(sentences), max_chars=300, overlap_chars=80)
    assert len(pieces) > 5
    assert all(len(p.text) <= 300 for p in pieces)
    for before, after in zip(pieces, pieces[1:]):
        last = split_sentences(before.text)[-1]
        assert after.text.startswith(last)  # the previous chunk's last sentence is carried over


def test_headings_inside_code_blocks_are_not_headings():
    pieces = chunk_text("## Real\n```\n# comment in code\n```\nafter", 900, 150)
    assert len(pieces) == 1 and pieces[0].headings == ("Real",)


def test_abbreviations_do_not_end_a_sentence():
    text = "Pay by card, e.g. Visa or Mastercard. Dr. Smith paid 5 U.S. Dollars. It ships today.\n- a list item"
    assert split_sentences(text) == [
        "Pay by card, e.g. Visa or Mastercard.",
        "Dr. Smith paid 5 U.S. Dollars.",
        "It ships today.",
        "- a list item",
    ]
    assert split_sentences("Returns take 30 days [1]. Refunds take 5 days [2].") == [
        "Returns take 30 days [1].",
        "Refunds take 5 days [2].",
    ]
