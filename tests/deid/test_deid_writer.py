"""``write_instance`` writes exactly what ``save_as(..., enforce_file_format=True)`` writes."""

from __future__ import annotations

import functools
import io
import warnings
from pathlib import Path

import pydicom
import pytest
from deid_support import ct, gsps, sr
from pydicom.data import get_testdata_files
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import ImplicitVRLittleEndian
from test_deid_fastpath import awkward, encoded

from gateway.deid import Deidentifier, load_compiled
from gateway.deid.iod import TableIodTypes
from gateway.deid.stream import FileSlice
from gateway.deid.writer import _meta_bytes, write_instance
from gateway.pipeline.stage import StageContext
from gateway.pseudonyms.interface import InMemoryPseudonymizer


@functools.cache
def _engine(profile: str) -> Deidentifier:
    return Deidentifier(load_compiled(profile), InMemoryPseudonymizer(b"w"), TableIodTypes.load())


def _both(read: object, profile: str | None, defer: int | None = None) -> tuple[object, object]:
    """The output of ``save_as`` and of ``write_instance`` for two reads of the same input (or
    the exception each raised)."""
    outs: list[object] = []
    for write in ("save_as", "write_instance"):
        source = io.BytesIO(read) if isinstance(read, bytes) else read
        ds = pydicom.dcmread(source, defer_size=defer)
        buf = io.BytesIO()
        try:
            if profile is not None:
                _engine(profile).apply(ds, StageContext(job_id="w"))
            if write == "save_as":
                ds.save_as(buf, enforce_file_format=True)
            else:
                write_instance(ds, buf)
            outs.append(buf.getvalue())
        except Exception as err:
            outs.append(type(err))
    return outs[0], outs[1]


def _bundled() -> list[str]:
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in get_testdata_files():
            try:
                pydicom.dcmread(path)
            except Exception:  # not DICOM
                continue
            out.append(path)
    return out


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("profile", [None, "basic", "research"])
def test_bundled_files_are_written_alike(profile: str | None) -> None:
    """pydicom's test files, as read or de-identified, eager or deferred: the same bytes (or the
    same exception) from both writers."""
    differ = []
    for path in _bundled():
        for defer in (None, 1024):
            a, b = _both(path, profile, defer)
            if a != b:
                differ.append((Path(path).name, defer))
    assert not differ


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("syntax", ["el", "il", "eb"])
@pytest.mark.parametrize("make", [ct, sr, gsps, awkward], ids=["ct", "sr", "gsps", "awkward"])
def test_deidentified_synthetic_instances_are_written_alike(make: object, syntax: str) -> None:
    """Each synthetic instance, de-identified, gives the same file in each transfer syntax."""
    data = encoded(make(), syntax)  # type: ignore[operator]
    a, b = _both(data, "research")
    assert isinstance(a, bytes) and a == b


def _file(tmp_path: Path) -> Path:
    path = tmp_path / "in.dcm"
    pydicom.dcmwrite(path, ct(), enforce_file_format=True)
    return path


def test_changed_encoding_or_uids_are_left_to_pydicom(tmp_path: Path) -> None:
    """A new transfer syntax or SOP Instance UID is pydicom's business: the outputs still agree."""
    path = _file(tmp_path)
    outputs = []
    for change in ("syntax", "uid"):
        for write in ("save_as", "write_instance"):
            ds = pydicom.dcmread(path)
            if change == "syntax":
                ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
            else:
                ds.SOPInstanceUID = "1.2.3.4"
            buf = io.BytesIO()
            ds.save_as(buf, enforce_file_format=True) if write == "save_as" else write_instance(
                ds, buf)
            outputs.append(buf.getvalue())
    assert outputs[0] == outputs[1] and outputs[2] == outputs[3]
    assert b"1.2.3.4" in outputs[3]


def test_streamed_pixel_data_is_written_alike(tmp_path: Path) -> None:
    """Pixel Data streaming from the input file is copied by pydicom's chunked writer."""
    path = _file(tmp_path)
    a, b = _both(str(path), "research", defer=64)
    assert isinstance(a, bytes) and a == b
    ds = pydicom.dcmread(path, defer_size=64)
    _engine("research").apply(ds, StageContext(job_id="w"))
    assert isinstance(ds.get_item(0x7FE00010, keep_deferred=True).value, FileSlice)


def test_paths_and_file_objects_are_both_targets(tmp_path: Path) -> None:
    """A path is opened and closed; a file object is written to and left open."""
    path = _file(tmp_path)
    ds = pydicom.dcmread(path)
    write_instance(ds, tmp_path / "out.dcm")
    with open(tmp_path / "out2.dcm", "wb") as fh:
        write_instance(ds, fh)
        assert not fh.closed
    assert (tmp_path / "out.dcm").read_bytes() == (tmp_path / "out2.dcm").read_bytes()
    assert pydicom.dcmread(tmp_path / "out.dcm").SOPInstanceUID == ds.SOPInstanceUID


@pytest.mark.parametrize("syntax", ["el", "eb"])
def test_undecoded_file_meta_is_packed_like_pydicom(syntax: str) -> None:
    """The file meta group from undecoded elements equals ``write_file_meta_info``'s bytes, and a
    meta that lacks an element pydicom would add is left to pydicom."""
    ds = pydicom.dcmread(io.BytesIO(encoded(ct(), syntax)))
    _engine("research").apply(ds, StageContext(job_id="w"))
    packed = _meta_bytes(ds.file_meta)
    expected = DicomBytesIO()
    expected.is_little_endian, expected.is_implicit_VR = True, False
    write_file_meta_info(expected, FileMetaDataset(dict(ds.file_meta.items())), True)
    assert packed == expected.getvalue()
    del ds.file_meta[0x00020013]
    assert _meta_bytes(ds.file_meta) is None
