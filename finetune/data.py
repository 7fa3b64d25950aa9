"""From support logs to a training set: read, scrub personal data, deduplicate, split by intent.

Logs are CSV or JSONL. A row is one exchange (Bitext-style `instruction`/`response` with
`intent`/`category`, or `question`/`answer`) or, in JSONL, a transcript `{"turns": [{role, text}]}`
whose roles are customer/agent or user/assistant. Every conversation is scrubbed before it is split
or written by `core.redact`: emails, phone numbers, Luhn-valid card numbers, IBANs, street addresses
and postcodes, and names where a phrase gives them away ("my name is", "I'm", "Mr.", a sign-off) are
replaced by placeholders such as `{{Email}}`; a detected name is replaced in every turn of its conversation.
Existing `{{placeholders}}` are kept, or filled from a company profile.

This module knows nothing about tokenizers, prompts or models.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.config import DEFAULTS, FinetuneConfig
from core.errors import BadInput, NotFound
from core.redact import PLACEHOLDERS, Redactor, luhn_valid  # noqa: F401 (luhn_valid: re-exported)
from core.files import replacing, write_atomic

CUSTOMER_ROLES = frozenset({"customer", "user", "client", "human"})
AGENT_ROLES = frozenset({"agent", "assistant", "support", "bot", "operator"})
QUESTION_COLUMNS = ("instruction", "question", "customer", "prompt", "query")
REPLY_COLUMNS = ("response", "answer", "agent", "reply", "completion")
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Exchange:
    """One customer message and the agent's reply to it."""

    question: str
    reply: str
    intent: str = "unknown"
    category: str = ""

    def to_json(self) -> dict:
        """The Bitext column names, so a written split reads back as a log file."""
        return {"instruction": self.question, "response": self.reply, "intent": self.intent, "category": self.category}


@dataclass(frozen=True)
class Conversation:
    turns: tuple[tuple[str, str], ...]  # (role "customer" or "agent", text), in order
    intent: str
    category: str
    source: str  # "file:line" it was read from, for error messages


@dataclass(frozen=True)
class Splits:
    train: tuple[Exchange, ...]
    validation: tuple[Exchange, ...]
    test: tuple[Exchange, ...]

    def items(self) -> Iterable[tuple[str, tuple[Exchange, ...]]]:
        return zip(SPLITS, (self.train, self.validation, self.test))


@dataclass(frozen=True)
class DatasetReport:
    files: tuple[str, ...]
    conversations: int
    exchanges: int  # after scrubbing, before deduplication
    duplicates_removed: int
    splits: dict[str, int]  # split name -> exchanges
    intents: dict[str, dict[str, int]]  # intent -> split name -> exchanges
    scrubbed: dict[str, int]  # kind of personal data -> replacements made
    seed: int

    def to_json(self) -> dict:
        return dict(self.__dict__, files=list(self.files))


# ---------------------------------------------------------------- reading


def _role(value: object, where: str) -> str:
    role = str(value or "").strip().lower()
    if role in CUSTOMER_ROLES:
        return "customer"
    if role in AGENT_ROLES:
        return "agent"
    raise BadInput(f"{where}: unknown turn role '{value}'; use customer/agent or user/assistant")


def _clean(text: object) -> str:
    """Stripped, with Windows and old-Mac line ends as plain newlines (Bitext replies use CRLF)."""
    return str(text or "").replace("\r\n", "\n").replace("\r", "\n").strip()


def _first(row: Mapping[str, object], names: Sequence[str]) -> str | None:
    for name in names:
        value = _clean(row.get(name))
        if value:
            return value
    return None


