"""Clean Descriptors (PS3.15 E.3.5): free text kept only once every identifying value is gone.

The identifying values of the *same instance* (names in any order or case, IDs, dates, UIDs,
addresses) are collected while the instance is walked (:class:`Identifiers`); a
:class:`TextCleaner` built from them removes each one from a free-text value, together with
patterns that identify whatever their source: dates in common formats (dates in free text are
removed, never shifted), telephone numbers, e-mail addresses and street addresses. Text that
still contains an identifying value after cleaning, or that is not text at all, cannot be cleaned
safely and is removed (:meth:`TextCleaner.clean` returns ``None``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

Pattern = re.Pattern[str]

REDACTED = "***"
MIN_TOKEN = 2  # shortest name component removed from free text (word-bounded)
MIN_IDENTIFIER = 3  # shortest value handed to the verify stage

_MONTHS = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|Jun(?:e)?|Jul(?:y)?|Aug(?:ust)?|"
    r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_GENERIC = [
    # ISO and numeric dates: 2021-03-04, 2021/3/4, 04.03.2021, 3/4/21, 20210304.
    r"\b\d{4}[-/.]\d{1,2}[-/.]\d{1,2}\b",
    r"\b\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}\b",
    r"\b(?:1[89]|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\b",
    # Written dates: 4 March 2021, 4th Mar. 2021, March 4, 2021, Mar 2021.
    rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTHS}\.?,?\s+\d{{2,4}}\b",
    rf"\b{_MONTHS}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{2,4}}\b",
    rf"\b{_MONTHS}\.?\s+\d{{4}}\b",
    # E-mail addresses.
    r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b",
    # Street addresses: 12 Main Street, 4b Elm Rd.
    r"\b\d+[a-zA-Z]?\s+(?:[A-Z][\w'-]*\s+){1,3}(?:Street|St|Road|Rd|Avenue|Ave|Lane|Ln|Drive|Dr|"
    r"Boulevard|Blvd|Way|Court|Ct|Place|Pl|Square|Sq)\b\.?",
]
# Telephone numbers and long numeric identifiers: at least seven digits with separators.
_PHONE = re.compile(r"\+?\(?\d[\d\s().\-/]{5,}\d")
_GENERIC_RE = re.compile("|".join(f"(?:{p})" for p in _GENERIC), re.IGNORECASE)
_DIGIT_OR_AT = re.compile(r"[\d@]")
_SPLIT_PN = re.compile(r"[\^=,\s]+")
_SPLIT_ADDRESS = re.compile(r"[\^,;\n\r]+")


@dataclass
class Identifiers:
    """Identifying values of one input instance, by kind, as the walk finds them."""

    names: set[str] = field(default_factory=set)
    name_tokens: set[str] = field(default_factory=set)
    ids: set[str] = field(default_factory=set)
    dates: set[str] = field(default_factory=set)
    uids: set[str] = field(default_factory=set)

    def add_name(self, value: str) -> None:
        text = value.strip()
        if not text:
            return
        self.names.add(text)
        tokens = [t for t in _SPLIT_PN.split(text) if len(t) >= MIN_TOKEN]
        self.name_tokens.update(tokens)
        if len(tokens) >= 2:
            self.names.add(" ".join(tokens))
            self.names.add(" ".join(reversed(tokens)))

    def add_id(self, value: str) -> None:
        text = value.strip()
        if len(text) >= MIN_TOKEN:
            self.ids.add(text)
        for part in _SPLIT_ADDRESS.split(text):
            if len(part.strip()) >= MIN_IDENTIFIER:
                self.ids.add(part.strip())

    def add_date(self, value: str) -> None:
        text = value.strip()
        if len(text) >= 8 and text[:8].isdigit():
            self.dates.add(text[:8])

    def add_uid(self, value: str) -> None:
        if value:
            self.uids.add(value.strip())

    def for_verify(self) -> set[str]:
        """Every value long enough to be checked in the output by the verify stage."""
        tokens = {t for t in self.name_tokens if len(t) >= MIN_IDENTIFIER}
        values = self.names | self.ids | self.dates | self.uids | tokens
        return {v for v in values if len(v) >= MIN_IDENTIFIER}


def _literal(values: Iterable[str]) -> list[str]:
    return [re.escape(v) for v in sorted(set(values), key=len, reverse=True) if v]


class PatternCache:
    """Compiled patterns of recent identifier sets: the instances of one patient and study share
    names, IDs and dates, so the patterns are compiled once for all of them."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._patterns: dict[frozenset[str], tuple[Pattern | None, Pattern | None]] = {}

    def pattern(self, found: Identifiers) -> Pattern | None:
        """What :class:`TextCleaner` removes: the instance's names, IDs and dates."""
        return self.patterns(found)[0]

    def patterns(self, found: Identifiers) -> tuple[Pattern | None, Pattern | None]:
        """The pattern to remove and the pattern of what must not remain (UIDs apart)."""
        key = frozenset(found.names | found.ids | found.dates) | frozenset(
            "\x00" + t for t in found.name_tokens
        )
        cached = self._patterns.get(key)
        if cached is not None:
            return cached
        literals = _literal(found.names | found.ids | _date_forms(found.dates))
        words = _literal(found.name_tokens)
        parts = [*literals, *(rf"\b{w}\b" for w in words)]
        specific = re.compile("|".join(parts), re.IGNORECASE) if parts else None
        compiled = (specific, _residue_pattern(found.for_verify() - found.uids))
        if len(self._patterns) >= self._size:
            self._patterns.pop(next(iter(self._patterns)))
        self._patterns[key] = compiled
        return compiled


