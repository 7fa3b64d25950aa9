"""The conversation around an action: collect its values, verify the customer, confirm a write, run it once.

One `ActionDesk` per engine. A turn the router sends here (`start`) or a conversation with an action under
way (`carry_on`) gets an `ActionStep`: a question for a missing value (`action_ask`), the confirmation of a
write (`action_confirm`), or the run's end: `action_done` (the reply written by the company's template
from the system's JSON, so no fact is a model's), `action_refused` (the system's reason; a person offered),
`action_cancelled` (the customer said no) or `action_failed` (a person takes over with the packet).

Identity: an action with `verify` runs only once the values the customer gave equal the fields of a read
action's result (the email on the order). Not found and not matching get the same sentence, so nothing
tells which was wrong; failures are counted per conversation and per client address, and past the
limit a person takes over. Values the customer gave (order numbers, emails) are kept between turns for
`session_ttl_s`, sealed (`chatbot.actions.sealed`: the database holds ciphertext, the key is elsewhere), so
any server process, or the next `chatbot ask --conversation`, goes on with the action; everything else
stored is redacted by the records. Failed verifications per client address are counted in this process.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography.fernet import Fernet

from chatbot.actions.client import ActionClient, CallResult
from chatbot.actions.params import find, same_value
from chatbot.actions.sealed import Sealer
from chatbot.actions.templates import RenderError, render
from chatbot.answer.replies import ANSWERS, confirms, declines
from chatbot.records.action_runs import ActionRuns
from chatbot.records.outcomes import Outcome
from core.config_actions import ActionConfig

NOT_VERIFIED = "I couldn't find an order matching those details, so I can't share or change anything on it."
OFFER_PERSON = "If you'd like a colleague to help with this, just say so."
CANCELLED = "OK, I haven't changed anything. Is there anything else I can help you with?"
FAILED_TEMPLATE = "Something went wrong on our side, so I've asked a colleague to help."
TOO_MANY = "I can't verify those details, so I've asked a member of our team to take over; they will reply here."


@dataclass(frozen=True)
class ActionStep:
    """What the turn says and how it ends; `grounding` is stored with the reply (redacted)."""

    outcome: Outcome
    answer: str
    grounding: dict
    action_s: float = 0.0  # time the company's system took, metered with the turn


@dataclass
class _Session:
    """One conversation's action under way and what it verified; it holds the customer's values raw, so it is
    stored only sealed (`ActionDesk._keep`)."""

    touched: float
    action: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    asking: str | None = None
    confirming: bool = False
    # each identity verified (every identifying value: order number and email), with its lookup's result
    lookups: dict[tuple, dict] = field(default_factory=dict)
    looked_up: CallResult | None = None  # the last lookup, when it was this action's own request (a read)
    failures: int = 0
    offered_person: bool = False


@dataclass(frozen=True)
class ActionLimits:
    max_failed_verifications: int = 3
    max_failed_per_client: int = 10
    client_window_s: float = 3600.0
    session_ttl_s: float = 1800.0


class ActionDesk:
    """The actions the company declared, run for customers; `runs` records each run and holds the switches."""

    def __init__(
        self,
        actions: dict[str, ActionConfig],
        client: ActionClient,
        runs: ActionRuns,
        limits: ActionLimits = ActionLimits(),
        sealer: Sealer | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.actions = actions
        self.client = client
        self.runs = runs
        self.limits = limits
        self.clock = clock
        self.sealer = sealer or Sealer(Fernet.generate_key())  # a key of this process only, unless given one
        self._client_failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def enabled(self) -> set[str]:
        """The actions that may run now: on in the config and not switched off by an admin."""
        switched = self.runs.switches() if self.actions else {}
        return {name for name, a in self.actions.items() if switched.get(name, a.enabled)}

    # ---- the door --------------------------------------------------------------------------
    def start(self, conversation_id: str, name: str, text: str, client: str = "") -> ActionStep:
        """The customer asked for action `name` in `text`: take its values from it, then go as far as it can."""
        started = time.perf_counter()
        found = {n: v for n, p in self.actions[name].params.items() if (v := find(p, text)) is not None}
        session = self._session(conversation_id) or _Session(self.clock())
        session.action, session.asking, session.confirming, session.offered_person = name, None, False, False
        session.params.update(found)
        step = _timed(self._advance(conversation_id, session, client), started)
        self._keep(conversation_id, session)
        packet = step.grounding.get("action")
        if isinstance(packet, dict):  # what this message gave, whatever became of it (eval scores it)
            packet["found"] = found
        return step

    def carry_on(self, conversation_id: str, text: str, client: str = "") -> ActionStep | None:
        """The customer's answer to an action's question or confirmation; None when there is none under way
        or `text` is something else (a new question: the action waits no longer)."""
        started = time.perf_counter()
        session = self._session(conversation_id)
        if session is None:
            return None
        step = self._carry_on(conversation_id, session, text, client)
        self._keep(conversation_id, session)
        return _timed(step, started) if step is not None else None

    def _carry_on(self, conversation_id: str, session: _Session, text: str, client: str) -> ActionStep | None:
        if session.offered_person:
            session.offered_person = False
            if confirms(text):
                return ActionStep(Outcome.CUSTOMER_REQUEST, ANSWERS[Outcome.CUSTOMER_REQUEST], {})
            return None
        if session.action is None:
            return None
        if session.action not in self.enabled():  # an admin switched it off meanwhile: it runs no further
            self._end(session)
            return None
        if session.confirming:
            return self._confirmation(conversation_id, session, text, client)
        return self._answer_to_question(conversation_id, session, text, client)

    # ---- steps -----------------------------------------------------------------------------
    def _answer_to_question(self, conversation_id: str, session: _Session, text: str, client: str) -> ActionStep | None:
        assert session.action is not None
        action = self.actions[session.action]
        found = {n: v for n, p in action.params.items() if (v := find(p, text, asked=n == session.asking)) is not None}
        if session.asking not in found:
            if len(text.split()) > 8 or declines(text):  # something else: a new question, or "no, forget it"
                session.action = session.asking = None
                return None
            param = action.params[session.asking or ""]
            what = param.description or (session.asking or "").replace("_", " ")
            return self._step(Outcome.ACTION_ASK, f"Sorry, that doesn't look like {what}. {param.ask}", session)
        session.params.update(found)
        return self._advance(conversation_id, session, client)

    def _confirmation(self, conversation_id: str, session: _Session, text: str, client: str) -> ActionStep | None:
        assert session.action is not None
        name = session.action
        if confirms(text):
            return self._run(conversation_id, session, client)
        if declines(text):
            self.runs.record(conversation_id, name, "declined", None, 0.0, {"params": session.params}, {})
            step = self._step(Outcome.ACTION_CANCELLED, CANCELLED, session)
            session.action, session.confirming = None, False
            return step
        session.action, session.confirming = None, False  # a new question: the write waits no longer
        return None

    def _advance(self, conversation_id: str, session: _Session, client: str) -> ActionStep:
        """Ask for the first missing value; else verify; else confirm a write; else run."""
        assert session.action is not None
        action = self.actions[session.action]
        for name, param in action.params.items():
            if name not in session.params:
                session.asking = name
                return self._step(Outcome.ACTION_ASK, param.ask, session)
        session.asking = None
        if action.verify is not None and not self._verified(session, action):
            failed = self._verify(conversation_id, session, action, client)
            if failed is not None:
                return failed
        if action.risk == "write" and not session.confirming:
            session.confirming = True
            try:
                lookup = session.lookups.get(_identity(session, action), {})
                question = render(action.confirm, params=session.params, lookup=lookup)
            except RenderError:
                return self._failed(conversation_id, session, CallResult("failed", {"detail": "confirm template"}))
            return self._step(Outcome.ACTION_CONFIRM, f"{question} (yes / no)", session)
        return self._run(conversation_id, session, client)

    def _verified(self, session: _Session, action: ActionConfig) -> bool:
        """Whether these very values (this order number with this email) were verified in the conversation."""
        return _identity(session, action) in session.lookups

    def _verify(self, conversation_id: str, session: _Session, action: ActionConfig, client: str) -> ActionStep | None:
        """Run the verify lookup and compare; None when verified, else the step that says it was not."""
        assert action.verify is not None and session.action is not None
        lookup_name = action.verify.lookup or session.action
        result = self.client.call(self.actions[lookup_name], session.params)
        matches = result.status == "done" and all(
            same_value(result.data.get(fld), session.params.get(p)) for p, fld in action.verify.match.items()
        )
        if matches:
            if lookup_name != session.action:  # its own lookup is recorded as the run itself
                self.runs.record(conversation_id, lookup_name, "verified", result.http_status, result.seconds, {}, {})
            session.lookups[_identity(session, action)] = result.data
            session.looked_up = result
            return None
        if result.status not in ("done", "not_found", "refused"):  # the system failed: not the customer's fault
            return self._failed(conversation_id, session, result)
        self.runs.record(conversation_id, lookup_name, "unverified", result.http_status, result.seconds, {}, {})
        return self._not_verified(conversation_id, session, action, client, result.seconds)

    def _not_verified(
        self, conversation_id: str, session: _Session, action: ActionConfig, client: str, seconds: float
    ) -> ActionStep:
        session.failures += 1
        client_over = self._client_failed(client)  # counted whatever the conversation's own count says
        over = session.failures >= self.limits.max_failed_verifications or client_over
        for name, param in action.params.items():
            if param.identifies:  # asked again, all of them: no hint which one was wrong
                session.params.pop(name, None)
        if over:
            packet = {"action": session.action, "error": "verification failed", "failures": session.failures}
            self._end(session)
            return ActionStep(Outcome.ACTION_FAILED, TOO_MANY, {"action": packet}, seconds)
        step = self._advance(conversation_id, session, client)
        return ActionStep(step.outcome, f"{NOT_VERIFIED} {step.answer}", step.grounding, seconds)

    def _run(self, conversation_id: str, session: _Session, client: str) -> ActionStep:
        """Make the action's request once and say what came of it."""
        assert session.action is not None
        name, action = session.action, self.actions[session.action]
        looked_up, session.looked_up = session.looked_up, None
        if action.risk == "read" and action.verify is not None and not action.verify.lookup and looked_up:
            result = looked_up  # verifying it was running it
        else:
            result = self.client.call(action, session.params)
        self.runs.record(
            conversation_id, name, result.status, result.http_status, result.seconds, result.request, result.data
        )
        if result.status == "done":
            try:
                reply = render(action.reply, result=result.data, params=session.params)
            except RenderError as exc:
                return self._failed(conversation_id, session, CallResult("failed", {"detail": str(exc)}))
            step = self._step(Outcome.ACTION_DONE, reply, session, result)
            self._end(session)
            return step
        if result.status in ("not_found", "refused"):
            template = action.errors.not_found if result.status == "not_found" else action.errors.refused
            step = self._step(Outcome.ACTION_REFUSED, f"{_said(template, result)} {OFFER_PERSON}", session, result)
            self._end(session)
            session.offered_person = True
            return step
        return self._failed(conversation_id, session, result)

    def _failed(self, conversation_id: str, session: _Session, result: CallResult) -> ActionStep:
        """A person takes over: the customer is told in a sentence, the packet says what failed."""
        assert session.action is not None
        errors = self.actions[session.action].errors
        answer = _said(errors.timeout if result.status == "timeout" else errors.server_error, result)
        step = self._step(Outcome.ACTION_FAILED, answer, session, result)
        self._end(session)
        return step

    # ---- bookkeeping -----------------------------------------------------------------------
    def _step(self, outcome: Outcome, answer: str, session: _Session, result: CallResult | None = None) -> ActionStep:
        packet: dict = {"name": session.action, "params": dict(session.params)}
        if session.asking:
            packet["asking"] = session.asking
        if result is not None:
            packet.update(status=result.status, http_status=result.http_status)
            if result.status not in ("done",):
                packet["error"] = result.data.get("detail") or result.status
        return ActionStep(outcome, answer, {"action": packet}, result.seconds if result else 0.0)

    def _end(self, session: _Session) -> None:
        session.action, session.asking, session.confirming = None, None, False

    def _session(self, conversation_id: str) -> _Session | None:
        """The conversation's action under way (or what it verified), unsealed; None when none or too old."""
        sealed = self.runs.load_session(conversation_id)
        data = self.sealer.open(sealed) if sealed else None
        if not isinstance(data, dict):
            return None
        session = _loaded(data)
        return session if self.clock() - session.touched <= self.limits.session_ttl_s else None

    def _keep(self, conversation_id: str, session: _Session) -> None:
        """Store the session sealed (any server process goes on with it); those idle past the TTL go."""
        session.touched = self.clock()
        expired = datetime.now(UTC) - timedelta(seconds=self.limits.session_ttl_s)
        self.runs.save_session(conversation_id, self.sealer.seal(_dumped(session)), older_than=expired)

    def _client_failed(self, client: str) -> bool:
        """Count a failed verification for `client`; True when it is past the limit in the window."""
        if not client:
            return False
        with self._lock:
            now = self.clock()
            failures = self._client_failures.setdefault(client, deque())
            failures.append(now)
            while failures and now - failures[0] > self.limits.client_window_s:
                failures.popleft()
            return len(failures) >= self.limits.max_failed_per_client


