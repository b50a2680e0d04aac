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
from gateway.observe.logs import get_logger
from gateway.pipeline.stage import Outcome, OutcomeKind, Stage, StageContext
from gateway.spool import Spool

# Hook for observability: (event name, labels, value) -> None. Never given patient values.
Observer = Callable[[str, dict[str, str], float], None]
# Called after each stage with (stage name, its outcome, seconds it took).
StageReport = Callable[[str, Outcome, float], None]
log = get_logger("gateway.worker")


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


def _no_report(_stage: str, _outcome: Outcome, _seconds: float) -> None:
    return None


def run_stages(
    stages: Sequence[Stage], ds: Dataset, ctx: StageContext, report: StageReport = _no_report
) -> Result:
    """Run stages in order until one does not continue; exceptions become quarantine.

    Each stage is timed and reported; an exception is reported by its class name only.
    """
    for stage in stages:
        started = time.perf_counter()
        try:
            outcome = stage(ds, ctx)
        except Exception as exc:
            outcome = Outcome.quarantine(describe_exception(stage.name, exc), "error")
        report(stage.name, outcome, time.perf_counter() - started)
        if outcome.kind is not OutcomeKind.CONTINUE:
            return Result(outcome, stage.name)
    return Result(Outcome.proceed(), "")


def _text(value: object) -> str:
    return "" if value is None else str(value)


def write_dataset(ds: Dataset, fh: Any) -> None:
    ds.save_as(fh, enforce_file_format=True)


class JobRunner:
    """Runs one claimed job to its next state, with one log line per stage and one per job.

    Log lines carry the job id and, once the ``deidentify`` stage has replaced it, the output
    SOP Instance UID (never the input one: a profile that keeps UIDs keeps them unlogged too).
    """

    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        spool: Spool,
        stages: Sequence[Stage],
        owner: str,
        observe: Observer = _ignore,
        flush: Callable[[], None] | None = None,
        worker: str = "0",
    ) -> None:
        self._settings = settings
        self._store = store
        self._spool = spool
        self._stages = stages
        self._owner = owner
        self._observe = observe
        self._flush = flush
        self._worker = worker
        self._destinations = [d.name for d in settings.destinations]

    def heartbeat(self) -> None:
        """The worker loop is alive (a live gauge per worker)."""
        self._observe("worker_heartbeat", {"worker": self._worker}, time.time())

    def run(self, job: ClaimedJob) -> OutcomeKind:
        started = time.monotonic()
        track = _Tracker(self._observe, job)
        src = self._spool.incoming_path(job.id)
        ctx = StageContext(
            job_id=job.id, calling_ae=job.calling_ae, called_ae=job.called_ae, source_path=src
        )
        decoding = time.perf_counter()
        failed: Outcome | None = None
        try:
            ds = dcmread(src)
        except FileNotFoundError:
            failed = Outcome.quarantine("receive: original file missing from spool", "missing")
        except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError) as exc:
            failed = Outcome.quarantine(describe_exception("decode", exc), "decode")
        track.stage("decode", failed or Outcome.proceed(), time.perf_counter() - decoding)
        if failed is not None:
            return self._end(track, job, failed, "decode", started)
        track.watch(ds)
        result = run_stages(self._stages, ds, ctx, track.stage)
        if ctx.notes.get("pixels_cleaned"):
            self._observe("scrubbed", track.labels, 1)
        if result.outcome.kind is OutcomeKind.CONTINUE:
            outcome, stage = self._finish(job, ds, ctx, track)
            return self._end(track, job, outcome, stage, started)
        return self._end(track, job, result.outcome, result.stage, started)

    def _finish(
        self, job: ClaimedJob, ds: Dataset, ctx: StageContext, track: _Tracker
    ) -> tuple[Outcome, str]:
        """Write the output and mark the job ready; the outcome and step of a failure."""
        writing = time.perf_counter()
        outcome = Outcome.proceed()
        try:
            self._spool.write_output(job.id, lambda fh: write_dataset(ds, fh))
        except OSError:
            outcome = Outcome.retry("write: spool output failed", "spool")
        except Exception as exc:
            outcome = Outcome.quarantine(describe_exception("encode", exc), "encode")
        track.stage("encode", outcome, time.perf_counter() - writing)
        if outcome.kind is not OutcomeKind.CONTINUE:
            return outcome, "encode"
        if self._flush is not None:
            try:
                self._flush()  # pseudonym map rows are committed before the instance may leave
            except Exception as exc:
                self._spool.remove_output(job.id)
                return Outcome.retry(describe_exception("pseudonyms", exc)), "pseudonyms"
        ruleset = ";".join(ctx.versions)[:128] or None
        self._store.mark_ready(job.id, self._owner, self._destinations, ruleset)
        return outcome, ""

    def _apply(self, job: ClaimedJob, outcome: Outcome) -> OutcomeKind:
        """Record a non-continue outcome in the job store (continue was recorded as ready)."""
        kind = outcome.kind
        if kind is OutcomeKind.FILTER:
            if self._store.mark_filtered(job.id, self._owner, outcome.reason,
                                         outcome.reason_class):
                self._spool.remove_job(job.id)
        elif kind is OutcomeKind.QUARANTINE:
            kind = self._quarantine(job, outcome.reason, outcome.reason_class)
        elif kind is OutcomeKind.RETRY:
            kind = self._retry(job, outcome)
        return kind

    def _end(self, track: _Tracker, job: ClaimedJob, outcome: Outcome, stage: str,
             started: float) -> OutcomeKind:
        """Apply the outcome; then the job's metric event and its one summary log line."""
        kind = self._apply(job, outcome)
        reason_class = outcome.reason_class
        if kind is OutcomeKind.QUARANTINE and outcome.kind is OutcomeKind.RETRY:
            reason_class = reason_class or "retries"  # attempts exhausted
        seconds = time.monotonic() - started
        self._observe(f"job_{kind.value}",
                      {**track.labels, "reason_class": reason_class, "stage": stage}, seconds)
        fields: dict[str, object] = {"job_id": job.id, "outcome": kind.value,
                                     "duration_ms": round(seconds * 1000, 2)}
        if kind is not OutcomeKind.CONTINUE:
            fields.update(stage=stage, reason_class=reason_class, reason=outcome.reason)
        uid = track.output_uid()
        if uid:
            fields["sop_instance_uid"] = uid
        if kind in (OutcomeKind.QUARANTINE, OutcomeKind.RETRY):
            log.warning("job", **fields)
        else:
            log.info("job", **fields)
        return kind

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


