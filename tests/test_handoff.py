"""Live handoff on stand-ins: a person claims, replies and resolves; the bot is silent meanwhile; time is
priced; the webhook is signed, retried and never blocks; saved answers are indexed and cited; gap topics."""

import time

import pytest

from chatbot.faq import FaqBook, faq_doc_id
from chatbot.handoff import WITH_AGENT
from chatbot.outputs.webhook import SIGNATURE_HEADER, WebhookSender, verify
from chatbot.records.store import Conflict
from chatbot.testing import ScriptedChatModel, scripted_pipeline
from core.config import load_config
from core.errors import BadInput, NotFound
from tests.handoff_app import Receiver

SECRET = "webhook-secret"
UNKNOWN = "Can I pay for my order with bitcoin?"
FAQ_ANSWER = "You can pay for bitcoin orders by card or PayPal. Bitcoin itself is not accepted."


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def make(shop_index, tmp_path):
    index = shop_index

    def _make(reply="You can return most items within 30 days of delivery.", webhook=None, **handoff):
        config = load_config(
            None,
            {
                "company_name": "Lumen & Oak",
                "retrieval": {"k": 2},
                "chunking": {"max_chars": 300, "overlap_chars": 50},
                "prices": {"human_agent_usd_per_hour": 36.0},
                "handoff": {"faq_dir": str(tmp_path / "faq"), **handoff},
                "grounding": {
                    "min_retrieval_cosine": 0.2,
                    "off_topic_cosine": 0.05,
                    "direct_quote_cosine": 0.6,
                    "evidence_answer_cosine": 1.01,
                },
            },
        )
        return scripted_pipeline(
            config, index, ScriptedChatModel(reply), f"sqlite:///{tmp_path}/db.sqlite", webhook=webhook
        )

    return _make


def handed_over(pipeline, question=UNKNOWN):
    reply = pipeline.ask(question, channel="web")
    assert reply.handoff.needed, reply
    return reply.conversation_id


def test_a_handed_over_conversation_waits_oldest_first_with_its_packet(make):
    pipeline = make(reply="Bitcoin is accepted at checkout.")
    first = handed_over(pipeline)
    second = pipeline.request_handoff(channel="web").conversation_id
    queue = pipeline.handoff_queue()
    assert [e.conversation_id for e in queue] == [first, second]
    packet = queue[0].packet
    assert packet.questions == (UNKNOWN,) and queue[0].waiting_s >= 0 and queue[0].agent is None
    assert packet.why and queue[0].reason in ("no_knowledge", "unsupported_answer")
    assert packet.sources  # what the assistant read for the question
    if queue[0].reason == "unsupported_answer":
        assert packet.draft == "Bitcoin is accepted at checkout." and "not supported" in packet.why
    assert queue[1].packet.why == "the customer asked for a person"
    assert pipeline.handoff_state(first) == "waiting"


def test_while_a_person_holds_it_the_bot_is_silent_and_the_customer_sees_who_wrote(make):
    pipeline = make()
    cid = handed_over(pipeline)
    pipeline.claim(cid, "alex")
    assert pipeline.handoff_state(cid) == "agent"
    reply = pipeline.ask("Hello? Is anyone there?", cid)
    assert reply.outcome == WITH_AGENT and reply.answer == "" and reply.to_json()["outcome"] == "with_agent"
    message_id = pipeline.agent_reply(cid, "alex", "Hi, I'm Alex. Mail me at alex.private@example.org")
    messages = pipeline.conversation(cid).messages
    roles = [(m.role, m.author) for m in messages]
    assert (
        roles[-3:] == [("notice", "alex"), ("customer", "customer"), ("agent", "alex")][-3:]
        or ("agent", "alex") in roles
    )
    agent_message = next(m for m in messages if m.id == message_id)
    assert "{{Email}}" in agent_message.content and "alex.private" not in agent_message.content  # redacted
    # alex has no display name: the customer sees the team's name, never a login
    assert any(m.role == "notice" and m.content == "Lumen & Oak support joined the conversation." for m in messages)
    assert not any("alex" in m.content.lower() for m in messages if m.role == "notice")
    assert all(m.role != "assistant" for m in messages if m.id > message_id - 2 and m.role != "notice")


