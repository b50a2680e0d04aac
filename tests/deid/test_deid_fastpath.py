"""The fast path on raw elements gives exactly the decoded path's output.

Instances read from bytes hold undecoded (raw) elements, which the engine rewrites from their
bytes (``gateway.deid.rawactions``); in-memory datasets and ``fast=False`` take the decoded path.
These tests pin that both give byte-identical files and the same collected identifiers, for each
profile, each transfer syntax (explicit and implicit VR little endian, explicit big endian), with
values read eagerly and deferred, and that the raw values are read and written like pydicom does.
"""

from __future__ import annotations

import functools
import io
import warnings
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
from deid_support import PLANTED, ct, deidentify, gsps, sr, uid
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom import Dataset
from pydicom.charset import python_encoding
from pydicom.data import get_testdata_files
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import FileDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from gateway.deid import Deidentifier, load_compiled, raw
from gateway.deid.actions import _values
from gateway.deid.iod import TableIodTypes
from gateway.pipeline.stage import StageContext
from gateway.pseudonyms.interface import InMemoryPseudonymizer

PROFILES = ["basic", "research", "internal"]
SYNTAXES = {"el": ExplicitVRLittleEndian, "il": ImplicitVRLittleEndian, "eb": ExplicitVRBigEndian}
# A dictionary tag of each string VR, multi-valued where the VR allows it.
TAG_OF_VR = {
    "AE": 0x00080054, "AS": 0x0072005F, "CS": 0x00080008, "DA": 0x0014407E, "DT": 0x0040A13A,
    "LO": 0x00081080, "LT": 0x00080108, "PN": 0x0008009C, "SH": 0x00080094, "ST": 0x00080081,
    "TM": 0x0014407C, "UC": 0x00160008, "UI": 0x0008001A, "UT": 0x0008030E,
}
SINGLE_VALUED = {"LT", "ST", "UT"}


def encoded(ds: FileDataset, syntax: str) -> bytes:
    """``ds`` as a Part-10 file in a transfer syntax (synthetic pixels are byte-symmetric)."""
    ds.file_meta.TransferSyntaxUID = SYNTAXES[syntax]
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


@functools.cache
def _engine(profile: str, fast: bool) -> Deidentifier:
    return Deidentifier(load_compiled(profile), InMemoryPseudonymizer(b"fast"),
                        TableIodTypes.load(), fast=fast)


def run(data: bytes, profile: str, fast: bool, defer: int | None = None,
        notes: dict[str, object] | None = None) -> tuple[bytes, set[str]]:
    """De-identify an instance read from ``data``; returns the output file and identifiers."""
    ds = pydicom.dcmread(io.BytesIO(data), defer_size=defer)
    engine = _engine(profile, fast)
    ctx = StageContext(job_id="t", notes=dict(notes or {}))
    engine.apply(ds, ctx)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=bool(ds.file_meta.get("MediaStorageSOPInstanceUID")))
    return out.getvalue(), set(ctx.identity.texts())


def awkward() -> FileDataset:
    """A CT with the values that are hard to read or write from bytes: multiple values, padding,
    empty values, non-ASCII names, invalid dates, nested items and an existing equipment item."""
    ds = ct()
    ds.OtherPatientNames = [f"{PLANTED['family']}^{PLANTED['given']}", "Quixote^Z=", ""]
    ds.ReferringPhysicianName = "Müller^Jürgen"
    ds.PatientBirthName = "Quixote^Zebulon="
    ds.AccessionNumber = ["ACC1", "ACC2"]
    ds.AcquisitionDate = "20210431"  # not a date: removed, not shifted
    ds.AcquisitionDateTime = "20210423093000.5+0100"
    ds.InstanceCreationDate = ["20210423", "2021.04.24"]
    ds.InstanceCreationTime = ["093000", "1015"]
    ds.TimezoneOffsetFromUTC = "+0100"
    ds.StationName = "  CT 1  "
    ds.PerformedStationAETitle = "  CTAE  "
    ds.ScheduledStationAETitle = ["AE1", "AE2"]
    ds.PatientComments = ""
    ds.StudyID = ""
    ds.AdditionalPatientHistory = "Seen by Okonkwo\\Adaeze on 2021-04-23"
    ds.RequestedProcedureDescription = "Chest for Zebulon Quixote"
    equipment = Dataset()
    equipment.Manufacturer = "Earlier Tool"
    ds.ContributingEquipmentSequence = Sequence([equipment])
    return ds


