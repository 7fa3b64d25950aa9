"""Choosing the action router's thresholds on labelled points, scoring routing on evaluation results, and the
question file's `action` / `params` fields: pure functions on hand-made inputs."""

from dataclasses import dataclass

import pytest

from chatbot.actions.router import RoutePoint, choose_thresholds, routes, score
from chatbot.reporting.action_eval import routed_action, routing_figures
from chatbot.reporting.questions import EvalQuestion, load_questions
from core.errors import BadInput


def point(expected, best, cosine, help_cosine, identified=False) -> RoutePoint:
    return RoutePoint(expected, best, cosine, help_cosine, identified)


# without an identifier: two action questions, two help questions (one close to an action's examples)
PLAIN = [
    point("track", "track", 0.9, 0.2),  # margin 0.7
    point("cancel", "cancel", 0.8, 0.4),  # margin 0.4
    point(None, "track", 0.7, 0.5),  # margin 0.2: a help question near "track my order"
    point(None, "cancel", 0.5, 0.6),  # margin -0.1
]
# with an order number: one routed right, one to the wrong action, one help question quoting its number
IDENTIFIED = [
    point("track", "track", 0.6, 0.5, True),  # margin 0.1
    point("cancel", "track", 0.7, 0.3, True),  # margin 0.4, the wrong action
    point(None, "track", 0.55, 0.5, True),  # margin 0.05
]


def test_score_counts_right_wrong_and_other_routes():
    s = score(PLAIN + IDENTIFIED, 0.3, 0.0, 0.0)
    assert s["action_questions"] == 4 and s["other_questions"] == 3
    assert s["routed_right"] == 3  # the two plain ones and the identified "track"
    assert s["routed_wrong_action"] == 1
    assert s["non_action_routed"] == 2  # margins 0.2 and 0.05
    assert s["recall"] == pytest.approx(3 / 4)
    assert s["precision"] == pytest.approx(3 / 6)

    nothing = score(PLAIN, 0.95, 0.0, 0.0)
    assert nothing["routed_right"] == 0 and nothing["precision"] is None
    assert score([], 0.3, 0.0, 0.0)["recall"] is None


def test_thresholds_route_no_other_question_and_the_most_right_with_margins_midway():
    cosine, margin, identified, figures = choose_thresholds(PLAIN + IDENTIFIED)
    assert figures["non_action_routed"] == 0
    assert figures["routed_right"] == 3
    assert figures["routed_wrong_action"] == 1  # routing the identified "track" costs the wrong one: right counts first
    assert cosine == pytest.approx(0.3)  # the lowest cosine among the equally good
    assert margin == pytest.approx(0.3)  # midway between 0.4 (the lowest included) and 0.2 (the help question)
    assert identified == pytest.approx(0.075)  # midway between 0.1 and 0.05
    points = PLAIN + IDENTIFIED
    assert [routes(p, cosine, margin, identified) for p in points] == [True, True, False, False, True, True, False]


def test_a_help_question_beyond_an_action_question_leaves_it_unrouted():
    """No threshold routes the action question without the help question (higher on both): route none."""
    points = [point("track", "track", 0.5, 0.45), point(None, "track", 0.9, 0.3)]
    cosine, margin, identified, figures = choose_thresholds(points)
    assert figures["non_action_routed"] == 0 and figures["routed_right"] == 0
    assert not any(routes(p, cosine, margin, identified) for p in points)
    assert margin == pytest.approx((2.0 + 0.6) / 2)  # above every margin, midway down to the highest


def test_the_cosine_floor_is_raised_when_only_it_separates():
    """Same margin, lower cosine for the help question: the cosine threshold keeps it out."""
    points = [point("track", "track", 0.75, 0.25), point(None, "track", 0.5, 0.0)]  # both margins exactly 0.5
    cosine, margin, _, figures = choose_thresholds(points)
    assert figures["routed_right"] == 1 and figures["non_action_routed"] == 0
    assert 0.5 < cosine <= 0.75
    assert cosine == pytest.approx(0.55)  # the lowest grid value above the help question's
    assert margin == pytest.approx(0.5)  # nothing under it to move halfway down to


# ---- scoring evaluation results --------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    question: EvalQuestion
    outcome: str
    grounding: dict | None


def question(qid: str, action: str | None = None, **params: str) -> EvalQuestion:
    return EvalQuestion(qid, f"question {qid}", (), (), True, action=action, params=tuple(sorted(params.items())))


def started(name: str, **params: str) -> dict:
    return {"action": {"name": name, "params": params}}


def test_routing_figures_count_actions_values_and_false_routes():
    results = [
        # the right action with the right values (case and spaces ignored)
        Result(
            question("right", "track_order", order_number="40061234", email="Sam@Example.org"),
            "action_ask",
            started("track_order", order_number="40061234", email="sam@example.org "),
        ),
        # the right action, a wrong value
        Result(
            question("value", "track_order", order_number="40061234"),
            "action_done",
            started("track_order", order_number="40059930"),
        ),
        # the wrong action
        Result(question("wrong", "cancel_order", order_number="40059930"), "action_confirm", started("track_order")),
        # an action question answered from the help centre: missed, not routed
        Result(question("missed", "get_invoice"), "answered", {}),
        # a help question that started an action
        Result(question("false"), "action_ask", started("track_order")),
        # a help question answered; and one whose grounding names an action but whose outcome is not one
        Result(question("help"), "answered", None),
        Result(question("person"), "customer_request", started("track_order")),
    ]
    f = routing_figures(results)
    assert f["action_questions"] == 4 and f["other_questions"] == 3
    assert f["routed_right"] == 2  # "right" and "value"
    assert f["values_right"] == 1
    assert f["missed_ids"] == ["value", "wrong", "missed"]
    assert f["others_routed"] == 1 and f["others_routed_ids"] == ["false"]
    assert f["recall"] == 0.5 and f["values_rate"] == 0.25
    assert f["precision"] == 0.5  # 2 right of 4 routed: right, value, wrong (to another action), false
    assert routed_action(results[-1]) == (None, {})

    empty = routing_figures([Result(question("help"), "answered", None)])
    assert empty["recall"] is None and empty["precision"] is None and empty["others_routed"] == 0


# ---- the question file ------------------------------------------------------------------------


def test_questions_take_an_action_and_its_params(write):
    path = write(
        "q.jsonl",
        '{"id": "a1", "question": "where is my order 40061234?", "doc_ids": [], "answer_contains": [], '
        '"in_scope": true, "action": "track_order", "params": {"order_number": "40061234"}, "split": "dev"}\n'
        '{"id": "h1", "question": "How long do I have to return an item?", "doc_ids": ["R"], '
        '"answer_contains": ["30 days"], "in_scope": true, "action": null, "split": "dev"}\n',
    )
    asked, help_question = load_questions(path)
    assert asked.action == "track_order" and asked.params == (("order_number", "40061234"),)
    assert not asked.vague  # an action question has no documents but is not a vague one
    assert help_question.action is None and help_question.params == ()


@pytest.mark.parametrize(
    "fields",
    [
        '"params": {"order_number": "40061234"}',  # values without the action they are for
        '"action": "track_order", "params": {"order_number": 40061234}',  # a value that is not text
        '"action": "track_order", "params": ["40061234"]',
        '"action": ""',
    ],
)
def test_questions_refuse_bad_action_fields(write, fields):
    path = write(
        "q.jsonl",
        '{"id": "a1", "question": "where is my order 40061234?", "doc_ids": [], "answer_contains": [], '
        f'"in_scope": true, {fields}}}\n',
    )
    with pytest.raises(BadInput, match="line 1"):
        load_questions(path)
