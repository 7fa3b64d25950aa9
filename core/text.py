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


# Bidirectional overrides and isolates (U+202A-E, U+2066-9), marks (U+200E/F, U+061C), zero-width
# characters (U+200B-D, U+2060, U+FEFF) and the soft hyphen: they make "gnp.exe" show as "exe.png".
_INVISIBLE = re.compile("[\u00ad\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


def visible(text: str) -> str:
    """`text` without bidirectional and zero-width controls, for showing it to an operator as written."""
    return _INVISIBLE.sub("", text)


# OWASP's CSV injection advice: a spreadsheet runs a cell that starts with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: str) -> str:
    """`value` safe to write into a CSV a spreadsheet opens: a leading formula character is escaped
    with a single quote (`csv_value` reads it back unchanged)."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def csv_value(cell: str) -> str:
    """What `csv_cell` wrote: a single quote before a formula character is dropped."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(_FORMULA_START) else cell
