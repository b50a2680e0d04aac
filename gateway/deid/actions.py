"""The action codes of PS3.15 Table E.1-1a applied to one element.

D dummy, Z zero length, X remove, K keep (sequences: kept and their items cleaned), C clean
(by VR: dates shifted, free text cleaned, AE titles and names replaced, sequences walked), U UIDs
replaced. The compound codes (Z/D, X/Z, X/D, X/Z/D, X/Z/U*) are resolved per instance by the
Type the attribute has in the instance's IOD (:mod:`gateway.deid.iod`), so that the output stays a
valid instance: Type 1 gets D, Type 2 gets Z, Type 3 gets X (reference sequences, X/Z/U*, are kept
with their UIDs replaced when Type 1 or 2, so that references stay consistent); when
the Type is not known the resolution keeps the attribute (Z, D or U*), which is conformant for
every Type and never less protective.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydicom import Dataset
from pydicom.charset import decode_bytes, encode_string
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.tag import BaseTag

from gateway.deid import values
from gateway.deid.knownsafe import DATE_VRS
from gateway.deid.options import Option
from gateway.deid.textclean import CS_REDACTED, REDACTED, TextCleaner
from gateway.identity.benign import (
    BENIGN_TAGS,
    CODE_VALUE,
    CODING_SCHEME_DESIGNATOR,
    LABEL_CODE_STRINGS,
    LONG_CODE_VALUE,
    URN_CODE_VALUE,
    is_standard_meaning,
)
from gateway.pseudonyms.derive import is_well_known_uid

if TYPE_CHECKING:
    from gateway.deid.compiled import Rule
    from gateway.deid.engine import Run

REMOVED = object()  # the "new value" recorded for an element that was removed

TEXT_CLEANABLE = frozenset({"LO", "LT", "SH", "ST", "UC", "UT"})
MAX_LENGTH = {"CS": 16, "SH": 16, "LO": 64, "ST": 1024, "LT": 10240}
TEXT_VALUE, UNFORMATTED_TEXT_VALUE, CODE_MEANING = 0x0040A160, 0x00700006, 0x00080104
OVERLAY_DATA = 0x3000
ACCESSION_NUMBER, STUDY_ID = 0x00080050, 0x00200010
PATIENT_NAME, PATIENT_ID = 0x00100010, 0x00100020


def _values(elem: DataElement) -> list[Any]:
    v = elem.value
    if v is None or v == "":
        return []
    if elem.VM > 1:
        return list(v)
    return [v]


def _set(elem: DataElement, new: list[Any]) -> None:
    if not new:
        elem.value = None
    elif len(new) == 1:
        elem.value = new[0]
    else:
        elem.value = new


def _record(run: Run, path: tuple[int, ...], tag: int, vr: str, code: str, rule: Rule,
            old: Any, new: Any) -> None:
    if run.record is not None:
        run.record(path, tag, vr, code, rule.source, old, new)


def apply(run: Run, ds: Dataset, tag: BaseTag, vr: str, rule: Rule, path: tuple[int, ...],
          mode: str) -> None:
    """Apply ``rule`` to the element ``tag`` of ``ds``."""
    if mode and _apply_mode(run, ds, tag, vr, rule, path, mode):
        return
    code = rule.code
    if "/" in code:
        code = resolve_compound(run, code, tag, path)
    elem = ds[tag]
    old = elem.value if run.record is not None else None
    if code != "K" or rule.collect:
        collect(run, tag, vr, elem)
    handler = _HANDLERS.get(code, _remove)
    handler(run, ds, elem, vr, path, mode)
    if code in ("K", "U*") and vr != "SQ" and not rule.collect:
        queue_kept_text(run, ds, tag, vr, path)
    if run.record is not None:
        shown = code if code == rule.code else f"{rule.code}>{code}"
        _record(run, path, tag, vr, shown, rule, old, ds[tag].value if tag in ds else REMOVED)


def resolve_compound(run: Run, code: str, tag: int, path: tuple[int, ...]) -> str:
    """The simple code a compound one stands for in this instance's IOD (PS3.15 E.1-1a)."""
    kind = run.iod.type_of(run.sop_class, path, tag)
    if kind is None:
        return {"X/Z": "Z", "Z/D": "D", "X/D": "D", "X/Z/D": "D", "X/Z/U*": "U*"}[code]
    required = kind[0]  # "1", "2" or "3" ("1C" counts as 1: the instance may need it)
    if code == "X/Z/U*":
        # A Type 2 reference sequence is kept too: an empty one breaks the references other
        # attributes make to it (e.g. a Segmentation's Referenced Series Sequence).
        return "U*" if required in ("1", "2") else "X"
    if required == "1":
        return "Z" if code == "X/Z" else "D"  # X/Z on a Type 1 attribute: Z is the closest
    if required == "2":
        return "Z"
    return "Z" if code == "Z/D" else "X"


