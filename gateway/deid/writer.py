"""Writing an instance in the DICOM File Format (PS3.10 7.1) with its undecoded elements copied.

pydicom's ``dcmwrite`` passes every element through a buffer of its own, also those it never
decoded, and that costs more than the whole de-identification of a typical instance. For the
case the engine leaves (a dataset read from a file, to be written in the same encoding and
character set) :func:`write_instance` writes the same bytes as
``ds.save_as(target, enforce_file_format=True)`` with less work: the header of an undecoded
element is packed here and its value bytes copied as they are, while the file meta information
(``write_file_meta_info``) and every other element (decoded, built in code, streamed) are
written by pydicom's own functions. Any other case is handed to ``save_as`` whole.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

from pydicom import Dataset
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomFileLike
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.tag import BaseTag
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

from gateway.deid import raw

PIXEL_DATA = BaseTag(0x7FE00010)
GROUP_LENGTH = 0x00020000
TRANSFER_SYNTAX = 0x00020010
UNDEFINED = 0xFFFFFFFF
DEFLATED = DeflatedExplicitVRLittleEndian
_LONG_VRS = frozenset(str(vr) for vr in EXPLICIT_VR_LENGTH_32)


def write_instance(ds: Dataset, target: str | Path | BinaryIO) -> None:
    """Write ``ds`` as ``ds.save_as(target, enforce_file_format=True)`` does, byte for byte."""
    encoding = _same_encoding(ds)
    if encoding is None:
        ds.save_as(target, enforce_file_format=True)
        return
    if isinstance(target, str | Path):
        with open(target, "wb") as fh:
            _write(ds, fh, *encoding)
    else:
        _write(ds, target, *encoding)


def names_its_instance(ds: Dataset) -> bool:
    """Whether the file meta has a Media Storage SOP Instance UID (read without decoding it)."""
    meta = getattr(ds, "file_meta", None)
    return meta is not None and _uid(meta, 0x00020003) is not None


def _same_encoding(ds: Dataset) -> tuple[bool, bool] | None:
    """(implicit VR, little endian) when the instance is written as it was read: a public,
    uncompressed-body transfer syntax matching the read encoding, the character set unchanged,
    the file meta UIDs those of the dataset, no stray group 0 or 2 element; else None."""
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        return None
    ts = _uid(meta, TRANSFER_SYNTAX)
    if not ts or ts.is_private or not ts.is_transfer_syntax or ts == DEFLATED:
        return None
    encoding = (bool(ts.is_implicit_VR), bool(ts.is_little_endian))
    if tuple(ds.original_encoding) != encoding or encoding == (True, False):
        return None
    if ds.original_character_set != ds._character_set:  # (the test write_dataset makes)
        return None  # pydicom re-encodes every text value then
    for meta_tag, tag in ((0x00020002, 0x00080016), (0x00020003, 0x00080018)):
        value = _uid(meta, meta_tag)
        if not value or _uid(ds, tag) != value:
            return None  # dcmwrite would set the file meta UID from the dataset's
    if any(tag >> 16 in (0, 2) for tag in list(ds.keys())):
        return None  # dcmwrite refuses these: let it say so
    if PIXEL_DATA in ds:  # as dcmwrite does (it decodes Pixel Data, reading a deferred one)
        ds[PIXEL_DATA].is_undefined_length = bool(ts.is_compressed)
    return encoding


def _uid(ds: Dataset, tag: int) -> UID | None:
    """A UID value, read from its bytes when undecoded (so it stays undecoded)."""
    value = raw.single_value(ds, tag, "UI")
    if value is None:
        elem = ds.get(tag)
        value = "" if elem is None or elem.value is None else str(elem.value)
    return UID(value) if value else None


def _write(ds: Dataset, fh: BinaryIO, implicit: bool, little: bool) -> None:
    fp = DicomFileLike(fh)
    fp.is_implicit_VR, fp.is_little_endian = implicit, little
    assert ds.file_meta is not None
    out = _Output(fh)
    out.add(getattr(ds, "preamble", None) or bytes(128))
    out.add(b"DICM")
    meta = _meta_bytes(ds.file_meta)
    if meta is not None:
        out.add(meta)
    else:
        out.flush()
        copy = FileMetaDataset({t: e for t, e in ds.file_meta.items() if t != GROUP_LENGTH})
        write_file_meta_info(fp, copy, enforce_standard=True)
    pack = _Packer(implicit, little)
    encodings = ds.get("SpecificCharacterSet", "iso8859")
    for tag in sorted(ds.keys(), key=int):
        if tag & 0xFFFF == 0 and tag >> 16 > 6:
            continue  # retired group lengths are not written (PS3.5 7.2)
        elem = ds.get_item(tag)  # (reads a deferred value, as pydicom's writer does)
        assert isinstance(elem, DataElement | RawDataElement)
        direct = _direct(elem, pack)
        if direct is None:
            out.flush()
            write_data_element(fp, elem, encodings)
            continue
        out.add(direct[0])
        out.add(direct[1])
        if isinstance(elem, RawDataElement) and elem.length == UNDEFINED:
            out.add(pack.delimiter)
    out.flush()


class _Output:
    """Small parts are gathered and written at once; large values are written directly."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self._parts: list[bytes] = []

    def add(self, data: bytes) -> None:
        if len(data) > 65536:
            self.flush()
            self._fh.write(data)
        else:
            self._parts.append(data)

    def flush(self) -> None:
        if self._parts:
            self._fh.write(b"".join(self._parts))
            self._parts = []


