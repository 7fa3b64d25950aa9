"""Question sets for evaluation: reading and checking the JSON Lines file, splitting it, choosing from it.

A question set is JSON Lines, one customer question a line:

    {"id": "...", "question": "...", "doc_ids": ["LO-1008"], "answer_contains": ["30 days"],
     "in_scope": true, "turns": ["earlier customer turn", ...], "split": "dev"}

- `doc_ids`: the help-centre documents that answer it (any one cited counts); [] when out of scope,
  and [] for a vague in-scope question ("it doesn't work"), which should get a clarifying question;
- `answer_contains`: regular expressions, matched case-insensitively; the answer must match one;
- `in_scope`: false for questions the assistant should not answer (not about the shop);
- `turns` (optional): earlier customer turns, asked first in the same conversation, not scored;
- `split` (optional): "dev" (tune on it) or "heldout" (report it); where it is missing, a hash of the
  question text picks a third of each kind of question to hold out (`assign_splits`);
- `id` (optional): defaults to the line number;
- `action` (optional): the action it asks the assistant to run (`[actions.NAME]`), with `params`, the values
  written in it ({"order_number": "40059930"}); null or missing: it must run no action. An action question
  has `doc_ids` [] and is scored on routing only (`chatbot.reporting.action_eval`).
The older shapes are read too: `doc_id` (a string) and `answer_contains` (a literal substring) as in
the first demo set, and `article_id` as in bench/data/arduino_questions.jsonl; they are in scope.

Knows nothing about the engine: it neither asks the questions nor scores the answers
(`chatbot.reporting.evaluation` does both, and re-exports `load_questions` and `select`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from core.errors import BadInput, NotFound
from core.jsonl import jsonl_records

SPLITS = ("dev", "heldout")


@dataclass(frozen=True)
class EvalQuestion:
    id: str
    question: str
    doc_ids: tuple[str, ...]
    answer_contains: tuple[str, ...]  # regular expressions, case-insensitive; () when no fact is checked
    in_scope: bool
    turns: tuple[str, ...] = ()
    split: str = "dev"
    line: int = 0
    action: str | None = None  # the action it asks for; None: it must run none
    params: tuple[tuple[str, str], ...] = ()  # the action's values written in the question

    @property
    def vague(self) -> bool:
        """In scope but too vague to answer: the right reply is a clarifying question."""
        return self.in_scope and not self.doc_ids and self.action is None


def text_hash(question: str) -> str:
    return hashlib.sha256(" ".join(question.lower().split()).encode("utf-8")).hexdigest()


def assign_splits(questions: Sequence[EvalQuestion]) -> list[EvalQuestion]:
    """Give a split to the questions without one: in each kind (in scope or not, follow-up or not),
    the third with the lowest hash of their text is held out; the others are dev. Not by hand, and
    stable: adding a question moves at most the one at the boundary of its kind."""
    kinds: dict[tuple[bool, bool], list[EvalQuestion]] = {}
    for q in questions:
        if not q.split:
            kinds.setdefault((q.in_scope, bool(q.turns)), []).append(q)
    heldout: set[str] = set()
    for group in kinds.values():
        ranked = sorted(group, key=lambda q: text_hash(q.question))
        heldout.update(q.id for q in ranked[: round(len(group) / 3)])
    return [q if q.split else replace(q, split="heldout" if q.id in heldout else "dev") for q in questions]


def load_questions(path: str | Path) -> list[EvalQuestion]:
    """Read a question set; any problem is a `BadInput` naming the line."""
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"question file {path} does not exist; give a JSONL file of questions")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise BadInput(f"{path} is not UTF-8 text; give a JSONL file of questions") from None
    questions: list[EvalQuestion] = []
    seen: dict[str, int] = {}
    for number, record in jsonl_records(lines, path):
        question = _parse(record, f"{path} line {number}", number)
        if question.id in seen:
            raise BadInput(
                f"{path} line {number}: id '{question.id}' is also on line {seen[question.id]}; "
                "give each question its own id"
            )
        seen[question.id] = number
        questions.append(question)
    if not questions:
        raise BadInput(f"{path} has no questions; add one JSON object a line")
    return assign_splits(questions)


def _parse(record: object, where: str, line: int) -> EvalQuestion:
    """One line's record as a question; any problem is a `BadInput` naming `where`."""
    if not isinstance(record, dict):
        raise BadInput(f"{where} must be a JSON object with 'question', 'doc_ids', 'answer_contains', 'in_scope'")
    question = record.get("question")
    if not isinstance(question, str) or not question.strip():
        raise BadInput(f"{where} needs a non-empty 'question' string")
    doc_ids, patterns, in_scope = _gold(record, where)
    _check_gold(doc_ids, patterns, in_scope, where)
    turns, split, qid = _optional_fields(record, where, line)
    action, params = _action(record, where)
    return EvalQuestion(
        id=qid,
        question=question.strip(),
        doc_ids=tuple(doc_ids),
        answer_contains=tuple(patterns),
        in_scope=in_scope,
        turns=turns,
        split=split,
        line=line,
        action=action,
        params=params,
    )


