"""Every transfer syntax the receiver accepts ends in delivery: a valid instance encoded in it is
acknowledged, de-identified and forwarded (the rule: no accepted presentation context may end
in 0xC000 for a valid data set). Deflated Explicit VR Little Endian also goes DCMTK -> gateway
-> Orthanc through the default pipeline.

The instances are synthetic Secondary Captures (Video Photographic for the video syntaxes)
whose pixel data is a real bitstream of the syntax: encoded here by the installed codecs (RLE,
JPEG-LS, OpenJPEG, Pillow, and FFmpeg's MPEG-2, x264 and x265 through PyAV) or, where no
encoder is installed, taken from one of pydicom's own test files with its image attributes.
"""

from __future__ import annotations

import io
import os
import random
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate
from pydicom.uid import (
    JPEG2000,
    JPEG2000MC,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEG2000MCLossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
    generate_uid,
)
from pynetdicom import AE

from gateway.receive.negotiation import accepted_transfer_syntaxes

import dicomgen
from harness import Gateway, destination, free_port, gateway, orthanc, wait_for

pytestmark = pytest.mark.integration

VIDEO_PHOTOGRAPHIC = UID("1.2.840.10008.5.1.4.1.1.77.1.4.1")
DCMCONV = "/usr/bin/dcmconv"


# ------------------------------------------------------------------------- instances


def _sc(seed: int) -> Dataset:
    """A synthetic 8-bit grey Secondary Capture of 64x64: a gradient with a bright square, which
    compresses well (a deflated data set is then much shorter than the data set itself)."""
    study = dicomgen.Study.random(random.Random(seed))
    ds = dicomgen.sc(study, generate_uid(), seed)
    img = np.tile(np.arange(64, dtype=np.uint8) * 2, (64, 1))
    img[16:32, 16:40] = 250
    ds.PixelData = img.tobytes()
    return ds


def _native(ds: Dataset, ts: UID, tmp: Path) -> Path:
    return dicomgen.save(ds, tmp / "in.dcm", ts)


def _compressed(ds: Dataset, ts: UID, tmp: Path, **kwargs: Any) -> Path:
    """Encoded by pydicom's own encoder plugins, written with the syntax's file meta."""
    ds = dcmread(_native(ds, ExplicitVRLittleEndian, tmp))
    ds.compress(ts, generate_instance_uid=False, **kwargs)
    if ts in (JPEG2000, JPEGLSNearLossless):
        ds.LossyImageCompression = "01"
    path = tmp / "in.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _relabelled_j2k(ds: Dataset, ts: UID, tmp: Path) -> Path:
    """A JPEG 2000 Part 1 codestream is a conforming Part 2 codestream (ISO/IEC 15444-2 extends
    Part 1), so the Part 2 multi-component syntaxes carry one as it is."""
    source = _compressed(ds, JPEG2000Lossless if ts == JPEG2000MCLossless else JPEG2000, tmp,
                         **({} if ts == JPEG2000MCLossless else {"j2k_cr": [10]}))
    out = dcmread(source)
    out.file_meta.TransferSyntaxUID = ts
    out.save_as(source, enforce_file_format=True)
    return source


