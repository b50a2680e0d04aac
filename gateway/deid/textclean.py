"""Clean Descriptors (PS3.15 E.3.5) and the cleaning of every kept text: identity removed.

A :class:`TextCleaner` is built from an identity (:class:`gateway.identity.Identity`: the
instance's identifying values and what earlier instances of its study and patient taught) and
removes every written form of each value from a text, replacing it by ``***`` and keeping the
rest of the text. For Clean Descriptors text it also removes patterns that identify whatever
their source: dates in common formats (dates in free text are removed, never shifted), telephone
numbers, e-mail addresses and street addresses. Text that still contains an identifying value
after cleaning, or that is not text at all, cannot be cleaned safely (:meth:`TextCleaner.clean`
returns ``None``) and is removed or replaced by a dummy.
"""

from __future__ import annotations

import re

from gateway.identity import OWN_VOCABULARY, Identity, fold, fold_map
from gateway.identity.fold import original_span

Pattern = re.Pattern[str]

REDACTED = "***"
CS_REDACTED = "XXX"  # in a coded string, which allows only A-Z, 0-9, space and underscore
MIN_UID = 3

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


class PatternCache:
    """Compiled patterns of recent identities: the instances of one patient and study share
    names, IDs and dates, so their pattern is compiled once for all of them."""

    def __init__(self, size: int = 256, ignore: frozenset[str] = OWN_VOCABULARY) -> None:
        self._size = size
        self.ignore = ignore
        self._patterns: dict[frozenset[tuple[str, str]], Pattern | None] = {}

    def pattern(self, identity: Identity) -> Pattern | None:
        """Every written form of every value of ``identity``, over folded text."""
        key = identity.key()
        if key in self._patterns:
            return self._patterns[key]
        compiled = identity.pattern(self.ignore)
        if len(self._patterns) >= self._size:
            self._patterns.pop(next(iter(self._patterns)))
        self._patterns[key] = compiled
        return compiled


class TextCleaner:
    """Removes the identifying values of one identity from text, keeping the rest."""

    def __init__(self, identity: Identity, cache: PatternCache | None = None) -> None:
        self._pattern = (cache or PatternCache(1)).pattern(identity)
        self._uids = sorted((u for u in identity.uid if len(u) >= MIN_UID), key=len,
                            reverse=True)  # unique per instance: plain text, no pattern

    def clean(self, value: object, generic: bool = True, redacted: str = REDACTED
              ) -> str | None:
        """The cleaned text, or ``None`` when it cannot be cleaned safely (then it is removed).

        ``generic`` also removes what identifies whatever its source (dates in any written
        form, telephone numbers, e-mail and street addresses): Clean Descriptors text; kept
        text (labels, code meanings) loses the identity's values only.
        """
        if not isinstance(value, str):
            return None
        text = value
        for uid in self._uids:
            if uid in text:
                text = text.replace(uid, REDACTED)
        if self._pattern is not None:
            text = _redact(self._pattern, text, redacted)
        if generic and _DIGIT_OR_AT.search(text):  # every generic pattern needs a digit or "@"
            text = _GENERIC_RE.sub(REDACTED, text)
            text = _PHONE.sub(_phone_or_keep, text)
        if self._pattern is not None and self._pattern.search(fold(text)):
            return None
        return text

    def needs_cleaning(self, text: str) -> bool:
        """Whether :meth:`clean` (without generic patterns) would change ``text``."""
        if any(uid in text for uid in self._uids):
            return True
        return self._pattern is not None and self._pattern.search(fold(text)) is not None


def _redact(pattern: Pattern, text: str, redacted: str = REDACTED) -> str:
    """``text`` with every span that ``pattern`` matches in its folded form replaced."""
    folded, origin = fold_map(text)
    spans = [m.span() for m in pattern.finditer(folded) if m.end() > m.start()]
    if not spans:
        return text
    out: list[str] = []
    last = 0
    for start, end in spans:
        first, stop = original_span(text, origin, start, end)
        if first < last:  # (overlaps cannot come from one finditer; kept safe anyway)
            first = last
        out.append(text[last:first])
        out.append(redacted)
        last = stop
    out.append(text[last:])
    return "".join(out)


def _phone_or_keep(m: re.Match[str]) -> str:
    return REDACTED if sum(c.isdigit() for c in m.group(0)) >= 7 else m.group(0)