def _dumped(session: _Session) -> dict:
    """The session as JSON (its last lookup's request is not kept: it is used within the turn that made it)."""
    return {
        "touched": session.touched,
        "action": session.action,
        "params": session.params,
        "asking": session.asking,
        "confirming": session.confirming,
        "lookups": [[list(map(list, identity)), data] for identity, data in session.lookups.items()],
        "failures": session.failures,
        "offered_person": session.offered_person,
    }


def _loaded(data: dict) -> _Session:
    return _Session(
        touched=float(data.get("touched", 0.0)),
        action=data.get("action"),
        params=dict(data.get("params") or {}),
        asking=data.get("asking"),
        confirming=bool(data.get("confirming")),
        lookups={tuple(tuple(pair) for pair in identity): found for identity, found in data.get("lookups") or []},
        failures=int(data.get("failures", 0)),
        offered_person=bool(data.get("offered_person")),
    )


def _identity(session: _Session, action: ActionConfig) -> tuple:
    """The values that say whose data it is: every identifying one and those verified against the lookup."""
    names = {n for n, p in action.params.items() if p.identifies} | set(action.verify.match if action.verify else ())
    return tuple(sorted((n, session.params.get(n, "")) for n in names))


def _timed(step: ActionStep, started: float) -> ActionStep:
    """`step` metered with the whole time it took (the requests and the bookkeeping around them)."""
    return ActionStep(step.outcome, step.answer, step.grounding, time.perf_counter() - started)


def _said(template: str, result: CallResult) -> str:
    """An error template rendered over the system's JSON, or a plain sentence when it cannot be."""
    try:
        return render(template, error=result.data) or FAILED_TEMPLATE
    except RenderError:
        return FAILED_TEMPLATE
