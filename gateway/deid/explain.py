"""``explain``: what a profile does to each attribute of one file, for an operator's audit.

Each line gives the attribute, the action code applied and where it came from, and the class of
the old and new value (``name``, ``date``, ``uid``, ``text(12)``, ``removed`` ...). Values are
shown only with ``show_values``; pseudonyms shown come from a throw-away key, not the store.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from pydicom import Dataset
from pydicom.datadict import keyword_for_tag
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence

from gateway.deid.actions import REMOVED
from gateway.deid.engine import Deidentifier
from gateway.pipeline.stage import StageContext
from gateway.pseudonyms.interface import InMemoryPseudonymizer

_CLASS_BY_VR = {"PN": "name", "DA": "date", "DT": "datetime", "TM": "time", "UI": "uid",
                "AE": "ae-title", "AS": "age"}


def value_class(vr: str, value: Any) -> str:
    """A description of a value that does not reveal it."""
    if value is REMOVED:
        return "removed"
    if value is None or value == "" or (isinstance(value, list | DicomSequence) and not value):
        return "empty"
    if isinstance(value, DicomSequence):
        return f"sequence({len(value)} items)"
    if isinstance(value, bytes):
        return f"binary({len(value)} bytes)"
    if isinstance(value, MultiValue | list):
        return f"{value_class(vr, value[0])} x{len(value)}"
    if vr in _CLASS_BY_VR:
        return _CLASS_BY_VR[vr]
    if isinstance(value, str):
        return f"text({len(value)})"
    return "number"


def _shown(value: Any) -> str:
    if value is REMOVED:
        return "-"
    if isinstance(value, bytes | DicomSequence):
        return "..."
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _path(path: tuple[int, ...], tag: int) -> str:
    return ">".join(f"({t >> 16:04X},{t & 0xFFFF:04X})" for t in (*path, tag))


def explain_lines(engine: Deidentifier, ds: Dataset, show_values: bool = False) -> Iterator[str]:
    """De-identify ``ds`` (in place, with a throw-away pseudonym key) and describe each action."""
    rows: list[tuple[str, ...]] = []

    def record(path: tuple[int, ...], tag: int, vr: str, code: str, source: str,
               old: Any, new: Any) -> None:
        keyword = keyword_for_tag(tag) or ("private" if (tag >> 16) & 1 else "?")
        change = f"{value_class(vr, old)} -> {value_class(vr, new)}"
        if show_values:
            change += f"  [{_shown(old)} -> {_shown(new)}]"
        rows.append((_path(path, tag), keyword, vr, code, source, change))

    throwaway = Deidentifier(engine.compiled, InMemoryPseudonymizer(os.urandom(32)), engine.iod)
    throwaway.apply(ds, StageContext(job_id="explain"), record=record)
    yield f"profile {engine.compiled.version} (pseudonyms shown are from a throw-away key)"
    for row in sorted(rows):
        yield "{:<40} {:<36} {:<3} {:<6} {:<34} {}".format(*row)