def _from_row(row: Mapping[str, object], where: str) -> Conversation | None:
    """An exchange row or a transcript object; None for a row with an empty side."""
    intent = str(row.get("intent") or "unknown").strip() or "unknown"
    category = str(row.get("category") or "").strip()
    if "turns" in row:
        turns = row["turns"]
        if not isinstance(turns, list):
            raise BadInput(f'{where}: \'turns\' must be a list of {{"role", "text"}} objects')
        parsed = []
        for turn in turns:
            if not isinstance(turn, dict):
                raise BadInput(f"{where}: each turn must be an object with 'role' and 'text'")
            text = _clean(turn.get("text", turn.get("content", "")))
            if text:
                parsed.append((_role(turn.get("role"), where), text))
        return Conversation(tuple(parsed), intent, category, where) if parsed else None
    question, reply = _first(row, QUESTION_COLUMNS), _first(row, REPLY_COLUMNS)
    if question is None and reply is None:
        raise BadInput(
            f"{where}: no exchange found; a row needs {'/'.join(QUESTION_COLUMNS[:2])} and "
            f"{'/'.join(REPLY_COLUMNS[:2])} columns, or (JSONL) a 'turns' list; it has: {', '.join(map(str, row))}"
        )
    if not question or not reply:
        return None
    return Conversation((("customer", question), ("agent", reply)), intent, category, where)


def read_conversations(path: str | Path) -> list[Conversation]:
    """Every conversation in one CSV or JSONL log file, unscrubbed."""
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"log file {path} does not exist; pass a CSV or JSONL file of support exchanges")
    suffix = path.suffix.lower()
    out: list[Conversation] = []
    try:
        if suffix == ".csv":
            with path.open(newline="", encoding="utf-8-sig") as handle:  # newline="": CRLF inside quotes
                reader = csv.DictReader(handle)
                for number, row in enumerate(reader, start=2):
                    conversation = _from_row(row, f"{path}:{number}")
                    if conversation:
                        out.append(conversation)
        elif suffix in (".jsonl", ".ndjson"):
            with path.open(encoding="utf-8-sig") as handle:
                for number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise BadInput(f"{path}:{number} is not valid JSON ({exc.msg}); one object per line") from None
                    if not isinstance(row, dict):
                        raise BadInput(f"{path}:{number} must be a JSON object")
                    conversation = _from_row(row, f"{path}:{number}")
                    if conversation:
                        out.append(conversation)
        else:
            raise BadInput(f"{path}: unsupported log format '{suffix}'; use .csv or .jsonl")
    except UnicodeDecodeError:
        raise BadInput(f"{path} is not UTF-8 text; re-save it as UTF-8") from None
    except csv.Error as exc:
        raise BadInput(f"{path} is not a readable CSV file ({exc})") from None
    return out


def to_exchanges(conversation: Conversation) -> list[Exchange]:
    """Each run of customer turns followed by a run of agent turns is one exchange."""
    groups: list[tuple[str, str]] = []
    for role, text in conversation.turns:
        if groups and groups[-1][0] == role:
            groups[-1] = (role, f"{groups[-1][1]} {text}")
        else:
            groups.append((role, text))
    return [
        Exchange(question, reply, conversation.intent, conversation.category)
        for (r1, question), (r2, reply) in zip(groups, groups[1:])
        if r1 == "customer" and r2 == "agent"
    ]


def read_exchanges(path: str | Path) -> list[Exchange]:
    """Exchanges of a file as they are, unscrubbed: for files this package wrote (already scrubbed)."""
    return [e for c in read_conversations(path) for e in to_exchanges(c)]


# ---------------------------------------------------------------- scrubbing

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")


