"""The verify stage finds the same leaks in undecoded elements as in decoded ones."""

from __future__ import annotations

import functools
import io
import re
import warnings
from pathlib import Path

import pydicom
import pytest
from deid_support import PLANTED, ct, gsps, sr
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom import Dataset
from pydicom.data import get_testdata_files
from pydicom.dataelem import RawDataElement
from pydicom.tag import BaseTag
from test_deid_fastpath import awkward, encoded

from gateway.deid import Deidentifier, load_compiled
from gateway.deid.iod import TableIodTypes
from gateway.pipeline.stage import StageContext
from gateway.pseudonyms.interface import InMemoryPseudonymizer
from gateway.verify import find_leaks
from gateway.verify.leaks import Matcher, VerifyCache


@functools.cache
def _engine() -> Deidentifier:
    return Deidentifier(load_compiled("research"), InMemoryPseudonymizer(b"v"),
                        TableIodTypes.load())


def _identifiers(data: bytes) -> set[str]:
    """What the engine collects from an input: the values verify looks for."""
    ds = pydicom.dcmread(io.BytesIO(data))
    ctx = StageContext(job_id="v")
    _engine().apply(ds, ctx)
    return ctx.identifiers


def _decoded(ds: Dataset) -> Dataset:
    """``ds`` with every element decoded, at every depth."""
    for _ in ds.iterall():
        pass
    for _ in ds.file_meta.iterall():
        pass
    return ds


CACHE = VerifyCache()  # shared by every check of the undecoded reads, as the stage shares it


def _leaks_both_ways(data: bytes, identifiers: set[str]) -> tuple[list[str], list[str]]:
    """Leak paths in the undecoded read (twice, the second from the cache) and the decoded."""
    paths = []
    for _ in range(2):
        undecoded = pydicom.dcmread(io.BytesIO(data))
        paths.append([leak.path for leak in find_leaks(undecoded, identifiers, CACHE)])
    assert paths[0] == paths[1]
    decoded = _decoded(pydicom.dcmread(io.BytesIO(data)))
    return paths[0], [leak.path for leak in find_leaks(decoded, identifiers)]


@pytest.mark.parametrize("syntax", ["el", "il", "eb"])
@pytest.mark.parametrize("make", [ct, sr, gsps, awkward], ids=["ct", "sr", "gsps", "awkward"])
def test_inputs_leak_at_the_same_paths(make: object, syntax: str) -> None:
    """An input checked against its own identifiers leaks at the same paths, read or decoded."""
    data = encoded(make(), syntax)  # type: ignore[operator]
    raw_paths, decoded_paths = _leaks_both_ways(data, _identifiers(data))
    assert raw_paths and raw_paths == decoded_paths


@pytest.mark.filterwarnings("ignore")
def test_bundled_files_leak_at_the_same_paths() -> None:
    """pydicom's test files against their own identifiers: the same leaks either way."""
    differ, leaking = [], 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in get_testdata_files():
            try:
                data = Path(path).read_bytes()
                identifiers = _identifiers(data)
                found = _leaks_both_ways(data, identifiers)
            except Exception:  # not DICOM, or not de-identifiable: covered elsewhere
                continue
            leaking += bool(found[1])
            if found[0] != found[1]:
                differ.append(path)
    assert not differ
    assert leaking > 50  # the comparison is about real leaks, not empty lists


def test_padded_multi_valued_raw_values_are_searched() -> None:
    """A planted ID in any value of a padded, multi-valued raw element is found."""
    ds = Dataset()
    value = f"X\\{PLANTED['patient_id']}\\Y ".encode()
    ds[0x00101000] = RawDataElement(BaseTag(0x00101000), "LO", len(value), value, 0, False, True)
    assert [leak.path for leak in find_leaks(ds, {PLANTED["patient_id"]})] == ["(0010,1000)"]
    assert find_leaks(ds, {PLANTED["patient_id"][:-1]}) == []  # whole words only


def _one_pattern(identifiers: set[str]) -> re.Pattern[str] | None:
    """The single pattern verify compiled for every identifier before numeric ones were split."""
    values = sorted({v.strip() for v in identifiers if len(v.strip()) >= 3}, key=len, reverse=True)
    if not values:
        return None
    body = "|".join(re.escape(v) for v in values)
    return re.compile(rf"(?<![0-9A-Za-z])(?:{body})(?![0-9A-Za-z])", re.IGNORECASE)


_CHARS = "0123456789.aZé -^"


@settings(max_examples=400, deadline=None)
@given(text=st.text(alphabet=_CHARS, max_size=40),
       identifiers=st.sets(st.text(alphabet=_CHARS, min_size=1, max_size=8), max_size=6))
def test_split_matcher_finds_what_one_pattern_finds(text: str, identifiers: set[str]) -> None:
    """Numeric identifiers searched as substrings and the rest as a cached pattern match exactly
    where one pattern of all of them would."""
    matcher = Matcher(identifiers, VerifyCache())
    pattern = _one_pattern(identifiers)
    expected = pattern is not None and pattern.search(text) is not None
    assert bool(matcher) == (pattern is not None)
    assert (bool(matcher) and matcher.search(text, matcher.candidates([text]))) == expected


def test_remembered_sequences_are_searched_for_each_instances_identifiers() -> None:
    """A sequence whose texts were remembered is searched again with the next identifiers, and
    is not decoded a second time."""
    ds = ct()
    ds.ReferencedPatientSequence = [Dataset()]
    ds.ReferencedPatientSequence[0].PatientName = "Zebulon^Q"
    data = encoded(ds, "el")
    cache = VerifyCache()
    assert find_leaks(pydicom.dcmread(io.BytesIO(data)), {"Nobody"}, cache) == []
    again = pydicom.dcmread(io.BytesIO(data))
    assert "(0008,1120)[0]>(0010,0010)" in [p.path for p in find_leaks(again, {"Zebulon"}, cache)]
    assert isinstance(again.get_item(0x00081120, keep_deferred=True), RawDataElement)