def _gold(record: dict, where: str) -> tuple[list[str], list[str], bool]:
    """The record's gold documents, `answer_contains` patterns and scope, in the current or an older shape."""
    if "doc_ids" in record:  # the current shape: every key stated
        return _current_gold(record, where)
    if "doc_id" in record or "article_id" in record:  # the older shapes: a literal substring, in scope
        return _older_gold(record, where)
    raise BadInput(f"{where} is missing 'doc_ids' (the documents that answer it; [] when out of scope)")


def _current_gold(record: dict, where: str) -> tuple[list[str], list[str], bool]:
    """The gold of a record with `doc_ids`, `answer_contains` (regexes) and `in_scope`, all stated."""
    missing = [k for k in ("answer_contains", "in_scope") if k not in record]
    if missing:
        raise BadInput(f"{where} is missing {', '.join(repr(k) for k in missing)}")
    doc_ids = record["doc_ids"]
    if not isinstance(doc_ids, list) or not all(isinstance(d, (str, int)) and str(d).strip() for d in doc_ids):
        raise BadInput(f"{where}: 'doc_ids' must be a list of document ids ([] when out of scope)")
    doc_ids = [str(d).strip() for d in doc_ids]
    patterns = record["answer_contains"]
    if isinstance(patterns, str):
        patterns = [patterns]
    if not isinstance(patterns, list) or not all(isinstance(p, str) and p for p in patterns):
        raise BadInput(f"{where}: 'answer_contains' must be a list of regular expressions")
    in_scope = record["in_scope"]
    if not isinstance(in_scope, bool):
        raise BadInput(f"{where}: 'in_scope' must be true or false")
    return doc_ids, patterns, in_scope


def _older_gold(record: dict, where: str) -> tuple[list[str], list[str], bool]:
    """The gold of a record in an older shape: one `doc_id` or `article_id`, a literal `answer_contains`."""
    gold = record.get("doc_id", record.get("article_id"))
    if not isinstance(gold, (str, int)) or not str(gold).strip():
        raise BadInput(f"{where}: 'doc_id' must be a document id")
    literal = record.get("answer_contains")
    if literal is not None and (not isinstance(literal, str) or not literal):
        raise BadInput(f"{where}: 'answer_contains' must be text")
    patterns = [re.escape(literal)] if literal else []
    return [str(gold).strip()], patterns, bool(record.get("in_scope", True))


def _check_gold(doc_ids: list[str], patterns: list[str], in_scope: bool, where: str) -> None:
    """Raise `BadInput` when the gold contradicts the scope or a pattern is not a regular expression."""
    if in_scope and not doc_ids and patterns:
        raise BadInput(f"{where}: a question with answer_contains needs its gold documents in 'doc_ids'")
    if not in_scope and doc_ids:
        raise BadInput(f"{where}: an out-of-scope question has no gold documents; set 'doc_ids' to []")
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise BadInput(f"{where}: answer_contains {pattern!r} is not a valid regular expression ({exc})") from None


def _optional_fields(record: dict, where: str, line: int) -> tuple[tuple[str, ...], str, str]:
    """The record's earlier turns, split ("" when none: `assign_splits` gives one) and id (default `line`)."""
    turns = record.get("turns", [])
    if not isinstance(turns, list) or not all(isinstance(t, str) and t.strip() for t in turns):
        raise BadInput(f"{where}: 'turns' must be a list of the customer's earlier messages")
    split = record.get("split", "")
    if split not in (*SPLITS, ""):
        raise BadInput(f"{where}: 'split' must be one of {', '.join(SPLITS)}, not {split!r}")
    qid = record.get("id", line)
    if not isinstance(qid, (str, int)) or not str(qid).strip():
        raise BadInput(f"{where}: 'id' must be text or a number")
    return tuple(t.strip() for t in turns), split, str(qid).strip()


def _action(record: dict, where: str) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    """The record's expected action and its values; `BadInput` when they are not a name and a table of text."""
    action = record.get("action")
    if action is not None and (not isinstance(action, str) or not action.strip()):
        raise BadInput(f"{where}: 'action' must be an action's name, or null for a question that runs none")
    params = record.get("params", {})
    if not isinstance(params, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in params.items()):
        raise BadInput(f"{where}: 'params' must map parameter names to the values written in the question")
    if params and action is None:
        raise BadInput(f"{where}: 'params' needs the 'action' they are for")
    return action, tuple(sorted(params.items()))


def select(questions: Sequence[EvalQuestion], split: str = "all", limit: int | None = None) -> list[EvalQuestion]:
    """The questions of `split` ("all": every one), only the first `limit` when given; `BadInput` when none."""
    if split not in (*SPLITS, "all"):
        raise BadInput(f"--split must be dev, heldout or all, not {split!r}")
    if limit is not None and limit < 1:
        raise BadInput("--limit must be at least 1")
    chosen = [q for q in questions if split == "all" or q.split == split]
    if not chosen:
        raise BadInput(f"no questions in the '{split}' split")
    return chosen[:limit] if limit else chosen
