"""Reading JSON Lines that people write by hand: blank lines skipped, a bad line named with the fix.

Knows nothing about what the objects mean: callers check their keys.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from core.errors import BadInput


def jsonl_records(lines: Iterable[str], source: object) -> Iterator[tuple[int, object]]:
    """(1-based line number, parsed value) for each non-blank line; `BadInput` naming the line otherwise."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadInput(f"{source} line {number} is not valid JSON ({exc.msg}); fix or remove it") from None
