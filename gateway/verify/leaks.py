"""Finding identifying values of the input in the output (case-insensitive, whole words)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from pydicom import Dataset
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag

# VRs whose values are text (PS3.5 6.2); UN is read as text too, as it may hide any of them.
STRING_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI",
     "UN", "UR", "UT"}
)
NUMERIC_TEXT_VRS = frozenset({"DS", "IS"})
MIN_LENGTH = 3


@dataclass(frozen=True)
class Leak:
    """Where an identifying value was found: a tag path like ``(0040,A730)[0]>(0040,A160)``."""

    path: str


_NUMERIC = re.compile(r"[0-9][0-9.]*[0-9]|[0-9]")  # UIDs, dates, numeric IDs


K = TypeVar("K")
V = TypeVar("V")
SequenceKey = tuple[bytes, bool, bool, str]
SEQUENCE_CACHE_BYTES = 8192  # undecoded sequences up to this size are remembered


class VerifyCache:
    """What verify may reuse from one instance to the next: compiled patterns of recent
    identifier sets (the instances of one study share names and IDs; the UIDs and dates of each
    instance are not compiled, see :class:`Matcher`), and the text values found in recent small
    undecoded sequences, by their bytes, encoding and character set (the marker sequences the
    engine writes are the same bytes in every instance)."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._patterns: dict[frozenset[str], re.Pattern[str] | None] = {}
        self._sequences: dict[SequenceKey, list[tuple[str, list[str]]]] = {}

    def pattern(self, values: frozenset[str]) -> re.Pattern[str] | None:
        if values not in self._patterns:
            _bounded_put(self._patterns, values, _compile(values), self._size)
        return self._patterns[values]

    def sequence(self, key: SequenceKey) -> list[tuple[str, list[str]]] | None:
        return self._sequences.get(key)

    def remember(self, key: SequenceKey, found: list[tuple[str, list[str]]]) -> None:
        _bounded_put(self._sequences, key, found, self._size)


def _bounded_put(cache: dict[K, V], key: K, value: V, size: int) -> None:
    if len(cache) >= size:
        cache.pop(next(iter(cache)))
    cache[key] = value


def _compile(values: Iterable[str]) -> re.Pattern[str] | None:
    ordered = sorted(values, key=len, reverse=True)
    if not ordered:
        return None
    body = "|".join(re.escape(v) for v in ordered)
    return re.compile(rf"(?<![0-9A-Za-z])(?:{body})(?![0-9A-Za-z])", re.IGNORECASE)


class Matcher:
    """Whether a text holds one of the identifiers as a whole word, ignoring case.

    Numeric identifiers (UIDs, dates) are looked for as plain substrings with the same
    boundaries, since case does not apply to them; they differ with every instance, and
    compiling them into the pattern would cost more than the whole search.
    """

    def __init__(self, identifiers: Iterable[str], cache: VerifyCache | None = None) -> None:
        values = {v.strip() for v in identifiers if len(v.strip()) >= MIN_LENGTH}
        self.numeric = sorted(v for v in values if _NUMERIC.fullmatch(v))
        words = frozenset(values.difference(self.numeric))
        self.pattern = cache.pattern(words) if cache is not None else _compile(words)

    def __bool__(self) -> bool:
        return self.pattern is not None or bool(self.numeric)

    def candidates(self, texts: Iterable[str]) -> list[str]:
        """The numeric identifiers that occur anywhere in ``texts`` at all."""
        joined = "\n".join(texts)
        return [v for v in self.numeric if v in joined]

    def search(self, text: str, numeric: list[str]) -> bool:
        if self.pattern is not None and self.pattern.search(text):
            return True
        return any(_bounded(text, v) for v in numeric)


def _bounded(text: str, value: str) -> bool:
    """``value`` occurs in ``text`` between characters that are not ASCII letters or digits."""
    start = text.find(value)
    while start >= 0:
        end = start + len(value)
        if not (start and _alnum(text[start - 1])) and not (end < len(text) and _alnum(text[end])):
            return True
        start = text.find(value, start + 1)
    return False


def _alnum(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


def _texts(elem: DataElement) -> Iterator[str]:
    value = elem.value
    if value is None:
        return
    if isinstance(value, bytes):
        yield value.decode("latin-1")
        return
    if isinstance(value, MultiValue | list | tuple):
        for v in value:
            yield v.decode("latin-1") if isinstance(v, bytes) else str(v)
        return
    yield str(value)  # str, PersonName, UID, numbers


def _raw_text(elem: DataElement | RawDataElement | None) -> str | None:
    """The whole value of an undecoded element of a string VR whose bytes are plain ASCII (the
    same text in every character set), values and padding included; "" for an undecoded binary
    element; None when the element must be decoded (no VR, UN, a sequence, other bytes).

    Each decoded value is a part of this text between separators or padding, which are not
    letters or digits, so the pattern matches the text wherever it matches a value."""
    if not isinstance(elem, RawDataElement) or elem.VR in (None, "UN", "SQ"):
        return None
    if elem.VR not in STRING_VRS:
        return ""
    value = elem.value
    if value is None or not value.isascii() or b"\x1b" in value:
        return None
    return value.decode("ascii")


def _walk(ds: Dataset, prefix: str, charset: str, cache: VerifyCache | None
          ) -> Iterator[tuple[str, list[str]]]:
    """The path and text values of every string element of ``ds``, at every depth; ``charset``
    is the Specific Character Set in force (an item inherits its parent's, PS3.5 7.5.3)."""
    own = ds.get_item(0x00080005, keep_deferred=True)
    if own is not None:
        charset = repr(ds[0x00080005].value)
    for tag in list(ds.keys()):
        path = f"{prefix}({tag.group:04X},{tag.element:04X})"
        raw = ds.get_item(tag, keep_deferred=True)
        text = _raw_text(raw)
        if text is not None:  # read without decoding the element
            if text:
                yield path, [text]
            continue
        key = _sequence_key(raw, charset) if cache is not None else None
        found = cache.sequence(key) if cache is not None and key is not None else None
        if found is None:
            found = list(_element(ds, tag, charset, cache))
            if cache is not None and key is not None:
                cache.remember(key, found)
        for suffix, texts in found:
            yield path + suffix, texts


def _element(ds: Dataset, tag: BaseTag, charset: str, cache: VerifyCache | None
             ) -> Iterator[tuple[str, list[str]]]:
    """The text values of one element decoded, relative to its path."""
    elem = ds[tag]
    if elem.VR == "SQ":
        for i, item in enumerate(elem.value or ()):
            yield from _walk(item, f"[{i}]>", charset, cache)
    elif elem.VR in STRING_VRS:
        yield "", list(_texts(elem))


def _sequence_key(elem: DataElement | RawDataElement | None, charset: str) -> SequenceKey | None:
    if (isinstance(elem, RawDataElement) and elem.VR == "SQ" and elem.value is not None
            and len(elem.value) <= SEQUENCE_CACHE_BYTES):
        return (elem.value, bool(elem.is_implicit_VR), bool(elem.is_little_endian), charset)
    return None


def find_leaks(ds: Dataset, identifiers: Iterable[str], cache: VerifyCache | None = None
               ) -> list[Leak]:
    """Every place in ``ds`` (file meta included) where an identifying value occurs."""
    matcher = Matcher(identifiers, cache)
    if not matcher:
        return []
    elements = list(_walk(ds, "", "", cache))
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        elements.extend(_walk(meta, "", "", cache))
    numeric = matcher.candidates(t for _, texts in elements for t in texts)
    return [Leak(path) for path, texts in elements
            if any(matcher.search(t, numeric) for t in texts)]
