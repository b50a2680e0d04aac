"""What an instance teaches about its study and patient, read before any instance is cleaned.

The de-identifier remembers the identifying values of each study and patient (DESIGN decision
11) so that the next instances are cleaned of them too. Remembering only while cleaning leaves a
gap: two workers clean two instances of one study at once, and the one that holds the referring
physician's name may be cleaned second. So a worker reads every instance it claimed before it
cleans any (:meth:`gateway.deid.stage.DeidentifyStage.observe_input`), with
:func:`collect_identity`: the values of every element that the profile removes, replaces or
cleans, by the same rules and kinds as the engine's walk, read without changing the dataset.
"""

from __future__ import annotations

from functools import lru_cache

from pydicom import Dataset
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element

from gateway.deid import raw
from gateway.deid.actions import _values as element_values
from gateway.deid.compiled import CompiledProfile
from gateway.identity import Identity

PERSON_NAME_VR, DATE_VRS = "PN", ("DA", "DT")


def collect_identity(compiled: CompiledProfile, ds: Dataset) -> Identity:
    """The identifying values of ``ds`` that ``compiled`` does not keep (public elements)."""
    found = Identity()
    _collect(compiled, ds, (), found)
    return found


def _collect(compiled: CompiledProfile, ds: Dataset, path: tuple[int, ...],
             found: Identity) -> None:
    identifying = compiled.identifying
    for tag, elem in list(ds._dict.items()):  # (as stored: nothing is decoded to look at it)
        itag = int(tag)
        group = itag >> 16
        if group & 1 or group in (0x0002, 0x0004):
            continue
        vr = elem.VR if elem.VR and elem.VR != "UN" else _dictionary_vr(itag)
        if vr == "SQ":
            for item in ds[tag].value or ():
                _collect(compiled, item, (*path, itag), found)
            continue
        kind = "name" if vr == PERSON_NAME_VR else "date" if vr in DATE_VRS else \
            identifying.get(itag, "")
        if not kind:
            continue
        rule = compiled.rule_for(itag, vr, path)
        if rule.code == "K" and not rule.collect:
            continue
        for value in _values(ds, elem, vr):
            found.add(kind, value)


@lru_cache(maxsize=4096)
def _dictionary_vr(tag: int) -> str:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


def _values(ds: Dataset, elem: DataElement | RawDataElement | None, vr: str) -> list[str]:
    """The text values of one element, decoded without storing the decoded form back."""
    if isinstance(elem, RawDataElement):
        found = raw.decode(elem, vr)
        if found is not None:
            return found
        if elem.value is None:
            return []
        charset = ds.original_character_set or ds._character_set
        elem = convert_raw_data_element(elem._replace(VR=vr), encoding=charset, ds=ds)
    if elem is None:
        return []
    return [str(v) for v in element_values(elem) if not isinstance(v, bytes) and str(v).strip()]
