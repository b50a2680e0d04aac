"""Decoding, blanking and re-encoding pixel data: fill, padding, colour, multi-frame, codecs."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from pydicom import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels import pixel_array
from pydicom.uid import (
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)

from gateway.pixels import frames as px
from gateway.pixels import jpegmeta
from gateway.pixels.boxes import Box, boxes_mask, prepare
from tests.pixels_data import grey16, ultrasound

BOX = Box(20, 10, 60, 30)


def _scrub(ds: Dataset, boxes: list[Box]) -> px.Decoded:
    dec = px.decode(ds)
    px.blank(dec, [boxes] * dec.count, px.fill_value(dec, ds))
    px.encode(ds, dec, "explicit_vr_little_endian")
    return dec


def _outside_unchanged(before: np.ndarray, after: np.ndarray, box: Box) -> bool:
    """Whether every pixel outside ``box`` is equal, for (F,)R,C(,3) arrays."""
    colour = before.shape[-1] == 3 and before.ndim in (3, 4)
    a = before if colour else before[..., None]
    b = after if colour else after[..., None]
    a = a.reshape((-1, *a.shape[-3:]))
    b = b.reshape((-1, *b.shape[-3:]))
    outside = ~boxes_mask([box], a.shape[1], a.shape[2])
    return bool(np.array_equal(a[:, outside], b[:, outside]))


def test_padding_grows_by_pixels_and_fraction_then_clips() -> None:
    """A box grows by pad_px plus a fraction of its height on every side, clipped to the frame."""
    b = Box(5, 10, 50, 30)  # height 20
    (p,) = prepare([b], rows=100, columns=52, pad_px=2, pad_fraction=0.1)
    assert (p.x0, p.y0, p.x1, p.y1) == (1, 6, 52, 34)
    assert prepare([Box(200, 200, 210, 210)], 100, 100, 2, 0.0) == []


@pytest.mark.parametrize(
    ("photometric", "bits", "signed", "expected"),
    [("MONOCHROME2", 12, False, 0), ("MONOCHROME1", 12, False, 4095),
     ("MONOCHROME2", 16, True, -32768), ("MONOCHROME1", 12, True, 2047),
     ("MONOCHROME2", 8, False, 0)],
)
def test_grey_fill_is_the_darkest_displayable_value(photometric: str, bits: int, signed: bool,
                                                    expected: int) -> None:
    """The fill is MONOCHROME2's minimum and MONOCHROME1's maximum within Bits Stored."""
    dec = px.Decoded(np.zeros((1, 4, 4), np.int16 if signed else np.uint16), photometric, bits,
                     signed, px.ExplicitVRLittleEndian, False)
    assert px.fill_value(dec, Dataset()) == expected


def test_ybr_full_fill_is_black_with_neutral_chroma() -> None:
    """Black in YBR_FULL is Y=0 with Cb=Cr at mid range."""
    dec = px.Decoded(np.zeros((1, 2, 2, 3), np.uint8), "YBR_FULL", 8, False,
                     px.ExplicitVRLittleEndian, False)
    assert px.fill_value(dec, Dataset()) == (0, 128, 128)


@pytest.mark.parametrize(("photometric", "signed"),
                         [("MONOCHROME2", False), ("MONOCHROME1", False), ("MONOCHROME2", True)])
def test_grey_round_trip_blanks_only_the_box(photometric: str, signed: bool) -> None:
    """12-bit grey data: the box takes the fill value and every other pixel is unchanged."""
    pl = grey16(photometric=photometric, signed=signed)
    before = pl.ds.pixel_array.copy()
    dec = _scrub(pl.ds, [BOX])
    after = pl.ds.pixel_array
    assert (after[BOX.y0:BOX.y1, BOX.x0:BOX.x1] == px.fill_value(dec, pl.ds)).all()
    assert _outside_unchanged(before, after, BOX)
    assert pl.ds.BitsStored == 12 and pl.ds.PhotometricInterpretation == photometric


def test_multiframe_every_frame_is_blanked() -> None:
    """Each frame of a multi-frame instance gets its own boxes blanked."""
    pl = ultrasound(rows=120, columns=160, frames=4)
    before = pl.ds.pixel_array.copy()
    dec = px.decode(pl.ds)
    assert dec.count == 4
    px.blank(dec, [[BOX]] * 4, 0)
    px.encode(pl.ds, dec, "explicit_vr_little_endian")
    after = pl.ds.pixel_array
    assert after.shape == (4, 120, 160)
    assert (after[:, BOX.y0:BOX.y1, BOX.x0:BOX.x1] == 0).all()
    assert _outside_unchanged(before, after, BOX)


def test_rgb_round_trip_blanks_all_channels() -> None:
    """RGB frames are blanked to (0, 0, 0) in all channels and keep their photometric."""
    pl = ultrasound(rows=120, columns=160, colour=True)
    before = pl.ds.pixel_array.copy()
    _scrub(pl.ds, [BOX])
    after = pl.ds.pixel_array
    assert (after[BOX.y0:BOX.y1, BOX.x0:BOX.x1] == 0).all()
    assert _outside_unchanged(before, after, BOX)
    assert pl.ds.PhotometricInterpretation == "RGB"


def test_ybr_full_stays_ybr_full_and_lossless() -> None:
    """A YBR_FULL instance is blanked in YBR space without a colour conversion elsewhere."""
    pl = ultrasound(rows=64, columns=96, colour=True)
    ycc = pl.ds.pixel_array.copy()
    pl.ds.set_pixel_data(ycc, "YBR_FULL", 8, generate_instance_uid=False)
    dec = _scrub(pl.ds, [BOX])
    assert dec.photometric == "YBR_FULL" and pl.ds.PhotometricInterpretation == "YBR_FULL"
    after = pixel_array(pl.ds, raw=True)
    assert (after[BOX.y0:BOX.y1, BOX.x0:BOX.x1] == (0, 128, 128)).all()
    assert _outside_unchanged(ycc, after, BOX)


def _palette(ds: Dataset) -> None:
    """Turn an 8-bit grey instance into PALETTE COLOR whose darkest entry is index 77."""
    lut = np.linspace(65535, 8000, 256).astype(np.uint16)
    lut[77] = 0
    ds.PhotometricInterpretation = "PALETTE COLOR"
    for c in ("Red", "Green", "Blue"):
        setattr(ds, f"{c}PaletteColorLookupTableDescriptor", [256, 0, 16])
        setattr(ds, f"{c}PaletteColorLookupTableData", lut.tobytes())


def test_palette_colour_fills_with_the_darkest_palette_index() -> None:
    """PALETTE COLOR is blanked with the index whose colour is darkest, keeping the palette."""
    pl = ultrasound(rows=64, columns=96)
    _palette(pl.ds)
    before = pl.ds.pixel_array.copy()
    dec = _scrub(pl.ds, [BOX])
    assert px.fill_value(dec, pl.ds) == 77
    after = pl.ds.pixel_array
    assert (after[BOX.y0:BOX.y1, BOX.x0:BOX.x1] == 77).all()
    assert _outside_unchanged(before, after, BOX)
    assert pl.ds.PhotometricInterpretation == "PALETTE COLOR"


@pytest.mark.parametrize("ts", [RLELossless, JPEGLSLossless, JPEG2000Lossless])
@pytest.mark.parametrize("colour", [False, True])
def test_lossless_syntaxes_round_trip_in_the_same_syntax(ts: str, colour: bool) -> None:
    """RLE, JPEG-LS and JPEG 2000 lossless inputs come back in their syntax, exact outside boxes."""
    pl = ultrasound(rows=96, columns=128, frames=2, colour=colour)
    before = pl.ds.pixel_array.copy()
    pl.ds.compress(ts, generate_instance_uid=False)
    dec = px.decode(pl.ds)
    assert not dec.lossy
    px.blank(dec, [[BOX]] * 2, px.fill_value(dec, pl.ds))
    written = px.encode(pl.ds, dec, "explicit_vr_little_endian")
    assert written == ts and pl.ds.file_meta.TransferSyntaxUID == ts
    after = pl.ds.pixel_array
    assert (after[:, BOX.y0:BOX.y1, BOX.x0:BOX.x1] == 0).all()
    assert _outside_unchanged(before, after, BOX)
    assert "LossyImageCompression" not in pl.ds


def _jpeg_instance(colour: bool, exif: bytes = b"", comment: bytes = b"") -> Dataset:
    pl = ultrasound(rows=96, columns=128, colour=colour)
    arr = pl.ds.pixel_array
    buf = io.BytesIO()
    kw: dict[str, object] = {"quality": 92}
    if exif:
        kw["exif"] = exif
    if comment:
        kw["comment"] = comment
    if colour:
        kw["subsampling"] = 1  # 4:2:2
    Image.fromarray(arr).save(buf, "JPEG", **kw)
    ds = pl.ds
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PhotometricInterpretation = "YBR_FULL_422" if colour else "MONOCHROME2"
    ds.PixelData = encapsulate([buf.getvalue()])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return ds


@pytest.mark.parametrize("colour", [False, True])
def test_lossy_jpeg_input_is_written_lossless_and_marked_lossy(colour: bool) -> None:
    """A JPEG baseline input is decoded, blanked and written uncompressed with Lossy Image
    Compression 01, its method and ratio, and RGB for a YBR_FULL_422 input."""
    ds = _jpeg_instance(colour)
    decoded = px.decode(ds).frames[0].copy()
    dec = _scrub(ds, [BOX])
    assert dec.lossy
    assert ds.file_meta.TransferSyntaxUID == px.ExplicitVRLittleEndian
    assert ds.LossyImageCompression == "01"
    assert ds.LossyImageCompressionMethod == "ISO_10918_1"
    assert float(ds.LossyImageCompressionRatio) > 1
    assert ds.PhotometricInterpretation == ("RGB" if colour else "MONOCHROME2")
    after = ds.pixel_array
    assert (after[BOX.y0:BOX.y1, BOX.x0:BOX.x1] == 0).all()
    assert _outside_unchanged(decoded, after, BOX)  # no second loss outside the box


def test_lossy_input_can_fall_back_to_jpeg_ls_lossless() -> None:
    """With reencode_fallback jpeg_ls_lossless a lossy input is written as JPEG-LS lossless."""
    ds = _jpeg_instance(False)
    dec = px.decode(ds)
    px.blank(dec, [[BOX]], 0)
    assert px.encode(ds, dec, "jpeg_ls_lossless") == JPEGLSLossless
    assert ds.LossyImageCompression == "01"


def _exif_with(text: bytes) -> bytes:
    """A minimal little-endian EXIF block with an ImageDescription holding ``text``."""
    img = Image.new("L", (1, 1))
    exif = img.getexif()
    exif[0x010E] = text.decode()
    return exif.tobytes()


def test_jpeg_metadata_segments_are_stripped_and_pixels_kept() -> None:
    """EXIF (APP1) and COM segments leave the bitstream; the decoded pixels stay identical."""
    ds = _jpeg_instance(True, exif=_exif_with(b"TESTPATIENT JANE"), comment=b"PX93417")
    old = next(generate_frames(ds.PixelData, number_of_frames=1))
    assert b"TESTPATIENT" in old and b"PX93417" in old
    before = ds.pixel_array.copy()
    removed = jpegmeta.strip_dataset(ds)
    new = next(generate_frames(ds.PixelData, number_of_frames=1))
    assert removed > 0 and b"TESTPATIENT" not in new and b"PX93417" not in new
    assert np.array_equal(ds.pixel_array, before)


@pytest.mark.parametrize("ts", [JPEGLSLossless, JPEG2000Lossless])
def test_jpeg_ls_and_j2k_streams_decode_the_same_after_stripping(ts: str) -> None:
    """Stripping a JPEG-LS or JPEG 2000 stream leaves its decoded pixels identical."""
    pl = ultrasound(rows=64, columns=64, frames=2)
    pl.ds.compress(ts, generate_instance_uid=False)
    before = pl.ds.pixel_array.copy()
    jpegmeta.strip_dataset(pl.ds)
    assert np.array_equal(pl.ds.pixel_array, before)


def test_j2k_main_header_comment_is_removed() -> None:
    """A COM segment in a JPEG 2000 main header is dropped and the stream still decodes."""
    pl = ultrasound(rows=64, columns=64)
    pl.ds.compress(JPEG2000Lossless, generate_instance_uid=False)
    before = pl.ds.pixel_array.copy()
    frame = next(generate_frames(pl.ds.PixelData, number_of_frames=1))
    com = b"\xff\x64" + (len(b"PX93417") + 4).to_bytes(2, "big") + b"\x00\x01PX93417"
    sot = frame.find(b"\xff\x90")
    pl.ds.PixelData = encapsulate([frame[:sot] + com + frame[sot:]])
    assert jpegmeta.strip_dataset(pl.ds) >= len(com)
    assert b"PX93417" not in bytes(pl.ds.PixelData)
    assert np.array_equal(pl.ds.pixel_array, before)


def test_undecodable_pixel_data_raises_decode_error() -> None:
    """Corrupt compressed data gives PixelDecodeError (the stage quarantines on it)."""
    ds = _jpeg_instance(False)
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xdb\x00\x02garbage"])
    with pytest.raises(px.PixelDecodeError):
        px.decode(ds)


def test_big_endian_input_is_written_little_endian() -> None:
    """The retired Explicit VR Big Endian syntax comes back as Explicit VR Little Endian."""
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian

    pl = grey16()
    arr = pl.ds.pixel_array.copy()
    pl.ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    pl.ds.PixelData = arr.astype(">u2").tobytes()
    dec = _scrub(pl.ds, [BOX])
    assert dec.transfer_syntax == ExplicitVRBigEndian
    assert pl.ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert _outside_unchanged(arr, pl.ds.pixel_array, BOX)


def test_planar_configuration_1_rgb_is_read_and_written_consistently() -> None:
    """Colour-by-plane RGB input is blanked per pixel and written with a matching Planar
    Configuration."""
    pl = ultrasound(rows=64, columns=96, colour=True)
    rgb = pl.ds.pixel_array.copy()
    pl.ds.PlanarConfiguration = 1
    pl.ds.PixelData = np.ascontiguousarray(rgb.transpose(2, 0, 1)).tobytes()
    assert np.array_equal(pl.ds.pixel_array, rgb)
    _scrub(pl.ds, [BOX])
    after = pl.ds.pixel_array
    assert (after[BOX.y0:BOX.y1, BOX.x0:BOX.x1] == 0).all()
    assert _outside_unchanged(rgb, after, BOX)
