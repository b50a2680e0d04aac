"""Remove metadata segments from JPEG, JPEG-LS and JPEG 2000 bitstreams without re-encoding.

A compressed frame can carry text besides its pixels: EXIF (APP1, with dates, device serials,
even thumbnails), XMP, ICC profiles with free-text tags (APP2), vendor APPn blocks and COM
comments. The image data is left byte for byte; only these header segments go:

* ITU-T T.81 / T.87 (JPEG, JPEG-LS): COM and APP1-APP15 are dropped, except APP14 "Adobe"
  (its colour-transform flag changes decoding) and, in JPEG-LS, APP8 "mrfx" (the HP colour
  transform). APP0 JFIF/JFXX is kept without its thumbnail.
* ISO 15444-1 (JPEG 2000): COM (0xFF64) segments of the main header.
"""

from __future__ import annotations

import struct

from pydicom import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import (
    JPEG2000,
    UID,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
)

JPEG_FAMILY = frozenset({JPEGBaseline8Bit, JPEGExtended12Bit, UID("1.2.840.10008.1.2.4.57"),
                         JPEGLosslessSV1})
JPEG_LS = frozenset({JPEGLSLossless, JPEGLSNearLossless})
J2K = frozenset({JPEG2000Lossless, JPEG2000})

SOI, EOI, SOS, COM = 0xD8, 0xD9, 0xDA, 0xFE
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


class BitstreamError(ValueError):
    """The bitstream does not parse as the transfer syntax says."""


def _keep_app(marker: int, body: bytes, jpeg_ls: bool) -> bytes | None:
    """The segment body to keep for an APPn marker, or None to drop it."""
    n = marker - 0xE0
    if n == 0 and body[:5] in (b"JFIF\x00", b"JFXX\x00"):
        if body[:5] == b"JFIF\x00" and len(body) >= 14:
            return body[:12] + b"\x00\x00"  # no thumbnail
        return None if body[:5] == b"JFXX\x00" else body
    if n == 14 and body[:5] == b"Adobe":
        return body
    if n == 8 and jpeg_ls and body[:4] == b"mrfx":
        return body
    return None


def _entropy_end(data: bytes, pos: int, jpeg_ls: bool) -> int:
    """Index of the first marker after entropy-coded data starting at ``pos``."""
    n = len(data)
    while True:
        i = data.find(b"\xff", pos)
        if i < 0 or i + 1 >= n:
            return n
        nxt = data[i + 1]
        if jpeg_ls:
            if nxt >= 0x80:  # T.87: a marker; below 0x80 is a stuffed bit
                return i
        elif nxt != 0x00 and nxt != 0xFF and not 0xD0 <= nxt <= 0xD7:
            return i
        pos = i + 1


def _copy_segment(data: bytes, pos: int, marker: int, out: bytearray, jpeg_ls: bool) -> int:
    """Append the segment at ``pos`` to ``out`` unless it is metadata; return its end."""
    length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
    end = pos + 2 + length
    if 0xE0 <= marker <= 0xEF:
        kept = _keep_app(marker, data[pos + 4:end], jpeg_ls)
        if kept is not None:
            out += bytes((0xFF, marker)) + struct.pack(">H", len(kept) + 2) + kept
    elif marker != COM:
        out += data[pos:end]
    return end


def strip_jpeg(data: bytes, jpeg_ls: bool = False) -> bytes:
    """``data`` with metadata segments removed (T.81 / T.87 marker syntax)."""
    if data[:2] != b"\xff\xd8":
        raise BitstreamError("no SOI marker")
    out = bytearray(b"\xff\xd8")
    pos, n = 2, len(data)
    while pos < n:
        if data[pos] != 0xFF:
            raise BitstreamError("marker expected")
        while pos < n and data[pos] == 0xFF and pos + 1 < n and data[pos + 1] == 0xFF:
            pos += 1  # fill bytes
        if pos + 1 >= n:
            break
        marker = data[pos + 1]
        if marker == EOI:
            out += data[pos:]  # EOI and whatever padding follows
            return bytes(out)
        if marker in _STANDALONE:
            out += data[pos:pos + 2]
            pos += 2
            continue
        if pos + 4 > n:
            raise BitstreamError("truncated segment")
        pos = _copy_segment(data, pos, marker, out, jpeg_ls)
        if marker == SOS:
            stop = _entropy_end(data, pos, jpeg_ls)
            out += data[pos:stop]
            pos = stop
    return bytes(out)


