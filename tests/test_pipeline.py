import pytest

from core.errors import BadInput, NotFound
from chatbot.pipeline import Draft, Received, Reply, Turn
from core.config import load_config
from chatbot.testing import ScriptedChatModel, scripted_pipeline


@pytest.fixture
def make(shop_index, tmp_path):
    index = shop_index

    def _make(reply="", error=None, direct_quote_cosine=1.01, evidence_answer_cosine=1.01):
        llm = ScriptedChatModel(reply, error)
        config = load_config(
            None,
            {
                "company_name": "Lumen & Oak",
                "retrieval": {"k": 2},
                "chunking": {"max_chars": 300, "overlap_chars": 50},
                "handoff": {"copilot": False},  # the engine's own LLM calls are counted here (tests/test_copilot.py)
                "grounding": {
                    "min_retrieval_cosine": 0.2,
                    "off_topic_cosine": 0.05,
                    "direct_quote_cosine": direct_quote_cosine,
                    "evidence_answer_cosine": evidence_answer_cosine,
                },
            },
        )
        pipeline = scripted_pipeline(config, index, llm, f"sqlite:///{tmp_path}/db.sqlite")
        return pipeline, llm

    return _make


def test_supported_answer_cites_its_source_and_meters_the_turn(make):
    pipeline, llm = make("You can return most items within 30 days of delivery.")
    reply = pipeline.ask("How many days do I have to return items?")
    assert reply.outcome == "answered" and not reply.handoff.needed
    assert reply.answer == "You can return most items within 30 days of delivery. [1]"

    pipeline, _ = make("The answer to this question is: you can return most items within 30 days of delivery.")
    assert pipeline.ask("How many days do I have to return items?").answer.startswith("You can return most items")
    assert [s.doc_id for s in reply.sources] == ["R"]
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens == 10
    assert reply.usage.llm_s > 0 and reply.usage.retrieval_s > 0 and reply.cost.api_shadow_cost_usd > 0
    prompt = llm.prompts[0][-1].content
    assert "[1] Returns" in prompt and "Question: How many days" in prompt
    stored = pipeline.store.conversations.conversation(reply.conversation_id)
    assert [m.role for m in stored.messages] == ["customer", "assistant"]
    assert stored.messages[1].sources[0].doc_id == "R" and stored.cost_usd == pytest.approx(reply.cost.cost_usd)


def test_invented_facts_are_dropped_and_an_unsupported_answer_hands_off(make):
    pipeline, _ = make("Returns are accepted within 14 days. You must pay 20 pounds for the return label.")
    reply = pipeline.ask("How many days do I have to return items?")
    assert reply.outcome == "unsupported_answer" and reply.handoff.needed
    assert reply.handoff.reason == "unsupported_answer"
    assert "not certain" in reply.answer and "14 days" not in reply.answer
    assert "30 days" in reply.answer and [s.doc_id for s in reply.sources] == ["R"]  # a quote from the source
    assert 0 < reply.grounding["quote_cosine"] < 1.01 and reply.grounding["dropped"] == 2


def test_a_source_sentence_close_to_the_question_is_the_answer_without_an_llm_call(make):
    pipeline, llm = make("Returns are accepted within 14 days.", direct_quote_cosine=0.3)
    reply = pipeline.ask("How many days do I have to return items?")
    assert reply.outcome == "answered" and not reply.handoff.needed
    assert reply.answer == (
        "Our help centre says: \u201cYou can return most items within 30 days of delivery. "
        "UK orders get a free return label.\u201d [1]"
    )  # the next sentence follows
    assert [s.doc_id for s in reply.sources] == ["R"] and reply.grounding["direct_quote"]
    assert llm.prompts == [] and reply.usage.completion_tokens == 0 and reply.usage.retrieval_s > 0
    assert pipeline.store.conversations.conversation(reply.conversation_id).handoff_reason is None

    far, llm = make("Returns are accepted within 14 days.", direct_quote_cosine=0.99)  # no sentence is that close
    assert far.ask("How many days do I have to return items?").outcome == "unsupported_answer" and llm.prompts


def test_when_the_llm_fails_the_check_a_close_source_sentence_answers_instead_of_a_handoff(make):
    pipeline, llm = make("Returns are accepted within 14 days.", evidence_answer_cosine=0.3)
    reply = pipeline.ask("How many days do I have to return items?")
    assert llm.prompts and reply.outcome == "answered" and not reply.handoff.needed
    assert reply.answer == (
        "Our help centre says: \u201cYou can return most items within 30 days of delivery. "
        "UK orders get a free return label.\u201d [1]"
    )  # the next sentence follows
    assert "14 days" not in reply.answer and reply.grounding["evidence_answer"] and reply.grounding["dropped"] == 1
    assert [s.doc_id for s in reply.sources] == ["R"]


def test_a_vague_first_message_gets_a_clarifying_question_offering_topics(make):
    pipeline, llm = make("Returns are accepted within 14 days.")
    reply = pipeline.ask("my return is not working, help")
    assert reply.outcome == "clarify" and not reply.handoff.needed and not llm.prompts
    assert "Could you tell me a little more" in reply.answer and "Returns" in reply.answer
    assert pipeline.conversation(reply.conversation_id).handoff_reason is None
    # the same words after an earlier turn are a follow-up, read with that turn
    first = pipeline.ask("Standard delivery costs?")
    assert pipeline.ask("it is not working", conversation_id=first.conversation_id).outcome != "clarify"


