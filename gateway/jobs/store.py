"""The job store: durable queue operations on the ``jobs`` and ``deliveries`` tables.

Claims are leases (``lease_until``): a worker that dies leaves its jobs to be claimed again once
the lease expires. On PostgreSQL claims use ``FOR UPDATE SKIP LOCKED``; on SQLite every
transaction begins with ``BEGIN IMMEDIATE`` (see :mod:`gateway.db.engine`), which serialises
claimers. Every state change goes through :func:`~gateway.jobs.states.check_job_transition`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from gateway.db.engine import reader, session_factory
from gateway.jobs import decisions
from gateway.jobs.decisions import Decision
from gateway.jobs.groups import QuarantineEntry, encode_paths
from gateway.jobs.models import Delivery, Job, utcnow
from gateway.jobs.states import (
    UNFINISHED,
    DeliveryState,
    JobState,
    check_delivery_transition,
    check_job_transition,
)

Clock = Callable[[], dt.datetime]
ERROR_MAX = 2000


@dataclass(frozen=True)
class NewJob:
    """What the receiver knows about an instance it has made durable."""

    id: str
    calling_ae: str
    called_ae: str
    sop_class_uid: str
    transfer_syntax_uid: str
    modality: str
    size_bytes: int


@dataclass(frozen=True)
class Finish:
    """The outcome of processing one job, as :meth:`JobStore.finish` records it."""

    job_id: str
    state: JobState  # READY, FILTERED, QUARANTINED, or RECEIVED (retry later)
    reason: str | None = None
    reason_class: str | None = None
    delay: float = 0.0
    ruleset: str | None = None
    # A quarantine's stage and the tag paths its reason is about (never values).
    stage: str = ""
    paths: tuple[str, ...] = ()
    # False for a retry caused by the node (full disk, database away), not by the job: the
    # attempt its claim counted is given back (gateway.outcomes.NODE_CONDITIONS).
    counted: bool = True


@dataclass(frozen=True)
class ClaimedJob:
    id: str
    attempts: int
    calling_ae: str
    called_ae: str
    sop_class_uid: str
    modality: str
    # The sha256 of the profile / site override an operator released the job with (None: the
    # configured profile); the worker's deidentify stage uses them (gateway.pipeline.compose).
    release_profile: str | None = None
    release_override: str | None = None


@dataclass(frozen=True)
class ClaimedDelivery:
    id: int
    job_id: str
    destination: str
    attempts: int
    sop_class_uid: str
    modality: str
    size_bytes: int
    received_at: dt.datetime


@dataclass(frozen=True)
class JobInfo:
    """A job as operators see it (``status``, ``quarantine list|show``)."""

    id: str
    state: str
    node_id: str
    calling_ae: str
    sop_class_uid: str
    transfer_syntax_uid: str
    modality: str
    size_bytes: int
    attempts: int
    last_error: str | None
    reason_class: str | None
    ruleset: str | None
    received_at: dt.datetime
    updated_at: dt.datetime
    deliveries: tuple[tuple[str, str, int, str | None], ...]
    reason_stage: str | None = None
    reason_paths: str | None = None  # JSON (gateway.jobs.groups.decode_paths)
    release_profile: str | None = None
    release_override: str | None = None

    def quarantine_entry(self) -> QuarantineEntry:
        return QuarantineEntry(self.id, self.updated_at, self.reason_class or "",
                               self.reason_stage or "", self.last_error or "", self.reason_paths)


def _clip(text: str | None) -> str | None:
    return None if text is None else text[:ERROR_MAX]


def _info(job: Job) -> JobInfo:
    return JobInfo(
        id=job.id,
        state=job.state,
        node_id=job.node_id,
        calling_ae=job.calling_ae,
        sop_class_uid=job.sop_class_uid,
        transfer_syntax_uid=job.transfer_syntax_uid,
        modality=job.modality,
        size_bytes=job.size_bytes,
        attempts=job.attempts,
        last_error=job.last_error,
        reason_class=job.reason_class,
        ruleset=job.ruleset,
        received_at=job.received_at,
        updated_at=job.updated_at,
        deliveries=tuple(
            (d.destination, d.state, d.attempts, d.last_error) for d in job.deliveries
        ),
        reason_stage=job.reason_stage,
        reason_paths=job.reason_paths,
        release_profile=job.release_profile,
        release_override=job.release_override,
    )


class JobStore:
    """Queue operations for one gateway node."""

    def __init__(self, engine: Engine, node_id: str, clock: Clock = utcnow) -> None:
        self.engine = engine
        self.node_id = node_id
        self._session = session_factory(engine)
        self._read = session_factory(reader(engine))
        self._now = clock

    # -- receive -------------------------------------------------------------------------
    def add_received(self, new: NewJob) -> None:
        """Record a durable instance as ``received`` (one commit; then the SCP may answer)."""
        now = self._now()
        with self.engine.begin() as conn:
            conn.execute(
                insert(Job).values(
                    id=new.id,
                    state=JobState.RECEIVED.value,
                    node_id=self.node_id,
                    calling_ae=new.calling_ae,
                    called_ae=new.called_ae,
                    sop_class_uid=new.sop_class_uid,
                    transfer_syntax_uid=new.transfer_syntax_uid,
                    modality=new.modality,
                    size_bytes=new.size_bytes,
                    attempts=0,
                    next_attempt_at=now,
                    received_at=now,
                    updated_at=now,
                )
            )

    # -- workers -------------------------------------------------------------------------
    def _due_jobs(self, now: dt.datetime) -> Any:
        return (
            Job.node_id == self.node_id,
            or_(
                and_(Job.state == JobState.RECEIVED, Job.next_attempt_at <= now),
                and_(Job.state == JobState.PROCESSING, Job.lease_until < now),
            ),
        )

    def claim(self, owner: str, limit: int, lease_seconds: float) -> list[ClaimedJob]:
        """Lease up to ``limit`` jobs that are due, or whose previous lease expired.

        One ``UPDATE ... WHERE id IN (SELECT ... [FOR UPDATE SKIP LOCKED]) RETURNING``; an idle
        poll only reads (no write lock), so idle workers never delay the receiver.
        """
        now = self._now()
        with self._read() as s:
            if s.execute(select(Job.id).where(*self._due_jobs(now)).limit(1)).first() is None:
                return []
        # both due states may become PROCESSING (a new claim, or a lapsed lease taken over)
        check_job_transition(JobState.RECEIVED, JobState.PROCESSING)
        check_job_transition(JobState.PROCESSING, JobState.PROCESSING)
        due = (
            select(Job.id)
            .where(*self._due_jobs(now))
            .order_by(Job.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        stmt = (
            update(Job)
            .where(Job.id.in_(due.scalar_subquery()))
            .values(
                state=JobState.PROCESSING,
                lease_owner=owner,
                lease_until=now + dt.timedelta(seconds=lease_seconds),
                attempts=Job.attempts + 1,
                updated_at=now,
            )
            .returning(Job.id, Job.attempts, Job.calling_ae, Job.called_ae,
                       Job.sop_class_uid, Job.modality, Job.release_profile,
                       Job.release_override, Job.next_attempt_at)
        )
        with self.engine.begin() as conn:
            rows = sorted(conn.execute(stmt).all(), key=lambda r: r[8])
        return [ClaimedJob(*r[:8]) for r in rows]

    def _owned(self, s: Session, job_id: str, owner: str | None) -> Job | None:
        job = s.get(Job, job_id, with_for_update=True)
        if job is None:
            return None
        if owner is not None and (job.state != JobState.PROCESSING or job.lease_owner != owner):
            return None  # the lease was lost to another worker; its result wins
        return job

    def _move(self, job: Job, new: JobState, now: dt.datetime) -> None:
        check_job_transition(JobState(job.state), new)
        job.state = new
        job.updated_at = now
        job.lease_owner = None
        job.lease_until = None
        if new in (JobState.SENT, JobState.FILTERED):
            job.finished_at = now

    def mark_ready(
        self, job_id: str, owner: str, destinations: Sequence[str], ruleset: str | None
    ) -> bool:
        """Processing finished: output is durable; create one pending delivery per destination."""
        return bool(
            self.finish(owner, [Finish(job_id, JobState.READY, ruleset=ruleset)], destinations)
        )

    def finish(
        self, owner: str, results: Sequence[Finish], destinations: Sequence[str] = ()
    ) -> list[str]:
        """Record the outcome of several processed jobs in one transaction.

        Returns the ids whose lease this owner still held (the others were claimed again by
        another worker after a lease expired; that worker's result wins). A handful of
        statements per batch, whatever its size: this is every worker's hot path.
        """
        if not results:
            return []
        now = self._now()
        ids = [r.job_id for r in results]
        with self.engine.begin() as conn:
            held = {
                row[0]
                for row in conn.execute(
                    select(Job.id)
                    .where(
                        Job.id.in_(ids),
                        Job.state == JobState.PROCESSING,
                        Job.lease_owner == owner,
                    )
                    .with_for_update()
                )
            }
            mine = [r for r in results if r.job_id in held]
            for r in mine:
                check_job_transition(JobState.PROCESSING, r.state)
            rows = [self._finish_values(r, now) for r in mine]
            if rows:
                conn.execute(
                    update(Job).where(Job.id == bindparam("b_id")),
                    rows,
                )
            uncounted = [r.job_id for r in mine if not r.counted]
            if uncounted:
                conn.execute(
                    update(Job)
                    .where(Job.id.in_(uncounted), Job.attempts > 0)
                    .values(attempts=Job.attempts - 1)
                )
            ready = [r.job_id for r in mine if r.state is JobState.READY]
            if ready and destinations:
                self._add_deliveries(conn, ready, destinations, now)
        return [r.job_id for r in results if r.job_id in held]

    @staticmethod
    def _finish_values(r: Finish, now: dt.datetime) -> dict[str, Any]:
        values: dict[str, Any] = {
            "b_id": r.job_id,
            "state": r.state.value,
            "updated_at": now,
            "lease_owner": None,
            "lease_until": None,
            "last_error": _clip(r.reason),
            "reason_class": r.reason_class,
            "ruleset": r.ruleset,
            "reason_stage": r.stage or None,
            "reason_paths": encode_paths(r.paths),
            "next_attempt_at": now + dt.timedelta(seconds=r.delay),
            "finished_at": now if r.state in (JobState.SENT, JobState.FILTERED) else None,
        }
        return values

    @staticmethod
    def _add_deliveries(
        conn: Any, job_ids: Sequence[str], destinations: Sequence[str], now: dt.datetime
    ) -> None:
        """One pending delivery per (job, destination), except those a job already has
        (a job released from quarantine keeps the deliveries that were confirmed)."""
        existing = set(
            conn.execute(
                select(Delivery.job_id, Delivery.destination).where(Delivery.job_id.in_(job_ids))
            ).all()
        )
        new = [
            {"job_id": j, "destination": d, "state": DeliveryState.PENDING.value,
             "attempts": 0, "next_attempt_at": now}
            for j in job_ids
            for d in destinations
            if (j, d) not in existing
        ]
        if new:
            conn.execute(insert(Delivery), new)

    def quarantine(self, job_id: str, reason: str, reason_class: str, owner: str,
                   stage: str = "", paths: Sequence[str] = ()) -> bool:
        """Hold a claimed job for an operator, with its reason (never a patient value)."""
        held = Finish(job_id, JobState.QUARANTINED, reason, reason_class, stage=stage,
                      paths=tuple(paths))
        return bool(self.finish(owner, [held]))

    def release(self, job_id: str, owner: str, error: str | None, delay: float) -> bool:
        """Give a claimed job back to the queue (shutdown, or a transient failure)."""
        now = self._now()
        with self._session.begin() as s:
            job = self._owned(s, job_id, owner)
            if job is None:
                return False
            self._move(job, JobState.RECEIVED, now)
            job.next_attempt_at = now + dt.timedelta(seconds=delay)
            if error is not None:
                job.last_error = _clip(error)
            else:
                job.attempts = max(0, job.attempts - 1)  # not a real attempt
            return True

    def renew(self, job_ids: Iterable[str], owner: str, lease_seconds: float) -> None:
        now = self._now()
        with self._session.begin() as s:
            s.execute(
                update(Job)
                .where(
                    Job.id.in_(list(job_ids)),
                    Job.lease_owner == owner,
                    Job.state == JobState.PROCESSING,
                )
                .values(lease_until=now + dt.timedelta(seconds=lease_seconds))
            )

    def recover_node(self) -> tuple[int, int]:
        """At start-up (no worker of this node alive): return leased work to the queue."""
        now = self._now()
        with self._session.begin() as s:
            jobs = s.execute(  # type: ignore[attr-defined]
                update(Job)
                .where(Job.node_id == self.node_id, Job.state == JobState.PROCESSING)
                .values(state=JobState.RECEIVED, lease_owner=None, lease_until=None,
                        next_attempt_at=now, updated_at=now)
            ).rowcount
            deliveries = s.execute(  # type: ignore[attr-defined]
                update(Delivery)
                .where(
                    Delivery.state == DeliveryState.SENDING,
                    Delivery.job_id.in_(select(Job.id).where(Job.node_id == self.node_id)),
                )
                .values(state=DeliveryState.PENDING, lease_until=None, next_attempt_at=now)
            ).rowcount
        return int(jobs or 0), int(deliveries or 0)

    def recover_deliveries(self, destination: str) -> int:
        """Deliveries of this node to ``destination`` that a forwarder thread which ended was
        sending go back to pending (its replacement sends them again; a duplicate is
        harmless, the same input giving the same SOP Instance UID)."""
        now = self._now()
        with self._session.begin() as s:
            n = s.execute(  # type: ignore[attr-defined]
                update(Delivery)
                .where(
                    Delivery.destination == destination,
                    Delivery.state == DeliveryState.SENDING,
                    Delivery.job_id.in_(select(Job.id).where(Job.node_id == self.node_id)),
                )
                .values(state=DeliveryState.PENDING, lease_until=None, next_attempt_at=now)
            ).rowcount
        return int(n or 0)

    # -- forwarders ----------------------------------------------------------------------
    def claim_deliveries(
        self, destination: str, limit: int, lease_seconds: float
    ) -> list[ClaimedDelivery]:
        """Lease up to ``limit`` due deliveries of this node to ``destination``."""
        now = self._now()
        due = (
            Job.node_id == self.node_id,
            Job.state == JobState.READY,
            Delivery.destination == destination,
            or_(
                and_(Delivery.state == DeliveryState.PENDING, Delivery.next_attempt_at <= now),
                and_(Delivery.state == DeliveryState.SENDING, Delivery.lease_until < now),
            ),
        )
        with self._read() as s:
            probe = select(Delivery.id).join(Job, Delivery.job_id == Job.id).where(*due)
            if s.execute(probe.limit(1)).first() is None:
                return []
        with self._session.begin() as s:
            rows = s.execute(
                select(Delivery, Job)
                .join(Job, Delivery.job_id == Job.id)
                .where(*due)
                .order_by(Delivery.next_attempt_at, Delivery.id)
                .limit(limit)
                .with_for_update(skip_locked=True, of=Delivery)
            ).all()
            out = []
            for d, job in rows:
                check_delivery_transition(DeliveryState(d.state), DeliveryState.SENDING)
                d.state = DeliveryState.SENDING
                d.lease_until = now + dt.timedelta(seconds=lease_seconds)
                d.attempts += 1
                out.append(
                    ClaimedDelivery(
                        d.id, job.id, destination, d.attempts, job.sop_class_uid,
                        job.modality, job.size_bytes, job.received_at,
                    )
                )
            return out

    def deliveries_sent(self, delivery_ids: Sequence[int], status: int = 0) -> list[str]:
        """Record confirmed deliveries; returns the jobs that are now completely sent."""
        if not delivery_ids:
            return []
        now = self._now()
        done: list[str] = []
        with self._session.begin() as s:
            rows = s.execute(
                select(Delivery).where(Delivery.id.in_(list(delivery_ids)))
            ).scalars().all()
            job_ids = set()
            for d in rows:
                if d.state == DeliveryState.SENT:
                    continue
                check_delivery_transition(DeliveryState(d.state), DeliveryState.SENT)
                d.state = DeliveryState.SENT
                d.sent_at = now
                d.lease_until = None
                d.last_status = status
                d.last_error = None
                job_ids.add(d.job_id)
            s.flush()
            for job_id in sorted(job_ids):
                job = s.get(Job, job_id)
                if job is None or job.state != JobState.READY:
                    continue
                if all(d.state == DeliveryState.SENT for d in job.deliveries):
                    self._move(job, JobState.SENT, now)
                    done.append(job_id)
        return done

    def delivery_retry(
        self, delivery_id: int, error: str, status: int | None, delay: float
    ) -> None:
        now = self._now()
        with self._session.begin() as s:
            d = s.get(Delivery, delivery_id)
            if d is None or d.state != DeliveryState.SENDING:
                return
            check_delivery_transition(DeliveryState(d.state), DeliveryState.PENDING)
            d.state = DeliveryState.PENDING
            d.lease_until = None
            d.last_error = _clip(error)
            d.last_status = status
            d.next_attempt_at = now + dt.timedelta(seconds=delay)

    def delivery_unclaim(self, delivery_ids: Sequence[int]) -> None:
        """Give leased deliveries back untried (shutdown, or association could not carry them)."""
        if not delivery_ids:
            return
        now = self._now()
        with self._session.begin() as s:
            for d in s.execute(
                select(Delivery).where(
                    Delivery.id.in_(list(delivery_ids)), Delivery.state == DeliveryState.SENDING
                )
            ).scalars():
                d.state = DeliveryState.PENDING
                d.lease_until = None
                d.attempts = max(0, d.attempts - 1)
                d.next_attempt_at = now

    def deliveries_due_now(self, destination: str) -> int:
        """Make this node's pending deliveries to ``destination`` due now (the destination is
        back after an outage: back-offs chosen while it was down are stale); returns how many
        were waiting."""
        now = self._now()
        jobs = select(Job.id).where(Job.node_id == self.node_id, Job.state == JobState.READY)
        with self._session.begin() as s:
            count = s.execute(  # type: ignore[attr-defined]
                update(Delivery)
                .where(
                    Delivery.destination == destination,
                    Delivery.state == DeliveryState.PENDING,
                    Delivery.next_attempt_at > now,
                    Delivery.job_id.in_(jobs.scalar_subquery()),
                )
                .values(next_attempt_at=now)
            ).rowcount
        return int(count or 0)

    def delivery_failed(self, delivery_id: int, error: str, status: int | None) -> str | None:
        """A permanent failure: the delivery fails and its job goes to quarantine."""
        now = self._now()
        with self._session.begin() as s:
            d = s.get(Delivery, delivery_id)
            if d is None or d.state in (DeliveryState.SENT, DeliveryState.FAILED):
                return None
            check_delivery_transition(DeliveryState(d.state), DeliveryState.FAILED)
            d.state = DeliveryState.FAILED
            d.lease_until = None
            d.last_error = _clip(error)
            d.last_status = status
            job = s.get(Job, d.job_id)
            if job is not None and job.state == JobState.READY:
                self._move(job, JobState.QUARANTINED, now)
                job.last_error = _clip(f"forward to {d.destination}: {error}")
                job.reason_class = "forward"
                job.reason_stage = "forward"
                job.reason_paths = None
            return d.job_id

    # -- operators and metrics -----------------------------------------------------------
    def counts(self) -> dict[str, int]:
        with self._read() as s:
            rows = s.execute(select(Job.state, func.count()).group_by(Job.state)).all()
        out = {st.value: 0 for st in JobState}
        out.update({state: int(n) for state, n in rows})
        return out

    def delivery_counts(self) -> dict[str, dict[str, int]]:
        with self._read() as s:
            rows = s.execute(
                select(Delivery.destination, Delivery.state, func.count()).group_by(
                    Delivery.destination, Delivery.state
                )
            ).all()
        out: dict[str, dict[str, int]] = {}
        for dest, state, n in rows:
            out.setdefault(dest, {st.value: 0 for st in DeliveryState})[state] = int(n)
        return out

    def unfinished_bytes(self) -> int:
        with self._read() as s:
            total = s.execute(
                select(func.coalesce(func.sum(Job.size_bytes), 0)).where(
                    Job.node_id == self.node_id, Job.state.in_([st.value for st in UNFINISHED])
                )
            ).scalar_one()
        return int(total)

    def get(self, job_id: str) -> JobInfo | None:
        with self._read() as s:
            job = s.get(Job, job_id)
            return None if job is None else _info(job)

    def find(self, prefix: str) -> list[JobInfo]:
        """Jobs whose id starts with ``prefix`` (operators type short ids)."""
        with self._read() as s:
            jobs = s.execute(
                select(Job).where(Job.id.like(f"{prefix}%")).limit(10)
            ).scalars().all()
            return [_info(j) for j in jobs]

    def list_state(self, state: JobState, limit: int = 1000) -> list[JobInfo]:
        with self._read() as s:
            jobs = s.execute(
                select(Job).where(Job.state == state).order_by(Job.updated_at).limit(limit)
            ).scalars().all()
            return [_info(j) for j in jobs]

    def quarantine_entries(self) -> list[QuarantineEntry]:
        """What grouping needs of every quarantined job (gateway.jobs.groups)."""
        with self._read() as s:
            rows = s.execute(
                select(Job.id, Job.updated_at, Job.reason_class, Job.reason_stage,
                       Job.last_error, Job.reason_paths)
                .where(Job.state == JobState.QUARANTINED)
                .order_by(Job.updated_at, Job.id)
            ).all()
        return [QuarantineEntry(r[0], r[1], r[2] or "", r[3] or "", r[4] or "", r[5])
                for r in rows]

    def release_quarantined(self, job_id: str) -> bool:
        """Operator release: the job is processed again from its original bytes."""
        return bool(self.release_jobs([job_id]))

    def release_jobs(self, job_ids: Sequence[str], decision: Decision | None = None) -> list[str]:
        """Operator release of quarantined jobs, processed again from their original bytes.

        The decision's profile and override (sha256 of ``release_rules`` rows, None for the
        configured profile) are what the deidentify stage will use for these jobs; the decision
        is audited in the same transaction. Returns the ids released (jobs no longer
        quarantined are left alone).
        """
        now = self._now()
        released: list[str] = []
        with self._session.begin() as s:
            for job_id in job_ids:
                job = s.get(Job, job_id, with_for_update=True)
                if job is None or job.state != JobState.QUARANTINED:
                    continue
                self._move(job, JobState.RECEIVED, now)
                job.attempts = 0
                job.next_attempt_at = now
                job.release_profile = decision.profile_sha256 if decision else None
                job.release_override = decision.override_sha256 if decision else None
                for d in list(job.deliveries):
                    if d.state != DeliveryState.SENT:
                        job.deliveries.remove(d)
                released.append(job_id)
            if decision is not None and released:
                decisions.record(s.connection(), decision, released, self.node_id, now)
        return released

    def purge(self, job_id: str) -> bool:
        """Operator purge of a quarantined job: its row and deliveries are deleted."""
        return bool(self.purge_jobs([job_id]))

    def purge_jobs(self, job_ids: Sequence[str], decision: Decision | None = None) -> list[str]:
        """Operator purge of quarantined jobs (rows and deliveries deleted), audited in the
        same transaction; returns the ids purged."""
        now = self._now()
        purged: list[str] = []
        with self._session.begin() as s:
            for job_id in job_ids:
                job = s.get(Job, job_id, with_for_update=True)
                if job is None or job.state != JobState.QUARANTINED:
                    continue
                s.execute(delete(Delivery).where(Delivery.job_id == job_id))
                s.delete(job)
                purged.append(job_id)
            if decision is not None and purged:
                s.flush()
                decisions.record(s.connection(), decision, purged, self.node_id, now)
        return purged

    def oldest_age_seconds(self) -> dict[str, float]:
        """Age of the oldest job per unfinished state, for the 'stuck' alert."""
        now = self._now()
        with self._read() as s:
            rows = s.execute(
                select(Job.state, func.min(Job.updated_at))
                .where(Job.state.in_([st.value for st in UNFINISHED] + [JobState.QUARANTINED]))
                .group_by(Job.state)
            ).all()
        return {state: max(0.0, (now - t).total_seconds()) for state, t in rows if t is not None}
