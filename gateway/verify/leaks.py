"""Finding identifying values of the input in the output (case-insensitive, whole words)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pydicom import Dataset
from pydicom.dataelem import DataElement
from pydicom.multival import MultiValue

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


def _matcher(identifiers: Iterable[str]) -> re.Pattern[str] | None:
    values = sorted({v.strip() for v in identifiers if len(v.strip()) >= MIN_LENGTH},
                    key=len, reverse=True)
    if not values:
        return None
    body = "|".join(re.escape(v) for v in values)
    return re.compile(rf"(?<![0-9A-Za-z])(?:{body})(?![0-9A-Za-z])", re.IGNORECASE)


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


def _walk(ds: Dataset, prefix: str, pattern: re.Pattern[str]) -> Iterator[Leak]:
    for tag in list(ds.keys()):
        elem = ds[tag]
        path = f"{prefix}({tag.group:04X},{tag.element:04X})"
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value or ()):
                yield from _walk(item, f"{path}[{i}]>", pattern)
            continue
        if elem.VR not in STRING_VRS:
            continue
        if any(pattern.search(text) for text in _texts(elem)):
            yield Leak(path)


def find_leaks(ds: Dataset, identifiers: Iterable[str]) -> list[Leak]:
    """Every place in ``ds`` (file meta included) where an identifying value occurs."""
    pattern = _matcher(identifiers)
    if pattern is None:
        return []
    leaks = list(_walk(ds, "", pattern))
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        leaks.extend(_walk(meta, "", pattern))
    return leaks