class PiiScrubber:
    """Replaces personal data with placeholders (`core.redact.Redactor`); fills `{{placeholders}}`
    from a company profile.

    Values of the profile (the company's own email or phone number) are public and kept.
    """

    def __init__(self, profile: Mapping[str, str] | None = None):
        self.profile = {str(k).strip(): str(v) for k, v in (profile or {}).items()}
        self._redactor = Redactor(keep=self.profile.values())

    def names_in(self, texts: Sequence[str]) -> set[str]:
        """Names that a cue phrase gives away, with each part of a full name on its own."""
        return self._redactor.names_in(texts)

    def scrub(self, texts: Sequence[str]) -> tuple[list[str], Counter]:
        """The texts of one conversation, scrubbed, and how many items of each kind were replaced."""
        counts: Counter = Counter()
        names = self.names_in(texts)
        out = []
        for text in texts:
            pieces = []
            last = 0
            for placeholder in _PLACEHOLDER.finditer(text):  # placeholders are never scrubbed
                pieces.append(self._scrub_plain(text[last : placeholder.start()], names, counts))
                key = placeholder.group(1)
                pieces.append(self.profile.get(key, "{{" + key + "}}"))
                last = placeholder.end()
            pieces.append(self._scrub_plain(text[last:], names, counts))
            out.append("".join(pieces))
        return out, counts

    def _scrub_plain(self, text: str, names: set[str], counts: Counter) -> str:
        scrubbed, found = self._redactor.redact(text, names)
        counts.update(found)
        return scrubbed


# ---------------------------------------------------------------- dataset


def _key(exchange: Exchange) -> tuple[str, str]:
    return (" ".join(exchange.question.lower().split()), " ".join(exchange.reply.lower().split()))


def deduplicate(exchanges: Iterable[Exchange]) -> list[Exchange]:
    """First of each (question, reply) pair, ignoring case and whitespace."""
    seen: set[tuple[str, str]] = set()
    out = []
    for exchange in exchanges:
        key = _key(exchange)
        if key not in seen:
            seen.add(key)
            out.append(exchange)
    return out


def _rank(exchange: Exchange, seed: int) -> str:
    question, reply = _key(exchange)
    return hashlib.sha1(f"{seed}\0{question}\0{reply}".encode()).hexdigest()


def split_exchanges(
    exchanges: Sequence[Exchange],
    validation_fraction: float = DEFAULTS.finetune.validation_fraction,
    test_fraction: float = DEFAULTS.finetune.test_fraction,
    seed: int = DEFAULTS.finetune.seed,
) -> Splits:
    """Stratified by intent: each intent's exchanges are ordered by a seeded hash (so the split of
    one exchange does not depend on file order) and cut by the fractions; an intent with at least
    3 exchanges gives each non-empty held-out split at least one. Training order is shuffled."""
    if not (0 <= validation_fraction < 1 and 0 <= test_fraction < 1 and validation_fraction + test_fraction < 1):
        raise BadInput("validation and test fractions must be in [0, 1) and sum to less than 1, e.g. 0.1 and 0.1")
    by_intent: dict[str, list[Exchange]] = {}
    for exchange in exchanges:
        by_intent.setdefault(exchange.intent, []).append(exchange)
    train, validation, test = [], [], []
    for intent in sorted(by_intent):
        group = sorted(by_intent[intent], key=lambda e: _rank(e, seed))
        n = len(group)
        n_test = round(n * test_fraction)
        n_val = round(n * validation_fraction)
        if n >= 3:
            n_test = max(n_test, 1 if test_fraction > 0 else 0)
            n_val = max(n_val, 1 if validation_fraction > 0 else 0)
        if n_test + n_val >= n:
            n_test = n_val = 0
        test.extend(group[:n_test])
        validation.extend(group[n_test : n_test + n_val])
        train.extend(group[n_test + n_val :])
    rng = random.Random(seed)
    rng.shuffle(train)
    return Splits(tuple(train), tuple(validation), tuple(test))


def scrub_conversations(
    conversations: Iterable[Conversation], scrubber: PiiScrubber
) -> tuple[list[Conversation], Counter]:
    counts: Counter = Counter()
    out = []
    for conversation in conversations:
        texts, found = scrubber.scrub([text for _, text in conversation.turns])
        counts.update(found)
        turns = tuple((role, text) for (role, _), text in zip(conversation.turns, texts))
        out.append(Conversation(turns, conversation.intent, conversation.category, conversation.source))
    return out, counts


