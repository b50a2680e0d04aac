"""Large kept values (pixel data above the read's ``defer_size``) stream from the input file.

pydicom leaves a value larger than ``defer_size`` on disk when it reads an instance, but reads it
whole into memory when the instance is written (twice over, through a buffer). Replacing it by a
:class:`FileSlice` of the input file makes pydicom's writer copy it in chunks instead
(``pydicom.fileutil.read_buffer``), so a worker's memory stays bounded whatever the size of the
instance. The bytes written are the same.
"""

from __future__ import annotations

import io
import os
import struct
from typing import Any

from pydicom import Dataset
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.filewriter import correct_ambiguous_vr_element

# VRs pydicom writes from a buffer (pydicom.valuerep.BUFFERABLE_VRS, ambiguous ones resolved).
STREAMABLE_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW"})
UNDEFINED_LENGTH = 0xFFFFFFFF


class InputChangedError(OSError):
    """The input file changed after it was read: its bytes are no longer the instance's."""


class FileSlice(io.BufferedIOBase):
    """``length`` bytes at ``offset`` of the file at ``path``, read-only and seekable.

    The file is opened on the first read and closed when the end is reached (or on
    :meth:`close`), so that a dataset holding slices keeps no file descriptor open. If the file's
    modification time is no longer ``mtime`` the read fails rather than copy other bytes.
    """

    def __init__(self, path: str, offset: int, length: int, mtime: float | None = None) -> None:
        super().__init__()
        self.path, self.offset, self.length, self.mtime = path, offset, length, mtime
        self._pos = 0
        self._fd: int | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self.length}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        remaining = max(0, self.length - self._pos)
        count = remaining if size is None or size < 0 else min(size, remaining)
        if count == 0:
            self._release()
            return b""
        data = os.pread(self._open(), count, self.offset + self._pos)
        if len(data) != count:
            raise InputChangedError("the input file is shorter than when it was read")
        self._pos += count
        return data

    def read1(self, size: int = -1) -> bytes:
        return self.read(size)

    def close(self) -> None:
        self._release()
        super().close()

    def __deepcopy__(self, memo: dict[int, Any]) -> FileSlice:
        return FileSlice(self.path, self.offset, self.length, self.mtime)

    def __del__(self) -> None:
        self._release()

    def _open(self) -> int:
        if self._fd is None:
            fd = os.open(self.path, os.O_RDONLY)
            if self.mtime is not None and os.fstat(fd).st_mtime != self.mtime:
                os.close(fd)
                raise InputChangedError("the input file changed after it was read")
            self._fd = fd
        return self._fd

    def _release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def stream_deferred(ds: Dataset) -> int:
    """Replace each value of ``ds`` that pydicom left on disk (a top-level one of a binary VR,
    of even, defined length) by a :class:`FileSlice` of the file it was read from; returns how
    many. A dataset read from a buffer (or a deflated file, which pydicom inflates into one) is
    left as it is, and so is a value whose element the file no longer holds where it was read."""
    path = getattr(ds, "filename", None)
    if not isinstance(path, str) or not path or getattr(ds, "buffer", None) is not None:
        return 0
    mtime = getattr(ds, "timestamp", None)
    count = 0
    deferred = [(t, e) for t, e in ds.items() if isinstance(e, RawDataElement) and e.value is None]
    for tag, elem in deferred:
        if not _deferred(elem):
            continue
        streamed = _streamed(ds, elem, FileSlice(path, elem.value_tell, elem.length, mtime))
        if streamed is not None and _in_file(path, elem):
            ds[tag] = streamed
            count += 1
    return count


def _in_file(path: str, elem: RawDataElement) -> bool:
    """The file holds the whole value, just after the element's tag and length (PS3.5 7.1)."""
    little = elem.is_little_endian is not False
    header = 8 if elem.is_implicit_VR else 12
    if elem.value_tell < header:
        return False
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            fh.seek(elem.value_tell - header)
            head = fh.read(header)
    except OSError:
        return False
    if size < elem.value_tell + elem.length:
        return False  # truncated: pydicom writes what there is
    fmt = "<" if little else ">"
    group, element = struct.unpack(fmt + "HH", head[:4])
    (length,) = struct.unpack(fmt + "L", head[-4:])
    return (group << 16 | element) == int(elem.tag) and length == elem.length


def _deferred(elem: DataElement | RawDataElement) -> bool:
    return (
        isinstance(elem, RawDataElement)
        and elem.value is None
        and 0 < elem.length != UNDEFINED_LENGTH
        and elem.length % 2 == 0  # an odd length is padded when written: leave it to pydicom
    )


def _streamed(ds: Dataset, raw: RawDataElement, value: FileSlice) -> DataElement | None:
    vr = raw.VR or _dictionary_vr(raw.tag)  # implicit VR: the dictionary's, as pydicom would
    if vr in STREAMABLE_VRS:
        return DataElement(raw.tag, vr, value, is_undefined_length=False)
    if vr != "OB or OW":
        return None
    try:
        elem = correct_ambiguous_vr_element(
            DataElement(raw.tag, vr, value, is_undefined_length=False), ds,
            bool(raw.is_little_endian),
        )
    except (AttributeError, KeyError, TypeError, ValueError):
        return None  # pydicom cannot tell the VR without the value: it reads it when writing
    return elem if isinstance(elem, DataElement) and elem.VR in STREAMABLE_VRS else None


def _dictionary_vr(tag: int) -> str | None:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return None
