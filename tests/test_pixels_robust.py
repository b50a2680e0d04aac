"""The pixel stage on damaged or unusual inputs: a precise refusal for truncated or corrupt pixel
data, a repaired decode for a sequential JPEG with bad scan headers, a file meta without a
Transfer Syntax UID, and big endian inputs written back whole as little endian."""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate, generate_frames
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
)

from gateway.config import Settings
from gateway.deid.writer import write_instance
from gateway.pipeline.stage import OutcomeKind, StageContext
from gateway.pixels import frames as px
from gateway.pixels import integrity, jpegmeta
from gateway.pixels.boxes import Box
from gateway.pixels.signatures import SignatureSet
from gateway.pixels.stage import PixelStage
from tests.pixels_data import grey16

BOX = Box(20, 10, 60, 30)


class FixedBoxes:
    """A detector that finds one box in every frame."""

    version = "fixed@1"

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Box]]:
        return [[BOX] for _ in frames]


def _stage() -> PixelStage:
    return PixelStage(Settings().pixels, FixedBoxes(), SignatureSet((), "none@0"))


def _saved(ds: Dataset, tmp_path: Path, ts: str = ExplicitVRLittleEndian) -> Path:
    ds.file_meta.TransferSyntaxUID = ts
    path = tmp_path / "in.dcm"
    ds.save_as(path, enforce_file_format=True, little_endian=ts != ExplicitVRBigEndian,
               implicit_vr=ts == ImplicitVRLittleEndian)
    return path


def test_truncated_native_pixel_data_is_refused_with_its_sizes() -> None:
    """Native pixel data shorter than Rows x Columns x frames says how many bytes it has."""
    ds = grey16(64, 64).ds
    ds.PixelData = ds.PixelData[:-62]
    with pytest.raises(px.PixelDecodeError) as err:
        px.decode(ds)
    assert str(err.value) == "pixel data truncated (8130 of 8192 bytes)"


def test_missing_frames_of_encapsulated_pixel_data_are_counted() -> None:
    """Encapsulated pixel data with fewer frames than Number of Frames is truncated."""
    ds = grey16(32, 32, frames=3).ds
    ds.compress(RLELossless, encoding_plugin="pydicom", generate_instance_uid=False)
    frames = list(generate_frames(ds.PixelData, number_of_frames=3))
    ds.PixelData = encapsulate(frames[:2])
    assert integrity.diagnose(ds, RLELossless) == "pixel data truncated (2 of 3 frames)"


def test_corrupt_jpeg2000_header_is_named() -> None:
    """A JPEG 2000 frame whose SIZ segment disagrees with Rows and Columns is refused with the
    two sizes, not with the decoder's exception."""
    ds = grey16(64, 48).ds
    ds.compress(JPEG2000Lossless, generate_instance_uid=False)
    [frame] = list(generate_frames(ds.PixelData, number_of_frames=1))
    at = frame.index(b"\xff\x51") + 6  # Xsiz
    broken = frame[:at] + struct.pack(">I", 0xDDE00100) + frame[at + 4:]
    ds.PixelData = encapsulate([broken])
    with pytest.raises(px.PixelDecodeError) as err:
        px.decode(ds)
    assert str(err.value) == ("pixel data corrupt: frame 1: JPEG 2000 codestream header says "
                              f"{0xDDE00100} x 64 pixels, Columns and Rows say 48 x 64")


def test_pydicom_embedded_delimiter_file_is_refused_precisely() -> None:
    """pydicom's JPEG 2000 file with four bytes of its header overwritten is refused as corrupt."""
    ds = dcmread(get_testdata_file("JPEG2000-embedded-sequence-delimiter.dcm"))  # type: ignore[arg-type]
    with pytest.raises(px.PixelDecodeError) as err:
        px.decode(ds)
    assert str(err.value).startswith("pixel data corrupt: frame 1: JPEG 2000 codestream header")


def test_jpeg_with_bad_scan_header_decodes_like_its_corrected_copy() -> None:
    """pydicom's JPEG-lossy.dcm (12-bit extended JPEG whose scan header says Se = 0) decodes to
    exactly the pixels of JPGExtended.dcm, the same bitstream with Se = 63."""
    bad = dcmread(get_testdata_file("JPEG-lossy.dcm"))  # type: ignore[arg-type]
    good = dcmread(get_testdata_file("JPGExtended.dcm"))  # type: ignore[arg-type]
    [frame] = list(generate_frames(bad.PixelData, number_of_frames=1))
    repaired = jpegmeta.repair_sequential_scans(bytes(frame))
    assert repaired is not None and len(repaired) == len(frame)
    assert jpegmeta.repair_sequential_scans(repaired) is None  # nothing left to repair
    dec = px.decode(bad)
    assert np.array_equal(dec.frames, px.decode(good).frames)
    assert dec.lossy
    assert bad.PixelData == dcmread(get_testdata_file("JPEG-lossy.dcm")).PixelData  # type: ignore[arg-type]


