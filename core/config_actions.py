"""`[actions.NAME]` and `[action_rules]`: the actions a company declares (chatbot/actions/), as config sections.

Every template key is compiled (sandboxed Jinja2) when the config loads, so a bad template fails at
start naming its key; the cross-checks between actions (a lookup that exists, a write that confirms)
are `chatbot.actions.build.check_actions`'s.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from core.config_base import _Section, _template


class ActionParam(_Section):
    """A value an action needs: found in the customer's words, else asked for (chatbot/actions/params.py)."""

    ask: str  # the question asked when it is missing, e.g. "What is your order number?"
    description: str = ""
    type: Literal["text", "email", "number", "address"] = "text"  # how it is found in a message
    pattern: str = ""  # a regular expression the value must match (its first group, else the match); "" = by type
    identifies: bool = False  # the customer's identifier (order number, email): redacted before anything is stored

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return value


class ActionRequest(_Section):
    """The one HTTP request an action makes; URL, header and body are templates over `params`."""

    url: str  # e.g. "{{ env.CHATBOT_ORDERS_URL or 'http://127.0.0.1:8765' }}/orders/{{ params.order_number }}"
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)  # secrets as templates over env: "Bearer {{ env.TOKEN }}"
    body: str = ""  # a JSON body template; "" = none
    timeout_s: float = 5.0

    @field_validator("headers")
    @classmethod
    def _header_templates(cls, value: dict[str, str]) -> dict[str, str]:
        return {name: _template(text) for name, text in value.items()}

    @field_validator("url", "body")
    @classmethod
    def _templates(cls, value: str) -> str:
        return _template(value)


class ActionVerify(_Section):
    """Who the customer is, checked before an action that returns or changes personal data runs: the values
    they gave must equal the fields of a read action's result (e.g. the email on the order)."""

    match: dict[str, str]  # parameter -> field of the result it must equal (case and spaces ignored)
    lookup: str = ""  # the read action whose result is checked; "" = this action's own result


class ActionErrors(_Section):
    """What the customer is told when the company's system does not do it; templates over `error` (its JSON)."""

    not_found: str = "I couldn't find anything matching those details. Please check them and try again."
    refused: str = "{{ error.detail or 'The system could not do that.' }}"  # other 4xx: the system's reason
    server_error: str = "Our order system isn't responding properly right now, so I've asked a colleague to help."
    timeout: str = "Our order system is taking too long to answer, so I've asked a colleague to help."

    @field_validator("not_found", "refused", "server_error", "timeout")
    @classmethod
    def _templates(cls, value: str) -> str:
        return _template(value)


class ActionConfig(_Section):
    """`[actions.NAME]`: something the customer may ask the assistant to do in the company's own systems
    (chatbot/actions/): found by its examples, its parameters asked for, the customer verified, a write
    confirmed, one HTTP request made, the reply written from the result by a sandboxed template."""

    description: str
    examples: list[str]  # customer messages asking for it: the router's evidence
    request: ActionRequest
    reply: str  # template over `result` (the system's JSON) and `params`: every fact comes from the system
    params: dict[str, ActionParam] = Field(default_factory=dict)
    risk: Literal["read", "write"] = "read"  # a write is confirmed by the customer first
    confirm: str = ""  # a write's question, a template over `params` and `lookup` (the verify lookup's result)
    verify: ActionVerify | None = None  # required for an action that returns or changes personal data
    enabled: bool = True  # an admin may also switch it off from the panel
    errors: ActionErrors = Field(default_factory=ActionErrors)

    @field_validator("reply", "confirm")
    @classmethod
    def _templates(cls, value: str) -> str:
        return _template(value)


class ActionRulesConfig(_Section):
    """How actions are routed and guarded (chatbot/actions/)."""

    # a message asks for an action when its closest example is this close and that much closer than the help
    # centre's best passage; `chatbot calibrate` chooses both on the dev split's action questions (index file)
    min_cosine: float = 0.6
    min_margin: float = 0.15
    min_margin_identified: float = 0.0  # the margin for a message holding an order number or an email
    max_failed_verifications: int = 3  # per conversation; past it, a person takes over (no guessing of numbers)
    max_failed_per_client: int = 10  # per client address within client_window_s, across conversations
    client_window_s: float = 3600.0
    session_ttl_s: float = 1800.0  # a half-finished action (asked a value, awaiting "yes") is forgotten after this
