"""Why stored pixel data cannot be decoded, said precisely and without a value of the instance.

When a decoder fails, :func:`diagnose` compares what is stored with what the image attributes
(Rows, Columns, Samples per Pixel, Bits Allocated, Number of Frames) announce: a native pixel
data element that is too short, encapsulated pixel data with fewer frames than announced, or a
frame whose codestream header (JPEG and JPEG-LS SOF, JPEG 2000 SIZ, RLE header) is unreadable or
describes another image. Sizes and counts are not patient values, so the reason may name them.
"""

from __future__ import annotations

import struct

from pydicom import Dataset
from pydicom.encaps import generate_frames
from pydicom.uid import UID, RLELossless

from gateway.pixels.jpegmeta import J2K, JPEG_FAMILY, JPEG_LS

# T.81 / T.87 start-of-frame markers (SOF0-SOF15 less DHT, JPG and DAC; SOF55 of JPEG-LS).
_SOF = frozenset({*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC),
                  *range(0xCD, 0xD0), 0xF7})
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})


def number_of_frames(ds: Dataset) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def native_length(ds: Dataset) -> int:
    """Bytes of native pixel data the image attributes announce (PS3.5 8.1.1)."""
    bits = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1)) * \
        int(ds.BitsAllocated) * number_of_frames(ds)
    return (bits + 7) // 8


def diagnose(ds: Dataset, ts: UID) -> str | None:
    """What is wrong with the stored pixel data, or None when nothing visible is."""
    try:
        if not ts.is_encapsulated:
            need, have = native_length(ds), len(ds.PixelData)
            return f"pixel data truncated ({have} of {need} bytes)" if have < need else None
        return _encapsulated(ds, ts)
    except (AttributeError, KeyError, TypeError, ValueError):
        return "image pixel attributes missing or invalid (Rows, Columns, Bits Allocated)"


def _encapsulated(ds: Dataset, ts: UID) -> str | None:
    frames = number_of_frames(ds)
    try:
        items = list(generate_frames(ds.PixelData, number_of_frames=frames))
    except (ValueError, struct.error, EOFError):
        return "pixel data corrupt: its encapsulated items cannot be read"
    if len(items) < frames:
        return f"pixel data truncated ({len(items)} of {frames} frames)"
    size = (int(ds.Columns), int(ds.Rows))
    for number, frame in enumerate(items, 1):
        problem = _frame_problem(bytes(frame), ts, size, ds)
        if problem is not None:
            return f"pixel data corrupt: frame {number}: {problem}"
    return None


def _frame_problem(frame: bytes, ts: UID, size: tuple[int, int], ds: Dataset) -> str | None:
    if ts in JPEG_FAMILY or ts in JPEG_LS:
        return _against(jpeg_size(frame), size, "JPEG")
    if ts in J2K:
        return _against(j2k_size(frame), size, "JPEG 2000")
    if ts == RLELossless:
        return rle_problem(frame, ds)
    return None


def _against(found: tuple[int, int] | str, size: tuple[int, int], family: str) -> str | None:
    if isinstance(found, str):
        return f"{family} codestream {found}"
    width, height = found
    if width != size[0] or (height and height != size[1]):
        return (f"{family} codestream header says {width} x {height} pixels, Columns and Rows "
                f"say {size[0]} x {size[1]}")
    return None


def jpeg_size(data: bytes) -> tuple[int, int] | str:
    """(width, height) from the SOF segment (height 0: given later by DNL), or what is wrong."""
    if data[:2] != b"\xff\xd8":
        return "has no SOI marker"
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return "header is corrupt (a marker was expected)"
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if marker in _SOF:
            if pos + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            return width, height
        if marker == 0xDA:
            return "header has no frame header (SOF) before its scan"
        pos += 2 + length
    return "header is truncated before its frame header (SOF)"


def j2k_size(data: bytes) -> tuple[int, int] | str:
    """(width, height) from the SIZ segment (ISO 15444-1 A.5.1), or what is wrong."""
    start = 0 if data[:4] == b"\xff\x4f\xff\x51" else data.find(b"\xff\x4f\xff\x51")
    if start < 0:
        return "has no SOC and SIZ markers"
    siz = data[start + 4:start + 4 + 20]
    if len(siz) < 20:
        return "header is truncated in its SIZ segment"
    _length, _rsiz, xsiz, ysiz, x0, y0 = struct.unpack(">HHIIII", siz)
    if x0 >= xsiz or y0 >= ysiz:
        return "header is corrupt (SIZ image offsets beyond the image)"
    return xsiz - x0, ysiz - y0


def rle_problem(frame: bytes, ds: Dataset) -> str | None:
    """The RLE header (PS3.5 G.3.1) must list one segment per sample byte."""
    if len(frame) < 64:
        return "RLE header is truncated"
    count = struct.unpack("<I", frame[:4])[0]
    need = int(ds.get("SamplesPerPixel", 1)) * ((int(ds.BitsAllocated) + 7) // 8)
    if count != need:
        return f"RLE header lists {count} segments, the image needs {need}"
    offsets = struct.unpack("<15I", frame[4:64])[:count]
    if any(o < 64 or o > len(frame) for o in offsets):
        return "RLE header has segment offsets outside the frame"
    return None