def _residue_pattern(values: Iterable[str]) -> Pattern | None:
    """Any of ``values`` (lowered) as a whole word: not next to a letter or digit, which is
    ``str.isalnum`` (``[^\\W_]``), the test of :func:`_contains_word`."""
    needles = sorted({v.lower() for v in values}, key=len, reverse=True)
    if not needles:
        return None
    body = "|".join(re.escape(n) for n in needles)
    return re.compile(rf"(?<![^\W_])(?:{body})(?![^\W_])")


class TextCleaner:
    """Removes the identifying values of one instance from free text."""

    def __init__(self, found: Identifiers, cache: PatternCache | None = None) -> None:
        self._specific, self._residue = (cache or PatternCache(1)).patterns(found)
        self._uids = sorted(found.uids, key=len, reverse=True)  # unique per instance: no regex
        self._uid_residue = [u.lower() for u in found.uids if len(u) >= MIN_IDENTIFIER]

    def clean(self, value: object) -> str | None:
        """The cleaned text, or ``None`` when it cannot be cleaned safely (then it is removed)."""
        if not isinstance(value, str):
            return None
        text = value
        for uid in self._uids:
            if uid in text:
                text = text.replace(uid, REDACTED)
        if self._specific is not None:
            text = self._specific.sub(REDACTED, text)
        if _DIGIT_OR_AT.search(text):  # every generic pattern needs a digit or an "@"
            text = _GENERIC_RE.sub(REDACTED, text)
            text = _PHONE.sub(_phone_or_keep, text)
        lowered = text.lower()
        if self._residue is not None and self._residue.search(lowered):
            return None
        if any(_contains_word(lowered, u) for u in self._uid_residue):
            return None
        return text


def _contains_word(text: str, needle: str) -> bool:
    start = text.find(needle)
    while start >= 0:
        end = start + len(needle)
        before = text[start - 1] if start else " "
        after = text[end] if end < len(text) else " "
        if not before.isalnum() and not after.isalnum():
            return True
        start = text.find(needle, start + 1)
    return False


def _phone_or_keep(m: re.Match[str]) -> str:
    return REDACTED if sum(c.isdigit() for c in m.group(0)) >= 7 else m.group(0)


def _date_forms(dates: Iterable[str]) -> set[str]:
    """A YYYYMMDD date written in the common ways a person would type it."""
    out = set()
    for d in dates:
        y, m, dd = d[:4], d[4:6], d[6:8]
        out.update({d, f"{y}-{m}-{dd}", f"{dd}/{m}/{y}", f"{m}/{dd}/{y}", f"{dd}.{m}.{y}"})
        out.update({f"{int(dd)}/{int(m)}/{y}", f"{int(m)}/{int(dd)}/{y}"})
    return out
