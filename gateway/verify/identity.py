"""The verify stage's own reading of the input's identity, independent of the de-identifier.

Before any stage changes the instance, every element at every depth is read (without decoding
anything that does not need it) and its values are filed by the identity model's kinds
(:class:`gateway.identity.Identity`) by rules of this module, not the engine's:

* every value of VR PN (names of the patient, staff and anyone else, private ones too);
* every DA and DT value, unless the profile retains full dates;
* every UID that is not a standard one (``1.2.840.10008.``) nor a class, syntax, coding scheme,
  context, mapping or template UID, unless the profile retains UIDs;
* by keyword (PS3.6): telephone numbers; addresses; IDs, numbers, identifiers, serial numbers and
  locators of a text VR; institutions, departments, stations, locations, occupations, ranks,
  branches of service, organisations and residences.

What a selected option of the profile retains (PS3.15 Table E.1-1, the option's column says K:
device identity, institution identity...) is not identifying *for this profile*. A site
override that keeps an identifying attribute is not an option: verify still looks for it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from pydicom import Dataset
from pydicom.charset import convert_encodings
from pydicom.datadict import DicomDictionary, dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.multival import MultiValue

from gateway.identity import Identity
from gateway.identity.model import memory_keys

TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC"})
_ID_KEYWORD = re.compile(r"(?:ID|IDs|Identifier|Identification|Number|Numbers|Locator)$")
_PHONE_KEYWORD = re.compile(r"Telephone|Telecom")
_ADDRESS_KEYWORD = re.compile(r"Address")
_PHRASE_KEYWORD = re.compile(
    r"Institution|Department|StationName|Location|Occupation|MilitaryRank|BranchOfService|"
    r"Organization|Residence"
)
_NOT_IDENTIFYING = re.compile(
    r"UID|Sequence$|Description|Comments?$|Label$|Type$|Code$|CodingScheme|Context"
)
_CLASS_UID = re.compile(r"(Class|Syntax|CodingScheme|Context|Mapping|Template)\w*UIDs?$")
STANDARD_UID_ROOT = "1.2.840.10008."
STUDY_INSTANCE_UID, PATIENT_ID = 0x0020000D, 0x00100020
ISSUER_OF_PATIENT_ID, PATIENT_NAME = 0x00100021, 0x00100010
CHARSET = 0x00080005


@dataclass(frozen=True)
class Retained:
    """What the profile's options keep as it is, so that it is not identifying here."""

    tags: frozenset[int] = frozenset()
    dates: bool = False
    uids: bool = False

    @property
    def vrs(self) -> frozenset[str]:
        """VRs whose values the profile keeps as they came."""
        return frozenset((("DA", "DT") if self.dates else ()) + (("UI",) if self.uids else ()))


@lru_cache(maxsize=1)
def keyword_kinds() -> dict[int, str]:
    """Tag -> kind of every public attribute these rules find identifying (PS3.6 keywords)."""
    out: dict[int, str] = {}
    for tag, entry in DicomDictionary.items():
        vr, keyword = str(entry[0]), str(entry[4])
        if vr not in TEXT_VRS or not keyword or _NOT_IDENTIFYING.search(keyword):
            continue
        if _PHONE_KEYWORD.search(keyword):
            out[tag] = "phone"
        elif _ADDRESS_KEYWORD.search(keyword):
            out[tag] = "address"
        elif _ID_KEYWORD.search(keyword):
            out[tag] = "id"
        elif _PHRASE_KEYWORD.search(keyword):
            out[tag] = "phrase"
    return out


@lru_cache(maxsize=1)
def _class_uid_tags() -> frozenset[int]:
    return frozenset(t for t, e in DicomDictionary.items()
                     if str(e[0]) == "UI" and _CLASS_UID.search(str(e[4])))


def extract(ds: Dataset, retained: Retained) -> tuple[Identity, list[str]]:
    """The identity of the input ``ds`` by these rules, and the keys of its study and patient
    for the verify stage's memory. Nothing in ``ds`` is changed by being read here, except that
    sequences are parsed (every stage after this one parses them anyway)."""
    identity = Identity()
    kinds = keyword_kinds()
    skip_uids = _class_uid_tags()
    for tag, vr, values in _elements(ds, ""):
        if tag in retained.tags:
            continue
        if vr == "PN":
            kind = "name"
        elif vr in ("DA", "DT"):
            if retained.dates:
                continue
            kind = "date"
        elif vr == "UI":
            if retained.uids or tag in skip_uids:
                continue
            values = [v for v in values if not v.startswith(STANDARD_UID_ROOT)]
            kind = "uid"
        else:
            kind = kinds.get(tag, "")
            if not kind:
                continue
        for value in values:
            identity.add(kind, value)
    keys = memory_keys(_top(ds, STUDY_INSTANCE_UID), _top(ds, PATIENT_ID),
                       _top(ds, ISSUER_OF_PATIENT_ID), _top(ds, PATIENT_NAME))
    return identity, keys


_WANTED_VRS = frozenset({"PN", "DA", "DT", "UI", "SQ"})


def _elements(ds: Dataset, charset: str) -> Iterator[tuple[int, str, list[str]]]:
    """(tag, VR, text values) of the elements of ``ds`` that may identify, at every depth."""
    own = ds.get_item(CHARSET, keep_deferred=True)
    if own is not None:
        charset = ds[CHARSET].value
    kinds = keyword_kinds()
    for tag, raw in list(ds._dict.items()):  # (as stored: nothing is decoded to look at it)
        itag = int(tag)
        vr = raw.VR if raw.VR and raw.VR != "UN" else _dictionary_vr(itag)
        if vr not in _WANTED_VRS and itag not in kinds:
            continue
        if vr == "SQ":
            for item in ds[tag].value or ():
                yield from _elements(item, charset)
            continue
        yield itag, vr, _values(raw, charset)


@lru_cache(maxsize=4096)
def _dictionary_vr(tag: int) -> str:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


def _values(raw: DataElement | RawDataElement | None, charset: object) -> list[str]:
    """The text values of one element, decoded with the character set in force but not stored
    back into the dataset (the de-identifier reads it as it came)."""
    if raw is None:
        return []
    if isinstance(raw, RawDataElement):
        data = raw.value
        if data is None:
            return []
        if data.isascii() and b"\x1b" not in data:
            text = data.decode("ascii").rstrip("\0 ")
            return [v.strip() for v in text.split("\\") if v.strip()]
        terms = charset if isinstance(charset, list | MultiValue) else [charset or ""]
        elem = convert_raw_data_element(raw, encoding=convert_encodings([str(t) for t in terms]))
    else:
        elem = raw
    value = elem.value
    if value is None or value == "":
        return []
    items = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
    return [str(v).strip() for v in items if str(v).strip()]


def _top(ds: Dataset, tag: int) -> str:
    values = _values(ds.get_item(tag, keep_deferred=True), "")
    return values[0] if values else ""