def collect(run: Run, tag: int, vr: str, elem: DataElement) -> None:
    """Remember identifying input values (names, IDs, dates, UIDs) before they change."""
    collect_values(run, tag, vr, _values(elem))


def collect_values(run: Run, tag: int, vr: str, found: list[Any]) -> None:
    """:func:`collect` on values already read (from an element or from raw bytes)."""
    if vr == "PN":
        kind = "name"
    elif vr in ("DA", "DT"):
        kind = "date"
    elif vr == "UI":
        return  # UIDs are collected where they are replaced (U), not where they are removed
    else:
        kind = run.compiled.identifying.get(tag, "")
        if not kind:
            return
    for v in found:
        if not isinstance(v, bytes):
            run.found.add(kind, v)


def queue_kept_text(run: Run, ds: Dataset, tag: BaseTag, vr: str, path: tuple[int, ...]) -> bool:
    """Text the profile keeps leaves the gateway too: queue it for cleaning of the instance's
    identity (a Code Meaning as such, see :func:`standard_meaning`), unless it is benign
    (:mod:`gateway.identity.benign`). False when the element is not such text. (A site
    override that keeps an attribute is obeyed as written: the callers do not queue it, and
    verify judges it.)"""
    itag = int(tag)
    if itag in BENIGN_TAGS or ((itag >> 16) & 1 and (itag & 0xFFFF) <= 0xFF):
        return False  # (private creators name their block)
    if vr in TEXT_CLEANABLE or (vr == "UN" and (itag >> 16) & 1):
        run.pending_text.append((ds, tag, "M" if itag == CODE_MEANING else "K", path))
        return True
    if vr == "CS" and itag in LABEL_CODE_STRINGS:
        run.pending_text.append((ds, tag, "L", path))
        return True
    return False


def standard_meaning(item: Dataset) -> bool:
    """The Code Meaning of ``item`` is the one the standard's lexicon gives its code."""
    meaning = _single(item, CODE_MEANING)
    code = (_single(item, CODE_VALUE) or _single(item, LONG_CODE_VALUE)
            or _single(item, URN_CODE_VALUE))
    designator = _single(item, CODING_SCHEME_DESIGNATOR)
    return bool(meaning and code and designator) and is_standard_meaning(designator, code, meaning)


def _single(item: Dataset, tag: int) -> str:
    elem = item.get(tag)
    value = elem.value if elem is not None else None
    return value if isinstance(value, str) else ""


def _remove(run: Run, ds: Dataset, elem: DataElement, vr: str, path: tuple[int, ...],
            mode: str) -> None:
    tag = int(elem.tag)
    group = tag >> 16
    if not path and 0x6000 <= group <= 0x601E and (tag & 0xFFFF) == OVERLAY_DATA:
        run.removed_overlay_groups.add(group)
    if vr == "SQ":
        _collect_sequence(run, elem, path)
    del ds[elem.tag]


def _collect_sequence(run: Run, elem: DataElement, path: tuple[int, ...]) -> None:
    """Collect identifiers inside a sequence that is removed or emptied without being walked."""
    for item in elem.value or ():
        for sub in item.iterall():
            if sub.VR != "SQ" and not sub.tag.is_private:
                collect(run, int(sub.tag), str(sub.VR), sub)
            if sub.VR == "UI" and not run.compiled.has(Option.RETAIN_UIDS):
                for v in _values(sub):
                    if not _is_standard_uid(v):
                        run.found.add("uid", str(v))


def _is_standard_uid(value: Any) -> bool:
    return is_well_known_uid(str(value))


