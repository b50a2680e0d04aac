"""The on-disk spool: received, processed and quarantined files, written durably.

Layout under the spool root::

    incoming/<job>.dcm       the bytes as received (Part-10), kept until the PACS confirmed
    outgoing/<job>.dcm       the pipeline's output, written to a temporary name then renamed
    quarantine/<job>/        the original (and the output, if any) of a held job
    tmp/                     partial files: received streams and outputs being written

Every durable step is fsync of the file, rename, then fsync of the folder, so a crash leaves
either the old state or the new one, never a torn file under a final name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

INCOMING = "incoming"
OUTGOING = "outgoing"
QUARANTINE = "quarantine"
TMP = "tmp"


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Flush a file's data to stable storage (any descriptor of the inode will do)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """Paths and durable moves for one gateway node's spool folder."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.incoming = self.root / INCOMING
        self.outgoing = self.root / OUTGOING
        self.quarantine = self.root / QUARANTINE
        self.tmp = self.root / TMP

    def create(self) -> None:
        for d in (self.root, self.incoming, self.outgoing, self.quarantine, self.tmp):
            d.mkdir(parents=True, exist_ok=True)

    # -- paths ---------------------------------------------------------------------------
    def incoming_path(self, job_id: str) -> Path:
        return self.incoming / f"{job_id}.dcm"

    def outgoing_path(self, job_id: str) -> Path:
        return self.outgoing / f"{job_id}.dcm"

    def quarantine_dir(self, job_id: str) -> Path:
        return self.quarantine / job_id

    def quarantined_original(self, job_id: str) -> Path:
        return self.quarantine_dir(job_id) / "original.dcm"

    def quarantined_output(self, job_id: str) -> Path:
        return self.quarantine_dir(job_id) / "output.dcm"

    def tmp_path(self, suffix: str = ".part") -> Path:
        return self.tmp / f"{uuid.uuid4().hex}{suffix}"

    # -- durable moves -------------------------------------------------------------------
    def commit_incoming(self, received: Path, job_id: str) -> Path:
        """Make a fully received file durable under ``incoming/`` (fsync, rename, fsync)."""
        dst = self.incoming_path(job_id)
        fsync_file(received)
        os.replace(received, dst)
        fsync_dir(self.incoming)
        return dst

    @contextlib.contextmanager
    def writing_output(self, job_id: str) -> Iterator[BinaryIO]:
        """Write an output file atomically: a temporary file renamed into ``outgoing/``."""
        tmp = self.tmp_path(".out")
        try:
            with open(tmp, "wb") as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.outgoing_path(job_id))
            fsync_dir(self.outgoing)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def write_output(self, job_id: str, write: Callable[[BinaryIO], None]) -> Path:
        with self.writing_output(job_id) as fh:
            write(fh)
        return self.outgoing_path(job_id)

    def to_quarantine(self, job_id: str) -> Path:
        """Move the job's files into ``quarantine/<job>/``; the original is always kept."""
        qdir = self.quarantine_dir(job_id)
        qdir.mkdir(parents=True, exist_ok=True)
        moved = False
        for src, dst in (
            (self.incoming_path(job_id), self.quarantined_original(job_id)),
            (self.outgoing_path(job_id), self.quarantined_output(job_id)),
        ):
            if src.exists():
                os.replace(src, dst)
                moved = True
        if moved:
            fsync_dir(qdir)
            fsync_dir(self.incoming)
            fsync_dir(self.outgoing)
        return qdir

    def from_quarantine(self, job_id: str) -> Path:
        """Put a quarantined original back under ``incoming/`` so it is processed again."""
        src = self.quarantined_original(job_id)
        dst = self.incoming_path(job_id)
        if src.exists():
            os.replace(src, dst)
            fsync_dir(self.incoming)
        shutil.rmtree(self.quarantine_dir(job_id), ignore_errors=True)
        return dst

    def remove_job(self, job_id: str) -> None:
        """Remove every file of a finished job (after the PACS confirmed, or on purge)."""
        for p in (self.incoming_path(job_id), self.outgoing_path(job_id)):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        shutil.rmtree(self.quarantine_dir(job_id), ignore_errors=True)

    def remove_output(self, job_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.outgoing_path(job_id).unlink()

    def clean_tmp(self) -> int:
        """Remove partial files left by a crash; returns how many."""
        n = 0
        for p in self.tmp.iterdir():
            with contextlib.suppress(OSError):
                p.unlink()
                n += 1
        return n

    def used_bytes(self) -> int:
        """Bytes held in incoming, outgoing and tmp (quarantine is not counted)."""
        total = 0
        for d in (self.incoming, self.outgoing, self.tmp):
            with os.scandir(d) as it:
                for entry in it:
                    with contextlib.suppress(OSError):
                        total += entry.stat(follow_symlinks=False).st_size
        return total

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free
