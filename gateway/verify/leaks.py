"""Finding identifying values of the input in the output, in any written form.

The output's text values are folded (:mod:`gateway.identity.fold`) and searched with the
fragments of every written form of the identity's values (:mod:`gateway.identity.variants`);
original UIDs are searched as plain text.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

from pydicom import Dataset
from pydicom.charset import decode_bytes
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag

from gateway.identity import OWN_VOCABULARY, Identity, fold
from gateway.identity.benign import (
    BENIGN_TAGS,
    CODE_MEANING,
    CODE_VALUE,
    CODING_SCHEME_DESIGNATOR,
    LABEL_CODE_STRINGS,
    LONG_CODE_VALUE,
    URN_CODE_VALUE,
    is_standard_meaning,
)
from gateway.identity.variants import compile_fragments

# VRs whose values are text (PS3.5 6.2); UN is read as text too, as it may hide any of them.
STRING_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI",
     "UN", "UR", "UT"}
)
# Numbers (DS, IS): a match that reads as a plain number of fewer digits is a number there
# (a window width of 1024, an ID "1024"); an ID with letters or a long one still counts.
NUMBER_VRS = frozenset({"DS", "IS"})
PLAIN_NUMBER = re.compile(r"[+-]?\d{1,5}(?:\.\d*)?")
MIN_UID = 3
# Text the gateway writes about its own work (PS3.3 C.12.1): Deidentification Method (replaced
# whole) and the Contribution Description of its Contributing Equipment item. A word of a
# patient's name that is also a word there ("Basic", a site profile's name) is not a leak.
OWN_TEXT = frozenset({0x00120063, 0x0018A003})
_WORDS = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class Leak:
    """Where an identifying value was found: a tag path like ``(0040,A730)[0]>(0040,A160)``."""

    path: str


K = TypeVar("K")
V = TypeVar("V")
SequenceKey = tuple[bytes, bool, bool, str]
SEQUENCE_CACHE_BYTES = 8192  # undecoded sequences up to this size are remembered


class VerifyCache:
    """What verify may reuse from one instance to the next: compiled patterns of recent
    identities (the instances of one study share names and IDs; the UIDs of each instance are
    not compiled, see :class:`Matcher`), and the text values found in recent small undecoded
    sequences, by their bytes, encoding and character set (the marker sequences the engine
    writes are the same bytes in every instance)."""

    def __init__(self, size: int = 256, ignore: frozenset[str] = OWN_VOCABULARY) -> None:
        self._size = size
        self.ignore = ignore
        self._patterns: dict[frozenset[tuple[str, str]], re.Pattern[str] | None] = {}
        self._sequences: dict[SequenceKey, list[tuple[str, list[str]]]] = {}

    def pattern(self, identity: Identity) -> re.Pattern[str] | None:
        key = identity.key()
        if key not in self._patterns:
            _bounded_put(self._patterns, key, _compile(identity, self.ignore), self._size)
        return self._patterns[key]

    def sequence(self, key: SequenceKey) -> list[tuple[str, list[str]]] | None:
        return self._sequences.get(key)

    def remember(self, key: SequenceKey, found: list[tuple[str, list[str]]]) -> None:
        _bounded_put(self._sequences, key, found, self._size)


def _bounded_put(cache: dict[K, V], key: K, value: V, size: int) -> None:
    if len(cache) >= size:
        cache.pop(next(iter(cache)))
    cache[key] = value


def _compile(identity: Identity, ignore: frozenset[str]) -> re.Pattern[str] | None:
    return compile_fragments(identity.fragments(ignore))


class Matcher:
    """Where a text holds one of the identity's values, in any written form (folded text).

    Original UIDs are looked for as plain substrings between characters that are not letters
    or digits; they differ with every instance, and compiling them into the pattern would cost
    more than the whole search.
    """

    def __init__(self, identity: Identity, cache: VerifyCache | None = None) -> None:
        self.uids = sorted(u for u in identity.uid if len(u) >= MIN_UID)
        self.pattern = (cache.pattern(identity) if cache is not None
                        else _compile(identity, OWN_VOCABULARY))

    def __bool__(self) -> bool:
        return self.pattern is not None or bool(self.uids)

    def candidates(self, texts: Iterable[str]) -> list[str]:
        """The UIDs that occur anywhere in ``texts`` at all."""
        joined = "\n".join(texts)
        return [v for v in self.uids if v in joined]

    def scan(self, elements: list[tuple[str, list[str]]]) -> Iterator[tuple[str, list[str]]]:
        """Each element (path, texts) with what matched in it. The texts of all elements but
        UI ones are folded and searched as one text, a line each (one search per instance,
        not per value); a match that runs across two lines is looked for again in each."""
        uids = self.candidates(t for _, texts in elements for t in texts)
        vrs = [_dictionary_vr(_tag_of(path)) for path, _ in elements]
        found: list[list[str]] = [[] for _ in elements]
        if self.pattern is not None:
            self._scan_joined(elements, vrs, found)
        for i, (path, texts) in enumerate(elements):
            hits = found[i]
            hits.extend(u for t in texts for u in uids if _bounded(t, u))
            if vrs[i] in NUMBER_VRS:
                hits = [h for h in hits if not PLAIN_NUMBER.fullmatch(h.strip())]
            yield path, hits

    def _scan_joined(self, elements: list[tuple[str, list[str]]], vrs: list[str],
                     found: list[list[str]]) -> None:
        assert self.pattern is not None
        owners: list[int] = []
        starts: list[int] = []
        lines: list[str] = []
        at = 0
        for i, (_path, texts) in enumerate(elements):
            if vrs[i] == "UI":
                continue
            for text in texts:
                line = fold(text)
                owners.append(i)
                starts.append(at)
                lines.append(line)
                at += len(line) + 1
        joined = "\n".join(lines)
        again: set[int] = set()
        for m in self.pattern.finditer(joined):
            first = bisect_right(starts, m.start()) - 1
            last = bisect_right(starts, m.end() - 1) - 1
            if first == last:
                found[owners[first]].append(m.group(0))
            else:  # across lines: not a match of either; look in each line alone
                again.update(range(first, last + 1))
        for k in sorted(again):
            found[owners[k]].extend(x.group(0) for x in self.pattern.finditer(lines[k]))


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


def _texts(elem: DataElement, encodings: list[str] | None = None) -> Iterator[str]:
    """The text values of a decoded element; bytes (UN) are read as Latin-1 and, when the
    instance has another character set, in that one too (either reading may show a name)."""
    value = elem.value
    if value is None:
        return
    if isinstance(value, bytes):
        yield from _byte_texts(value, encodings)
        return
    if isinstance(value, MultiValue | list | tuple):
        for v in value:
            if isinstance(v, bytes):
                yield from _byte_texts(v, encodings)
            else:
                yield str(v)
        return
    yield str(value)  # str, PersonName, UID, numbers


def _encodings(ds: Dataset) -> list[str]:
    """The Python encodings of the character set in force in ``ds`` (inherited by items)."""
    found = ds._character_set
    return [found] if isinstance(found, str) else list(found)


def _byte_texts(value: bytes, encodings: list[str] | None) -> Iterator[str]:
    latin = value.decode("latin-1")
    yield latin
    if encodings and not value.isascii():
        other = decode_bytes(value, encodings, set())
        if other != latin:
            yield other


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


@lru_cache(maxsize=8192)
def _fmt(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _walk(ds: Dataset, prefix: str, charset: str, cache: VerifyCache | None
          ) -> Iterator[tuple[str, list[str]]]:
    """The path and text values of every string element of ``ds``, at every depth; ``charset``
    is the Specific Character Set in force (an item inherits its parent's, PS3.5 7.5.3)."""
    own = ds.get_item(0x00080005, keep_deferred=True)
    if own is not None:
        charset = repr(ds[0x00080005].value)
    for tag, raw in list(ds._dict.items()):  # (as stored: raw elements stay undecoded)
        text = _raw_text(raw)
        if text is not None:  # read without decoding the element
            if text:
                yield prefix + _fmt(tag), [text]
            continue
        path = prefix + _fmt(tag)
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
        yield "", list(_texts(elem, _encodings(ds) if elem.VR == "UN" else None))


def _sequence_key(elem: DataElement | RawDataElement | None, charset: str) -> SequenceKey | None:
    if (isinstance(elem, RawDataElement) and elem.VR == "SQ" and elem.value is not None
            and len(elem.value) <= SEQUENCE_CACHE_BYTES):
        return (elem.value, bool(elem.is_implicit_VR), bool(elem.is_little_endian), charset)
    return None


def find_leaks(ds: Dataset, identity: Identity, cache: VerifyCache | None = None,
               benign: bool = True, kept_vrs: frozenset[str] = frozenset()) -> list[Leak]:
    """Every place in ``ds`` (file meta included) where a value of ``identity`` occurs.

    With ``benign`` (the verify stage's rule), a match inside a benign element is not counted
    when it is one word, or a phrase of several that is not the form of a name, ID, date or
    telephone number (:func:`_excused`), and no match in a code meaning that is the standard's
    own for its code is counted. Benign elements are those a profile keeps and that identify no
    one (:func:`benign_kind`): Manufacturer, Image Type and every other coded string, code
    values, and values of the VRs ``kept_vrs`` that the profile keeps as they came (DA and DT
    when full dates are retained, UI when UIDs are). A match anywhere else always counts.
    """
    matcher = Matcher(identity, cache)
    if not matcher:
        return []
    elements = list(_walk(ds, "", "", cache))
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        elements.extend(_walk(meta, "", "", cache))
    found = [(path, hits) for path, hits in matcher.scan(elements) if hits]
    if not found or not benign:
        return [Leak(path) for path, _ in found]
    by_path = dict(elements)
    strict = _strict_pattern(identity, cache)
    return [Leak(path) for path, hits in found if not _all_excused(
        hits, benign_kind(path, by_path, kept_vrs), strict)]


def _all_excused(hits: list[str], kind: str, strict: re.Pattern[str] | None) -> bool:
    if kind == "standard":
        return True  # the standard's own text for its code: whatever it resembles
    return kind == "benign" and all(_excused(h, strict) for h in hits)


def _excused(hit: str, strict: re.Pattern[str] | None) -> bool:
    """One word, or a phrase that is not a name, ID, date or phone number of several words."""
    return len(_WORDS.findall(hit)) <= 1 or strict is None or not strict.fullmatch(hit)


def _strict_pattern(identity: Identity, cache: VerifyCache | None) -> re.Pattern[str] | None:
    """The forms of every value but phrases: what a benign element never excuses whole."""
    strict = Identity(name=set(identity.name), id=set(identity.id), date=set(identity.date),
                      phone=set(identity.phone))
    return cache.pattern(strict) if cache is not None else _compile(strict, OWN_VOCABULARY)


def benign_kind(path: str, texts: dict[str, list[str]], kept_vrs: frozenset[str] = frozenset()
                ) -> str:
    """Whether the element at ``path`` is one a profile keeps and that identifies no one:
    "standard" for a code meaning that is the standard's own for the code beside it (``texts``:
    the text values by path); "benign" for a coded string (CS), an attribute of
    :data:`gateway.identity.benign.BENIGN_TAGS` or a value of a VR the profile keeps as it came;
    "" for every other element."""
    tag = _tag_of(path)
    if tag == CODE_MEANING:
        meanings = texts.get(path, [])
        return "standard" if meanings and all(_standard(texts, path, t) for t in meanings) else ""
    if tag in LABEL_CODE_STRINGS:
        return ""
    if tag in BENIGN_TAGS or tag in OWN_TEXT or _dictionary_vr(tag) in kept_vrs | {"CS"}:
        return "benign"
    return ""


def _standard(texts: dict[str, list[str]], path: str, meaning: str) -> bool:
    """The code meaning at ``path`` is the standard's own for the code beside it."""
    def sibling(tag: int) -> str:
        found = texts.get(f"{path[:-11]}({tag >> 16:04X},{tag & 0xFFFF:04X})")
        return found[0].strip(" \0") if found else ""

    code = sibling(CODE_VALUE) or sibling(LONG_CODE_VALUE) or sibling(URN_CODE_VALUE)
    return is_standard_meaning(sibling(CODING_SCHEME_DESIGNATOR), code, meaning.strip(" \0"))


def _tag_of(path: str) -> int:
    """The tag of the element at ``path`` (its last ``(gggg,eeee)``)."""
    return int(path[-10:-6] + path[-5:-1], 16)


@lru_cache(maxsize=4096)
def _dictionary_vr(tag: int) -> str:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return ""
