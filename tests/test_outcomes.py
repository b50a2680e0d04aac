"""Status classification and back-off."""

from __future__ import annotations

import errno
import random
import sqlite3

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from gateway.outcomes import (
    Next,
    backoff_delay,
    classify_exception,
    classify_store_status,
    node_condition,
)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (0x0000, Next.DONE),
        (0xB000, Next.DONE),
        (0xB007, Next.DONE),
        (0xA700, Next.RETRY),
        (0xA7FF, Next.RETRY),
        (0x0213, Next.RETRY),
        (0xA900, Next.QUARANTINE),
        (0xC000, Next.QUARANTINE),
        (0xC123, Next.QUARANTINE),
        (0x0122, Next.QUARANTINE),
        (0x0124, Next.QUARANTINE),
        (0x1234, Next.RETRY),
    ],
)
def test_store_status_classes(status: int, expected: Next) -> None:
    """Each C-STORE status range maps to its documented outcome."""
    assert classify_store_status(status).next is expected


def test_backoff_grows_and_is_capped() -> None:
    """Delays double per attempt within [step/2, step] and never exceed the maximum."""
    rng = random.Random(7)
    for attempt in range(1, 20):
        step = min(60.0, 1.0 * 2 ** (attempt - 1))
        d = backoff_delay(attempt, 1.0, 60.0, rng)
        assert step / 2 <= d <= step


def test_backoff_has_jitter() -> None:
    """Two forwarders retrying the same attempt do not wait exactly the same time."""
    rng = random.Random(1)
    delays = {backoff_delay(5, 1.0, 600.0, rng) for _ in range(20)}
    assert len(delays) > 15


def test_exception_classes() -> None:
    """Network errors are transient; anything else is permanent."""
    assert classify_exception(ConnectionRefusedError()) is Next.RETRY
    assert classify_exception(TimeoutError()) is Next.RETRY
    assert classify_exception(ValueError("bad")) is Next.QUARANTINE


@pytest.mark.parametrize(
    ("exc", "condition"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "disk_full"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "disk_full"),
        (OSError(errno.EIO, "Input/output error"), "storage_error"),
        (OSError(errno.EROFS, "Read-only file system"), "storage_error"),
        (OperationalError("SELECT 1", {}, Exception("connection refused")), "database"),
        (sqlite3.OperationalError("database is locked"), "database"),
        (OSError("No tag to read at file position 18E"), None),  # pydicom's, no errno
        (FileNotFoundError(errno.ENOENT, "gone"), None),
        (IntegrityError("INSERT", {}, Exception("duplicate key")), None),
        (ValueError("bad"), None),
    ],
)
def test_node_conditions(exc: BaseException, condition: str | None) -> None:
    """A full or failing disk and an unreachable database are node conditions; errors of an
    instance or of the code are not."""
    assert node_condition(exc) == condition
