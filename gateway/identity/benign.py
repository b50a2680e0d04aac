"""What is kept as it is and never identifies anyone: the benign attributes and standard codes.

Some attributes that a profile keeps are technical, not free text: code values and coding scheme
designators, the manufacturer, model and software of the equipment, coded strings (CS) but the
few that sites use as labels (Content Label, Graphic Layer). The
cleaner leaves them as they are (cleaning "SIEMENS" out of Manufacturer would break the output,
and no site writes a patient there), and the verify stage does not count a value of the input
that also stands in one of them as a leak (an institution called "OFFIS" whose equipment is made
by "OFFIS", a name token "Perfusion" beside Image Type PERFUSION).

A Code Meaning is benign only when it is the meaning the standard's lexicon gives its code: the
concepts of DCM, SNOMED CT (and its SRT form), LOINC, UCUM and the other schemes that pydicom
ships (``pydicom.sr``, generated from PS3.16). Every other code meaning (local schemes ``99*``,
``L``, a site's own text for a standard code) is free text and is cleaned.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from functools import lru_cache

from pydicom.datadict import tag_for_keyword

from gateway.identity.fold import squash

BENIGN_KEYWORDS = frozenset({
    # Code Sequence Macro (PS3.3 Table 8.8-1): the code itself, not its meaning.
    "CodeValue", "CodingSchemeDesignator", "CodingSchemeVersion", "LongCodeValue",
    "URNCodeValue", "CodingSchemeUID", "MappingResource", "MappingResourceUID",
    "ContextIdentifier", "ContextUID", "ContextGroupVersion",
    # Equipment (General Equipment Module).
    "Manufacturer", "ManufacturerModelName", "SoftwareVersions",
})
BENIGN_TAGS: frozenset[int] = frozenset(
    t for t in (tag_for_keyword(k) for k in BENIGN_KEYWORDS) if t is not None
)
# Coded strings (CS) that sites fill with their own words: labels, not codes. They are cleaned
# like text (each match becomes "XXX", which CS allows) and are never benign.
LABEL_CODE_STRINGS = frozenset({
    0x00700080,  # Content Label (presentation states, SEG, KOS, RT...)
    0x00700002,  # Graphic Layer
    0x00041130,  # File-set ID
})
CODE_VALUE, CODING_SCHEME_DESIGNATOR, CODE_MEANING = 0x00080100, 0x00080102, 0x00080104
LONG_CODE_VALUE, URN_CODE_VALUE = 0x00080119, 0x00080120


def _digest(scheme: str, code: str, meaning: str) -> bytes:
    text = f"{scheme}\x00{code}\x00{squash(meaning)}"
    return hashlib.blake2b(text.encode(), digest_size=8).digest()


@lru_cache(maxsize=1)
def _lexicon() -> frozenset[bytes]:
    """Digests of (scheme, code, squashed meaning) of every concept pydicom ships; the module is
    dropped again once read (it is large and only the digests are needed)."""
    name = "pydicom.sr._concepts_dict"
    loaded = name in sys.modules
    concepts = importlib.import_module(name).concepts
    out = set()
    for scheme, keywords in concepts.items():
        for codes in keywords.values():
            for code, (meaning, _cids) in codes.items():
                out.add(_digest(scheme, code, meaning))
    srt = importlib.import_module("pydicom.sr._snomed_dict").mapping.get("SCT", {})
    for code, (meaning, _cids) in (
        item for kws in concepts.get("SCT", {}).values() for item in kws.items()
    ):
        if code in srt:
            out.add(_digest("SRT", srt[code], meaning))
    if not loaded:
        sys.modules.pop(name, None)
    return frozenset(out)


def is_standard_meaning(designator: str, code: str, meaning: str) -> bool:
    """True when ``meaning`` is what the standard's lexicon says of ``code`` in ``designator``
    (case, diacritics and punctuation ignored)."""
    designator, code = designator.strip(), code.strip()
    if not designator or not code or designator.startswith("99") or designator in ("L", "LOCAL"):
        return False
    return _digest(designator, code, meaning) in _lexicon()
