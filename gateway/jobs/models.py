"""SQLAlchemy models of the job queue, of the rules operators release jobs with, and of the
audit of operator decisions.

No patient value and no original UID is stored here: a job is keyed by its own id, and carries
only what operators and metrics may see (AE titles, SOP class, modality, sizes, states, tag
paths of a quarantine reason).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gateway.db.engine import Base

RULESET_MAX = 255


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Job(Base):
    """One received instance."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    node_id: Mapped[str] = mapped_column(String(64))
    calling_ae: Mapped[str] = mapped_column(String(16), default="")
    called_ae: Mapped[str] = mapped_column(String(16), default="")
    sop_class_uid: Mapped[str] = mapped_column(String(64), default="")
    transfer_syntax_uid: Mapped[str] = mapped_column(String(64), default="")
    modality: Mapped[str] = mapped_column(String(16), default="")
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(96), nullable=True)
    lease_until: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    reason_class: Mapped[str | None] = mapped_column(String(64), nullable=True)
    ruleset: Mapped[str | None] = mapped_column(String(RULESET_MAX), nullable=True)
    # The stage that quarantined the job, and the tag paths its reason is about (JSON list,
    # normalised: gateway.jobs.groups); NULL for jobs quarantined before these columns.
    reason_stage: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reason_paths: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Set by an operator release: the sha256 of the profile and/or site override (rows of
    # release_rules) that the deidentify stage uses for this job instead of the configured ones.
    release_profile: Mapped[str | None] = mapped_column(String(64), nullable=True)
    release_override: Mapped[str | None] = mapped_column(String(64), nullable=True)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)

    deliveries: Mapped[list[Delivery]] = relationship(
        back_populates="job", cascade="all, delete-orphan", lazy="selectin"
    )

    __table_args__ = (Index("ix_jobs_state_next", "state", "next_attempt_at"),)


class Delivery(Base):
    """One instance to one destination."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    destination: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)

    job: Mapped[Job] = relationship(back_populates="deliveries")

    __table_args__ = (
        UniqueConstraint("job_id", "destination"),
        Index("ix_deliveries_dest_state_next", "destination", "state", "next_attempt_at"),
    )


class ReleaseRules(Base):
    """The text of a profile or site override an operator released jobs with, by its sha256.

    Kept in the database so that every node, and every later re-run, uses exactly what was
    validated at release even if the operator's file is gone.
    """

    __tablename__ = "release_rules"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The profile name or path as given, or the override's name (its "name:" or file stem).
    name: Mapped[str] = mapped_column(String(255))
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class OperatorAudit(Base):
    """One operator decision on quarantined jobs: who, when, what, with which rules, and why."""

    __tablename__ = "operator_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    # --operator, else the login name; os_user is the login name of the real user id.
    operator: Mapped[str] = mapped_column(String(64))
    os_user: Mapped[str] = mapped_column(String(64))
    node_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))  # "release", "purge"
    # How the jobs were chosen: "group <id>", "jobs", "all", "all reason-class <class>".
    subject: Mapped[str] = mapped_column(String(128))
    job_count: Mapped[int] = mapped_column(Integer)
    profile: Mapped[str | None] = mapped_column(String(255), nullable=True)
    profile_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    override: Mapped[str | None] = mapped_column(String(255), nullable=True)
    override_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")


class OperatorAuditJob(Base):
    """A job an audited decision acted on (no foreign key: a purged job's row is gone)."""

    __tablename__ = "operator_audit_jobs"

    audit_id: Mapped[int] = mapped_column(
        ForeignKey("operator_audit.id", ondelete="CASCADE"), primary_key=True
    )
    job_id: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)