def _zero(run: Run, ds: Dataset, elem: DataElement, vr: str, path: tuple[int, ...],
          mode: str) -> None:
    tag = int(elem.tag)
    if vr == "SQ":
        _collect_sequence(run, elem, path)
        elem.value = []
        return
    if not path and _pseudonymise_top_level(run, tag, elem):
        return
    elem.value = None


def _dummy(run: Run, ds: Dataset, elem: DataElement, vr: str, path: tuple[int, ...],
           mode: str) -> None:
    tag = int(elem.tag)
    if vr == "SQ":
        _keep(run, ds, elem, vr, path, mode)
        return
    if not path and _pseudonymise_top_level(run, tag, elem):
        return
    if vr == "UI":
        _uid(run, ds, elem, vr, path, mode)
        return
    if vr in DATE_VRS and run.compiled.has(Option.RETAIN_LONGITUDINAL_MODIFIED_DATES):
        _shift(run, elem, vr)
        return
    elem.value = values.dummy_for(vr, len(_values(elem)))


def _pseudonymise_top_level(run: Run, tag: int, elem: DataElement) -> bool:
    """Patient, accession and study identity get pseudonyms rather than blanks (E.1-1 Z, D)."""
    if tag == PATIENT_NAME:
        elem.value = run.patient.patient_name
    elif tag == PATIENT_ID:
        elem.value = run.patient.patient_id
    elif tag in (ACCESSION_NUMBER, STUDY_ID):
        original = str(elem.value or "").strip()
        if not original:
            elem.value = None
            return True
        kind = "accession" if tag == ACCESSION_NUMBER else "study_id"
        elem.value = run.pseudonymizer.identifier(kind, original)[:16]
    else:
        return False
    return True


def _keep(run: Run, ds: Dataset, elem: DataElement, vr: str, path: tuple[int, ...],
          mode: str) -> None:
    if vr == "SQ":
        from gateway.deid.engine import walk_sequence

        walk_sequence(run, elem, path, mode)


def _uid(run: Run, ds: Dataset, elem: DataElement, vr: str, path: tuple[int, ...],
         mode: str) -> None:
    if vr == "SQ":
        _keep(run, ds, elem, vr, path, mode)
        return
    new = []
    for v in _values(elem):
        original = str(v).strip()
        replaced = run.pseudonymizer.uid(original)
        if replaced != original:
            run.found.add("uid", original)
        new.append(replaced)
    _set(elem, new)


def _shift(run: Run, elem: DataElement, vr: str) -> None:
    new = []
    for v in _values(elem):
        shifted = values.shift_value(vr, str(v), run.date_offset)
        if shifted is None:
            elem.value = None  # not a date: nothing trustworthy to keep
            return
        new.append(shifted)
    _set(elem, new)


def _clean(run: Run, ds: Dataset, elem: DataElement, vr: str, path: tuple[int, ...],
           mode: str) -> None:
    tag = int(elem.tag)
    if vr == "SQ":
        _keep(run, ds, elem, vr, path, mode)
    elif vr in DATE_VRS:
        if run.compiled.has(Option.RETAIN_LONGITUDINAL_MODIFIED_DATES):
            _shift(run, elem, vr)
        else:
            elem.value = values.dummy_for(vr, len(_values(elem)))
    elif vr in TEXT_CLEANABLE:
        if run.compiled.has(Option.RETAIN_LONGITUDINAL_MODIFIED_DATES) and tag == 0x00080201:
            return  # Timezone Offset From UTC: a whole-day shift does not change it
        run.pending_text.append((ds, elem.tag, "X", path))
    elif vr == "AE":
        _set(elem, [run.pseudonymizer.identifier("ae", str(v))[:16] for v in _values(elem)])
    elif vr == "PN":
        _set(elem, [values.DUMMY_PN for _ in _values(elem)])
    elif vr == "CS":
        return  # coded values: defined terms, not free text
    elif 0x6000 <= (tag >> 16) <= 0x601E and (tag & 0xFFFF) == OVERLAY_DATA:
        _clean_overlay(run, elem)
    elif 0x5000 <= (tag >> 16) <= 0x50FF and vr not in ("UN",):
        return  # curve data and its numeric attributes: geometry, not text
    else:
        _remove(run, ds, elem, vr, path, mode)  # binary that cannot be cleaned is removed


def _clean_overlay(run: Run, elem: DataElement) -> None:
    """Clean Graphics on an overlay: kept when the pixel stage scrubbed overlays, else blanked."""
    if run.ctx.notes.get("overlays_cleaned"):
        return
    data = elem.value or b""
    elem.value = bytes(len(data))


