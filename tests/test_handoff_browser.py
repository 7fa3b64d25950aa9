"""The whole live-handoff scene in headless Chromium (Debian's), real models, two browser contexts.

A customer asks what the help centre lacks and is handed over; an operator claims the conversation in
the panel, finds the copilot's draft in the reply box, edits it and sends it; the reply appears in the customer's open chat without a reload; the operator
resolves and saves the answer as a help-centre entry; a second customer asks in other words and gets
it as a cited answer. Screenshots go to .chatbot/screenshots/ (or $CHATBOT_SHOTS).
"""

import pytest

from tests.app_server import sign_in

pytestmark = pytest.mark.e2e
QUESTION = "Do you offer gift wrapping?"
PARAPHRASE = "Can you gift wrap my order?"
ANSWER = "We can gift wrap any order for £3 per item: tick 'Gift wrap' at checkout."


def ask(page, text: str) -> None:
    page.wait_for_selector("#ask-box textarea", timeout=60_000)
    page.locator("#ask-box textarea").fill(text)
    page.keyboard.press("Enter")


def chat_has(page, text: str, timeout: int = 60_000) -> None:
    page.wait_for_function(
        "t => document.querySelector('#chat') && document.querySelector('#chat').innerText.includes(t)",
        arg=text,
        timeout=timeout,
    )


def test_a_person_takes_over_answers_and_the_answer_serves_the_next_customer(app, browser, shots):
    customer = browser.new_context(viewport={"width": 1000, "height": 900}).new_page()
    customer.goto(app.url + "/", wait_until="load")
    ask(customer, QUESTION)
    customer.wait_for_selector("#handoff-notice", state="visible", timeout=180_000)
    customer.screenshot(path=str(shots / "1-customer-handed-over.png"), full_page=True)
    [entry] = [e for e in app.pipeline.handoff_queue() if QUESTION in e.packet.questions]
    conversation_id = entry.conversation_id

    operator = browser.new_context(viewport={"width": 1300, "height": 1100}).new_page()
    sign_in(operator, app.url, app.password)
    operator.get_by_role("tab", name="Inbox").click()
    operator.wait_for_function(
        "id => document.querySelector('#inbox').innerText.includes(id)", arg=conversation_id, timeout=60_000
    )  # the queue shows it
    picker = operator.locator("#inbox-pick input")
    picker.fill(conversation_id)
    picker.press("Enter")
    operator.wait_for_function(
        "document.querySelector('#packet').innerText.includes('Why the assistant handed over')", timeout=60_000
    )
    assert QUESTION in operator.locator("#packet").inner_text()
    operator.locator("#claim").click()
    operator.wait_for_function(
        "document.querySelector('#inbox-status').innerText.includes('have conversation')", timeout=60_000
    )
    operator.screenshot(path=str(shots / "2-operator-claimed-with-packet.png"), full_page=True)

    chat_has(customer, "joined the conversation", timeout=30_000)  # pushed to the open chat: no reload
    draft = app.pipeline.assist(conversation_id)["draft"]  # the copilot's, written by the real model
    assert draft and operator.locator("#agent-reply textarea").input_value() == draft  # the claim put it there
    assert "Summary" in operator.locator("#packet").inner_text()
    edited = f"{draft} Yes! {ANSWER}"  # the person keeps the draft and adds the fact it lacked
    operator.locator("#agent-reply textarea").fill(edited)
    operator.locator("#send-reply").click()
    operator.wait_for_function("document.querySelector('#inbox-status').innerText.includes('Sent')", timeout=60_000)
    chat_has(customer, "£3 per item", timeout=30_000)
    text = customer.locator("#chat").inner_text()
    assert " ".join(draft.split()[:4]) in text  # the customer sees the edited draft, as sent
    [sent] = [m for m in app.pipeline.conversation(conversation_id).messages if m.role == "agent"]
    assert sent.extra["draft_used"] in ("edited", "discarded") and sent.extra["edit_distance"] > 0
    assert "Lumen & Oak support" in text and "our team" in text  # who wrote it: the team's name,
    assert "operator" not in text  # never the admin's login
    assert "with you now" in customer.locator("#handoff-notice").inner_text()
    customer.screenshot(path=str(shots / "3-customer-sees-the-person-reply.png"), full_page=True)

    operator.locator("#resolve").click()
    operator.wait_for_function(
        "document.querySelector('#faq-answer textarea').value.includes('£3 per item')", timeout=60_000
    )
    assert operator.locator("#faq-question textarea").input_value() == QUESTION
    operator.locator("#faq-answer textarea").fill(ANSWER)  # edited before saving
    operator.locator("#save-faq").click()
    operator.wait_for_function(
        "document.querySelector('#faq-status').innerText.includes('Saved as help-centre entry')", timeout=120_000
    )
    operator.screenshot(path=str(shots / "4-operator-resolved-and-saved-faq.png"), full_page=True)
    chat_has(customer, "has left the conversation", timeout=30_000)
    assert app.pipeline.handoff_state(conversation_id) == "bot"
    assert app.pipeline.conversation(conversation_id).human_cost_usd > 0  # measured, claim to resolve

    second = browser.new_context(viewport={"width": 1000, "height": 900}).new_page()
    second.goto(app.url + "/", wait_until="load")
    ask(second, PARAPHRASE)
    chat_has(second, "Sources", timeout=180_000)
    text = second.locator("#chat").inner_text()
    assert "£3 per item" in text and QUESTION in text, text  # the saved answer, cited by its question
    second.screenshot(path=str(shots / "5-second-customer-gets-the-cited-answer.png"), full_page=True)

    operator.get_by_role("tab", name="Knowledge gaps").click()
    operator.locator("#refresh-topics").click()
    operator.wait_for_timeout(1500)  # the refresh finishes (the table is drawn again)
    operator.wait_for_function(
        "document.querySelector('#topics').innerText.toLowerCase().includes('gift') && "
        "document.querySelector('#topics').innerText.includes('FAQ-')",
        timeout=60_000,
    )
    operator.screenshot(path=str(shots / "6-operator-gap-topics.png"), full_page=True)
