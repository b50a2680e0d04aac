"""Values left on disk by the read stream from the input file when the instance is written."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pydicom
import pytest
from deid_support import ct, deidentify
from pydicom.data import get_testdata_file
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from gateway.deid.stream import FileSlice, InputChangedError, stream_deferred

PIXEL_DATA = 0x7FE00010


def _file(tmp_path: Path, syntax: str = ExplicitVRLittleEndian, size: int = 64) -> Path:
    """A CT with ``size`` x ``size`` 16-bit pixels of distinct values, in ``syntax``."""
    ds = ct()
    ds.Rows = ds.Columns = size
    pixels = np.arange(size * size, dtype="<u2")
    if syntax == ExplicitVRBigEndian:
        pixels = pixels.astype(">u2")
    ds.PixelData = pixels.tobytes()
    ds.file_meta.TransferSyntaxUID = syntax
    path = tmp_path / "in.dcm"
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


def _written(ds: pydicom.Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_slice_reads_its_bytes_and_closes_at_the_end(tmp_path: Path) -> None:
    """A slice reads exactly its range, seeks like a file, and holds no descriptor at the end."""
    path = tmp_path / "data"
    path.write_bytes(bytes(range(256)) * 4)
    part = FileSlice(str(path), 10, 20)
    before = _open_fds()
    assert part.read(5) == bytes(range(10, 15))
    assert part.tell() == 5
    assert part.seek(0, os.SEEK_END) == 20
    part.seek(15)
    assert part.read() == bytes(range(25, 30))
    assert part.read(8) == b""
    assert _open_fds() == before


def test_slice_of_a_changed_file_fails(tmp_path: Path) -> None:
    """A file modified after it was read is not copied: the read raises InputChangedError."""
    path = tmp_path / "data"
    path.write_bytes(bytes(100))
    mtime = path.stat().st_mtime
    os.utime(path, (mtime + 10, mtime + 10))
    with pytest.raises(InputChangedError):
        FileSlice(str(path), 0, 50, mtime).read()


def test_slice_past_the_end_of_a_shortened_file_fails(tmp_path: Path) -> None:
    """A file shorter than the slice raises rather than write fewer bytes than declared."""
    path = tmp_path / "data"
    path.write_bytes(bytes(10))
    with pytest.raises(InputChangedError):
        FileSlice(str(path), 0, 50).read()


@pytest.mark.parametrize(
    "syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian],
    ids=["explicit-little", "implicit-little", "explicit-big"],
)
def test_deferred_pixel_data_streams_into_the_same_bytes(tmp_path: Path, syntax: str) -> None:
    """A deferred Pixel Data becomes a slice of the input, and the file written is unchanged."""
    path = _file(tmp_path, syntax)
    expected = _written(pydicom.dcmread(path))
    ds = pydicom.dcmread(path, defer_size=1024)
    assert stream_deferred(ds) == 1
    elem = ds.get_item(PIXEL_DATA, keep_deferred=True)
    assert isinstance(elem, DataElement) and isinstance(elem.value, FileSlice)
    assert elem.VR == "OW"
    assert _written(ds) == expected


def test_engine_streams_what_it_keeps_on_disk(tmp_path: Path) -> None:
    """After de-identification the deferred pixels stream; the output matches an eager read."""
    path = _file(tmp_path, size=128)
    eager = pydicom.dcmread(path)
    deidentify(eager, "research")
    ds = pydicom.dcmread(path, defer_size=4096)
    deidentify(ds, "research")
    assert isinstance(ds.get_item(PIXEL_DATA, keep_deferred=True).value, FileSlice)
    assert _written(ds) == _written(eager)


def test_input_changed_before_the_write_fails_it(tmp_path: Path) -> None:
    """If the input file changes between read and write, writing raises instead of mixing."""
    path = _file(tmp_path)
    ds = pydicom.dcmread(path, defer_size=1024)
    stream_deferred(ds)
    mtime = path.stat().st_mtime
    os.utime(path, (mtime + 10, mtime + 10))
    with pytest.raises(InputChangedError):
        _written(ds)


def test_values_read_eagerly_or_from_buffers_are_left_alone(tmp_path: Path) -> None:
    """Nothing streams from an eager read, from a buffer, or from a deflated (inflated) file."""
    path = _file(tmp_path)
    assert stream_deferred(pydicom.dcmread(path)) == 0
    assert stream_deferred(pydicom.dcmread(io.BytesIO(path.read_bytes()), defer_size=1024)) == 0
    deflated = get_testdata_file("image_dfl.dcm")
    assert deflated is not None
    assert stream_deferred(pydicom.dcmread(deflated, defer_size=1024)) == 0


def test_truncated_value_is_left_to_pydicom() -> None:
    """A value the file does not wholly hold (a truncated file) stays deferred."""
    truncated = get_testdata_file("MR_truncated.dcm")
    assert truncated is not None
    ds = pydicom.dcmread(truncated, defer_size=1024)
    assert stream_deferred(ds) == 0
    assert isinstance(ds.get_item(PIXEL_DATA, keep_deferred=True), RawDataElement)
