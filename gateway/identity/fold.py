"""Folding: the one normalisation of text that the cleaner and the verify stage share.

A name is written in many ways in real hospital data: with or without its diacritics, in any
case, in full-width forms, with a ligature or a letter that Unicode does not decompose. Both users
of the identity model compare *folded* text: NFKD, combining marks dropped, the letters NFKD does
not split mapped by hand (ß, ø, ł, æ, œ, đ, dotless i, þ, ð, ħ, ŧ), then case-folded.
Separators are kept (the patterns of :mod:`gateway.identity.variants` match them), so that
positions in the folded text map back to the original (:func:`fold_map`), which is what lets the
cleaner remove a name from text and keep the rest.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

# Letters that NFKD leaves whole, written as the letters a person types without them.
SPECIAL = {
    "ß": "ss", "ẞ": "ss", "ø": "o", "Ø": "o", "ł": "l", "Ł": "l", "æ": "ae", "Æ": "ae",
    "œ": "oe", "Œ": "oe", "đ": "d", "Đ": "d", "\u0131": "i", "þ": "th", "Þ": "th", "ð": "d",
    "Ð": "d", "ħ": "h", "Ħ": "h", "ŧ": "t", "Ŧ": "t", "ŋ": "n", "Ŋ": "n", "ĸ": "k",
    "\u2019": "'", "\u2018": "'", "\u02bc": "'",  # typographic apostrophes
}


@lru_cache(maxsize=8192)
def fold_char(ch: str) -> str:
    """The folded form of one character: "" for a combining mark, one or more characters else."""
    special = SPECIAL.get(ch)
    if special is not None:
        return special
    if unicodedata.combining(ch):
        return ""
    decomposed = unicodedata.normalize("NFKD", ch)
    kept = "".join(c for c in decomposed if not unicodedata.combining(c))
    return "".join(SPECIAL.get(c, c) for c in kept).casefold()


def fold(text: str) -> str:
    """``text`` folded (ASCII text is only lowered: the common case costs one call)."""
    if text.isascii():
        return text.lower()
    return "".join(map(fold_char, text))


def fold_map(text: str) -> tuple[str, list[int] | None]:
    """``text`` folded, and where each folded character came from in ``text`` (None when the
    folding kept every position, as it does for ASCII)."""
    if text.isascii():
        return text.lower(), None
    parts: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        folded = fold_char(ch)
        parts.append(folded)
        origin.extend([i] * len(folded))
    return "".join(parts), origin


def original_span(text: str, origin: list[int] | None, start: int, end: int) -> tuple[int, int]:
    """The span of ``text`` that the folded span ``start:end`` came from, with the combining
    marks that follow its last character (they belong to it)."""
    if origin is None:
        return start, end
    first = origin[start]
    last = origin[end - 1] + 1
    while last < len(text) and not fold_char(text[last]):
        last += 1
    return first, last


def squash(text: str) -> str:
    """Folded letters and digits only: the form in which two spellings of one value compare."""
    return "".join(c for c in fold(text) if c.isalnum())