def with_raw_values(data: bytes) -> bytes:
    """Re-encode ``data`` with raw values pydicom would not write itself (odd padding)."""
    ds = pydicom.dcmread(io.BytesIO(data))
    little = ds.original_encoding[1]

    def put(tag: int, vr: str, value: bytes) -> None:
        ds[tag] = RawDataElement(BaseTag(tag), vr, len(value), value, 0, False, little)

    if ds.original_encoding[0]:
        return data  # implicit VR: raw elements of a known VR are written the same
    frame = uid(4, 1).encode()
    put(0x00200052, "UI", frame + (b" " if len(frame) % 2 else b"  "))  # space-padded
    put(0x00100020, "LO", PLANTED["patient_id"].encode() + b"\x00\x00")
    put(0x00081030, "LO", b"CT chest   ")
    out = io.BytesIO()
    pydicom.dcmwrite(out, ds, enforce_file_format=True)
    return out.getvalue()


MAKERS: dict[str, Callable[[], FileDataset]] = {"ct": ct, "sr": sr, "gsps": gsps,
                                                "awkward": awkward}


@pytest.mark.parametrize("syntax", list(SYNTAXES))
@pytest.mark.parametrize("make", list(MAKERS))
@pytest.mark.parametrize("profile", PROFILES)
def test_fast_path_writes_the_decoded_paths_bytes(profile: str, make: str, syntax: str) -> None:
    """Synthetic instances give the same file and identifiers on both paths, in each syntax."""
    data = with_raw_values(encoded(MAKERS[make](), syntax))
    for notes in ({}, {"pixels_cleaned": True, "overlays_cleaned": True}):
        assert run(data, profile, fast=True, notes=notes) == run(data, profile, False, None, notes)


def _bundled() -> list[bytes]:
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in get_testdata_files():
            try:
                pydicom.dcmread(path)
            except Exception:  # not DICOM (README, JSON, ICC profiles, folders...)
                continue
            out.append(Path(path).read_bytes())
    return out


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("profile", PROFILES)
def test_bundled_files_give_the_same_bytes_on_both_paths(profile: str) -> None:
    """Every file of pydicom's test data, read eagerly or deferred, gives the same output."""
    differ = []
    for i, data in enumerate(_bundled()):
        for defer in (None, 1024):
            try:
                fast = run(data, profile, True, defer)
            except Exception as err:  # the decoded path must fail the same way
                with pytest.raises(type(err)):
                    run(data, profile, False, defer)
                continue
            if fast != run(data, profile, False, defer):
                differ.append((i, defer))
    assert not differ


@pytest.mark.parametrize("make", ["ct", "sr", "gsps"])
def test_no_planted_value_in_output_bytes_on_the_fast_path(make: str) -> None:
    """Read from bytes (raw elements), research leaves none of the planted values."""
    original = MAKERS[make]()
    planted = set(PLANTED.values()) | {
        str(e.value) for e in original.iterall() if e.VR == "UI" and str(e.value).startswith(uid())
    }
    data, _ = run(encoded(original, "el"), "research", fast=True)
    found = [p for p in planted if p.lower().encode() in data.lower()]
    assert not found


def test_changed_elements_are_rewritten_raw_and_kept_ones_untouched() -> None:
    """Pseudonyms are stored as raw bytes; kept elements are the very objects that were read."""
    ds = pydicom.dcmread(io.BytesIO(encoded(ct(), "el")))
    kept = {tag: ds.get_item(tag, keep_deferred=True) for tag in (0x00080008, 0x7FE00010)}
    ctx = StageContext(job_id="t")
    Deidentifier(load_compiled("research"), InMemoryPseudonymizer(b"k"),
                 TableIodTypes.load()).apply(ds, ctx)
    for tag, elem in kept.items():
        assert ds.get_item(tag, keep_deferred=True) is elem
    name = ds.get_item(0x00100010, keep_deferred=True)
    assert isinstance(name, RawDataElement)
    assert PLANTED["family"].encode() not in (name.value or b"")
    assert any(PLANTED["family"] in name for name in ctx.identity.name)


def test_markers_are_encoded_once_per_encoding() -> None:
    """Instances of one encoding share the marker elements; another encoding gets its own."""
    engine = Deidentifier(load_compiled("research"), InMemoryPseudonymizer(b"m"),
                          TableIodTypes.load())
    seen = []
    for syntax in ("el", "el", "il"):
        ds = pydicom.dcmread(io.BytesIO(encoded(ct(), syntax)))
        engine.apply(ds, StageContext(job_id="t"))
        seen.append(ds.get_item(0x00120063, keep_deferred=True))  # De-identification Method
    assert seen[0] is seen[1] and seen[0] is not seen[2]
    assert ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"