def _unique_refs(run: Run, ds: Dataset, elem: DataElement, vr: str, path: tuple[int, ...],
                 mode: str) -> None:
    """U*: keep a reference sequence; the UIDs inside are replaced by their own rule (U)."""
    _keep(run, ds, elem, vr, path, mode)


_HANDLERS = {
    "X": _remove,
    "Z": _zero,
    "D": _dummy,
    "K": _keep,
    "C": _clean,
    "U": _uid,
    "U*": _unique_refs,
}


def _apply_mode(run: Run, ds: Dataset, tag: BaseTag, vr: str, rule: Rule,
                path: tuple[int, ...], mode: str) -> bool:
    """Structured content and graphic annotation text: cleaned (option) or replaced (basic).

    Returns True when the element was handled here (PS3.15 E.3.4 Clean Structured Content,
    E.3.3 Clean Graphics).
    """
    t = int(tag)
    text_tag = TEXT_VALUE if mode.startswith("sr") else UNFORMATTED_TEXT_VALUE
    if t == text_tag:
        elem = ds[tag]
        old = elem.value
        if mode.endswith("-clean"):
            run.pending_text.append((ds, tag, "D", path))
            code = "C"
        else:
            elem.value = values.DUMMY_TEXT
            code = "D"
        _record(run, path, t, vr, code, rule, old, elem.value)
        return True
    return False


def clean_text(run: Run, cleaner: TextCleaner, ds: Dataset, tag: BaseTag, how: str,
               path: tuple[int, ...]) -> None:
    """Clean one deferred text element (``how``: see :func:`gateway.deid.engine.clean_pending`).

    What cannot be cleaned is removed (``X``) or dummied (``D``, and kept text, whose attribute
    may be required); kept text and code meanings lose the identity's values only.
    """
    elem = _detached(ds, tag)
    vr = str(elem.VR)
    generic = how in ("X", "D")
    if vr == "UN":
        _clean_unknown(cleaner, ds, tag)
        return
    old = _values(elem)
    new = []
    for v in old:
        cleaned = cleaner.clean(v, generic, CS_REDACTED if how == "L" else REDACTED)
        if cleaned is None:
            if how == "X":
                del ds[tag]
            else:
                elem.value = values.dummy_for(vr, len(old))
                ds[tag] = elem
            return
        limit = MAX_LENGTH.get(vr)
        new.append(cleaned[:limit] if limit else cleaned)
    if new != old:  # (text with nothing to clean is left as it was read, undecoded)
        _set(elem, new)
        ds[tag] = elem


def _detached(ds: Dataset, tag: BaseTag) -> DataElement:
    """The element ``tag`` of ``ds`` decoded without storing the decoded form back, so that an
    element that needs no change keeps its bytes as read."""
    elem = ds.get_item(tag, keep_deferred=True)
    if isinstance(elem, RawDataElement) and elem.value is not None:
        charset = ds.original_character_set or ds._character_set
        return convert_raw_data_element(elem, encoding=charset, ds=ds)
    return ds[tag]


def _clean_unknown(cleaner: TextCleaner, ds: Dataset, tag: BaseTag) -> None:
    """A kept element of unknown VR (UN) is read as text in the instance's character set and
    cleaned; a value that is not text is kept as it is, and one that cannot be cleaned is
    removed. (Verify reads it that way and as Latin-1.)"""
    data = ds[tag].value
    if not isinstance(data, bytes):
        return
    encodings = ds._character_set
    text = decode_bytes(data, encodings, set())
    if not cleaner.needs_cleaning(text):
        return
    cleaned = cleaner.clean(text, generic=False)
    if cleaned is None:
        del ds[tag]
        return
    encoded = encode_string(cleaned, encodings)
    ds[tag].value = encoded + b" " * (len(encoded) % 2)


def remove_overlay_groups(run: Run, ds: Dataset) -> None:
    """An overlay whose Overlay Data was removed is removed whole, so that no incomplete Overlay
    Plane Module is left behind (PS3.3 C.9.2: Overlay Data is Type 1)."""
    for group in run.removed_overlay_groups:
        for tag in [t for t in list(ds.keys()) if t.group == group]:
            del ds[tag]
