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
from gateway.jobs.states import JobState
from gateway.jobs.store import ClaimedJob, Finish, JobStore
from gateway.pipeline.stage import Outcome, OutcomeKind, Stage, StageContext
from gateway.spool import Spool

Observer = Callable[[str, dict[str, str], float], None]


class StopEvent(Protocol):
    def is_set(self) -> bool: ...

    def wait(self, timeout: float) -> bool: ...


def _ignore(_name: str, _labels: dict[str, str], _value: float) -> None:
    return None


DEFER_SIZE = 4 * 1024 * 1024


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
    """Runs claimed jobs: each through the pipeline, then a batch's outcomes in one commit."""

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
        """Process and commit one job (a batch of one)."""
        return self.run_batch([job])[0]

    def run_batch(self, jobs: Sequence[ClaimedJob]) -> list[OutcomeKind]:
        """Process each job, make the pseudonym map durable, commit every outcome at once,
        then move the files of filtered and quarantined jobs (database first, files after:
        a crash in between leaves a job whose state is already decided)."""
        results = [self.process(job) for job in jobs]
        if self._flush is not None and any(r.state is JobState.READY for r in results):
            results = self._flush_or_retry(jobs, results)
        applied = set(self._store.finish(self._owner, results, self._destinations))
        for r in results:
            if r.job_id not in applied:
                continue
            if r.state is JobState.FILTERED:
                self._spool.remove_job(r.job_id)
            elif r.state is JobState.QUARANTINED:
                self._spool.to_quarantine(r.job_id)
        return [_KIND[r.state] for r in results]

    def _flush_or_retry(
        self, jobs: Sequence[ClaimedJob], results: list[Finish]
    ) -> list[Finish]:
        assert self._flush is not None
        try:
            self._flush()  # pseudonym map rows are committed before any instance may leave
            return results
        except Exception as exc:
            out = []
            for job, r in zip(jobs, results, strict=True):
                if r.state is JobState.READY:
                    self._spool.remove_output(job.id)
                    r = self._retry(job, Outcome.retry(describe_exception("pseudonyms", exc)))
                out.append(r)
            return out

    def process(self, job: ClaimedJob) -> Finish:
        """Run the pipeline on one job from its original bytes; write the output if any."""
        started = time.monotonic()
        labels = {"modality": job.modality or "none"}
        src = self._spool.incoming_path(job.id)
        ctx = StageContext(
            job_id=job.id, calling_ae=job.calling_ae, called_ae=job.called_ae, source_path=src
        )
        try:
            # Values over 4 MiB (large pixel data) stay in the file until a stage reads them or the
            # output is written, so a large instance is not held twice in memory.
            ds = dcmread(src, defer_size=DEFER_SIZE)
        except FileNotFoundError:
            return self._quarantine("receive: original file missing from spool", "missing", job)
        except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError) as exc:
            return self._quarantine(describe_exception("decode", exc), "decode", job)
        if "SOPClassUID" not in ds or "SOPInstanceUID" not in ds:
            return self._quarantine("decode: no SOP Class or Instance UID", "decode", job)
        result = run_stages(self._stages, ds, ctx)
        outcome = result.outcome
        if outcome.kind is OutcomeKind.CONTINUE:
            finish = self._write(job, ds, ctx)
        elif outcome.kind is OutcomeKind.FILTER:
            finish = Finish(job.id, JobState.FILTERED, outcome.reason, outcome.reason_class)
        elif outcome.kind is OutcomeKind.QUARANTINE:
            finish = self._quarantine(outcome.reason, outcome.reason_class, job)
        else:
            finish = self._retry(job, outcome)
        self._observe(f"job_{_KIND[finish.state].value}", labels, time.monotonic() - started)
        return finish

    def _write(self, job: ClaimedJob, ds: Dataset, ctx: StageContext) -> Finish:
        try:
            self._spool.write_output(job.id, lambda fh: write_dataset(ds, fh))
        except OSError:
            return self._retry(job, Outcome.retry("write: spool output failed", "spool"))
        except Exception as exc:
            return self._quarantine(describe_exception("encode", exc), "encode", job)
        ruleset = ";".join(ctx.versions)[:128] or None
        return Finish(job.id, JobState.READY, ruleset=ruleset)

    @staticmethod
    def _quarantine(reason: str, reason_class: str, job: ClaimedJob) -> Finish:
        return Finish(job.id, JobState.QUARANTINED, reason, reason_class)

    def _retry(self, job: ClaimedJob, outcome: Outcome) -> Finish:
        if job.attempts >= self._settings.workers.max_attempts:
            reason = f"{outcome.reason} (after {job.attempts} attempts)"
            return self._quarantine(reason, outcome.reason_class or "retries", job)
        delay = min(60.0, 2.0 ** job.attempts)
        return Finish(job.id, JobState.RECEIVED, outcome.reason, outcome.reason_class, delay)


_KIND = {
    JobState.READY: OutcomeKind.CONTINUE,
    JobState.FILTERED: OutcomeKind.FILTER,
    JobState.QUARANTINED: OutcomeKind.QUARANTINE,
    JobState.RECEIVED: OutcomeKind.RETRY,
}


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
        if stop.is_set():
            for job in jobs:
                store.release(job.id, owner, None, 0.0)
            return
        runner.run_batch(jobs)


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
    with contextlib.suppress(OSError):
        os.nice(settings.workers.nice)  # the receiver, which a sender waits on, comes first
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