def test_only_the_holder_replies_or_resolves_and_a_second_claim_conflicts(make):
    pipeline = make()
    cid = handed_over(pipeline)
    with pytest.raises(Conflict):
        pipeline.agent_reply(cid, "alex", "hi")  # not claimed yet
    pipeline.claim(cid, "alex")
    pipeline.claim(cid, "alex")  # again: nothing changes
    with pytest.raises(Conflict):
        pipeline.claim(cid, "sam")
    with pytest.raises(Conflict):
        pipeline.resolve(cid, "sam", True)
    with pytest.raises(BadInput):
        pipeline.agent_reply(cid, "alex", "   ")
    with pytest.raises(NotFound):
        pipeline.claim("0" * 32, "alex")
    assert sum(m.role == "notice" for m in pipeline.conversation(cid).messages) == 1
    pipeline.resolve(cid, "sam", True, override=True)  # an admin may
    with pytest.raises(NotFound):
        pipeline.resolve(cid, "alex", True)  # nothing open any more


def test_resolving_prices_the_measured_handling_time_and_gives_the_bot_back(make):
    pipeline = make()
    cid = handed_over(pipeline)
    pipeline.claim(cid, "alex")
    time.sleep(0.2)
    done = pipeline.resolve(cid, "alex", return_to_bot=True)
    assert done["handling_s"] >= 0.2 and done["human_cost_usd"] == pytest.approx(done["handling_s"] / 3600 * 36.0)
    conv = pipeline.conversation(cid)
    assert conv.human_s == pytest.approx(done["handling_s"]) and conv.human_cost_usd == pytest.approx(
        done["human_cost_usd"]
    )
    assert pipeline.handoff_state(cid) == "bot" and pipeline.handoff_queue() == []
    assert pipeline.ask("How many days do I have to return items?", cid).outcome == "answered"  # the bot is back
    human = pipeline.human_cost()
    assert human["basis"] == "measured" and human["handled"] == 1
    assert human["human_cost_per_handled_usd"] == pytest.approx(done["human_cost_usd"])


def test_a_conversation_a_person_closed_goes_back_to_the_queue_when_the_customer_writes(make):
    pipeline = make()
    cid = handed_over(pipeline)
    pipeline.claim(cid, "alex")
    pipeline.resolve(cid, "alex", return_to_bot=False)
    assert pipeline.handoff_state(cid) == "closed"
    assert pipeline.ask("One more thing about my return", cid).outcome == WITH_AGENT
    assert pipeline.handoff_state(cid) == "waiting"
    assert [e.reason for e in pipeline.handoff_queue()] == ["reopened"]


def test_webhook_posts_signed_events_for_handoff_reply_and_resolve(make, receiver):
    sender = WebhookSender(receiver.url, SECRET, retries=2, backoff_s=0.01)
    pipeline = make(webhook=sender)
    cid = handed_over(pipeline)
    pipeline.claim(cid, "alex")
    pipeline.agent_reply(cid, "alex", "We accept cards and PayPal only.")
    pipeline.resolve(cid, "alex", True)
    assert sender.flush(10)
    assert receiver.events() == ["handoff", "claim", "agent_reply", "resolve"]
    for body, raw, headers in receiver.bodies:
        assert verify(raw, SECRET, headers[SIGNATURE_HEADER]) and body["conversation_id"] == cid
        assert headers["X-Chatbot-Event"] == body["event"]
    handoff = receiver.bodies[0][0]
    assert handoff["packet"]["questions"] == [UNKNOWN] and handoff["reason"]
    assert receiver.bodies[2][0]["text"] == "We accept cards and PayPal only."
    assert receiver.bodies[3][0]["return_to_bot"] is True and receiver.bodies[3][0]["handling_s"] >= 0
    assert not verify(raw, "another secret", headers[SIGNATURE_HEADER])


