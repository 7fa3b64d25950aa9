"""Personal data in free text, found and replaced by placeholders such as `{{Email}}`.

One redactor for every part that keeps customers' words (fine-tuning data, stored conversations).
It finds, in this order (a later kind never overlaps an earlier one):

- emails (a pattern);
- IBANs: the country's length and format and the mod-97 check digits (python-stdnum);
- payment cards: 13-19 digits, spaces or dashes allowed, a card network's prefix and a valid Luhn
  check digit (python-stdnum);
- phone numbers, by `phonenumbers` (Google's libphonenumber): one written internationally
  ("+44 7700 900123") when its length is possible for its country code; one written nationally
  ("07700 900123", "(415) 555-0100") when it is a valid number of one of `phone_regions` and is
  written like a phone number (a leading 0 or bracket, a separator, or "call"/"phone"/... just
  before it), so a bare order number such as 4005884123 is kept;
- street addresses (patterns, Presidio-style): British and US ones ("27 Marlborough Street, Bath BA1
  2LY", "1600 Pennsylvania Avenue NW, Washington, DC 20500", "12 Main St Apt 4B, Springfield, IL
  62704") and German ones ("Hauptstraße 5, 10115 Berlin", "Berliner Str. 12a"), and UK postcodes;
- names that a cue gives away: "my name is", "I'm", "this is", "call me", "Mr."/"Dr.", a greeting
  ("Hi Chloe,") or a sign-off ("Kind regards,\\nPeter Parker"). A cue is followed by one or two
  capitalised words on the same line; the words are a name unless they are common English words
  that follow such cues ("I'm Sorry", "this is The ..."), a weekday or month, a word of a `keep`
  value (the company's name), or part of a team or company name ("this is Acme Support",
  "this is Lumen & Oak");
- full names without a cue ("Jane Doe", "Hans Müller"): two capitalised words on a line whose first
  is a first name in gender-guesser's list of 40,000 names from many countries, neither a common
  word nor a word of a `keep` value (so the company's "Arduino Nano" stays).

It does not know: a first name alone without a cue ("Chloe wrote ..."), names that are also common words after
a weak cue ("I'm Sunny"), place names or nationalities after "I'm" (redacted as names), addresses
not shaped "<number> <Name> <street type>", national ids, dates of birth, and lower-case IBANs.
Order numbers, prices and dates are not personal on their own and are kept. Values in `keep` (the
company's public email or phone number) and existing `{{placeholders}}` are never replaced.
"""

from __future__ import annotations

import calendar
import functools
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

