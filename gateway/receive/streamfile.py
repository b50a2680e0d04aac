"""The file a received C-STORE data set streams into, and what happens when the disk is full.

With ``STORE_RECV_CHUNKED_DATASET`` pynetdicom writes each P-DATA fragment of a C-STORE request
to a ``NamedTemporaryFile`` as it arrives (``DIMSEMessage.decode_msg``, in the association's
DUL thread), before any handler runs. A write there that fails (``ENOSPC`` on a full spool)
escapes into the DUL thread, which dies, and the association is aborted: the sender learns
nothing but "aborted", and nothing tells it to retry later.

:func:`install` gives pynetdicom a :class:`ReceivedFile` instead, created in the spool's
``tmp/`` folder. Its first failed write is remembered and the partial file removed at once
(its space is freed); the rest of the data set is read from the network and dropped, so the
association stays in step. The C-STORE handler then sees :func:`write_error` and answers
0xA700 (Refused: Out of Resources, PS3.4 B.2.3): the sender keeps the instance and retries,
and nothing is acknowledged that was not stored.
"""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from pathlib import Path
from typing import Any

from pynetdicom import dimse_messages

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


class ReceivedFile:
    """The ``NamedTemporaryFile`` stand-in pynetdicom writes a received data set to.

    It has what pynetdicom uses of one: ``name``, ``write``, ``file.flush`` and ``close``
    (pynetdicom unlinks ``name`` after the handler, if the handler left it there). Writes go
    straight to the descriptor (pynetdicom flushes after every fragment anyway).
    """

    def __init__(self, directory: Path) -> None:
        self.name = str(directory / f"{uuid.uuid4().hex}.dcm")
        self.error: int | None = None  # errno of the first failed write
        self._fd = -1
        try:
            self._fd = os.open(self.name, _FLAGS, 0o600)
        except OSError as err:
            self._failed(err)

    @property
    def file(self) -> ReceivedFile:
        return self  # pynetdicom calls ``.file.flush()`` on a NamedTemporaryFile

    def write(self, data: bytes) -> int:
        if self.error is None:
            view = memoryview(data)
            try:
                while view:
                    view = view[os.write(self._fd, view):]
            except OSError as err:
                self._failed(err)
        return len(data)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1

    def _failed(self, err: OSError) -> None:
        """Remember the error, drop what was written (the space comes back now)."""
        self.error = err.errno or errno.EIO
        self.close()
        with contextlib.suppress(OSError):
            os.unlink(self.name)


def write_error(request: Any) -> int | None:
    """The errno with which storing a C-STORE request's data set failed, else None."""
    received = getattr(request, "_dataset_file", None)
    return received.error if isinstance(received, ReceivedFile) else None


def install(directory: Path) -> None:
    """Make pynetdicom stream received data sets into :class:`ReceivedFile` in ``directory``
    (process-wide; called again, the last directory wins)."""

    def factory(**_options: Any) -> ReceivedFile:
        # pynetdicom asks for delete=False, mode="wb", suffix=".dcm": what ReceivedFile does
        return ReceivedFile(directory)

    dimse_messages.NamedTemporaryFile = factory  # type: ignore[assignment]
