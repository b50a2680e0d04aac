"""Values of undecoded (raw) elements, read and written without pydicom's decode and encode.

The engine's fast path (:mod:`gateway.deid.rawactions`) uses these for string VRs whose value
bytes are plain ASCII without ESC. Every character set of PS3.3 C.12.1.1.2 that pydicom knows
decodes such bytes to the same characters (a test checks each one), so the result does not depend
on Specific Character Set. Decoding mirrors pydicom's converters (``pydicom.values``) and the
engine's view of a value (``str`` of each value, none for an empty element), and encoding
mirrors pydicom's writers (``pydicom.filewriter``: values joined by backslash, padded to even
length with a space, or NUL for UI; PS3.5 6.2 and 7.1.1), so that the fast path gives the same
bytes as decoding, changing and re-encoding. Anything else returns None and the engine takes the
decoded path.
"""

from __future__ import annotations

from pydicom import Dataset
from pydicom.dataelem import RawDataElement

ESC = b"\x1b"

# How pydicom turns the decoded text of each string VR into values.
_SPLIT_RSTRIP = frozenset({"SH", "LO", "UC"})  # convert_text: split, then rstrip each
_SINGLE = frozenset({"ST", "LT", "UT"})  # convert_single_string: one value, rstrip
_RSTRIP_SPLIT = frozenset({"AS", "CS", "DA", "DT", "TM"})  # multi_string
STRING_VRS = _SPLIT_RSTRIP | _SINGLE | _RSTRIP_SPLIT | {"AE", "PN", "UI"}


def ascii_bytes(value: bytes | None) -> bool:
    """True when ``value`` decodes to the same text under every DICOM character set."""
    return value is not None and value.isascii() and ESC not in value


def _person_name(text: str) -> str:
    """``str(PersonName(text))``: trailing empty component groups are dropped."""
    groups = text.split("=")
    while groups and not groups[-1]:
        groups.pop()
    return "=".join(groups)


def _split(text: str, vr: str) -> list[str]:
    if vr in _SPLIT_RSTRIP:
        return [v.rstrip("\0 ") for v in text.split("\\")]
    if vr in _SINGLE:
        return [text.rstrip("\0 ")]
    if vr in _RSTRIP_SPLIT:
        return text.rstrip(" \0").split("\\")
    if vr == "AE":
        return [v.strip() for v in text.split("\\")]
    if vr == "UI":  # convert_UI, and UID() strips each value
        return [v.strip() for v in text.rstrip(" \0").split("\\")]
    return [_person_name(v) for v in text.rstrip("\0 ").split("\\")]  # PN


def decode(raw: RawDataElement, vr: str) -> list[str] | None:
    """The values of a raw element of string VR ``vr`` (empty: none), or None when they cannot
    be read here (deferred, not ASCII, or not a string VR)."""
    value = raw.value
    if vr not in STRING_VRS or not ascii_bytes(value):
        return None
    assert value is not None
    if not value:
        return []
    values = _split(value.decode("ascii"), vr)
    if len(values) == 1 and not values[0]:
        return []
    return values


def encode(values: list[str], vr: str) -> bytes | None:
    """The value bytes pydicom writes for ``values`` of string VR ``vr``; None when a value is not
    plain ASCII (then pydicom must encode it in the instance's character set)."""
    if vr == "PN":
        values = [_person_name(v) for v in values]
    elif vr == "UI":
        values = [v.strip() for v in values]  # as UID() does
    text = "\\".join(values)
    if not text.isascii() or "\x1b" in text:
        return None
    if len(text) % 2:
        text += "\0" if vr == "UI" else " "
    return text.encode("ascii")


def replaced(raw: RawDataElement, value: bytes) -> RawDataElement:
    """``raw`` with a new encoded value."""
    return RawDataElement(raw.tag, raw.VR, len(value), value, raw.value_tell,
                          raw.is_implicit_VR, raw.is_little_endian)


def single_value(ds: Dataset, tag: int, vr: str) -> str | None:
    """The value of a single-valued element of ``ds`` read from its bytes ("" when absent or
    empty); None when it must be decoded (decoded already, not ASCII, several values)."""
    elem = ds.get_item(tag, keep_deferred=True)
    if elem is None:
        return ""
    if isinstance(elem, RawDataElement) and elem.VR in (vr, None):
        found = decode(elem, vr)
        if found is not None and len(found) <= 1:
            return found[0] if found else ""
    return None