PLACEHOLDERS = {
    "email": "{{Email}}",
    "phone": "{{Phone Number}}",
    "card": "{{Card Number}}",
    "iban": "{{IBAN}}",
    "address": "{{Address}}",
    "name": "{{Name}}",
}
DEFAULT_PHONE_REGIONS = ("GB", "US", "DE", "FR", "IN", "AU")  # for numbers written without "+"

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_CARD_PREFIX = re.compile(r"^(?:4|5[1-5]|2[2-7]|3[47]|3[068]|6(?:011|5|4[4-9])|35)")
_PHONE_CUE = re.compile(
    r"\b(?:call|phone|mobile|cell|tel|telephone|ring|text|whatsapp|reach)\b\W*(?:\w+\W+){0,3}$", re.I
)
_STREET_TYPES = (
    "Street|St|Road|Rd|Lane|Ln|Avenue|Ave|Close|Way|Drive|Dr|Place|Pl|Court|Ct|Gardens|Terrace|Crescent|"
    "Boulevard|Blvd|Square|Sq|Hill|Row|Mews|Parade|Walk|Grove|Park|Parkway|Pkwy|Highway|Hwy|Circle|Cir|"
    "Trail|Trl|Ter|Plaza|Loop"
)
_UK_POSTCODE = r"\b[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}\b"
_US_STATE = (
    r"(?:A[LKZR]|C[AOT]|D[EC]|FL|GA|HI|I[DLNA]|K[SY]|LA|M[EDAINSOT]|N[EVHJMYCD]|O[HKR]|PA|RI|S[CD]|T[NX]|"
    r"UT|V[TA]|W[AVIY]|PR)"
)
_ADDRESS = re.compile(
    rf"\b\d{{1,5}}[A-Za-z]?,?\s+(?:[NSEW]\.?\s+)?(?:[A-Z][a-z]+\s+){{1,3}}(?:{_STREET_TYPES})\b\.?"
    r"(?:\s+(?:NE|NW|SE|SW|N|S|E|W)\b\.?)?(?:,?\s+(?:Apt|Apartment|Suite|Ste|Unit|Flat|#)\.?\s*[\w-]+)?"
    rf"(?:,?\s+[A-Z][a-z]+(?:\s+[A-Z][a-z]+)?)?(?:,?\s+{_UK_POSTCODE}|,?\s+{_US_STATE}\s+\d{{5}}(?:-\d{{4}})?\b)?"
)
_DE_WORD = "[A-Z\u00c4\u00d6\u00dc][a-z\u00e4\u00f6\u00fc\u00df]+"
_DE_ADDRESS = re.compile(  # "Hauptstraße 5", "Berliner Str. 12a", "Am Alten Weg 3", then ", 10115 Berlin"
    rf"\b(?:{_DE_WORD}(?:-{_DE_WORD})*(?:stra\u00dfe|strasse|str\.|weg|allee|platz|gasse|ring|damm|ufer|chaussee|steig)"
    rf"|(?:{_DE_WORD}\s+){{1,2}}(?:Stra\u00dfe|Strasse|Str\.|Weg|Allee|Platz|Gasse|Ring|Damm|Ufer|Chaussee))"
    rf"\s+\d{{1,4}}\s?[a-zA-Z]?\b(?:,?\s+\d{{5}}\s+{_DE_WORD}(?:[- ]{_DE_WORD})?)?"
)
_POSTCODE = re.compile(_UK_POSTCODE)

_WORD = r"[^\W\d_]+(?:[-'\u2019][^\W\d_]+)?"  # letters of any script, "O'Brien", "Mary-Jane"
_CANDIDATE = rf"({_WORD}(?:[ \t]+{_WORD})?)"  # one or two words on the cue's line
_NAME_CUES = [
    re.compile(
        rf"\b(?:[Mm]y name is|[Mm]y name's|[Tt]his is|[Ii]t's|[Ii]t\u2019s|[Ii] am|I'm|I\u2019m|[Cc]all me)"
        rf"[ \t]+{_CANDIDATE}"
    ),
    re.compile(rf"\b(?:Mr|Mrs|Ms|Miss|Dr|Mx)\.?[ \t]+{_CANDIDATE}"),
    re.compile(rf"(?:^|\n)[ \t]*(?:[Hh]i|[Hh]ello|[Dd]ear|[Hh]ey)[ \t]+({_WORD})[ \t]*[,!]"),
    re.compile(
        rf"(?:[Rr]egards|[Tt]hanks|[Tt]hank you|[Cc]heers|[Ss]incerely|[Bb]est wishes|[Bb]est)[,!]?[ \t]*\n\s*"
        rf"[-\u2013]?[ \t]*{_CANDIDATE}[ \t]*$"
    ),
    re.compile(rf"\n[ \t]*[-\u2013][ \t]*{_CANDIDATE}[ \t]*$"),
]
# Common words that follow "I'm", "it's", "this is" or a greeting capitalised without being a name.
# General English, not anyone's names: a name that is one of these is missed after a weak cue.
_COMMON = frozenset(
    """
a an the this that these those it its here there where what when who how why which
in on at from with to for of by about as into over after before around near
not no yes very really so just still also only even already now then today tomorrow yesterday
sorry afraid sure glad happy unhappy unable able trying looking writing calling having going getting
interested new back done away moving fine good great well okay ok bad late early ready urgent
hi hello hey dear thanks thank regards cheers best kind sincerely please
sir madam everyone all anyone someone
""".split()
)
_TEAM_WORDS = frozenset(
    "support team customer customers service services care help helpdesk desk sales "
    "shop store online billing accounts department office ltd limited inc llc plc gmbh co".split()
)
_CALENDAR = frozenset(
    w.lower() for w in (*calendar.day_name, *calendar.day_abbr, *calendar.month_name, *calendar.month_abbr) if w
)
_NEXT = re.compile(r"[ \t]*(?:([&+])|([^\W\d_]+))")  # what follows a candidate name


