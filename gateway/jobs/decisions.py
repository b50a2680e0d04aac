"""Operator decisions on quarantined jobs: their audit, and the rules a release names.

Every release and purge is one ``operator_audit`` row (with a row per job it acted on) written in
the same transaction as the change itself, so a decision is never applied unaudited. The audit
holds who (the ``--operator`` name, else the login name, and the login name of the real user
id), when (UTC), what, with which profile or site override (name and sha256), and the note;
never a patient value. The text of a profile or override that a release names is kept in
``release_rules`` by its sha256, so that every node and every later re-run uses what was
validated, whatever happens to the file.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, Table, insert, select
from sqlalchemy.exc import IntegrityError

from gateway.jobs.models import OperatorAudit, OperatorAuditJob, ReleaseRules
from gateway.pipeline.stage import RulesText

AUDIT: Table = OperatorAudit.__table__  # type: ignore[assignment]
AUDIT_JOBS: Table = OperatorAuditJob.__table__  # type: ignore[assignment]
RULES: Table = ReleaseRules.__table__  # type: ignore[assignment]
NOTE_MAX = 1000


@dataclass(frozen=True)
class Decision:
    """An operator decision, as the audit records it."""

    action: str  # "release" or "purge"
    operator: str
    os_user: str
    subject: str  # "group <id>", "jobs", "all", "all reason-class <class>"
    note: str = ""
    profile: str | None = None
    profile_sha256: str | None = None
    override: str | None = None
    override_sha256: str | None = None


@dataclass(frozen=True)
class DecisionEntry:
    """One audited decision read back."""

    id: int
    at: dt.datetime
    node_id: str
    decision: Decision
    job_ids: tuple[str, ...]


def record(conn: Connection, decision: Decision, job_ids: Sequence[str], node_id: str,
           now: dt.datetime) -> int:
    """Append one decision and the jobs it acted on (inside the caller's transaction)."""
    d = decision
    audit_id = conn.execute(
        insert(AUDIT).values(
            at=now, operator=d.operator[:64], os_user=d.os_user[:64], node_id=node_id,
            action=d.action, subject=d.subject[:128], job_count=len(job_ids),
            profile=d.profile, profile_sha256=d.profile_sha256, override=d.override,
            override_sha256=d.override_sha256, note=d.note[:NOTE_MAX],
        ).returning(AUDIT.c.id)
    ).scalar_one()
    if job_ids:
        conn.execute(insert(AUDIT_JOBS), [{"audit_id": audit_id, "job_id": j}
                                          for j in sorted(set(job_ids))])
    return int(audit_id)


def _entries(conn: Connection, ids: Sequence[int]) -> list[DecisionEntry]:
    if not ids:
        return []
    rows = conn.execute(select(AUDIT).where(AUDIT.c.id.in_(list(ids)))).all()
    jobs: dict[int, list[str]] = {}
    for audit_id, job_id in conn.execute(
        select(AUDIT_JOBS.c.audit_id, AUDIT_JOBS.c.job_id)
        .where(AUDIT_JOBS.c.audit_id.in_(list(ids)))
        .order_by(AUDIT_JOBS.c.job_id)
    ):
        jobs.setdefault(audit_id, []).append(job_id)
    out = [
        DecisionEntry(
            id=r.id, at=r.at, node_id=r.node_id,
            decision=Decision(r.action, r.operator, r.os_user, r.subject, r.note, r.profile,
                              r.profile_sha256, r.override, r.override_sha256),
            job_ids=tuple(jobs.get(r.id, ())),
        )
        for r in rows
    ]
    return sorted(out, key=lambda e: (e.at, e.id))


def entries(engine: Engine, limit: int = 100) -> list[DecisionEntry]:
    """The newest ``limit`` decisions, oldest first."""
    with engine.connect() as conn:
        ids = conn.execute(
            select(AUDIT.c.id).order_by(AUDIT.c.at.desc(), AUDIT.c.id.desc()).limit(limit)
        ).scalars().all()
        return _entries(conn, ids)


def entries_for_jobs(engine: Engine, job_ids: Sequence[str]) -> list[DecisionEntry]:
    """Every decision that acted on one of ``job_ids``, oldest first."""
    if not job_ids:
        return []
    with engine.connect() as conn:
        ids: set[int] = set()
        chunk = 500
        for i in range(0, len(job_ids), chunk):
            ids.update(conn.execute(
                select(AUDIT_JOBS.c.audit_id)
                .where(AUDIT_JOBS.c.job_id.in_(list(job_ids[i:i + chunk])))
            ).scalars())
        return _entries(conn, sorted(ids))


def entries_for_subject(engine: Engine, subject: str) -> list[DecisionEntry]:
    """Every decision taken on ``subject`` (for example ``group 3f9c2a71d0``), oldest first."""
    with engine.connect() as conn:
        ids = conn.execute(select(AUDIT.c.id).where(AUDIT.c.subject == subject)).scalars().all()
        return _entries(conn, ids)


def save_rules(engine: Engine, rules: RulesText, now: dt.datetime) -> None:
    """Keep the text of a profile or override by its sha256 (once; the first name stays)."""
    if load_rules(engine, rules.sha256) is not None:
        return
    try:
        with engine.begin() as conn:
            conn.execute(insert(RULES).values(sha256=rules.sha256, name=rules.name[:255],
                                              content=rules.content, created_at=now))
    except IntegrityError:
        pass  # another operator saved the same text at the same moment


def load_rules(engine: Engine, sha256: str) -> RulesText | None:
    """The profile or override text kept under ``sha256``."""
    with engine.connect() as conn:
        row = conn.execute(select(RULES).where(RULES.c.sha256 == sha256)).first()
    return None if row is None else RulesText(row.sha256, row.name, row.content)
