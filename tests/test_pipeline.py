import pytest

from core.errors import BadInput, NotFound
from chatbot.answer.grounding import GroundingChecker
from chatbot.pipeline import Pipeline, Thresholds
from chatbot.records.store import Store
from knowledge.index import KnowledgeIndex
from knowledge.ingest import iter_documents
from knowledge.search import HybridSearcher
from tests.fakes import HashEmbedder, ScriptedChatModel
from tests.test_costs import sheet


@pytest.fixture
def make(write, tmp_path):
    write("kb/returns.md", "---\nid: R\ntitle: Returns\nurl: https://x/R\n---\n"
                           "You can return most items within 30 days of delivery. UK orders get a free return label.")
    write("kb/shipping.md", "---\nid: S\ntitle: Shipping\nurl: https://x/S\n---\nStandard delivery costs 3.95 pounds.")
    embedder = HashEmbedder()
    index = KnowledgeIndex(tmp_path / "ix", embedder)
    index.ingest(iter_documents([str(tmp_path / "kb")]), 300, 50)

    def _make(reply="", error=None, direct_quote_cosine=1.01):
        llm = ScriptedChatModel(reply, error)
        pipeline = Pipeline(HybridSearcher(index, embedder), llm, Store(f"sqlite:///{tmp_path}/db.sqlite"),
                            GroundingChecker(embedder, 0.5, 0.3), sheet(), company="Lumen & Oak", k=2,
                            thresholds=Thresholds(min_retrieval_cosine=0.2, off_topic_cosine=0.05,
                                                  direct_quote_cosine=direct_quote_cosine))
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
    stored = pipeline.store.conversation(reply.conversation_id)
    assert [m.role for m in stored.messages] == ["customer", "assistant"]
    assert stored.messages[1].sources[0].doc_id == "R" and stored.cost_usd == pytest.approx(reply.cost.cost_usd)


def test_invented_facts_are_dropped_and_an_unsupported_answer_hands_off(make):
    pipeline, _ = make("Returns are accepted within 14 days. You must pay 20 pounds for the return label.")
    reply = pipeline.ask("How many days do I have to return items?")
    assert reply.outcome == "unsupported_answer" and reply.handoff.needed
    assert reply.handoff.reason == "unsupported_answer"
    assert "not certain" in reply.answer and "14 days" not in reply.answer
    assert "30 days" in reply.answer and [s.doc_id for s in reply.sources] == ["R"]  # a quote from the source
    assert 0 < reply.grounding["quote_cosine"] < 1.01 and "extractive" not in reply.grounding


def test_a_source_sentence_close_to_the_question_is_the_answer_without_an_llm_call(make):
    pipeline, llm = make("Returns are accepted within 14 days.", direct_quote_cosine=0.3)
    reply = pipeline.ask("How many days do I have to return items?")
    assert reply.outcome == "answered" and not reply.handoff.needed
    assert reply.answer == "Our help centre says: \u201cYou can return most items within 30 days of delivery.\u201d [1]"
    assert [s.doc_id for s in reply.sources] == ["R"] and reply.grounding["direct_quote"]
    assert llm.prompts == [] and reply.usage.completion_tokens == 0 and reply.usage.retrieval_s > 0
    assert pipeline.store.conversation(reply.conversation_id).handoff_reason is None

    far, llm = make("Returns are accepted within 14 days.", direct_quote_cosine=0.99)  # no sentence is that close
    assert far.ask("How many days do I have to return items?").outcome == "unsupported_answer" and llm.prompts


def test_only_supported_sentences_survive(make):
    pipeline, _ = make("You can return most items within 30 days of delivery. We also refund shipping in bitcoin.")
    reply = pipeline.ask("How many days do I have to return items?")
    assert reply.outcome == "answered" and "bitcoin" not in reply.answer
    assert reply.grounding["claims"] == 2 and reply.grounding["supported"] == 1 and reply.grounding["dropped"] == 1


def test_off_topic_question_is_refused_politely_without_calling_the_llm(make):
    pipeline, llm = make("Paris.")
    reply = pipeline.ask("Capital city France?")
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
    totals = pipeline.store.totals()
    assert totals["customer_messages"] == 1 and totals["messages"] == 1


def test_a_follow_up_in_the_same_conversation_uses_its_history(make):
    pipeline, llm = make("Standard delivery costs 3.95 pounds.")
    first = pipeline.ask("Tell me about standard delivery")
    second = pipeline.ask("how much is it", conversation_id=first.conversation_id)
    assert second.conversation_id == first.conversation_id and second.sources[0].doc_id == "S"
    assert len(pipeline.store.conversation(first.conversation_id).messages) == 4


def test_bad_questions_and_unknown_conversations_are_clear_errors(make):
    pipeline, _ = make("x")
    for bad in ["", "   ", "x" * 5000, None]:
        with pytest.raises(BadInput):
            pipeline.ask(bad)
    with pytest.raises(NotFound, match="leave out --conversation"):
        pipeline.ask("hello", conversation_id="nope")


def test_prompt_echo_and_repeats_are_cleaned_from_the_answer(make):
    pipeline, _ = make("A: Returns > Policy: You can return most items within 30 days of delivery. "
                       "You can return most items within 30 days of delivery.")
    reply = pipeline.ask("How many days do I have to return items?")
    assert reply.answer == "You can return most items within 30 days of delivery. [1]"
