"""A worker process: claim jobs, run the pipeline from the original bytes, write the output.

Processing is idempotent (DESIGN decision 3): a worker always starts from the received file in
``incoming/`` and writes its output to a temporary file that is renamed into ``outgoing/``, so a
job re-run after a crash gives byte-identical output. A worker whose parent dies exits, and the
lease of whatever it held expires and is claimed again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.synchronize import Event as EventType
from typing import Any, Protocol

from pydicom import Dataset, dcmread
from pydicom.errors import InvalidDicomError

from gateway.config import Settings
from gateway.jobs.store import ClaimedJob, JobStore
from gateway.pipeline.stage import Outcome, OutcomeKind, Stage, StageContext
from gateway.spool import Spool

Observer = Callable[[str, dict[str, str], float], None]


class StopEvent(Protocol):
    def is_set(self) -> bool: ...

    def wait(self, timeout: float) -> bool: ...


def _ignore(_name: str, _labels: dict[str, str], _value: float) -> None:
    return None


class SafeMessageError(Exception):
    """An exception whose message is known to carry no patient value (may be recorded)."""


def describe_exception(stage: str, exc: BaseException) -> str:
    """A reason for the job row: the stage and the exception class, never its message,
    because pydicom and stage messages can echo element values (PHI)."""
    if isinstance(exc, SafeMessageError):
        return f"{stage}: {exc}"
    return f"{stage}: {type(exc).__name__}"


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    stage: str


def run_stages(stages: Sequence[Stage], ds: Dataset, ctx: StageContext) -> Result:
    """Run stages in order until one does not continue; exceptions become quarantine."""
    for stage in stages:
        try:
            outcome = stage(ds, ctx)
        except Exception as exc:
            outcome = Outcome.quarantine(describe_exception(stage.name, exc), "error")
        if outcome.kind is not OutcomeKind.CONTINUE:
            return Result(outcome, stage.name)
    return Result(Outcome.proceed(), "")


def write_dataset(ds: Dataset, fh: Any) -> None:
    ds.save_as(fh, enforce_file_format=True)


class JobRunner:
    """Runs one claimed job to its next state."""

    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        spool: Spool,
        stages: Sequence[Stage],
        owner: str,
        observe: Observer = _ignore,
        flush: Callable[[], None] | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._spool = spool
        self._stages = stages
        self._owner = owner
        self._observe = observe
        self._flush = flush
        self._destinations = [d.name for d in settings.destinations]

    def run(self, job: ClaimedJob) -> OutcomeKind:
        started = time.monotonic()
        labels = {"modality": job.modality or "none"}
        src = self._spool.incoming_path(job.id)
        ctx = StageContext(
            job_id=job.id, calling_ae=job.calling_ae, called_ae=job.called_ae, source_path=src
        )
        try:
            ds = dcmread(src)
        except FileNotFoundError:
            return self._quarantine(job, "receive: original file missing from spool", "missing")
        except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError) as exc:
            return self._quarantine(job, describe_exception("decode", exc), "decode")
        result = run_stages(self._stages, ds, ctx)
        kind = result.outcome.kind
        if kind is OutcomeKind.CONTINUE:
            kind = self._finish(job, ds, ctx)
        elif kind is OutcomeKind.FILTER:
            if self._store.mark_filtered(
                job.id, self._owner, result.outcome.reason, result.outcome.reason_class
            ):
                self._spool.remove_job(job.id)
        elif kind is OutcomeKind.QUARANTINE:
            kind = self._quarantine(job, result.outcome.reason, result.outcome.reason_class)
        else:
            kind = self._retry(job, result.outcome)
        self._observe(f"job_{kind.value}", labels, time.monotonic() - started)
        return kind

    def _finish(self, job: ClaimedJob, ds: Dataset, ctx: StageContext) -> OutcomeKind:
        try:
            self._spool.write_output(job.id, lambda fh: write_dataset(ds, fh))
        except OSError:
            return self._retry(job, Outcome.retry("write: spool output failed", "spool"))
        except Exception as exc:
            return self._quarantine(job, describe_exception("encode", exc), "encode")
        if self._flush is not None:
            try:
                self._flush()  # pseudonym map rows are committed before the instance may leave
            except Exception as exc:
                self._spool.remove_output(job.id)
                return self._retry(job, Outcome.retry(describe_exception("pseudonyms", exc)))
        ruleset = ";".join(ctx.versions)[:128] or None
        self._store.mark_ready(job.id, self._owner, self._destinations, ruleset)
        return OutcomeKind.CONTINUE

    def _quarantine(self, job: ClaimedJob, reason: str, reason_class: str) -> OutcomeKind:
        if self._store.quarantine(job.id, reason, reason_class, owner=self._owner):
            self._spool.to_quarantine(job.id)
        return OutcomeKind.QUARANTINE

    def _retry(self, job: ClaimedJob, outcome: Outcome) -> OutcomeKind:
        if job.attempts >= self._settings.workers.max_attempts:
            reason = f"{outcome.reason} (after {job.attempts} attempts)"
            return self._quarantine(job, reason, outcome.reason_class or "retries")
        delay = min(60.0, 2.0 ** job.attempts)
        self._store.release(job.id, self._owner, outcome.reason, delay)
        return OutcomeKind.RETRY


def worker_loop(
    runner: JobRunner,
    store: JobStore,
    settings: Settings,
    owner: str,
    stop: StopEvent,
    parent_pid: int | None = None,
) -> None:
    """Claim and run jobs until ``stop`` is set or the parent process is gone."""
    ws = settings.workers
    idle = ws.poll_interval
    while not stop.is_set():
        if parent_pid is not None and os.getppid() != parent_pid:
            return
        jobs = store.claim(owner, ws.batch_size, ws.lease_seconds)
        if not jobs:
            stop.wait(idle)
            idle = min(idle * 2, max(ws.poll_interval, 0.5))
            continue
        idle = ws.poll_interval
        for i, job in enumerate(jobs):
            if stop.is_set():
                for rest in jobs[i:]:
                    store.release(rest.id, owner, None, 0.0)
                return
            runner.run(job)


def _set_parent_death_signal() -> None:
    """Ask Linux to SIGTERM this worker when its parent dies (prctl PR_SET_PDEATHSIG)."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)


class _EitherEvent:
    """Stop when the pool says so, or when this process alone got SIGTERM."""

    def __init__(self, shared: StopEvent, local: threading.Event) -> None:
        self._shared = shared
        self._local = local

    def is_set(self) -> bool:
        return self._shared.is_set() or self._local.is_set()

    def wait(self, timeout: float) -> bool:
        return self._shared.wait(timeout) or self._local.is_set()


def worker_main(settings: Settings, index: int, stop: EventType, parent_pid: int) -> None:
    """Entry point of a worker process (spawned)."""
    from gateway.app import build_worker

    _set_parent_death_signal()
    local = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    signal.signal(signal.SIGTERM, lambda *_: local.set())
    owner = f"{settings.node_id}/w{index}/{os.getpid()}"
    runner, store, services = build_worker(settings, owner)
    try:
        worker_loop(runner, store, settings, owner, _EitherEvent(stop, local), parent_pid)
    finally:
        close = getattr(services.pseudonymizer, "close", None)
        if close is not None:
            close()
