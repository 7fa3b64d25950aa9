"""The company's actions wired from the config: checked, their desk and router built, and the router's
thresholds chosen on labelled questions (`chatbot calibrate`) and kept beside the index.

The thresholds file (`INDEX/action_routing.json`) names the actions' examples and the embedder it was
chosen for; when either changes, the config's `[action_rules]` thresholds apply until the next
calibration. It does not run any action.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from chatbot.actions.client import ActionClient
from chatbot.actions.desk import ActionDesk, ActionLimits
from chatbot.actions.params import find, identifier_patterns
from chatbot.actions.sealed import Sealer
from chatbot.actions.router import ActionRouter, RoutePoint, choose_thresholds
from chatbot.reporting.questions import EvalQuestion
from core.config import Config
from core.config_actions import ActionConfig
from core.errors import ConfigError

ROUTING_FILE = "action_routing.json"


def check_actions(actions: dict[str, ActionConfig]) -> None:
    """`ConfigError` naming the key of the first action that cannot run as declared."""
    for name, action in actions.items():
        key = f"actions.{name}"
        if not action.examples:
            raise ConfigError(f"config key '{key}.examples' needs at least one customer message asking for it")
        if action.risk == "write" and not action.confirm:
            raise ConfigError(f"config key '{key}.confirm' is needed: a write repeats what it will do before it runs")
        if action.verify is None:
            continue
        unknown = [p for p in action.verify.match if p not in action.params]
        if unknown:
            raise ConfigError(f"config key '{key}.verify.match' names {unknown[0]!r}, not one of its params")
        lookup = action.verify.lookup
        if lookup and (lookup not in actions or actions[lookup].risk != "read"):
            raise ConfigError(f"config key '{key}.verify.lookup' must name a read action, not {lookup!r}")
        if not lookup and action.risk != "read":
            raise ConfigError(f"config key '{key}.verify.lookup' is needed: a write is verified by a read first")


def identifiers(config: Config) -> dict[str, str]:
    """The company's identifiers the database redacts (order numbers), from every action's parameters."""
    found: dict[str, str] = {}
    for action in config.actions.values():
        found.update(identifier_patterns(dict(action.params)))
    return found


def build_action_desk(config: Config, runs) -> ActionDesk | None:
    """The desk running the configured actions over the store's action records; None without actions."""
    if not config.actions:
        return None
    check_actions(config.actions)
    r = config.action_rules
    limits = ActionLimits(r.max_failed_verifications, r.max_failed_per_client, r.client_window_s, r.session_ttl_s)
    return ActionDesk(dict(config.actions), ActionClient(), runs, limits, Sealer.from_environment())


def fingerprint(config: Config) -> str:
    """What the thresholds were chosen for: every action's examples and the embedder."""
    examples = {name: a.examples for name, a in sorted(config.actions.items())}
    text = json.dumps({"examples": examples, "embedder": config.models.embedder, "format": 3}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def build_router(config: Config, index) -> ActionRouter | None:
    """The router over the index's embedder, with the calibrated thresholds when they are current."""
    if not config.actions:
        return None
    r = config.action_rules
    cosine, margin, identified = r.min_cosine, r.min_margin, r.min_margin_identified
    stored = _stored(Path(index.directory))
    if stored.get("fingerprint") == fingerprint(config):
        cosine, margin, identified = stored["min_cosine"], stored["min_margin"], stored["min_margin_identified"]
    examples = {name: a.examples for name, a in config.actions.items()}
    written = [p for a in config.actions.values() for p in a.params.values() if p.type != "text" or p.pattern]
    shared = Counter(name for a in config.actions.values() for name in a.params)
    own = {
        action: [p for name, p in a.params.items() if shared[name] < len(config.actions) and p in written]
        for action, a in config.actions.items()
    }
    return ActionRouter(
        index.embedder,
        examples,
        cosine,
        margin,
        identified,
        identified=lambda text: any(find(p, text) for p in written),
        values=lambda action, text: sum(find(p, text) is not None for p in own[action]),
    )


def _stored(directory: Path) -> dict:
    try:
        return json.loads((directory / ROUTING_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def calibrate_routing(
    config: Config,
    index,
    searcher,
    questions: Sequence[EvalQuestion],
    split: str,
    progress: Callable[[str], None] = lambda m: None,
) -> dict | None:
    """Choose the router's thresholds on `questions` (the help centre's best cosine for each found with
    `searcher`, as a turn finds it) and store them beside the index; None when there are no actions or
    no action question to choose on."""
    router = build_router(config, index)
    if router is None or not any(q.action for q in questions):
        return None
    points = []
    for number, q in enumerate(questions, start=1):
        closest = router.closest(q.question)
        assert closest is not None
        passages = searcher.search(q.question, k=config.retrieval.k)
        help_cosine = max((p.dense_cosine for p in passages), default=-1.0)
        points.append(RoutePoint(q.action, closest[0], closest[1], help_cosine, router.identified(q.question)))
        if number % 20 == 0:
            progress(f"action routing: {number}/{len(questions)} questions scored")
    cosine, margin, identified, figures = choose_thresholds(points)
    stored = {
        "fingerprint": fingerprint(config),
        "min_cosine": cosine,
        "min_margin": margin,
        "min_margin_identified": identified,
        "split": split,
        **figures,
    }
    (Path(index.directory) / ROUTING_FILE).write_text(json.dumps(stored, indent=2), encoding="utf-8")
    progress(
        f"action routing: min cosine {cosine:.2f}, margin {margin:.3f} ({identified:.3f} with an identifier); on {split}: "
        f"{figures['routed_right']}/{figures['action_questions']} action questions routed right, "
        f"{figures['non_action_routed']} of {figures['other_questions']} other questions routed"
    )
    return stored
