"""Whether a customer's message asks for an action, and which: its closest example against the help centre.

A message routes to action A when its cosine to A's closest example is at least `min_cosine` and beats
the help centre's best passage (the retrieval the turn does anyway) by `min_margin`: "please change my
address" is nearer "change my address" than any article, "how long can I change my address?" is nearer
the article that explains it. A message holding an identifier (an order number, an email: a value of an
identifying parameter) needs only `min_margin_identified`, since people rarely quote their order
number to ask about a policy. `choose_thresholds` picks the three on the dev split of the company's
labelled questions (`chatbot calibrate`), as the answer decision's threshold is chosen. It does not know
what an action does, nor whether the customer may run it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Routing:
    action: str
    cosine: float  # to the action's closest example
    margin: float  # that cosine minus the help centre's best passage cosine


@dataclass(frozen=True)
class RoutePoint:
    """One labelled dev question as the router sees it, for choosing the thresholds."""

    expected: str | None  # the action it asks for; None: a help-centre or off-topic question
    best: str  # the action whose example is closest
    cosine: float
    help_cosine: float
    identified: bool = False  # the question holds an identifier (order number, email)

    @property
    def margin(self) -> float:
        return self.cosine - self.help_cosine


VALUE_BONUS = 0.1  # per value of an action's own found in the message, when choosing between actions (not tuned)


class ActionRouter:
    """Embeds the actions' examples once (lazily, with the index's embedder) and scores messages on them."""

    def __init__(
        self,
        embedder,
        examples: dict[str, Sequence[str]],
        min_cosine: float,
        min_margin: float,
        min_margin_identified: float | None = None,
        identified: Callable[[str], bool] = lambda text: False,
        values: Callable[[str, str], int] = lambda action, text: 0,
    ):
        self.embedder = embedder
        self.examples = {name: list(texts) for name, texts in examples.items() if texts}
        self.min_cosine = min_cosine
        self.min_margin = min_margin
        self.min_margin_identified = min_margin if min_margin_identified is None else min_margin_identified
        self.identified = identified  # does a message hold a value only a customer writes (order number, address)
        self.values = values  # how many of an action's own values (not every action's) a message holds
        self._matrix: np.ndarray | None = None
        self._owners: list[str] = []
        self._lock = threading.Lock()

    def _examples(self) -> tuple[np.ndarray, list[str]]:
        with self._lock:
            if self._matrix is None:
                owners = [name for name, texts in self.examples.items() for _ in texts]
                texts = [text for texts in self.examples.values() for text in texts]
                self._matrix = _normalised(self.embedder.embed(texts)) if texts else np.zeros((0, 1))
                self._owners = owners
        return self._matrix, self._owners

    def closest(self, text: str) -> tuple[str, float] | None:
        """The action `text` most likely asks for, and the cosine of its closest example; None without actions.
        Each action's closest example counts, plus `VALUE_BONUS` for each of its own values the message holds:
        "deliver order 40059930 to 8 Mill Lane, Frome BA11 3DT" is a change of address, however it is put."""
        matrix, owners = self._examples()
        if not owners:
            return None
        cosines = matrix @ _normalised(self.embedder.embed([text]))[0]
        best: dict[str, float] = {}
        for owner, cosine in zip(owners, cosines.tolist(), strict=True):
            best[owner] = max(best.get(owner, -1.0), cosine)
        name = max(best, key=lambda action: best[action] + VALUE_BONUS * self.values(action, text))
        return name, best[name]

    def route(self, text: str, help_cosine: float) -> Routing | None:
        """The action `text` asks for, or None (a question for the help centre, or nothing the company runs)."""
        found = self.closest(text)
        if found is None:
            return None
        name, cosine = found
        point = RoutePoint(None, name, cosine, help_cosine, self.identified(text))
        if not routes(point, self.min_cosine, self.min_margin, self.min_margin_identified):
            return None
        return Routing(name, cosine, point.margin)


def _normalised(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms == 0, 1, norms)


def routes(p: RoutePoint, min_cosine: float, min_margin: float, min_margin_identified: float) -> bool:
    return p.cosine >= min_cosine and p.margin >= (min_margin_identified if p.identified else min_margin)


def score(points: Sequence[RoutePoint], min_cosine: float, min_margin: float, min_margin_identified: float) -> dict:
    """Routing figures at the thresholds: action questions routed right, any question routed wrong."""
    right = wrong = routed_non_action = 0
    for p in points:
        on = routes(p, min_cosine, min_margin, min_margin_identified)
        if p.expected is None:
            routed_non_action += on
        elif on and p.best == p.expected:
            right += 1
        elif on:
            wrong += 1
    actions = sum(p.expected is not None for p in points)
    routed = right + wrong + routed_non_action
    return {
        "action_questions": actions,
        "other_questions": len(points) - actions,
        "routed_right": right,
        "routed_wrong_action": wrong,
        "non_action_routed": routed_non_action,
        "recall": right / actions if actions else None,
        "precision": right / routed if routed else None,
    }


COSINE_GRID = tuple(round(0.30 + 0.05 * i, 2) for i in range(11))  # 0.30 .. 0.80


def choose_thresholds(points: Sequence[RoutePoint]) -> tuple[float, float, float, dict]:
    """`min_cosine`, `min_margin` and `min_margin_identified` with no other question routed and the most action
    questions routed right (fewest wrong, then the lowest cosine on ties); each margin set midway between
    the nearest included and excluded questions. Questions with and without an identifier are apart, so
    each margin is chosen on its own questions."""
    best: tuple | None = None
    for cosine in COSINE_GRID:
        chosen = [_best_margin([p for p in points if p.identified is flag], cosine) for flag in (False, True)]
        key = tuple(sum(part) for part in zip(*(k for k, _ in chosen), strict=True))
        if best is None or key > best[0]:
            best = (key, cosine, chosen[0][1], chosen[1][1])
    assert best is not None
    _, cosine, margin, margin_identified = best
    return cosine, margin, margin_identified, score(points, cosine, margin, margin_identified)


def _best_margin(points: Sequence[RoutePoint], cosine: float) -> tuple[tuple[int, int, int], float]:
    """The margin for `points` at `cosine`: (-others routed, right, -wrong) and the margin, midway."""
    margins = sorted({p.margin for p in points} | {2.0})
    best: tuple | None = None
    for m in margins:  # lowest first: on ties the first (most permissive) is kept
        s = score(points, cosine, m, m)
        key = (-s["non_action_routed"], s["routed_right"], -s["routed_wrong_action"])
        if best is None or key > best[0]:
            best = (key, m)
    assert best is not None
    return best[0], _midway(best[1], [p.margin for p in points])


def _midway(threshold: float, values: Sequence[float]) -> float:
    """`threshold` moved halfway down to the nearest value under it (which the threshold excluded)."""
    under = [v for v in values if v < threshold - 1e-9]
    return round((threshold + max(under)) / 2, 4) if under else threshold
