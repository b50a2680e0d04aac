"""Authorised re-identification, its audit trail, and the export of the map as CSV.

Looking a pseudonym up and exporting the map both reveal originals, so both refuse unless
``pseudonyms.reidentification_enabled`` is true, and every attempt (refused ones too) is
recorded with the operating-system user, the node, the time and the reason given.
The audit records the pseudonym asked about, never the original it resolves to.

The export writes the two files the MIDI-B validation scorer reads (CBIIT/MIDI_validation_script,
``modules/validation_helper.py``): ``uid_mapping.csv`` and ``patid_mapping.csv``, each with the
header ``id_old,id_new`` and one row per original; the scorer keys the Patient ID map by the
Patient ID value alone (no issuer) and keeps the first row of a repeated ``id_old``.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import pwd
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from sqlalchemy import Connection, Engine, Table, insert, or_, select

from gateway.pseudonyms.models import AuditRow, utcnow
from gateway.pseudonyms.store import CHECK_KIND, MAP, PATIENTS, UID_KIND

AUDIT: Table = AuditRow.__table__  # type: ignore[assignment]
UID_MAP_FILE = "uid_mapping.csv"
PATIENT_MAP_FILE = "patid_mapping.csv"
MAP_HEADER = ("id_old", "id_new")
_YIELD = 5000


class ReidentificationDisabled(Exception):
    """Re-identification was asked for while the configuration does not allow it."""


@dataclass(frozen=True)
class Match:
    """An original that a pseudonym stands for."""

    kind: str
    original: str
    details: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class AuditEntry:
    at: dt.datetime
    os_user: str
    node_id: str
    action: str
    subject: str
    outcome: str
    reason: str


def os_user() -> str:
    """The login name of the real user id (not $USER, which anyone can set)."""
    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name[:64]
    except KeyError:
        return f"uid:{uid}"


def record_audit(
    engine: Engine, node_id: str, action: str, subject: str, outcome: str, reason: str
) -> None:
    """Append one audit row in its own committed transaction."""
    with engine.begin() as conn:
        conn.execute(
            insert(AUDIT),
            [{"at": utcnow(), "os_user": os_user(), "node_id": node_id, "action": action,
              "subject": subject, "outcome": outcome, "reason": reason}],
        )


def find_originals(conn: Connection, pseudonym: str) -> list[Match]:
    """Every original that ``pseudonym`` replaces: UIDs, identifiers, patients."""
    found = [
        Match(kind=r.kind, original=r.original)
        for r in conn.execute(
            select(MAP.c.kind, MAP.c.original)
            .where(MAP.c.pseudonym == pseudonym, MAP.c.kind != CHECK_KIND)
            .order_by(MAP.c.kind)
        )
    ]
    rows = conn.execute(
        select(PATIENTS).where(
            or_(PATIENTS.c.pseudonym_id == pseudonym, PATIENTS.c.pseudonym_name == pseudonym)
        ).order_by(PATIENTS.c.id)
    )
    for r in rows:
        details = (
            ("issuer", r.original_issuer),
            ("pseudonym_id", r.pseudonym_id),
            ("pseudonym_name", r.pseudonym_name),
            ("date_offset_days", str(r.date_offset_days)),
            ("source", r.source),
        )
        found.append(Match(kind="patient_id", original=r.original_id, details=details))
    return found


def reidentify(
    engine: Engine, enabled: bool, node_id: str, pseudonym: str, reason: str
) -> list[Match]:
    """Look ``pseudonym`` up if allowed; the attempt is audited whatever the outcome."""
    if not enabled:
        record_audit(engine, node_id, "reidentify", pseudonym, "refused", reason)
        raise ReidentificationDisabled(
            "re-identification is disabled (set pseudonyms.reidentification_enabled: true)"
        )
    with engine.connect() as conn:
        matches = find_originals(conn, pseudonym)
    record_audit(engine, node_id, "reidentify", pseudonym,
                 "found" if matches else "not-found", reason)
    return matches


def audit_entries(engine: Engine, limit: int = 100) -> list[AuditEntry]:
    """The newest ``limit`` audit rows, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(AUDIT).order_by(AUDIT.c.at.desc(), AUDIT.c.id.desc()).limit(limit)
        ).all()
    return [
        AuditEntry(r.at, r.os_user, r.node_id, r.action, r.subject, r.outcome, r.reason)
        for r in reversed(rows)
    ]


def _open_private(path: Path, force: bool) -> TextIO:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "w", newline="", encoding="utf-8")


def _uid_pairs(conn: Connection) -> Iterator[tuple[str, str]]:
    query = select(MAP.c.original, MAP.c.pseudonym).where(MAP.c.kind == UID_KIND)
    for r in conn.execution_options(yield_per=_YIELD).execute(query.order_by(MAP.c.id)):
        yield r.original, r.pseudonym


def _patient_pairs(conn: Connection) -> Iterator[tuple[str, str]]:
    query = select(PATIENTS.c.original_id, PATIENTS.c.pseudonym_id).order_by(PATIENTS.c.id)
    for r in conn.execution_options(yield_per=_YIELD).execute(query):
        yield r.original_id, r.pseudonym_id


def _write_pairs(path: Path, pairs: Iterator[tuple[str, str]], force: bool) -> int:
    count = 0
    with _open_private(path, force) as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(MAP_HEADER)
        for pair in pairs:
            writer.writerow(pair)
            count += 1
    return count


def export_maps(
    engine: Engine, enabled: bool, node_id: str, folder: Path, reason: str, force: bool = False
) -> tuple[int, int]:
    """Write ``uid_mapping.csv`` and ``patid_mapping.csv`` (mode 0600) into ``folder``.

    Returns the number of UID and Patient ID rows. Refuses to replace files unless ``force``.
    """
    subject = str(folder)
    if not enabled:
        record_audit(engine, node_id, "map-export", subject, "refused", reason)
        raise ReidentificationDisabled(
            "exporting the map is re-identification and is disabled "
            "(set pseudonyms.reidentification_enabled: true)"
        )
    folder.mkdir(parents=True, exist_ok=True)
    with engine.connect() as conn:
        uids = _write_pairs(folder / UID_MAP_FILE, _uid_pairs(conn), force)
        patients = _write_pairs(folder / PATIENT_MAP_FILE, _patient_pairs(conn), force)
    record_audit(engine, node_id, "map-export", subject, "written", reason)
    return uids, patients