def test_only_supported_sentences_survive(make):
    pipeline, _ = make("You can return most items within 30 days of delivery. We also refund shipping in bitcoin.")
    reply = pipeline.ask("How many days do I have to return items?")
    assert reply.outcome == "answered" and "bitcoin" not in reply.answer
    assert reply.grounding["claims"] == 2 and reply.grounding["supported"] == 1 and reply.grounding["dropped"] == 1


def test_off_topic_question_is_refused_politely_without_calling_the_llm(make):
    pipeline, llm = make("Madrid.")
    reply = pipeline.ask("Capital city of Spain?")  # no stem shares a HashEmbedder bucket with the help centre
    assert reply.outcome == "off_topic" and not reply.handoff.needed and not llm.prompts
    assert "Lumen & Oak" in reply.answer


def test_asking_for_a_person_hands_over_with_customer_request(make):
    pipeline, llm = make("x")
    reply = pipeline.ask("I want to talk to a real person please")
    assert reply.handoff.needed and reply.handoff.reason == "customer_request" and not llm.prompts


def test_the_customer_message_is_stored_before_generation_fails(make):
    pipeline, _ = make(error=RuntimeError("GPU fell over"))
    with pytest.raises(RuntimeError):
        pipeline.ask("How many days do I have to return items?")
    totals = pipeline.store.stats.totals()
    assert totals["customer_messages"] == 1 and totals["messages"] == 1


def test_a_follow_up_in_the_same_conversation_uses_its_history(make):
    pipeline, llm = make("Standard delivery costs 3.95 pounds.")
    first = pipeline.ask("Tell me about standard delivery")
    second = pipeline.ask("how much is it", conversation_id=first.conversation_id)
    assert second.conversation_id == first.conversation_id and second.sources[0].doc_id == "S"
    assert len(pipeline.store.conversations.conversation(first.conversation_id).messages) == 4


def test_bad_questions_and_unknown_conversations_are_clear_errors(make):
    pipeline, _ = make("x")
    for bad in ["", "   ", "x" * 5000, None]:
        with pytest.raises(BadInput):
            pipeline.ask(bad)
    with pytest.raises(NotFound, match="leave out --conversation"):
        pipeline.ask("hello", conversation_id="nope")


def test_prompt_echo_and_repeats_are_cleaned_from_the_answer(make):
    pipeline, _ = make(
        "A: Returns > Policy: You can return most items within 30 days of delivery. "
        "You can return most items within 30 days of delivery."
    )
    reply = pipeline.ask("How many days do I have to return items?")
    assert reply.answer == "You can return most items within 30 days of delivery. [1]"


def test_a_turn_yields_the_stored_message_then_drafts_then_the_checked_reply(make):
    pipeline, _ = make("You can return most items within 30 days of delivery. We refund in bitcoin.")
    events = list(pipeline.turn(Turn("How many days do I have to return items?", channel="web")))
    received, drafts, reply = events[0], events[1:-1], events[-1]
    assert isinstance(received, Received) and received.question == "How many days do I have to return items?"
    assert not received.voice and not received.image
    assert drafts and all(isinstance(d, Draft) for d in drafts)
    assert (
        "".join(d.text for d in drafts) == "You can return most items within 30 days of delivery. We refund in bitcoin."
    )
    assert isinstance(reply, Reply) and "bitcoin" not in reply.answer  # the draft is not the answer
    assert reply.conversation_id == received.conversation_id and reply.message_id > received.message_id
    assert pipeline.conversation(reply.conversation_id).channel == "web"


def test_the_handoff_verb_hands_over_without_reading_words_or_calling_the_llm(make):
    pipeline, llm = make("x")
    first = pipeline.ask("How many days do I have to return items?")
    reply = pipeline.request_handoff(first.conversation_id, channel="web")
    assert reply.outcome == "customer_request" and reply.handoff.needed and len(llm.prompts) == 1
    stored = pipeline.conversation(first.conversation_id)
    assert stored.handoff_needed and stored.messages[-2].extra == {"action": "request_handoff"}
    assert reply.handoff.reason == "customer_request" and pipeline.report()["handoffs"] == 1
    fresh = pipeline.request_handoff(None, channel="web")  # before any question: a new conversation
    assert (
        fresh.conversation_id != first.conversation_id and pipeline.conversation(fresh.conversation_id).handoff_needed
    )


def test_feedback_and_analytics_go_through_the_engine(make):
    pipeline, _ = make("You can return most items within 30 days of delivery.")
    reply = pipeline.ask("How many days do I have to return items?")
    pipeline.feedback(reply.conversation_id, reply.message_id, -1, "too short")
    figures = pipeline.analytics(days=7)
    assert figures["totals"]["feedback"] == {"up": 0, "down": 1} and figures["totals"]["conversations"] == 1
    assert [r["id"] for r in pipeline.conversations()] == [reply.conversation_id]
    assert pipeline.conversation_costs(reply.conversation_id)["cost_usd"] == pytest.approx(reply.cost.cost_usd)


def test_reindex_adds_documents_the_next_turn_can_cite(make, write, tmp_path):
    pipeline, _ = make("Gift cards never expire.")
    before = pipeline.document_count()
    write("uploads/gifts.md", "---\nid: G\ntitle: Gift cards\nurl: https://x/G\n---\nGift cards never expire.")
    report = pipeline.reindex([str(tmp_path / "uploads")])
    assert report.added == 1 and pipeline.document_count() == before + 1
    assert pipeline.ask("Do gift cards expire?").sources[0].doc_id == "G"