def write_jsonl(path: str | Path, exchanges: Iterable[Exchange]) -> None:
    with replacing(path) as (tmp,), tmp.open("w", encoding="utf-8") as handle:
        for exchange in exchanges:
            handle.write(json.dumps(exchange.to_json(), ensure_ascii=False) + "\n")


@dataclass(frozen=True)
class DataOptions:
    """Defaults and their meaning: `[finetune]` in core/config.py."""

    validation_fraction: float = DEFAULTS.finetune.validation_fraction
    test_fraction: float = DEFAULTS.finetune.test_fraction
    seed: int = DEFAULTS.finetune.seed
    profile: dict[str, str] = field(default_factory=dict)  # placeholder name -> company value

    @classmethod
    def from_config(cls, finetune: FinetuneConfig) -> DataOptions:
        return cls(finetune.validation_fraction, finetune.test_fraction, finetune.seed, load_profile(finetune.profile))


def load_logs(paths: Sequence[str | Path], scrubber: PiiScrubber) -> tuple[list[Exchange], int, int, Counter]:
    """Read and scrub every file; returns (deduplicated exchanges, conversations, exchanges before
    deduplication, scrubbed counts)."""
    if not paths:
        raise BadInput("no log files given; pass --data FILE (CSV or JSONL)")
    conversations: list[Conversation] = []
    for path in paths:
        conversations.extend(read_conversations(path))
    scrubbed, counts = scrub_conversations(conversations, scrubber)
    exchanges = [e for c in scrubbed for e in to_exchanges(c)]
    if not exchanges:
        raise BadInput(
            f"no customer/agent exchanges found in {', '.join(map(str, paths))}; each row needs a question and a reply"
        )
    return deduplicate(exchanges), len(conversations), len(exchanges), counts


def prepare_dataset(
    paths: Sequence[str | Path], out_dir: str | Path | None, options: DataOptions = DataOptions()
) -> tuple[Splits, DatasetReport]:
    """Read, scrub, deduplicate and split; writes `{train,validation,test}.jsonl` and `report.json`
    to `out_dir` (when given). Nothing is written before it is scrubbed."""
    unique, conversations, total, counts = load_logs(paths, PiiScrubber(options.profile))
    splits = split_exchanges(unique, options.validation_fraction, options.test_fraction, options.seed)
    intents: dict[str, dict[str, int]] = {}
    for name, part in splits.items():
        for exchange in part:
            intents.setdefault(exchange.intent, dict.fromkeys(SPLITS, 0))[name] += 1
    report = DatasetReport(
        files=tuple(str(p) for p in paths),
        conversations=conversations,
        exchanges=total,
        duplicates_removed=total - len(unique),
        splits={name: len(part) for name, part in splits.items()},
        intents=dict(sorted(intents.items())),
        scrubbed={k: counts.get(k, 0) for k in PLACEHOLDERS},
        seed=options.seed,
    )
    if out_dir is not None:
        out = Path(out_dir)
        for name, part in splits.items():
            write_jsonl(out / f"{name}.jsonl", part)
        write_atomic(out / "report.json", json.dumps(report.to_json(), indent=2) + "\n")
    return splits, report


def load_profile(path: str | Path | None) -> dict[str, str]:
    """A company profile: a JSON object of placeholder name -> value, e.g. {"Website Name": "shop.example"}."""
    if not path:
        return {}
    path = Path(path)
    if not path.is_file():
        raise NotFound(f'profile {path} does not exist; pass a JSON file like {{"Website Name": "shop.example"}}')
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"profile {path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not all(isinstance(v, (str, int, float)) for v in data.values()):
        raise BadInput(f"profile {path} must be one JSON object of placeholder name -> text value")
    return {str(k): str(v) for k, v in data.items()}
