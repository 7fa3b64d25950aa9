"""The copilot evaluation's measures on hand-made drafts: facts kept, unsupported claims, the gate."""

from chatbot.answer.grounding import GroundingResult, SentenceCheck
from finetune.copilot_eval import copilot_gate, facts_kept, unsupported_share

LOGGED = "Refunds reach your card within 5 working days; returns are free within 30 days."


def check(*sentences: tuple[str, bool]) -> GroundingResult:
    return GroundingResult(tuple(SentenceCheck(text, ok, True, None, 0.0, 0.0) for text, ok in sentences), False)


def test_facts_kept_counts_the_logged_replys_numbers_and_distinctive_words():
    keywords = {"refund", "card", "work"}  # stems, as keyword_sets gives them
    assert facts_kept("Refunds reach your card within 5 working days, free for 30 days.", LOGGED, keywords) == 1.0
    some = facts_kept("Your refund takes 5 days.", LOGGED, keywords)  # the 5 and "refund"; not 30, card, work
    assert some == 2 / 5
    assert facts_kept("anything", "Thanks!", set()) == 1.0  # nothing to keep


def test_a_claim_is_unsupported_only_when_neither_sources_nor_the_logged_reply_hold_it():
    result = check(
        ("Refunds reach your card within 5 working days.", False),  # not in the sources, but in the reply
        ("We also refund shipping on every order.", False),  # in neither: what a person must catch
        ("Returns are free.", True),  # in the sources
    )
    assert unsupported_share(result, LOGGED) == 1 / 3
    assert unsupported_share(check(), LOGGED) == 0.0


def test_the_copilot_gate_wants_closer_drafts_with_the_facts_and_no_more_inventions():
    serving = {"rougeL": 0.10, "facts_kept": 0.30, "unsupported_share": 0.40}
    assert copilot_gate({**serving, "rougeL": 0.20}, serving)[0]
    assert not copilot_gate({**serving, "rougeL": 0.10}, serving)[0]
    assert not copilot_gate({**serving, "rougeL": 0.20, "facts_kept": 0.20}, serving)[0]
    assert not copilot_gate({**serving, "rougeL": 0.20, "unsupported_share": 0.50}, serving)[0]