def test_webhook_retries_with_backoff_and_gives_up_without_blocking(make):
    flaky = Receiver(fail_first=2)
    waits = []
    settled = []
    sender = WebhookSender(flaky.url, SECRET, retries=3, backoff_s=0.5, sleep=waits.append, on_delivery=settled.append)
    sender.send("handoff", {"conversation_id": "c"})
    assert sender.flush(10)
    assert waits == [0.5, 1.0] and settled[0].delivered and settled[0].attempts == 3 and flaky.events() == ["handoff"]
    flaky.close()

    slow = Receiver(delay_s=1.0)
    pipeline = make(webhook=WebhookSender(slow.url, SECRET, retries=0))
    started = time.perf_counter()
    handed_over(pipeline)
    assert time.perf_counter() - started < 0.9  # the customer's turn does not wait for the receiver
    slow.close()

    settled.clear()
    dead = WebhookSender("http://127.0.0.1:9/nothing", SECRET, retries=2, backoff_s=0.0, on_delivery=settled.append)
    dead.send("resolve", {"conversation_id": "c"})
    assert dead.flush(10) and not settled[0].delivered and settled[0].attempts == 3


def test_a_saved_answer_is_indexed_and_answers_the_next_customer_with_a_citation(make, tmp_path):
    pipeline = make(reply="You can pay for bitcoin orders by card or PayPal.")
    cid = handed_over(pipeline)
    pipeline.claim(cid, "alex")
    pipeline.agent_reply(cid, "alex", "We don't accept bitcoin; pay by card or PayPal.")
    pipeline.resolve(cid, "alex", True)
    doc_id = pipeline.save_faq(UNKNOWN, FAQ_ANSWER, "alex", cid).doc_id
    assert doc_id == faq_doc_id(UNKNOWN) and pipeline.document_count() == 3
    rows = FaqBook(tmp_path / "faq").entries()
    assert rows == [{"id": doc_id, "question": UNKNOWN, "url": "", "answer": FAQ_ANSWER}]
    later = pipeline.ask("Do you accept bitcoin for payment?")
    assert later.outcome == "answered" and [s.doc_id for s in later.sources] == [doc_id], later
    assert "paypal" in later.answer.lower()
    assert (
        pipeline.save_faq(UNKNOWN.upper(), "Cards and PayPal only.", "alex").doc_id == doc_id
    )  # same question: updated
    assert len(FaqBook(tmp_path / "faq").entries()) == 1 and pipeline.document_count() == 3
    with pytest.raises(BadInput):
        pipeline.save_faq("", "x", "alex")


def test_gap_topics_group_paraphrases_largest_first_and_count_what_a_saved_answer_answered(make):
    pipeline = make(reply="You can pay for bitcoin orders by card or PayPal.", topic_distance=0.6)
    for q in (
        "Can I pay with bitcoin?",
        "Do you accept bitcoin payments?",
        "bitcoin payment possible?",
        "Is there a gift wrapping service?",
    ):
        assert pipeline.ask(q).outcome != "answered"  # refused or handed over: a gap
    topics = pipeline.gap_topics()
    assert topics[0].count == 3 and "bitcoin" in topics[0].label.lower() and topics[0].conversations == 3
    assert topics[-1].count == 1 and "gift" in topics[-1].examples[0]
    doc_id = pipeline.save_faq("Can I pay with bitcoin?", FAQ_ANSWER, "alex").doc_id
    pipeline.ask("Do you accept bitcoin?")
    pipeline.ask("bitcoin payment accepted?")
    entry = next(t for t in pipeline.gap_topics() if t.entries).entries[0]
    assert entry.doc_id == doc_id and entry.answered_since == 2


def test_talk_to_a_person_while_a_person_holds_the_conversation_adds_no_bot_notice(make):
    pipeline = make()
    cid = pipeline.request_handoff().conversation_id
    pipeline.claim(cid, "sam")
    again = pipeline.request_handoff(cid)
    assert again.outcome == WITH_AGENT and again.answer == ""
    assistant = [m for m in pipeline.conversation(cid).messages if m.role == "assistant"]
    assert len(assistant) == 1  # the first notice only


def test_one_word_for_each_handoff_state_in_the_engine_and_the_queue(make):
    from chatbot.handoff import HandoffState

    assert {str(s) for s in HandoffState} == {"bot", "waiting", "agent", "closed"}
    pipeline = make()
    cid = handed_over(pipeline)
    assert pipeline.handoff_state(cid) == "waiting" == pipeline.handoff_queue()[0].to_json()["state"]
    pipeline.claim(cid, "alex")
    assert pipeline.handoff_state(cid) == "agent" == pipeline.handoff_queue()[0].to_json()["state"]
    pipeline.resolve(cid, "alex", False)
    assert pipeline.handoff_state(cid) == "closed" and pipeline.handoff_queue() == []
