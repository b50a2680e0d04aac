"""SQLAlchemy models of the pseudonym map, the patient pseudonyms and the re-identification audit.

These tables hold originals (UIDs, Patient IDs): they are the link that authorised
re-identification needs, so the database is as sensitive as the images that came in. They
never hold the site secret. Because every pseudonym is a deterministic function of secret and
original, a row is an audit record: the unique constraints make a conflicting second row for
one original (or a second original for one pseudonym) impossible.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.engine import Base

# Longest value kept: UIDs are at most 64 characters (PS3.5 9.1), LO 64, PN 5 x 64 + separators.
ORIGINAL_MAX = 255
PN_MAX = 330


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class PseudonymMapRow(Base):
    """One original (a UID, an Accession Number, a Study ID...) and its replacement."""

    __tablename__ = "pseudonym_map"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # "uid", "accession", "study_id", ... (see gateway.pseudonyms.store.KIND_PATTERN)
    kind: Mapped[str] = mapped_column(String(32))
    original: Mapped[str] = mapped_column(String(ORIGINAL_MAX))
    pseudonym: Mapped[str] = mapped_column(String(ORIGINAL_MAX))
    first_seen: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    node_id: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        UniqueConstraint("kind", "original"),
        # Pseudonym first: serves re-identification lookups by pseudonym alone.
        UniqueConstraint("pseudonym", "kind"),
    )


class PatientRow(Base):
    """One patient (Patient ID qualified by its issuer), its pseudonyms and its date shift."""

    __tablename__ = "pseudonym_patients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # gateway.pseudonyms.derive.patient_key(patient_id, issuer)
    patient_key: Mapped[str] = mapped_column(String(2 * ORIGINAL_MAX + 1), unique=True)
    original_id: Mapped[str] = mapped_column(String(ORIGINAL_MAX))
    original_issuer: Mapped[str] = mapped_column(String(ORIGINAL_MAX))
    pseudonym_id: Mapped[str] = mapped_column(String(64), unique=True)
    pseudonym_name: Mapped[str] = mapped_column(String(PN_MAX), index=True)
    date_offset_days: Mapped[int] = mapped_column(Integer)
    # "lookup" (site lookup table) or "derived" (generated from the HMAC).
    source: Mapped[str] = mapped_column(String(16))
    first_seen: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    node_id: Mapped[str] = mapped_column(String(64))


class AuditRow(Base):
    """One re-identification request or map export: who, when, about what, and the outcome."""

    __tablename__ = "pseudonym_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    os_user: Mapped[str] = mapped_column(String(64))
    node_id: Mapped[str] = mapped_column(String(64))
    # "reidentify" or "map-export"
    action: Mapped[str] = mapped_column(String(32))
    # The pseudonym asked about, or the export folder; never an original value.
    subject: Mapped[str] = mapped_column(Text)
    # "found", "not-found", "refused" (re-identification disabled), "written"
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
