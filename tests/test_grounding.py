from chatbot.answer.grounding import GroundingChecker
from knowledge.types import Chunk, Passage
from knowledge.testing import HashEmbedder


def passage(text, doc_id="R"):
    return Passage(Chunk(0, doc_id, "Returns", "", (), text), 1.0, 0.9, 1.0)


SOURCE = passage("You can return most items within 30 days of delivery. UK orders get a free return label.")


def test_a_sentence_restating_the_source_is_supported_and_cites_it():
    result = GroundingChecker(HashEmbedder(), 0.5, 0.3, 2).check(
        "You can return most items within 30 days of delivery.", [SOURCE]
    )
    assert [s.supported for s in result.sentences] == [True] and result.sentences[0].source == 0


def test_an_invented_number_is_not_supported_even_with_the_same_words():
    result = GroundingChecker(HashEmbedder(), 0.5, 0.3, 2).check(
        "You can return most items within 14 days of delivery.", [SOURCE]
    )
    assert not result.sentences[0].supported and result.dropped == 1


def test_an_invented_claim_is_dropped_and_fillers_carry_no_claim():
    answer = "Sure! You can return most items within 30 days of delivery. Bitcoin payments are accepted worldwide."
    result = GroundingChecker(HashEmbedder(), 0.5, 0.3, 2).check(answer, [SOURCE])
    assert [(s.claim, s.supported) for s in result.sentences] == [(False, False), (True, True), (True, False)]
    assert result.claims == 2 and len(result.supported) == 1


def test_the_model_saying_it_does_not_know_is_noticed():
    assert GroundingChecker(HashEmbedder(), 0.5, 0.55, 2).check("I don't know the answer to that.", [SOURCE]).declined


def test_echoing_the_question_back_is_no_claim():
    question = "Can I pay with my Amex card?"
    result = GroundingChecker(HashEmbedder(), 0.5, 0.3, 2).check("Can I pay with my Amex card?", [SOURCE], question)
    assert result.claims == 0 and not result.supported


def test_a_terse_answer_is_judged_with_its_question():
    question = "How many days do I have to return most items after delivery?"
    checker = GroundingChecker(HashEmbedder(), 0.5, 0.3, 2)
    assert checker.check("The answer is: 30 days.", [SOURCE], question).supported
    assert not checker.check("The answer is: 18 days.", [SOURCE], question).supported


def test_list_numbers_and_lead_ins_carry_no_claim():
    answer = "To return an item, follow these steps:. 1. 2. You can return most items within 30 days of delivery."
    result = GroundingChecker(HashEmbedder(), 0.5, 0.3, 2).check(answer, [SOURCE], "How do I return something?")
    assert [s.claim for s in result.sentences] == [False, False, False, True]
    assert result.claims == 1 and len(result.supported) == 1


def test_a_number_must_be_in_the_closest_source_sentences_not_anywhere():
    source = passage(
        "The reset link is valid for 30 minutes. Only the newest link works. "
        "Checkout is quick and secure. Five wrong attempts lock the account for 15 minutes."
    )
    question = "How long is the reset link valid?"
    checker = GroundingChecker(HashEmbedder(), 0.5, 0.3, evidence_sentences=1)
    assert checker.check("The reset link is valid for 30 minutes.", [source], question).supported
    assert not checker.check("The reset link is valid for 15 minutes.", [source], question).supported


def test_only_a_sentence_that_adds_to_the_question_can_stand_alone_as_a_reply():
    from chatbot.answer.sentences import answers_on_its_own

    question = "Can I use more than one gift card on a single order?"
    assert answers_on_its_own("You can use up to 3 gift cards on one order.", question)
    assert not answers_on_its_own("- How to check if your network is 2.4 GHz", "is my network 2.4 or 5 GHz?")
    assert not answers_on_its_own("Can I use a gift card?", question)
    assert not answers_on_its_own("You can use a gift card on one order.", question)  # nothing new


def test_a_claim_that_drops_the_sources_negation_is_not_supported():
    lamp = passage("The Halo is for indoor use only and isn\u2019t suitable for bathrooms or outdoor spaces.", "L")
    checker = GroundingChecker(HashEmbedder(), 0.5, 0.3, 2)
    flipped = checker.check(
        "The Halo is suitable for outdoor spaces and bathrooms.", [lamp], "Can I use the Halo outside?"
    )
    kept = checker.check(
        "The Halo isn't suitable for outdoor spaces or bathrooms.", [lamp], "Can I use the Halo outside?"
    )
    assert [s.supported for s in flipped.sentences] == [False]
    assert [s.supported for s in kept.sentences] == [True]