def test_undecodable_bitstream_names_the_syntax() -> None:
    """A frame that parses but that no decoder reads is refused naming the transfer syntax."""
    ds = grey16(32, 32).ds
    ds.compress(JPEG2000Lossless, generate_instance_uid=False)
    [frame] = list(generate_frames(ds.PixelData, number_of_frames=1))
    sot = frame.index(b"\xff\x90")
    ds.PixelData = encapsulate([frame[:sot + 14] + b"\x00" * 40])
    with pytest.raises(px.PixelDecodeError) as err:
        px.decode(ds)
    assert str(err.value) == ("cannot decode pixel data: no installed decoder reads this "
                              "JPEG 2000 Image Compression (Lossless Only) pixel data")


def test_file_meta_without_transfer_syntax_is_read_as_its_encoding(tmp_path: Path) -> None:
    """pydicom's meta_missing_tsyntax.dcm goes through the stage; the syntax is the encoding
    the data set was read in."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = dcmread(get_testdata_file("meta_missing_tsyntax.dcm"))  # type: ignore[arg-type]
    assert "TransferSyntaxUID" not in ds.file_meta
    assert px.transfer_syntax(ds) == ImplicitVRLittleEndian
    outcome = _stage()(ds, StageContext(job_id="t"))
    assert outcome.kind is OutcomeKind.CONTINUE


def test_scrubbed_file_without_transfer_syntax_is_written_in_its_encoding(
    tmp_path: Path,
) -> None:
    """When the pixels of a file whose meta lacks the Transfer Syntax UID are blanked, the
    output names the syntax it was read in and reads back with the box blanked."""
    ds = grey16(64, 96).ds
    before = ds.pixel_array.copy()
    del ds.file_meta.TransferSyntaxUID
    ds.preamble = bytes(128)
    source = tmp_path / "in.dcm"
    ds.save_as(source, implicit_vr=True, little_endian=True, enforce_file_format=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        read = dcmread(source)
    assert "TransferSyntaxUID" not in read.file_meta
    ctx = StageContext(job_id="t")
    assert _stage()(read, ctx).kind is OutcomeKind.CONTINUE
    assert ctx.notes["pixels_cleaned"]
    write_instance(read, tmp_path / "out.dcm")
    out = dcmread(tmp_path / "out.dcm")
    assert out.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert (out.pixel_array[BOX.y0:BOX.y1, BOX.x0:BOX.x1] == 0).all()
    assert out.pixel_array.shape == before.shape


def test_scrubbed_big_endian_is_written_whole_as_little_endian(tmp_path: Path) -> None:
    """A big endian image whose pixels are blanked is written as Explicit VR Little Endian with
    every OW word (nested LUT Data included) in little endian order."""
    planted = grey16(64, 96)
    ds = planted.ds
    lut = Dataset()
    lut.LUTDescriptor = [4, 0, 16]
    lut.add_new(0x00283006, "OW", struct.pack(">4H", 1, 2, 0x0102, 0xFFFE))  # LUT Data
    ds.VOILUTSequence = DicomSequence([lut])
    before = ds.pixel_array.copy()
    be = ds.copy()
    be.PixelData = before.astype(">u2").tobytes()
    source = _saved(be, tmp_path, ExplicitVRBigEndian)
    read = dcmread(source)
    assert read.original_encoding == (False, False)
    assert _stage()(read, StageContext(job_id="t")).kind is OutcomeKind.CONTINUE
    out_path = tmp_path / "out.dcm"
    write_instance(read, out_path)
    out = dcmread(out_path)
    assert out.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    raw_lut = out.VOILUTSequence[0][0x00283006].value
    assert struct.unpack("<4H", raw_lut) == (1, 2, 0x0102, 0xFFFE)
    after = out.pixel_array
    outside = np.ones(before.shape, bool)
    outside[BOX.y0 - 2:BOX.y1 + 2, BOX.x0 - 2:BOX.x1 + 2] = False  # (the box's padding)
    assert np.array_equal(after[outside], before[outside])
    assert (after[BOX.y0:BOX.y1, BOX.x0:BOX.x1] == 0).all()
    assert out.Rows == 64 and out.Columns == 96 and out.PatientID == ds.PatientID


def test_repair_leaves_progressive_and_clean_streams_alone() -> None:
    """Only sequential DCT scans are repaired; a clean baseline stream needs nothing."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(buf, "JPEG")
    assert jpegmeta.repair_sequential_scans(buf.getvalue()) is None
    buf = io.BytesIO()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(buf, "JPEG", progressive=True)
    assert jpegmeta.repair_sequential_scans(buf.getvalue()) is None