@pytest.mark.parametrize("make", ["ct", "sr", "gsps"])
@pytest.mark.parametrize("profile", PROFILES)
def test_read_back_input_gives_the_in_memory_output(profile: str, make: str) -> None:
    """An instance built in code (decoded path, as the golden files pin it) and the same instance
    read back from its file (fast path) give the same output file."""
    ds = MAKERS[make]()
    data = encoded(ds, "el")
    _engine(profile, False).apply(ds, StageContext(job_id="t"))
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    assert run(data, profile, fast=True)[0] == out.getvalue()


def test_every_character_set_reads_ascii_alike() -> None:
    """Each character set pydicom supports decodes and encodes ASCII bytes (except ESC) as ASCII,
    which is what lets the fast path ignore Specific Character Set."""
    ascii_bytes = bytes(b for b in range(0x80) if b != 0x1B)
    for codec in set(python_encoding.values()):
        assert ascii_bytes.decode(codec) == ascii_bytes.decode("ascii")
        assert ascii_bytes.decode("ascii").encode(codec) == ascii_bytes


def test_non_ascii_or_escaped_bytes_are_left_to_pydicom() -> None:
    """Raw values with a byte above 0x7F or an ISO 2022 escape are not read by the fast path."""
    for value in ("Müller".encode("latin-1"), b"\x1b$BF|K\\\x1b(B", None):
        elem = RawDataElement(BaseTag(0x00100010), "PN", 6, value, 0, False, True)
        assert raw.decode(elem, "PN") is None
    assert raw.encode(["Müller"], "PN") is None


_TEXT = st.text(alphabet="AZaz09 ^=.:-+\\\x00", max_size=24)


def _pydicom_values(vr: str, value: bytes) -> list[str]:
    elem = RawDataElement(BaseTag(TAG_OF_VR[vr]), vr, len(value), value, 0, False, True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [str(v) for v in _values(convert_raw_data_element(elem))]


@settings(max_examples=60, deadline=None)
@given(text=_TEXT)
@pytest.mark.parametrize("vr", sorted(raw.STRING_VRS))
def test_raw_values_read_like_pydicom(vr: str, text: str) -> None:
    """Reading a raw value gives the values the decoded path sees, for each string VR."""
    value = text.encode("ascii")
    elem = RawDataElement(BaseTag(TAG_OF_VR[vr]), vr, len(value), value, 0, False, True)
    assert raw.decode(elem, vr) == _pydicom_values(vr, value)


def _pydicom_bytes(vr: str, values: list[str]) -> bytes:
    value: object = None if not values else values[0] if len(values) == 1 else values
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        elem = DataElement(TAG_OF_VR[vr], vr, value)
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = True, True
    write_data_element(fp, elem, ["iso8859"])
    return fp.getvalue()[8:]  # after the implicit VR tag and length


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.text(alphabet="AZaz09 ^=.:-+", max_size=12), max_size=4))
@pytest.mark.parametrize("vr", sorted(raw.STRING_VRS))
def test_raw_values_written_like_pydicom(vr: str, values: list[str]) -> None:
    """Encoding values gives the bytes pydicom writes for them, padding included."""
    if vr in SINGLE_VALUED:
        values = values[:1]
    assert raw.encode(values, vr) == _pydicom_bytes(vr, values)


def test_in_memory_datasets_take_the_decoded_path() -> None:
    """A dataset built in code (nothing raw) is de-identified like before: the golden path."""
    ds = ct()
    ctx = deidentify(ds, "research")
    assert isinstance(ds.get_item(0x00100010, keep_deferred=True), DataElement)
    assert PLANTED["patient_id"] in set(ctx.identity.texts())


_WORDS = st.text(alphabet="abcAB1_ -.é", min_size=3, max_size=6)


def _name_left_decoded(data: bytes) -> bool:
    ds = pydicom.dcmread(io.BytesIO(data))
    _engine("research", True).apply(ds, StageContext(job_id="t"))
    return isinstance(ds.get_item(0x00100010, keep_deferred=True), DataElement)


def test_pydicom_settings_the_fast_path_does_not_mirror_turn_it_off(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With dates decoded as objects, or validation that raises, pydicom decodes every element."""
    data = encoded(ct(), "el")
    assert not _name_left_decoded(data)
    monkeypatch.setattr(pydicom.config, "datetime_conversion", True)
    assert _name_left_decoded(data)
    monkeypatch.setattr(pydicom.config, "datetime_conversion", False)
    monkeypatch.setattr(pydicom.config.settings, "reading_validation_mode", pydicom.config.RAISE)
    assert _name_left_decoded(data)