def _transplanted(ds: Dataset, ts: UID, tmp: Path, testfile: str) -> Path:
    """The encapsulated pixel data and image attributes of one of pydicom's test files, in the
    synthetic instance (no encoder for this syntax is installed)."""
    src = dcmread(get_testdata_file(testfile))  # type: ignore[arg-type]
    ds = ds.copy()
    for keyword in ("Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit",
                    "PixelRepresentation", "SamplesPerPixel", "PhotometricInterpretation",
                    "PlanarConfiguration", "LossyImageCompression"):
        if keyword in src:
            ds[keyword] = src[keyword]
        elif keyword in ds:
            del ds[keyword]
    ds.PixelData = src.PixelData
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta = dcmread(_native(_sc(1), ExplicitVRLittleEndian, tmp)).file_meta
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ts
    path = tmp / "in.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _video_stream(codec: str, width: int, height: int, **options: str) -> bytes:
    """A few frames of moving bars as a raw elementary stream, encoded by FFmpeg via PyAV."""
    av = pytest.importorskip("av", reason="PyAV (FFmpeg) is needed to encode video")
    pix_fmt = options.pop("pix_fmt", "yuv420p")
    fmt = {"mpeg2video": "mpeg2video", "libx264": "h264", "libx265": "hevc"}[codec]
    buf = io.BytesIO()
    out = av.open(buf, "w", format=fmt)
    stream = out.add_stream(codec, rate=25)
    stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
    stream.options = options
    for i in range(3):
        img = np.zeros((height, width, 3), np.uint8)
        img[:, :, 1] = (np.arange(width) * 255 // width)[None]
        img[height // 4: height // 2, (i * 40) % width: (i * 40) % width + 64] = 220
        for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
    out.close()
    return buf.getvalue()


# (codec, width, height, FFmpeg options) per video syntax, PS3.5 8.2.5-8.2.8
_VIDEO: dict[str, tuple[str, int, int, dict[str, str]]] = {
    "1.2.840.10008.1.2.4.100": ("mpeg2video", 720, 480, {}),
    "1.2.840.10008.1.2.4.100.1": ("mpeg2video", 720, 480, {}),
    "1.2.840.10008.1.2.4.101": ("mpeg2video", 1920, 1080, {}),
    "1.2.840.10008.1.2.4.101.1": ("mpeg2video", 1920, 1080, {}),
    "1.2.840.10008.1.2.4.102": ("libx264", 1280, 720, {"profile": "high",
                                                       "x264-params": "level=4.1"}),
    "1.2.840.10008.1.2.4.102.1": ("libx264", 1280, 720, {"profile": "high",
                                                         "x264-params": "level=4.1"}),
    "1.2.840.10008.1.2.4.103": ("libx264", 1920, 1080, {
        "profile": "high", "x264-params": "level=4.1:bluray-compat=1"}),
    "1.2.840.10008.1.2.4.103.1": ("libx264", 1920, 1080, {
        "profile": "high", "x264-params": "level=4.1:bluray-compat=1"}),
    "1.2.840.10008.1.2.4.104": ("libx264", 1280, 720, {"profile": "high",
                                                       "x264-params": "level=4.2"}),
    "1.2.840.10008.1.2.4.104.1": ("libx264", 1280, 720, {"profile": "high",
                                                         "x264-params": "level=4.2"}),
    # side-by-side frame packing, signalled in the stream's SEI (PS3.5 8.2.8)
    "1.2.840.10008.1.2.4.105": ("libx264", 1920, 1080, {
        "profile": "high", "x264-params": "level=4.2:frame-packing=3"}),
    "1.2.840.10008.1.2.4.105.1": ("libx264", 1920, 1080, {
        "profile": "high", "x264-params": "level=4.2:frame-packing=3"}),
    "1.2.840.10008.1.2.4.107": ("libx265", 1280, 720, {
        "x265-params": "level-idc=51:log-level=error"}),
    "1.2.840.10008.1.2.4.108": ("libx265", 1280, 720, {
        "pix_fmt": "yuv420p10le", "x265-params": "level-idc=51:log-level=error"}),
}


def _video(ts: UID, tmp: Path) -> Path:
    """A Video Photographic instance whose pixel data is one encoded stream (fragmentable
    syntaxes: split over several fragments, PS3.5 A.4.8)."""
    codec, width, height, options = _VIDEO[str(ts)]
    stream = _video_stream(codec, width, height, **dict(options))
    ds = _sc(2)
    ds.SOPClassUID = VIDEO_PHOTOGRAPHIC
    ds.Modality = "XC"
    del ds.ConversionType
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "YBR_PARTIAL_420"
    ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = height, width
    ten_bit = options.get("pix_fmt") == "yuv420p10le"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = (16, 10, 9) if ten_bit else (8, 8, 7)
    ds.NumberOfFrames = 3
    ds.FrameTime = 40.0
    ds.FrameIncrementPointer = 0x00181063
    ds.LossyImageCompression = "01"
    if str(ts).endswith(".1"):
        step = (len(stream) + 2) // 3
        fragments = [stream[i:i + step] for i in range(0, len(stream), step)]
        ds.PixelData = b"".join(_items([b"", *fragments]))
    else:
        ds.PixelData = encapsulate([stream])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return _with_meta(ds, ts, tmp)


def _items(values: list[bytes]) -> Iterator[bytes]:
    """Encapsulated items (PS3.5 A.4): the Basic Offset Table first, then the fragments."""
    for value in values:
        padded = value + b"\x00" * (len(value) % 2)
        yield b"\xfe\xff\x00\xe0" + len(padded).to_bytes(4, "little") + padded


def _with_meta(ds: Dataset, ts: UID, tmp: Path) -> Path:
    ds.file_meta = dcmread(_native(_sc(1), ExplicitVRLittleEndian, tmp)).file_meta
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ts
    path = tmp / "in.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _jpip(ts: UID, tmp: Path) -> Path:
    """JPIP referenced: the pixel data stays on a JPIP server, the data set names it
    (PS3.5 A.6, PS3.3 C.7.6.3.1.8); there is no Pixel Data element."""
    ds = _sc(3)
    del ds.PixelData
    ds.PixelDataProviderURL = "http://jpip.example.org/pixels/1"
    return _with_meta(ds, ts, tmp)


def _no_encoder(what: str) -> Callable[[Dataset, UID, Path], Path]:
    def skip(_ds: Dataset, _ts: UID, _tmp: Path) -> Path:
        pytest.skip(f"no {what} encoder is installed and no sample file ships in a package")

    return skip


_BUILDERS: dict[str, Callable[[Dataset, UID, Path], Path]] = {
    ImplicitVRLittleEndian: _native,
    ExplicitVRLittleEndian: _native,
    DeflatedExplicitVRLittleEndian: _native,
    ExplicitVRBigEndian: _native,
    RLELossless: _native,
    JPEGLSLossless: _native,
    JPEG2000Lossless: _native,
    JPEGBaseline8Bit: _native,
    JPEGLSNearLossless: lambda ds, ts, tmp: _compressed(ds, ts, tmp, jls_error=2),
    JPEG2000: lambda ds, ts, tmp: _compressed(ds, ts, tmp, j2k_cr=[10]),
    JPEG2000MC: _relabelled_j2k,
    JPEG2000MCLossless: _relabelled_j2k,
    JPEGExtended12Bit: lambda ds, ts, tmp: _transplanted(ds, ts, tmp, "JPGExtended.dcm"),
    JPEGLosslessSV1: lambda ds, ts, tmp: _transplanted(ds, ts, tmp, "SC_rgb_jpeg_gdcm.dcm"),
    # process 14 with selection value 1 is one of the bitstreams process 14 allows
    JPEGLossless: lambda ds, ts, tmp: _transplanted(ds, ts, tmp, "SC_rgb_jpeg_gdcm.dcm"),
    "1.2.840.10008.1.2.4.106": _no_encoder("H.264 Stereo High (MVC)"),
    "1.2.840.10008.1.2.4.106.1": _no_encoder("H.264 Stereo High (MVC)"),
    "1.2.840.10008.1.2.4.201": _no_encoder("HTJ2K"),
    "1.2.840.10008.1.2.4.202": _no_encoder("HTJ2K"),
    "1.2.840.10008.1.2.4.203": _no_encoder("HTJ2K"),
    "1.2.840.10008.1.2.4.204": lambda _ds, ts, tmp: _jpip(ts, tmp),
}
for _ts in _VIDEO:
    _BUILDERS[_ts] = lambda _ds, ts, tmp: _video(ts, tmp)


def build(ts: UID, tmp: Path) -> Path:
    """A valid instance encoded in ``ts``; a syntax with no way to build one fails here."""
    builder = _BUILDERS.get(str(ts))
    assert builder is not None, f"no instance builder for accepted syntax {ts} ({ts.name})"
    return builder(_sc(4), ts, tmp)


# ------------------------------------------------------------------------- the gateway


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One gateway for the whole matrix, forwarding to its embedded sink (a pynetdicom SCP)."""
    root = tmp_path_factory.mktemp("gw")
    config = {
        "pipeline": {"stages": ["filter", "deidentify", "verify"]},
        "sink": {"port": free_port(), "root": str(root / "research")},
        "workers": {"count": 1},
    }
    with gateway(root, config) as g:
        yield g


def _send(port: int, path: Path, ts: UID) -> tuple[UID, int]:
    """C-STORE ``path`` proposing only ``ts``; returns (the accepted syntax, the status)."""
    ds = dcmread(path)
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(ds.SOPClassUID, [ts])
    assoc = ae.associate("127.0.0.1", port, ae_title="DEID_GATEWAY")
    assert assoc.is_established
    try:
        [cx] = assoc.accepted_contexts
        status = assoc.send_c_store(ds)
        return UID(cx.transfer_syntax[0]), int(status.Status)
    finally:
        assoc.release()


def _held(quarantine: Path) -> list[Path]:
    return [p for p in quarantine.rglob("*") if p.is_file()] if quarantine.exists() else []


def _delivered(root: Path) -> set[Path]:
    return {p for p in root.rglob("*.dcm") if ".tmp" not in p.parts} if root.exists() else set()


@pytest.mark.parametrize("ts", accepted_transfer_syntaxes(), ids=lambda t: t.keyword or str(t))
def test_every_accepted_syntax_is_delivered(gw: Gateway, ts: UID, tmp_path: Path) -> None:
    """An instance in each syntax the SCP accepts gets Success and reaches the sink
    de-identified, its pixel data as sent (no stage re-encodes it on this pipeline)."""
    path = build(ts, tmp_path)
    sent = dcmread(path)
    assert sent.file_meta.TransferSyntaxUID == ts
    sink = Path(gw.settings["sink"]["root"])
    held = Path(gw.settings["spool"]["root"]) / "quarantine"
    before = _delivered(sink)
    accepted, status = _send(gw.port, path, ts)
    assert (accepted, status) == (ts, 0x0000)
    wait_for(lambda: len(_delivered(sink) - before) == 1 or _held(held), 60, 0.1, "delivery")
    assert not _held(held), gw.cli("quarantine", "list").stdout
    [out_path] = _delivered(sink) - before
    got = dcmread(out_path)
    assert got.file_meta.TransferSyntaxUID in (ts, ExplicitVRLittleEndian) \
        if ts == ImplicitVRLittleEndian else got.file_meta.TransferSyntaxUID == ts
    assert got.SOPInstanceUID != sent.SOPInstanceUID
    assert str(got.get("PatientName", "")) != str(sent.PatientName)
    if "PixelData" in sent:
        assert got.PixelData == sent.PixelData


# ------------------------------------------------------------------------- DCMTK and Orthanc


def test_dcmtk_deflated_instance_reaches_orthanc(tmp_path: Path) -> None:
    """A file deflated by DCMTK (dcmconv +td) and sent by dcmsend goes through the default
    pipeline (pixels included) and reaches Orthanc de-identified."""
    src = dicomgen.save(_sc(9), tmp_path / "plain" / "sc.dcm")
    folder = tmp_path / "deflated"
    folder.mkdir()
    deflated = folder / "sc.dcm"
    subprocess.run([DCMCONV, "+td", str(src), str(deflated)], check=True,
                   env={**os.environ, "TCP_NODELAY": "1"})
    assert dcmread(deflated).file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
    sent = dcmread(src)
    with orthanc(tmp_path / "orthanc") as o, gateway(tmp_path / "gw", {
        "destinations": [destination(o)],
        "pixels": {"service": {"mode": "inprocess"}},
        "workers": {"count": 1},
    }) as g:
        from harness import dcmsend

        dcmsend(g.port, folder)
        wait_for(lambda: g.status().get("sent") == 1, 120, 0.5, "sent")
        assert g.status().get("quarantined", 0) == 0
        assert o.count_instances() == 1
    [stored] = [p for p in (tmp_path / "orthanc" / "storage").rglob("*") if p.is_file()]
    out = dcmread(stored)
    assert out.SOPInstanceUID != sent.SOPInstanceUID
    assert str(out.get("PatientName", "")) != str(sent.PatientName)
    assert out.BurnedInAnnotation == "NO"  # the pixel stage ran on it
    assert out.pixel_array.shape == sent.pixel_array.shape
