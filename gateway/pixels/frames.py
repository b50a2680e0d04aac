"""Decode an instance's frames, blank boxes in them and write the pixel data back.

Lossless inputs are re-encoded with the transfer syntax they came in (native, RLE Lossless,
JPEG-LS Lossless, JPEG 2000 Lossless), so every pixel outside the blanked boxes is unchanged.
Inputs that pydicom cannot encode again (JPEG baseline/extended, JPEG-LS near-lossless, lossy
JPEG 2000 and JPEG Lossless process 14) are written with the configured lossless fallback;
a lossy input's Lossy Image Compression (0028,2110) stays "01" with its ratio and method
(PS3.3 C.7.6.1.1.5), since the blanked image still carries the earlier loss.

The fill value is the darkest value the Photometric Interpretation can show within Bits Stored
and Pixel Representation (PS3.3 C.7.6.3.1.2): the minimum for MONOCHROME2, the maximum for
MONOCHROME1, zero for RGB, Y=0 with neutral chroma for YBR_FULL, and the palette index of the
darkest entry for PALETTE COLOR.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels import apply_color_lut, convert_color_space, pixel_array
from pydicom.uid import (
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from gateway.byteorder import to_little_endian
from gateway.pixels import integrity, jpegmeta
from gateway.pixels.boxes import Box

PIXEL_DATA = 0x7FE00010

NATIVE = frozenset({ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian,
                    DeflatedExplicitVRLittleEndian})
# Encapsulated syntaxes we re-encode as they came (pydicom 3 has encoders for them).
REENCODE_SAME = frozenset({RLELossless, JPEGLSLossless, JPEG2000Lossless})
JPEG_LOSSLESS_14 = frozenset({UID("1.2.840.10008.1.2.4.57"), JPEGLosslessSV1})
LOSSY = frozenset({JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLSNearLossless})
LOSSY_METHOD = {JPEGBaseline8Bit: "ISO_10918_1", JPEGExtended12Bit: "ISO_10918_1",
                JPEGLSNearLossless: "ISO_14495_1", JPEG2000: "ISO_15444_1"}
LOSSY_SEQUENTIAL_JPEG = frozenset({JPEGBaseline8Bit, JPEGExtended12Bit})
# The Image Pixel module attributes a decoder reads (PS3.3 C.7.6.3), and Number of Frames.
_IMAGE_PIXEL_KEYWORDS = ("Rows", "Columns", "SamplesPerPixel", "PhotometricInterpretation",
                         "PlanarConfiguration", "BitsAllocated", "BitsStored", "HighBit",
                         "PixelRepresentation", "NumberOfFrames")
FALLBACKS = {"explicit_vr_little_endian": ExplicitVRLittleEndian, "rle_lossless": RLELossless,
             "jpeg_ls_lossless": JPEGLSLossless, "jpeg2000_lossless": JPEG2000Lossless}


class PixelDecodeError(Exception):
    """The pixel data could not be decoded (no plugin, corrupt stream, odd attributes)."""


class PixelEncodeError(Exception):
    """The scrubbed pixel data could not be encoded back."""


@dataclass
class Decoded:
    """All frames of an instance, (frames, rows, cols[, samples]), and how they are stored."""

    frames: np.ndarray
    photometric: str  # of ``frames`` (may differ from the input's, e.g. YBR_FULL_422 -> RGB)
    bits_stored: int
    signed: bool
    transfer_syntax: UID
    lossy: bool  # the input's pixels already went through lossy compression

    @property
    def count(self) -> int:
        return int(self.frames.shape[0])


def transfer_syntax(ds: Dataset) -> UID:
    """The file meta's Transfer Syntax UID; when the file meta lacks one (a non-conformant
    file), the uncompressed syntax the data set was read in (its encapsulated pixel data, if
    any, then fails to decode and is reported as such)."""
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if uid:
        return UID(uid)
    implicit, little = getattr(ds, "original_encoding", (False, True))
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRBigEndian if little is False else ExplicitVRLittleEndian


def is_lossy(ds: Dataset, ts: UID) -> bool:
    """Whether the pixels have been lossy-compressed, now or earlier (PS3.3 C.7.6.1.1.5)."""
    flag = str(ds.get("LossyImageCompression", "")).strip()
    if flag == "01":
        return True
    if ts == JPEG2000:  # reversible or not: believe the attribute when it says 00
        return flag != "00"
    return ts in LOSSY


def decode(ds: Dataset) -> Decoded:
    """Every frame as stored (colour kept in YBR_FULL for lossless inputs), or an error.

    A file meta without Transfer Syntax UID gets the inferred one (pydicom's decoders read it
    there; the de-identifier would write the same)."""
    ts = transfer_syntax(ds)
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        ds.file_meta = meta = FileMetaDataset()
    if not meta.get("TransferSyntaxUID"):
        meta.TransferSyntaxUID = ts
    pi = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    lossy = is_lossy(ds, ts)
    raw = not (lossy and pi.startswith("YBR")) and pi != "YBR_FULL_422"
    arr = _pixel_array(ds, ts, raw)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    spp = int(ds.get("SamplesPerPixel", 1))
    want = 4 if spp > 1 else 3
    if arr.ndim == want - 1:
        arr = arr[None]
    if arr.ndim != want or arr.shape[0] != frames:
        raise PixelDecodeError("decoded pixel data has an unexpected shape")
    out_pi = pi
    if pi in ("YBR_RCT", "YBR_ICT") or (not raw and pi.startswith("YBR")) or pi == "YBR_FULL_422":
        out_pi = "RGB"
    arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("="))  # big endian input
    return Decoded(arr, out_pi, int(ds.BitsStored),
                   int(ds.get("PixelRepresentation", 0)) == 1, ts, lossy)


def _pixel_array(ds: Dataset, ts: UID, raw: bool) -> np.ndarray:
    """All frames decoded; a sequential JPEG whose scan headers a strict decoder rejects is
    decoded again with them repaired. A failure says what is wrong with the stored data."""
    try:
        return np.asarray(pixel_array(ds, raw=raw))
    except Exception:  # any decoder failure: explained below, then quarantined by the caller
        pass
    if ts in LOSSY_SEQUENTIAL_JPEG:
        repaired = _repaired_jpeg(ds, ts)
        if repaired is not None:
            try:
                return np.asarray(pixel_array(repaired, raw=raw))
            except Exception:
                pass
    problem = integrity.diagnose(ds, ts)
    if problem is not None:
        raise PixelDecodeError(problem)
    raise PixelDecodeError(
        f"cannot decode pixel data: no installed decoder reads this {ts.name} pixel data")


def _repaired_jpeg(ds: Dataset, ts: UID) -> Dataset | None:
    """The image pixel attributes of ``ds`` with its JPEG frames' scan headers repaired
    (:func:`jpegmeta.repair_sequential_scans`), or None when none needed it. ``ds`` itself is
    unchanged: its bitstream is written back as received unless the stage blanks pixels."""
    try:
        frames = [bytes(f) for f in generate_frames(ds.PixelData,
                                                    number_of_frames=integrity.number_of_frames(ds))]
    except (ValueError, EOFError):
        return None
    fixed = [jpegmeta.repair_sequential_scans(f) for f in frames]
    if all(f is None for f in fixed):
        return None
    copy = Dataset()
    copy.file_meta = FileMetaDataset()
    copy.file_meta.TransferSyntaxUID = ts
    for keyword in _IMAGE_PIXEL_KEYWORDS:
        if keyword in ds:
            copy[keyword] = ds[keyword]
    copy.PixelData = encapsulate([f if r is None else r for f, r in zip(frames, fixed,
                                                                        strict=True)])
    copy["PixelData"].VR = "OB"
    copy["PixelData"].is_undefined_length = True
    return copy


def display_frame(dec: Decoded, index: int, ds: Dataset) -> np.ndarray:
    """One frame as the detector sees it: grey values or RGB."""
    f = dec.frames[index]
    if dec.photometric == "PALETTE COLOR":
        return np.asarray(apply_color_lut(f, ds))
    if dec.photometric == "YBR_FULL" and f.ndim == 3:
        return np.asarray(convert_color_space(f, "YBR_FULL", "RGB"))
    return f


def fill_value(dec: Decoded, ds: Dataset) -> int | tuple[int, ...]:
    """The darkest displayable value for this Photometric Interpretation and depth."""
    bs = dec.bits_stored
    lo = -(1 << (bs - 1)) if dec.signed else 0
    hi = (1 << (bs - 1)) - 1 if dec.signed else (1 << bs) - 1
    pi = dec.photometric
    if pi == "MONOCHROME1":
        return hi
    if pi == "MONOCHROME2":
        return lo
    if pi == "PALETTE COLOR":
        return _darkest_palette_index(ds)
    if pi == "YBR_FULL":
        mid = 1 << (bs - 1)
        return (0, mid, mid)
    return (0, 0, 0)


def _darkest_palette_index(ds: Dataset) -> int:
    """The stored value whose palette colour is darkest (PS3.3 C.7.6.3.1.5)."""
    desc = ds.RedPaletteColorLookupTableDescriptor
    count = int(desc[0]) or 65536
    first = int(desc[1])
    dtype = np.uint8 if int(ds.BitsStored) <= 8 else np.uint16
    span = np.arange(first, first + count, dtype=np.int64)
    span = span[(span >= 0) & (span <= np.iinfo(dtype).max)]
    rgb = np.asarray(apply_color_lut(span.astype(dtype), ds), dtype=np.float64)
    luminance = rgb @ np.array([0.299, 0.587, 0.114])
    return int(span[int(np.argmin(luminance))])


def blank(dec: Decoded, boxes: Sequence[Sequence[Box]], value: int | tuple[int, ...]) -> int:
    """Set every pixel inside the boxes of each frame to ``value``; return pixels changed."""
    changed = 0
    rows, cols = int(dec.frames.shape[1]), int(dec.frames.shape[2])
    for i, frame_boxes in enumerate(boxes):
        frame = dec.frames[i]
        for b in frame_boxes:
            c = b.clipped(rows, cols)
            if c is None:
                continue
            frame[c.y0:c.y1, c.x0:c.x1] = value
            changed += c.area
    return changed


def blank_outside(dec: Decoded, keep: np.ndarray, value: int | tuple[int, ...]) -> int:
    """Set every pixel where ``keep`` (rows, cols) is False, in all frames, to ``value``."""
    outside = ~keep
    n = int(outside.sum())
    if n:
        for i in range(dec.count):
            dec.frames[i][outside] = value
    return n * dec.count


def encode(ds: Dataset, dec: Decoded, fallback: str) -> UID:
    """Write ``dec.frames`` into ``ds`` (lossless) and keep the lossy-compression history true.

    Returns the transfer syntax written. The SOP Instance UID is left for the de-identifier.
    """
    ts = dec.transfer_syntax
    target = ts if (ts in REENCODE_SAME or ts in NATIVE) else FALLBACKS[fallback]
    if target in (ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian):
        target = ExplicitVRLittleEndian  # retired / no encoder: the plain little endian form
    # A frame axis keeps Number of Frames: pydicom removes it for a single-frame array, but a
    # multi-frame IOD requires it, also for one frame (a WSI label or overview, PS3.3 C.7.6.6).
    arr = dec.frames if dec.count > 1 or "NumberOfFrames" in ds else dec.frames[0]
    ratio = _compression_ratio(ds) if dec.lossy else None
    try:
        _write(ds, arr, dec, target)
    except Exception as err:
        raise PixelEncodeError(f"cannot encode pixel data ({type(err).__name__})") from None
    if dec.lossy:
        _mark_lossy(ds, ts, ratio)
    return target


def _write(ds: Dataset, arr: np.ndarray, dec: Decoded, target: UID) -> None:
    if dec.transfer_syntax == ExplicitVRBigEndian:
        to_little_endian(ds, skip=(PIXEL_DATA,))  # the whole data set, not the pixels alone
    if dec.transfer_syntax in (ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian):
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.set_pixel_data(arr, dec.photometric, dec.bits_stored, generate_instance_uid=False)
    if target != ExplicitVRLittleEndian or ds.file_meta.TransferSyntaxUID != target:
        if target in NATIVE:
            ds.file_meta.TransferSyntaxUID = target
        else:
            ds.compress(target, generate_instance_uid=False)
    if "PlanarConfiguration" in ds and int(ds.get("SamplesPerPixel", 1)) == 1:
        del ds.PlanarConfiguration


def _compression_ratio(ds: Dataset) -> float | None:
    """The input's compression ratio, from its stored value or the bitstream's size."""
    if ds.get("LossyImageCompressionRatio") or transfer_syntax(ds) in NATIVE:
        return None  # kept as it is / not measurable from an uncompressed stream
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    spp = int(ds.get("SamplesPerPixel", 1))
    size = int(ds.Rows) * int(ds.Columns) * frames * spp * int(ds.BitsAllocated) // 8
    stored = len(ds.PixelData)
    return round(size / stored, 2) if stored else None


def _mark_lossy(ds: Dataset, input_ts: UID, ratio: float | None) -> None:
    """Lossy Image Compression stays 01; ratio and method describe the earlier compression."""
    ds.LossyImageCompression = "01"
    if ratio is not None and "LossyImageCompressionRatio" not in ds:
        ds.LossyImageCompressionRatio = f"{ratio:.2f}"[:16]
    method = LOSSY_METHOD.get(input_ts)
    if method and "LossyImageCompressionMethod" not in ds:
        ds.LossyImageCompressionMethod = method