class _Packer:
    """Element headers in one encoding, as pydicom's ``write_data_element`` writes them."""

    def __init__(self, implicit: bool, little: bool) -> None:
        order = "<" if little else ">"
        self.implicit = implicit
        self._implicit = struct.Struct(order + "HHL").pack
        self._short = struct.Struct(order + "HH2sH").pack
        self._long = struct.Struct(order + "HH2sHL").pack
        self.delimiter = self._implicit(0xFFFE, 0xE0DD, 0)

    def header(self, tag: int, vr: str | None, length: int) -> bytes | None:
        """None where pydicom does more: no VR to write, or a long value that it writes as UN
        (PS3.5 6.2.2), or an undefined length for a VR with a 16-bit length field."""
        group, element = tag >> 16, tag & 0xFFFF
        if self.implicit:
            return self._implicit(group, element, length)
        if vr is None or len(vr) != 2:
            return None
        if vr in _LONG_VRS:
            return self._long(group, element, vr.encode("ascii"), 0, length)
        if length > 0xFFFF:  # (UNDEFINED included)
            return None
        return self._short(group, element, vr.encode("ascii"), length)


def _direct(elem: DataElement | RawDataElement, pack: _Packer) -> tuple[bytes, bytes] | None:
    """Header and value of an element written without pydicom's buffer: an undecoded element,
    or native Pixel Data already in memory (which dcmwrite has decoded); None for any other."""
    tag = int(elem.tag)
    value = elem.value
    if isinstance(elem, RawDataElement):
        if value is None or (tag == PIXEL_DATA and elem.length == UNDEFINED):
            return None  # deferred; or encapsulated pixels, whose items pydicom checks
        length = UNDEFINED if elem.length == UNDEFINED else len(value)
        header = pack.header(tag, elem.VR, length)
    else:
        if (tag != PIXEL_DATA or elem.is_undefined_length or elem.VR not in ("OB", "OW")
                or not isinstance(value, bytes) or len(value) % 2):
            return None
        header = pack.header(tag, elem.VR, len(value))
    return None if header is None else (header, value)


_META = _Packer(False, True)
_REQUIRED_META = (0x00020001, 0x00020002, 0x00020003, 0x00020010, 0x00020012)


def _meta_bytes(meta: FileMetaDataset) -> bytes | None:
    """The file meta information group as ``write_file_meta_info`` writes it (PS3.10 7.1), when
    every element is undecoded and nothing needs adding; None otherwise."""
    elements = [e for t, e in sorted(meta.items(), key=lambda te: int(te[0])) if t != GROUP_LENGTH]
    present = {int(e.tag) for e in elements}
    if not set(_REQUIRED_META) <= present or 0x00020013 not in present:
        return None  # pydicom adds what is missing
    parts = []
    for elem in elements:
        if not isinstance(elem, RawDataElement) or elem.value is None:
            return None
        if int(elem.tag) in _REQUIRED_META and not _has_value(elem):
            return None
        header = _META.header(int(elem.tag), elem.VR, len(elem.value))
        if header is None or elem.length == UNDEFINED:
            return None
        parts += [header, elem.value]
    body = b"".join(parts)
    group_length = _META.header(GROUP_LENGTH, "UL", 4)
    assert group_length is not None
    return group_length + struct.pack("<L", len(body)) + body


def _has_value(elem: RawDataElement) -> bool:
    if elem.VR == "UI":
        return bool(raw.decode(elem, "UI"))
    return bool(elem.value)
