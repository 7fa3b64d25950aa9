"""Scoring action routing on a question set: the right action with the right values, and no action where
none was asked for (help-centre, vague and out-of-scope questions).

Read from each reply's `grounding["action"]` (the action the turn started and the values it found), so
it scores the routing and the value finding, not the company's system: an action's run may fail in an
evaluation without its service, and that is not counted. Knows nothing of how routing is decided.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from chatbot.actions.params import same_value
from chatbot.reporting.questions import EvalQuestion


class _Scored(Protocol):
    question: EvalQuestion
    outcome: str
    grounding: dict | None


def routed_action(result: _Scored) -> tuple[str | None, dict]:
    """The action a result's turn started, and the values it found in the message ({} when none)."""
    packet = (result.grounding or {}).get("action") or {}
    if not str(result.outcome).startswith("action_") or not isinstance(packet, dict):
        return None, {}
    return packet.get("name"), dict(packet.get("found") or packet.get("params") or {})


def routing_figures(results: Sequence[_Scored]) -> dict:
    """Action questions routed to the right action, and with the right values; other questions routed to any."""
    asked = [r for r in results if r.question.action is not None]
    others = [r for r in results if r.question.action is None]
    right_action = right_values = 0
    misses: list[str] = []
    for r in asked:
        name, values = routed_action(r)
        expected = dict(r.question.params)
        if name == r.question.action:
            right_action += 1
            if all(same_value(values.get(k), v) for k, v in expected.items()):
                right_values += 1
                continue
        misses.append(r.question.id)
    false_routes = [r.question.id for r in others if routed_action(r)[0] is not None]
    routed = right_action + sum(routed_action(r)[0] not in (None, r.question.action) for r in asked) + len(false_routes)
    return {
        "action_questions": len(asked),
        "routed_right": right_action,
        "values_right": right_values,
        "recall": round(right_action / len(asked), 4) if asked else None,
        "values_rate": round(right_values / len(asked), 4) if asked else None,
        "precision": round(right_action / routed, 4) if routed else None,
        "other_questions": len(others),
        "others_routed": len(false_routes),
        "others_routed_ids": false_routes,
        "missed_ids": misses,
    }