_NAME_WORD = r"[^\W\d_][^\W\d_'\u2019-]+"
_PAIR = re.compile(rf"(?<![\w'\u2019-])(?=({_NAME_WORD})[ \t]+({_NAME_WORD})(?![\w-]))")  # overlapping pairs
_GENDERS = frozenset(("male", "female", "mostly_male", "mostly_female"))


@functools.cache
def _first_names():
    import gender_guesser.detector

    return gender_guesser.detector.Detector(case_sensitive=True)


def _first_name(word: str) -> bool:
    """True when gender-guesser knows `word` as somebody's first name (male, female, or mostly one)."""
    return _first_names().get_gender(word) in _GENDERS


@dataclass(frozen=True)
class Finding:
    kind: str  # a key of PLACEHOLDERS
    start: int  # character offsets in the text searched
    end: int
    text: str


def luhn_valid(digits: str) -> bool:
    """The Luhn check digit of a string of digits (python-stdnum)."""
    from stdnum import luhn

    return luhn.is_valid(digits)


def is_card_number(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    return 13 <= len(digits) <= 19 and bool(_CARD_PREFIX.match(digits)) and luhn_valid(digits)


def is_iban(text: str) -> bool:
    from stdnum import iban

    return iban.is_valid(text)


class Redactor:
    """Finds personal data (module docstring) and replaces it by `PLACEHOLDERS`.

    `keep`: public values never replaced, e.g. the company's email, phone number and name.
    `phone_regions`: ISO country codes whose national numbering plans are tried for numbers
    written without "+"; more regions find more numbers and mistake more ids for phones.
    `kinds`: the kinds of `PLACEHOLDERS` replaced (all by default); e.g. the conversation store
    leaves names alone, because a cue such as "it's" is often followed by a product's name.
    """

    def __init__(
        self,
        keep: Iterable[str] = (),
        phone_regions: Sequence[str] = DEFAULT_PHONE_REGIONS,
        kinds: Iterable[str] = tuple(PLACEHOLDERS),
    ):
        self.kinds = frozenset(kinds)
        if not self.kinds <= set(PLACEHOLDERS):
            raise ValueError(f"unknown kinds {sorted(self.kinds - set(PLACEHOLDERS))}; known: {sorted(PLACEHOLDERS)}")
        keep = [str(v) for v in keep]
        self._keep = {v.strip().lower() for v in keep if v.strip()}
        self._keep_words = {w.lower() for v in keep for w in re.findall(r"[^\W\d_]+", v)}
        self.phone_regions = tuple(phone_regions)

    # ---- names ---------------------------------------------------------------------------
    def _is_name_word(self, word: str) -> bool:
        lower = word.lower()
        return (
            word[0].isupper()
            and not word.isupper()
            and lower not in _COMMON
            and lower not in _CALENDAR
            and lower not in _TEAM_WORDS
            and lower not in self._keep_words
        )

    def names_in(self, texts: Iterable[str]) -> set[str]:
        """Names that a cue gives away, each full name and each part of it longer than two letters."""
        names: set[str] = set()
        for text in texts:
            for cue in _NAME_CUES:
                for match in cue.finditer(text):
                    words = [re.sub(r"['\u2019]s$", "", w) for w in match.group(1).split()]  # "Smith's" -> Smith
                    after = _NEXT.match(text, match.end())
                    if any(w.lower() in _TEAM_WORDS for w in words) or (
                        after and (after.group(1) or after.group(2).lower() in _TEAM_WORDS)
                    ):
                        continue  # part of a company or team name: "this is Acme Support", "Lumen & Oak"
                    parts = []
                    for word in words:
                        if not self._is_name_word(word):
                            break
                        parts.append(word)
                    if parts:
                        names.add(" ".join(parts))
                        names.update(p for p in parts if len(p) > 2)
            for match in _PAIR.finditer(text):
                first, last = match.group(1), match.group(2)
                if self._is_name_word(first) and self._is_name_word(last) and _first_name(first):
                    names.add(f"{first} {last}")
        return names

    # ---- finding -------------------------------------------------------------------------
    def _phones(self, text: str) -> Iterable[tuple[int, int]]:
        if sum(c.isdigit() for c in text) < 6:  # no phone number is shorter; skips most text quickly
            return
        from phonenumbers import Leniency, PhoneNumberMatcher

        for match in PhoneNumberMatcher(text, "ZZ", leniency=Leniency.POSSIBLE):  # "+" numbers only
            yield match.start, match.end
        for region in self.phone_regions:
            for match in PhoneNumberMatcher(text, region, leniency=Leniency.VALID):
                raw = match.raw_string
                if (
                    raw[0] in "0(+"
                    or re.search(r"\d[\s.\-/)]+\d", raw)
                    or _PHONE_CUE.search(text, max(0, match.start - 40), match.start)
                ):
                    yield match.start, match.end

    def find(self, text: str, names: Iterable[str] = ()) -> list[Finding]:
        """Personal data in `text`, in order and never overlapping; `names` are also found wherever
        they occur (names given away elsewhere in the same conversation)."""
        taken: list[tuple[int, int]] = [m.span() for m in _PLACEHOLDER.finditer(text)]
        found: list[Finding] = []

        def add(kind: str, start: int, end: int) -> None:
            value = text[start:end]
            if (
                kind not in self.kinds
                or value.strip().lower() in self._keep
                or any(s < end and start < e for s, e in taken)
            ):
                return
            taken.append((start, end))
            found.append(Finding(kind, start, end, value))

        for m in _EMAIL.finditer(text):
            add("email", *m.span())
        for m in _IBAN.finditer(text):
            if is_iban(m.group(0)):
                add("iban", *m.span())
        for m in _CARD.finditer(text):
            if is_card_number(m.group(0)):
                add("card", *m.span())
        for start, end in self._phones(text):
            add("phone", start, end)
        for pattern in (_ADDRESS, _DE_ADDRESS, _POSTCODE):
            for m in pattern.finditer(text):
                add("address", *m.span())
        names = sorted(set(names), key=len, reverse=True)
        if names:
            for m in re.finditer(r"\b(?:" + "|".join(map(re.escape, names)) + r")\b", text):
                add("name", *m.span())
        return sorted(found, key=lambda f: f.start)

    # ---- replacing -----------------------------------------------------------------------
    def redact(self, text: str, names: Iterable[str] | None = None) -> tuple[str, Counter]:
        """`text` with each finding replaced by its placeholder, and how many of each kind.
        `names`: the names to replace; None finds them in `text` itself."""
        if names is None:
            names = self.names_in([text]) if "name" in self.kinds else ()
        findings = self.find(text, names)
        counts: Counter = Counter(f.kind for f in findings)
        pieces, last = [], 0
        for f in findings:
            pieces += [text[last : f.start], PLACEHOLDERS[f.kind]]
            last = f.end
        pieces.append(text[last:])
        return "".join(pieces), counts

    def redact_conversation(self, texts: Sequence[str]) -> tuple[list[str], Counter]:
        """Each turn redacted; a name given away in one turn is replaced in every turn."""
        names = self.names_in(texts)
        counts: Counter = Counter()
        out = []
        for text in texts:
            redacted, found = self.redact(text, names)
            out.append(redacted)
            counts.update(found)
        return out, counts