class _Tracker:
    """Per-job bookkeeping for metrics and logs: bounded labels, the stage lines, and whether
    the dataset's SOP Instance UID is now a pseudonym (so that it may be logged)."""

    def __init__(self, observe: Observer, job: ClaimedJob) -> None:
        self._observe = observe
        self.job_id = job.id
        self.labels = {"modality": job.modality or "none"}
        self._ds: Dataset | None = None
        self._input_uid = ""
        self._pseudonymised = False

    def watch(self, ds: Dataset) -> None:
        """Remember the dataset and its input SOP Instance UID (in memory, never logged)."""
        self._ds = ds
        self._input_uid = _text(ds.get("SOPInstanceUID"))

    def output_uid(self) -> str:
        """The output SOP Instance UID once de-identification replaced it, else ''."""
        if not self._pseudonymised or self._ds is None:
            return ""
        uid = _text(self._ds.get("SOPInstanceUID"))
        return uid if uid and uid != self._input_uid else ""

    def stage(self, name: str, outcome: Outcome, seconds: float) -> None:
        """One step's metric event and log line."""
        if name == "deidentify" and outcome.kind is OutcomeKind.CONTINUE:
            self._pseudonymised = True
        self._observe("stage", {**self.labels, "stage": name, "outcome": outcome.kind.value},
                      seconds)
        fields: dict[str, object] = {"job_id": self.job_id, "stage": name,
                                     "outcome": outcome.kind.value,
                                     "duration_ms": round(seconds * 1000, 3)}
        if outcome.kind is not OutcomeKind.CONTINUE:
            fields.update(reason_class=outcome.reason_class, reason=outcome.reason)
        uid = self.output_uid()
        if uid:
            fields["sop_instance_uid"] = uid
        log.info("stage", **fields)


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
        runner.heartbeat()
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
    try:
        runner, store, services = build_worker(settings, owner, index)
        try:
            worker_loop(runner, store, settings, owner, _EitherEvent(stop, local), parent_pid)
        finally:
            close = getattr(services.pseudonymizer, "close", None)
            if close is not None:
                close()
    except Exception as exc:
        # multiprocessing would print the traceback, message included, to stderr.
        log.error("worker_failed", worker=index, exc_type=type(exc).__name__)
        raise SystemExit(1) from None
