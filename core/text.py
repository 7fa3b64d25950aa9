"""Text a person typed, made safe to store: one check for questions, replies and saved answers."""

from __future__ import annotations

import re

from core.errors import BadInput

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # control characters but tab and newlines


def clean_text(value: object, what: str, max_chars: int, hint: str = "", one_line: bool = False) -> str:
    """`value` without control characters and outer spaces (`one_line`: every run of spaces and newlines
    made one space); `BadInput` saying what to do when it is not text, empty, or over `max_chars`.
    `what` names it in the message ("question"); `hint` follows "is empty" ("type a question")."""
    if not isinstance(value, str):
        raise BadInput(f"the {what} must be text")
    text = _CONTROL.sub(" ", value)
    text = " ".join(text.split()) if one_line else text.strip()
    if not text:
        raise BadInput(f"the {what} is empty" + (f"; {hint}" if hint else ""))
    if len(text) > max_chars:
        raise BadInput(f"the {what} is {len(text)} characters; keep it under {max_chars}")
    return text