def test_a_contradiction_without_a_negation_is_not_supported():
    lamp = passage("The Halo lamp is for indoor use only. Delivery of lamps is a paid service.", "L")
    checker = GroundingChecker(HashEmbedder(), 0.5, 0.3, 2)
    question = "Can I put the Halo in my garden?"
    assert not checker.check("The Halo lamp is for outdoor use only.", [lamp], question).supported
    assert checker.check("The Halo lamp is for indoor use only.", [lamp], question).supported
    assert not checker.check("Delivery of lamps is a free service.", [lamp], "Is lamp delivery free?").supported


def test_a_name_the_sources_never_mention_is_an_invention():
    tracking = passage(
        "Your dispatch email holds a tracking link from the courier. Tracking updates within 24 hours.", "T"
    )
    checker = GroundingChecker(HashEmbedder(), 0.5, 0.3, 2, known_names="Lumen & Oak")
    question = "Where do I find my parcel tracking?"
    invented = checker.check(
        "Open the Arduino IDE and find the tracking link in the dispatch email.", [tracking], question
    )
    assert [s.supported for s in invented.sentences] == [False]
    kept = checker.check(
        "Lumen & Oak sends a tracking link from the courier in your dispatch email.", [tracking], question
    )
    assert [s.supported for s in kept.sentences] == [True]  # the company's own name is no invention
    coded = passage("The MKR 1000 charges a LiPo battery through its JST connector.", "B")
    assert checker.check(
        "The MKR 1000 charges a LiPo battery through the JST connector.", [coded], "Can my board charge a battery?"
    ).supported
    assert not checker.check(
        "The Nano 33 charges a LiPo battery through the JST connector.", [coded], "Can my board charge a battery?"
    ).supported


def test_a_number_must_come_with_the_sources_unit():
    shipping = passage("Order before 2pm for next-day delivery. Delivery to Germany takes 3-5 business days.", "S")
    checker = GroundingChecker(HashEmbedder(), 0.5, 0.3, 2)
    question = "How long does delivery to Germany take?"
    assert not checker.check(
        "Delivery to Germany takes 2 weeks.", [shipping], question
    ).supported  # "2pm" is no backing
    assert checker.check("Delivery to Germany takes 3-5 business days.", [shipping], question).supported


def test_source_sentences_come_stored_so_a_call_embeds_only_the_answer_or_the_question(write, tmp_path):
    from knowledge.index import KnowledgeIndex
    from knowledge.ingest import iter_documents

    write("kb/returns.md", "---\nid: R\ntitle: Returns\n---\n" + SOURCE.chunk.text)
    write("kb/lamp.md", "---\nid: L\ntitle: Halo\n---\nThe Halo is for indoor use only. It takes an E27 bulb.")
    embedder = HashEmbedder()
    index = KnowledgeIndex(tmp_path / "ix", embedder)
    index.ingest(iter_documents([str(tmp_path / "kb")]), 300, 50)
    stored = [Passage(c, 1.0, 0.9, 1.0) for c in sorted(index.chunks.values(), key=lambda c: c.doc_id, reverse=True)]
    bare = [
        Passage(Chunk(p.chunk.chunk_id, p.doc_id, p.chunk.title, "", (), p.chunk.text), 1.0, 0.9, 1.0) for p in stored
    ]  # as made outside an index: sentences split and embedded per call
    checker = GroundingChecker(embedder, 0.5, 0.3, 2)
    question = "How long do I have to return items?"
    answer = "Sure! You can return most items within 30 days of delivery. The Halo takes an E27 bulb."

    embedder.calls = embedder.embedded = 0
    result = checker.check(answer, stored, question)
    assert (embedder.calls, embedder.embedded) == (1, 3)  # the answer's three sentences, no source sentence
    quote = checker.best_quote(question, stored)
    assert (embedder.calls, embedder.embedded) == (2, 4)  # and the question
    assert result == checker.check(answer, bare, question) and quote == checker.best_quote(question, bare)
    assert [s.supported for s in result.sentences] == [False, True, True] and quote.source == 0