def strip_j2k(data: bytes) -> bytes:
    """A JPEG 2000 codestream without COM segments in its main header."""
    if data[:2] != b"\xff\x4f":
        raise BitstreamError("no SOC marker")
    out = bytearray(data[:2])
    pos = 2
    while pos + 4 <= len(data):
        marker = struct.unpack(">H", data[pos:pos + 2])[0]
        if marker == 0xFF90:  # SOT: the main header ends
            break
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        end = pos + 2 + length
        if marker != 0xFF64:
            out += data[pos:end]
        pos = end
    out += data[pos:]
    return bytes(out)


def strip_frame(frame: bytes, ts: UID) -> bytes:
    if ts in J2K:
        return strip_j2k(frame)
    return strip_jpeg(frame, jpeg_ls=ts in JPEG_LS)


def strip_dataset(ds: Dataset, ts: UID | None = None) -> int:
    """Strip every frame of an encapsulated JPEG-family instance in place (``ts``: its transfer
    syntax, by default the file meta's; none there: not encapsulated); bytes removed."""
    if ts is None:
        meta = getattr(ds, "file_meta", None)
        ts = UID(str(meta.get("TransferSyntaxUID", "") if meta is not None else ""))
    if ts not in JPEG_FAMILY | JPEG_LS | J2K or "PixelData" not in ds:
        return 0
    nframes = int(ds.get("NumberOfFrames", 1) or 1)
    old = [bytes(f) for f in generate_frames(ds.PixelData, number_of_frames=nframes)]
    new = [strip_frame(f, ts) for f in old]
    removed = sum(len(a) - len(b) for a, b in zip(old, new, strict=True))
    if removed:
        ds.PixelData = encapsulate(new, has_bot=nframes > 1)
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
    return removed


_SEQUENTIAL_DCT = frozenset({0xC0, 0xC1})  # SOF0 baseline, SOF1 extended sequential
_OTHER_SOF = frozenset({0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7})
_SEQUENTIAL_SCAN = b"\x00\x3f\x00"  # Ss = 0, Se = 63, Ah = Al = 0


def repair_sequential_scans(data: bytes) -> bytes | None:
    """A sequential DCT bitstream (SOF0/SOF1) with its scan headers set to Ss = 0, Se = 63,
    Ah = Al = 0, as ISO 10918-1 B.2.3 requires for sequential DCT; some encoders wrote other
    values (Se = 0), which strict decoders reject. None when nothing needs that repair or the
    bitstream is not sequential DCT. Only the three header bytes of each scan change."""
    if data[:2] != b"\xff\xd8":
        return None
    out = bytearray(data)
    pos, n, sequential, changed = 2, len(out), False, False
    while pos + 4 <= n:
        if out[pos] != 0xFF:
            return None
        marker = out[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker == EOI:
            break
        if marker in _STANDALONE:
            pos += 2
            continue
        length = struct.unpack(">H", out[pos + 2:pos + 4])[0]
        if marker in _OTHER_SOF:
            return None
        sequential = sequential or marker in _SEQUENTIAL_DCT
        if marker == SOS:
            if not sequential:
                return None
            at = pos + 5 + 2 * out[pos + 4]
            if bytes(out[at:at + 3]) != _SEQUENTIAL_SCAN:
                out[at:at + 3] = _SEQUENTIAL_SCAN
                changed = True
            pos = _entropy_end(bytes(out), pos + 2 + length, False)
            continue
        pos += 2 + length
    return bytes(out) if changed else None
