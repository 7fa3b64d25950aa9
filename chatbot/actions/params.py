"""Finding an action's parameter in a customer's message: by the company's pattern, else by its type.

Types: `email` (an address), `number` (a run of 4 or more digits, e.g. "#40059930" or "order no. 4005 9930"
is not joined), `address` (a street address as `core.redact` finds them: British, US, German shapes),
`text` (the whole message, when it is the answer to the question asked for it). It does not know
whether a value exists: the company's system says that.
"""

from __future__ import annotations

import re

from core.config_actions import ActionParam
from core.redact import Redactor

_NUMBER = re.compile(r"(?<![\w-])#?(\d{4,})(?![\w-])")
_EMAILS, _ADDRESSES = Redactor(kinds=("email",)), Redactor(kinds=("address",))  # the redactor's own patterns
_UNIT = re.compile(r"\b(?:Unit|Flat|Apartment|Apt|Suite)\s*$", re.I)


def find(param: ActionParam, text: str, asked: bool = False) -> str | None:
    """The value of `param` in `text`, or None. `asked`: the message answers the question asked for this
    parameter, so a `text` parameter is the whole message."""
    if param.pattern:
        match = re.search(param.pattern, text)
        if match is None:
            return None
        return (match.group(1) if match.groups() else match.group(0)).strip()
    if param.type == "email":
        emails = _EMAILS.find(text, ())
        return text[emails[0].start : emails[0].end].rstrip(".") if emails else None
    if param.type == "number":
        number = _NUMBER.search(text)
        return number.group(1) if number else None
    if param.type == "address":
        spans = _ADDRESSES.find(text, ())
        if spans:
            unit = _UNIT.search(text[: spans[0].start])  # "Unit 5, Harbour Court": the pattern starts at "5"
            start = unit.start() if unit else spans[0].start
            return text[start : spans[0].end].strip(" ,.")
        return text.strip() if asked and len(text.strip()) >= 8 else None
    return text.strip() if asked and text.strip() else None


def identifier_patterns(params: dict[str, ActionParam]) -> dict[str, str]:
    """Parameter name -> pattern, for each identifying parameter that redaction by kind does not already
    cover (emails and addresses are): what the database must also redact, e.g. order numbers."""
    out = {}
    for name, param in params.items():
        if param.identifies and param.type not in ("email", "address") and (param.pattern or param.type == "number"):
            out[name] = param.pattern or _NUMBER.pattern
    return out


def same_value(found: object, given: str | None) -> bool:
    """Two values equal once case and spaces are ignored ("4005 9930" is "40059930"); a missing one equals none."""
    if found is None or given is None:
        return False
    return "".join(str(found).split()).casefold() == "".join(given.split()).casefold()
