"""The engine's fast path: the actions of :mod:`gateway.deid.actions` applied to raw elements.

For an undecoded element of a string VR whose value bytes are plain ASCII (:mod:`gateway.deid.raw`),
the original values are read from its bytes and the replacement is stored as a new raw element
with pre-encoded bytes, so that pydicom neither decodes, validates nor re-encodes it, and a kept
element is never touched. Each handler mirrors its counterpart in :mod:`gateway.deid.actions`
(PS3.15 Table E.1-1a action codes) and returns False, before changing the dataset, wherever the
decoded path must do the work: sequences, binary and numeric VRs, text that is not ASCII,
structured content and graphic annotation text. Tests check that both paths give byte-identical
output files.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pydicom import Dataset
from pydicom.dataelem import RawDataElement
from pydicom.tag import BaseTag

from gateway.deid import raw, values
from gateway.deid.actions import (
    ACCESSION_NUMBER,
    CODE_MEANING,
    MAX_LENGTH,
    PATIENT_ID,
    PATIENT_NAME,
    STUDY_ID,
    TEXT_CLEANABLE,
    TEXT_VALUE,
    UNFORMATTED_TEXT_VALUE,
    collect_values,
    queue_kept_text,
    resolve_compound,
)
from gateway.deid.knownsafe import DATE_VRS
from gateway.deid.options import Option
from gateway.deid.textclean import CS_REDACTED, REDACTED, TextCleaner

if TYPE_CHECKING:
    from gateway.deid.compiled import Rule
    from gateway.deid.engine import Run

# What a handler leaves: new value bytes, or REMOVE, or KEEP; FALLBACK hands over to the
# decoded path (nothing was changed).
REMOVE, KEEP, FALLBACK = object(), object(), object()
Result = bytes | object
Handler = Callable[["Run", int, str, list[str], tuple[int, ...]], Result]

TIMEZONE_OFFSET_FROM_UTC = 0x00080201
_MODE_TAGS = frozenset({TEXT_VALUE, UNFORMATTED_TEXT_VALUE, CODE_MEANING})
_TOP_LEVEL_IDENTITY = frozenset({PATIENT_NAME, PATIENT_ID, ACCESSION_NUMBER, STUDY_ID})


def apply(run: Run, ds: Dataset, tag: BaseTag, elem: RawDataElement, vr: str, rule: Rule,
          path: tuple[int, ...], mode: str) -> bool:
    """Apply ``rule`` to the raw element ``elem`` of ``ds``; False when the decoded path must."""
    itag = int(tag)
    if vr != elem.VR or (mode and itag in _MODE_TAGS):
        return False
    found = raw.decode(elem, vr)
    if found is None:
        return False
    code = rule.code
    if "/" in code:
        code = resolve_compound(run, code, itag, path)
    if code in ("K", "U*"):  # U* on an element that is not a sequence: kept
        if code == "U*" or rule.collect:
            collect(run, itag, vr, found)
        if not rule.collect:
            queue_kept_text(run, ds, tag, vr, path)
        return True
    result = _HANDLERS.get(code, _remove)(run, itag, vr, found, path)
    if result is FALLBACK:
        return False
    collect(run, itag, vr, found)
    if result is REMOVE:
        del ds[tag]
    elif result is not KEEP and result != elem.value:  # (the same bytes: nothing to replace)
        assert isinstance(result, bytes)
        ds[tag] = raw.replaced(elem, result)
    if result is KEEP and code == "C" and vr in TEXT_CLEANABLE and not _timezone(run, itag):
        run.pending_text.append((ds, tag, "X", path))
    return True


def collect(run: Run, tag: int, vr: str, found: list[str]) -> None:
    """:func:`gateway.deid.actions.collect` on values read from raw bytes."""
    collect_values(run, tag, vr, found)


def _encoded(found: list[str], vr: str) -> Result:
    data = raw.encode(found, vr)
    return FALLBACK if data is None else data


def _remove(run: Run, tag: int, vr: str, found: list[str], path: tuple[int, ...]) -> Result:
    return REMOVE


def _zero(run: Run, tag: int, vr: str, found: list[str], path: tuple[int, ...]) -> Result:
    if not path and tag in _TOP_LEVEL_IDENTITY:
        return _top_level(run, tag, vr, found)
    return b""


def _top_level(run: Run, tag: int, vr: str, found: list[str]) -> Result:
    """Patient, accession and study identity get pseudonyms rather than blanks (E.1-1 Z, D)."""
    if tag == PATIENT_NAME:
        return _encoded([run.patient.patient_name], vr)
    if tag == PATIENT_ID:
        return _encoded([run.patient.patient_id], vr)
    if len(found) > 1:
        return FALLBACK  # the decoded path pseudonymises the text of the whole multi-value
    original = found[0].strip() if found else ""
    if not original:
        return b""
    kind = "accession" if tag == ACCESSION_NUMBER else "study_id"
    return _encoded([run.pseudonymizer.identifier(kind, original)[:16]], vr)


def _dummy(run: Run, tag: int, vr: str, found: list[str], path: tuple[int, ...]) -> Result:
    if not path and tag in _TOP_LEVEL_IDENTITY:
        return _top_level(run, tag, vr, found)
    if vr == "UI":
        return _uid(run, tag, vr, found, path)
    if vr in DATE_VRS and run.compiled.has(Option.RETAIN_LONGITUDINAL_MODIFIED_DATES):
        return _shift(run, vr, found)
    return _dummy_value(vr, len(found))


def _dummy_value(vr: str, count: int) -> Result:
    dummy = values.dummy_for(vr, count)
    if isinstance(dummy, str):
        return _encoded([dummy], vr)
    if isinstance(dummy, list):
        return _encoded([str(d) for d in dummy], vr)
    return FALLBACK


def _uid(run: Run, tag: int, vr: str, found: list[str], path: tuple[int, ...]) -> Result:
    new = []
    for v in found:
        original = v.strip()
        replaced = run.pseudonymizer.uid(original)
        if replaced != original:
            run.found.add("uid", original)
        new.append(replaced)
    return _encoded(new, vr)


def _shift(run: Run, vr: str, found: list[str]) -> Result:
    new = []
    for v in found:
        shifted = run.shifted(vr, v)
        if shifted is None:
            return b""  # not a date: nothing trustworthy to keep
        new.append(shifted)
    return _encoded(new, vr)


def _timezone(run: Run, tag: int) -> bool:
    """Timezone Offset From UTC is kept as it is under Modified Dates (a whole-day shift)."""
    return tag == TIMEZONE_OFFSET_FROM_UTC and run.compiled.has(
        Option.RETAIN_LONGITUDINAL_MODIFIED_DATES
    )


def _clean(run: Run, tag: int, vr: str, found: list[str], path: tuple[int, ...]) -> Result:
    if vr in DATE_VRS:
        if run.compiled.has(Option.RETAIN_LONGITUDINAL_MODIFIED_DATES):
            return _shift(run, vr, found)
        return _dummy_value(vr, len(found))
    if vr in TEXT_CLEANABLE or vr == "CS":
        return KEEP  # free text is cleaned once the instance is walked; codes are kept
    if vr == "AE":
        return _encoded([run.pseudonymizer.identifier("ae", v)[:16] for v in found], vr)
    if vr == "PN":
        return _encoded([values.DUMMY_PN for _ in found], vr)
    if 0x5000 <= (tag >> 16) <= 0x50FF:
        return KEEP  # curve attributes: geometry, not text
    return REMOVE


_HANDLERS: dict[str, Handler] = {
    "X": _remove,
    "Z": _zero,
    "D": _dummy,
    "C": _clean,
    "U": _uid,
}


def clean_text(run: Run, cleaner: TextCleaner, ds: Dataset, tag: BaseTag, how: str) -> bool:
    """:func:`gateway.deid.actions.clean_text` on a raw element; False when it is not one."""
    elem = ds.get_item(tag, keep_deferred=True)
    if not isinstance(elem, RawDataElement) or elem.VR is None:
        return False
    vr = elem.VR
    found = raw.decode(elem, vr)
    if found is None:
        return False
    generic = how in ("X", "D")
    if not generic and not any(cleaner.needs_cleaning(v) for v in found):
        return True  # kept text with nothing of the identity in it: its bytes stay
    new = []
    for v in found:
        cleaned = cleaner.clean(v, generic, CS_REDACTED if how == "L" else REDACTED)
        if cleaned is None:
            if how == "X":
                del ds[tag]
                return True
            result = _dummy_value(vr, len(found))
            if result is FALLBACK:
                return False
            assert isinstance(result, bytes)
            ds[tag] = raw.replaced(elem, result)
            return True
        limit = MAX_LENGTH.get(vr)
        new.append(cleaned[:limit] if limit else cleaned)
    data = raw.encode(new, vr)
    if data is None:
        return False
    if data != elem.value:  # (text with nothing to clean keeps its bytes)
        ds[tag] = raw.replaced(elem, data)
    return True
