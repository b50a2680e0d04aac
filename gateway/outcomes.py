"""The one table that maps DICOM statuses and exceptions to what happens next.

Every failure ends in one of three outcomes (STYLE.md habit 2): DONE, RETRY later, or
QUARANTINE with a reason. Status meanings follow PS3.4 Annex B.2.3 (Storage Service Class) and
PS3.7 Annex C (status type ranges).
"""

from __future__ import annotations

import enum
import errno
import random
import socket
import sqlite3
import ssl
from dataclasses import dataclass

from sqlalchemy import exc as sa_exc


class Next(enum.StrEnum):
    DONE = "done"
    RETRY = "retry"
    QUARANTINE = "quarantine"


@dataclass(frozen=True)
class StatusClass:
    next: Next
    name: str


# (low, high, next, name): inclusive ranges, first match wins.
STORE_STATUSES: tuple[tuple[int, int, Next, str], ...] = (
    (0x0000, 0x0000, Next.DONE, "Success"),
    (0xB000, 0xB000, Next.DONE, "Warning: Coercion of Data Elements"),
    (0xB006, 0xB006, Next.DONE, "Warning: Elements Discarded"),
    (0xB007, 0xB007, Next.DONE, "Warning: Data Set does not match SOP Class"),
    (0xB000, 0xBFFF, Next.DONE, "Warning"),
    (0xA700, 0xA7FF, Next.RETRY, "Refused: Out of Resources"),
    (0x0213, 0x0213, Next.RETRY, "Resource Limitation"),
    (0x0110, 0x0110, Next.RETRY, "Processing Failure"),
    (0xFE00, 0xFE00, Next.RETRY, "Cancel"),
    (0xA900, 0xA9FF, Next.QUARANTINE, "Error: Data Set does not match SOP Class"),
    (0xC000, 0xCFFF, Next.QUARANTINE, "Error: Cannot Understand"),
    (0x0122, 0x0122, Next.QUARANTINE, "Refused: SOP Class not Supported"),
    (0x0124, 0x0124, Next.QUARANTINE, "Refused: Not Authorized"),
    (0x0117, 0x0117, Next.QUARANTINE, "Invalid SOP Instance"),
    (0x0210, 0x0212, Next.QUARANTINE, "Error: Invalid Request"),
)


def classify_store_status(status: int) -> StatusClass:
    """What to do after a C-STORE response with ``status``; unknown ones are retried."""
    for low, high, nxt, name in STORE_STATUSES:
        if low <= status <= high:
            return StatusClass(nxt, name)
    return StatusClass(Next.RETRY, f"Unknown status 0x{status:04X}")


# Exceptions from network I/O: the peer may come back, so try again later.
TRANSIENT_EXCEPTIONS: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    socket.timeout,
    socket.gaierror,
    ssl.SSLError,
    OSError,
)


def classify_exception(exc: BaseException) -> Next:
    """Network failures are transient; anything else about a file is permanent."""
    if isinstance(exc, TRANSIENT_EXCEPTIONS):
        return Next.RETRY
    return Next.QUARANTINE


# Conditions of the node, not of an instance: a job that meets one waits for the node to
# recover, with its attempts untouched, and is never quarantined for it (the forwarder treats
# an unreachable destination alike). The value is the reason class recorded on the job.
DISK_FULL = "disk_full"  # ENOSPC, EDQUOT: space frees when the forwarder sends or an operator acts
STORAGE_ERROR = "storage_error"  # EIO, EROFS: the spool's device or file system failed
DATABASE = "database"  # the job database cannot be reached or is busy
NODE_CONDITIONS = frozenset({DISK_FULL, STORAGE_ERROR, DATABASE})
_STORAGE_ERRNOS = {
    errno.ENOSPC: DISK_FULL,
    errno.EDQUOT: DISK_FULL,
    errno.EIO: STORAGE_ERROR,
    errno.EROFS: STORAGE_ERROR,
}
# SQLAlchemy's classes for a database that cannot answer now (connection refused or lost,
# server shutting down, pool exhausted, SQLite busy or full), and sqlite3's own, which the
# engine's BEGIN IMMEDIATE raises unwrapped; a programming or integrity error is not one.
_DATABASE_UNAVAILABLE: tuple[type[BaseException], ...] = (
    sqlite3.OperationalError,
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,
)


def node_condition(exc: BaseException) -> str | None:
    """The node condition an exception reports (:data:`NODE_CONDITIONS`), else None.

    Only an ``OSError`` that carries an errno counts: pydicom raises a bare ``OSError`` for
    some malformed data sets, which is a problem of the instance."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return errno_condition(exc.errno)
    if isinstance(exc, _DATABASE_UNAVAILABLE):
        return DATABASE
    return None


def errno_condition(code: int) -> str | None:
    """The node condition a failed system call's errno reports (ENOSPC: disk_full), else None."""
    return _STORAGE_ERRNOS.get(code)


def backoff_delay(
    attempt: int, initial: float, maximum: float, rng: random.Random | None = None
) -> float:
    """Exponential back-off with equal jitter: half the step fixed, half random.

    ``attempt`` counts from 1; the step doubles each attempt up to ``maximum``.
    """
    r = rng or random
    step = min(maximum, initial * (2 ** max(0, attempt - 1)))
    return step / 2 + r.uniform(0, step / 2)


# Statuses the receiver answers with (PS3.4 B.2.3).
STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_CANNOT_UNDERSTAND = 0xC000
STATUS_PROCESSING_FAILURE = 0x0110
