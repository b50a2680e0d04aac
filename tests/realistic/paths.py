"""Attribute paths of the truth, and how to find the element a path names in a dataset.

A path is components joined by ``>``: a DICOM keyword (``StudyDescription``), a sequence item
(``ContentSequence[2]``), a public tag that has no keyword (``(0018,9999)``) or a private element
named by its group, creator and element byte (``(0029,"ACME RIS 1.0",10)``), which does not
depend on the block the creator happens to sit in.
"""

from __future__ import annotations

import re

from pydicom import Dataset
from pydicom.dataelem import DataElement

_ITEM = re.compile(r"^(.*)\[(\d+)\]$")
_PRIVATE = re.compile(r'^\(([0-9A-Fa-f]{4}),"([^"]*)",([0-9A-Fa-f]{2})\)$')
_TAG = re.compile(r"^\(([0-9A-Fa-f]{4}),([0-9A-Fa-f]{4})\)$")


def private(group: int, creator: str, element: int) -> str:
    return f'({group:04X},"{creator}",{element:02X})'


def public(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def generic(path: str) -> str:
    """The path without item numbers (``ContentSequence>TextValue``), for summaries."""
    return re.sub(r"\[\d+\]", "", path)


def _element(ds: Dataset, name: str) -> DataElement | None:
    m = _PRIVATE.match(name)
    if m:
        group, creator, elem = int(m[1], 16), m[2], int(m[3], 16)
        try:
            block = ds.private_block(group, creator)
        except KeyError:
            return None
        return _get(ds, block.get_tag(elem))
    m = _TAG.match(name)
    if m:
        return _get(ds, (int(m[1], 16) << 16) | int(m[2], 16))
    return ds.data_element(name)


def _get(ds: Dataset, tag: int) -> DataElement | None:
    try:
        return ds[tag]
    except KeyError:
        return None


def resolve(ds: Dataset, path: str) -> DataElement | None:
    """The element ``path`` names in ``ds``, or None where any step is missing."""
    current: Dataset = ds
    parts = path.split(">")
    for i, part in enumerate(parts):
        m = _ITEM.match(part)
        name, index = (m[1], int(m[2])) if m else (part, None)
        elem = _element(current, name)
        if elem is None:
            return None
        if index is None:
            return elem if i == len(parts) - 1 else None
        items = elem.value or []
        if elem.VR != "SQ" or index >= len(items):
            return None
        current = items[index]
    return None
