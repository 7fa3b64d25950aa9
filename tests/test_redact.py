"""The one redactor (core/redact.py): what it replaces, and what it must leave alone."""

from collections import Counter

import pytest

from core.redact import Redactor


def redact(text, **kwargs):
    return Redactor(**kwargs).redact(text)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("mail me at jane.doe+shop@mail.example today", "mail me at {{Email}} today"),
        ("Berlin 030 12345678", "Berlin {{Phone Number}}"),
        ("Paris +33 1 42 68 53 00", "Paris {{Phone Number}}"),
        ("Mumbai +91 98765 43210", "Mumbai {{Phone Number}}"),
        ("Sydney +61 2 9876 5432", "Sydney {{Phone Number}}"),
        ("US (415) 555-0100 or 415.555.0100", "US {{Phone Number}} or {{Phone Number}}"),
        ("UK 07700 900123 or +44 7700 900123", "UK {{Phone Number}} or {{Phone Number}}"),
        ("call me on 4155550100", "call me on {{Phone Number}}"),
    ],
)
def test_emails_and_phone_numbers_of_many_countries(text, expected):
    assert redact(text)[0] == expected


def test_card_numbers_with_spaces_or_dashes_must_pass_luhn():
    out, counts = redact("visa 4111 1111 1111 1111, mc 5555-5555-5555-4444, typo 4111 1111 1111 1112")
    assert out == "visa {{Card Number}}, mc {{Card Number}}, typo 4111 1111 1111 1112"
    assert counts == Counter({"card": 2})


def test_ibans_must_pass_their_checksum():
    out, counts = redact("pay GB82 WEST 1234 5698 7654 32 or DE89370400440532013000, not GB83 WEST 1234 5698 7654 32.")
    assert out == "pay {{IBAN}} or {{IBAN}}, not GB83 WEST 1234 5698 7654 32."
    assert counts == Counter({"iban": 2})


def test_a_name_given_away_by_a_cue_needs_no_list_of_names():
    assert redact("Hello, I'm Zbigniew Quarrington-Oyelaran and my parcel is late")[0] == (
        "Hello, I'm {{Name}} and my parcel is late"
    )
    assert redact("Dear Xanthe, your refund is on its way")[0] == "Dear {{Name}}, your refund is on its way"
    assert redact("See you soon.\nBest wishes,\nÉmile Dubois")[0] == "See you soon.\nBest wishes,\n{{Name}}"
    texts, counts = Redactor().redact_conversation(
        ["my name is Ngozi Okafor", "Thanks Ngozi, done. Okafor is the surname?"]
    )
    assert texts == ["my name is {{Name}}", "Thanks {{Name}}, done. {{Name}} is the surname?"] and counts["name"] == 3


@pytest.mark.parametrize(
    "text",
    [
        "I'm Sorry, it's Wednesday and this is\nThe third time I ask",
        "Hi, this is Acme Customer Support. This is Lumen & Oak.",
        "Hello Team, I'm Looking for my order",
        "Thanks,\nThe Support Team",
    ],
)
def test_common_words_weekdays_and_company_names_after_a_cue_are_not_names(text):
    assert redact(text) == (text, Counter())


@pytest.mark.parametrize(
    "text",
    [
        "order 40058841 and order #4005884123, ref 00004587345 or 113542617735902",
        "it costs £39.95 (1,299.00 EUR with VAT 20%), 2 for £5",
        "placed 12/03/2024, delivered 2024-03-14 between 09:00 and 17:30, on 14.03.2024",
        "my order number is 4155550100",
        "Version 2.4 GHz, SKU LMP-2024-0042, tracking 1Z999AA10123456784",
    ],
)
def test_order_numbers_prices_and_dates_are_kept(text):
    assert redact(text) == (text, Counter())


def test_kept_values_and_placeholders_are_never_replaced():
    out, counts = redact(
        "write to help@shop.example or {{Email}}, or me at me@mail.example", keep=["help@shop.example"]
    )
    assert out == "write to help@shop.example or {{Email}}, or me at {{Email}}" and counts == Counter({"email": 1})
    assert redact("this is Lumen here", keep=["Lumen Home Ltd"])[1] == Counter()
