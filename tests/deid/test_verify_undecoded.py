"""The verify stage finds the same leaks in undecoded elements as in decoded ones."""

from __future__ import annotations

import functools
import io
import warnings
from pathlib import Path

import pydicom
import pytest
from deid_support import PLANTED, ct, gsps, sr
from pydicom import Dataset
from pydicom.data import get_testdata_files
from pydicom.dataelem import RawDataElement
from pydicom.tag import BaseTag
from test_deid_fastpath import awkward, encoded

from gateway.deid import Deidentifier, load_compiled
from gateway.deid.iod import TableIodTypes
from gateway.identity import Identity
from gateway.pipeline.stage import StageContext
from gateway.pseudonyms.interface import InMemoryPseudonymizer
from gateway.verify import find_leaks
from gateway.verify.leaks import VerifyCache


@functools.cache
def _engine() -> Deidentifier:
    return Deidentifier(load_compiled("research"), InMemoryPseudonymizer(b"v"),
                        TableIodTypes.load())


def _identifiers(data: bytes) -> Identity:
    """What the engine collects from an input: the values verify looks for."""
    ds = pydicom.dcmread(io.BytesIO(data))
    ctx = StageContext(job_id="v")
    _engine().apply(ds, ctx)
    return ctx.identity


def _decoded(ds: Dataset) -> Dataset:
    """``ds`` with every element decoded, at every depth."""
    for _ in ds.iterall():
        pass
    for _ in ds.file_meta.iterall():
        pass
    return ds


CACHE = VerifyCache()  # shared by every check of the undecoded reads, as the stage shares it


def _leaks_both_ways(data: bytes, identifiers: Identity) -> tuple[list[str], list[str]]:
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
    assert [leak.path for leak in find_leaks(ds, Identity(id={PLANTED["patient_id"]}))] == [
        "(0010,1000)"]
    assert find_leaks(ds, Identity(id={PLANTED["patient_id"][:-1]})) == []  # whole IDs only


def test_remembered_sequences_are_searched_for_each_instances_identifiers() -> None:
    """A sequence whose texts were remembered is searched again with the next identifiers, and
    is not decoded a second time."""
    ds = ct()
    ds.ReferencedPatientSequence = [Dataset()]
    ds.ReferencedPatientSequence[0].PatientName = "Zebulon^Q"
    data = encoded(ds, "el")
    cache = VerifyCache()
    nobody, zebulon = Identity(name={"Nobody"}), Identity(name={"Zebulon"})
    assert find_leaks(pydicom.dcmread(io.BytesIO(data)), nobody, cache) == []
    again = pydicom.dcmread(io.BytesIO(data))
    assert "(0008,1120)[0]>(0010,0010)" in [p.path for p in find_leaks(again, zebulon, cache)]
    assert isinstance(again.get_item(0x00081120, keep_deferred=True), RawDataElement)
