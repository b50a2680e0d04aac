"""A worker process: claim jobs, run the pipeline from the original bytes, write the output.

Processing is idempotent (DESIGN decision 3): a worker always starts from the received file in
``incoming/`` and writes its output to a temporary file that is renamed into ``outgoing/``, so a
job re-run after a crash gives byte-identical output. A worker whose parent dies exits, and the
lease of whatever it held expires and is claimed again.

A full disk or an unreachable database is a condition of the node, not of an instance
(:data:`gateway.outcomes.NODE_CONDITIONS`): a job that meets one goes back to the queue with its
attempt given back and is never quarantined for it, and the worker that met it pauses before
it claims again, longer while the condition lasts (:class:`NodeWait`), so that a full disk
costs one batch per worker every few seconds, however many jobs wait. A worker that cannot
reach the database waits too, and gives back the jobs it held once the database answers.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydicom import Dataset, dcmread
from pydicom.errors import InvalidDicomError

from gateway.config import Settings
from gateway.jobs.models import RULESET_MAX
from gateway.jobs.states import JobState
from gateway.jobs.store import ClaimedJob, Finish, JobStore
from gateway.observe.logs import get_logger
from gateway.outcomes import DATABASE, NODE_CONDITIONS, backoff_delay, node_condition
from gateway.pipeline.stage import (
    Outcome,
    OutcomeKind,
    Stage,
    StageContext,
    StageServices,
    observe_input,
)
from gateway.spool import Spool

# Hook for observability: (event name, labels, value) -> None. Never given patient values.
Observer = Callable[[str, dict[str, str], float], None]
# Called after each stage with (stage name, its outcome, seconds it took).
StageReport = Callable[[str, Outcome, float], None]
# The stages for a job an operator released with its own rules: (profile sha256, override
# sha256) -> stages (gateway.pipeline.compose.ReleasePipelines).
ReleaseStages = Callable[[str | None, str | None], Sequence[Stage]]
log = get_logger("gateway.worker")


class StopEvent(Protocol):
    def is_set(self) -> bool: ...

    def wait(self, timeout: float) -> bool: ...


def _ignore(_name: str, _labels: dict[str, str], _value: float) -> None:
    return None


DEFER_SIZE = 16 * 1024 * 1024
# Seconds before a job that met a node condition may be claimed again.
NODE_RETRY_DELAY = 1.0
# A worker's pause after meeting a node condition: 0.5 s, doubling up to this many seconds.
NODE_WAIT_MAX = 10.0


class SafeMessageError(Exception):
    """An exception whose message is known to carry no patient value (may be recorded)."""


def describe_exception(stage: str, exc: BaseException) -> str:
    """A reason for the job row: the stage and the exception class, never its message,
    because pydicom and stage messages can echo element values (PHI)."""
    if isinstance(exc, SafeMessageError):
        return f"{stage}: {exc}"
    return f"{stage}: {type(exc).__name__}"


def failure_outcome(stage: str, exc: BaseException) -> Outcome:
    """What an exception at a step means: a node condition (full disk, database away) is
    retried later without using up an attempt; anything else quarantines, recorded by the
    exception's class."""
    condition = node_condition(exc)
    if condition is not None:
        return Outcome.retry(f"{describe_exception(stage, exc)}{errno_suffix(exc)}", condition)
    return Outcome.quarantine(describe_exception(stage, exc), "error")


def errno_suffix(exc: BaseException) -> str:
    """`` (ENOSPC)`` for an OSError that carries an errno (its symbolic name: never a value
    of the instance), else ''."""
    code = exc.errno if isinstance(exc, OSError) else None
    return f" ({errno.errorcode.get(code, code)})" if code is not None else ""


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    stage: str


def _no_report(_stage: str, _outcome: Outcome, _seconds: float) -> None:
    return None


def run_stages(
    stages: Sequence[Stage], ds: Dataset, ctx: StageContext, report: StageReport = _no_report,
    observed: tuple[Outcome, str] | None = None,
) -> Result:
    """Run stages in order until one does not continue; exceptions become quarantine.

    The stages' ``observe_input`` hooks run first, unless ``observed`` is what they gave when
    run already (a worker runs them for every instance of its batch before processing any).
    Each stage is timed and reported; an exception is reported by its class name only, and
    quarantines unless it reports a node condition (:func:`failure_outcome`).
    """
    outcome, observer = observed or observe_input(stages, ds, ctx)
    if outcome.kind is not OutcomeKind.CONTINUE:
        report(observer, outcome, 0.0)
        return Result(outcome, observer)
    for stage in stages:
        started = time.perf_counter()
        try:
            outcome = stage(ds, ctx)
        except Exception as exc:
            outcome = failure_outcome(stage.name, exc)
        report(stage.name, outcome, time.perf_counter() - started)
        if outcome.kind is not OutcomeKind.CONTINUE:
            return Result(outcome, stage.name)
    return Result(Outcome.proceed(), "")


def _text(value: object) -> str:
    return "" if value is None else str(value)


def write_dataset(ds: Dataset, fh: Any) -> None:
    """Write the output as a Part-10 file: the same bytes as ``save_as(fh,
    enforce_file_format=True)``, with undecoded elements copied rather than re-encoded."""
    from gateway.deid.writer import names_its_instance, write_instance

    if names_its_instance(ds):
        write_instance(ds, fh)
    else:
        ds.save_as(fh, enforce_file_format=True)


class JobRunner:
    """Runs claimed jobs: each through the pipeline, then a batch's outcomes in one commit.

    Each job gets one log line per step and one for its outcome (after the commit), keyed by
    the job id. From the ``deidentify`` stage on, lines carry the output SOP Instance UID once
    de-identification replaced it; the input UID is never logged (a profile that keeps UIDs
    keeps them unlogged too).
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
        release: ReleaseStages | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._spool = spool
        self._stages = stages
        self._owner = owner
        self._observe = observe
        self._flush = flush
        self._worker = worker
        self._release = release
        self._destinations = [d.name for d in settings.destinations]
        # The node condition (full disk, database away) the last batch met, if any.
        self.condition: str | None = None

    def heartbeat(self) -> None:
        """The worker loop is alive (a live gauge per worker)."""
        self._observe("worker_heartbeat", {"worker": self._worker}, time.time())

    def run(self, job: ClaimedJob) -> OutcomeKind:
        """Process and commit one job (a batch of one)."""
        return self.run_batch([job])[0]

    def run_batch(self, jobs: Sequence[ClaimedJob]) -> list[OutcomeKind]:
        """Process each job, make the pseudonym map durable, commit every outcome at once,
        then move the files of filtered and quarantined jobs (database first, files after:
        a crash in between leaves a job whose state is already decided).

        Every job of the batch is read and observed (the stages' ``observe_input``: what an
        instance teaches about its study and patient) before any is processed, so that an
        instance is cleaned with what the other instances of its batch hold."""
        loaded = [self._load(job) for job in jobs]
        for item in loaded:
            item.observe()
        done = [self._run(item) for item in loaded]
        if self._flush is not None and any(d.finish.state is JobState.READY for d in done):
            self._flush_or_retry(jobs, done)
        results = [d.finish for d in done]
        applied = set(self._store.finish(self._owner, results, self._destinations))
        self.condition = next((r.reason_class for r in results if not r.counted), None)
        for r in results:
            if r.job_id in applied:
                self._move_files(r)
        for d in done:
            self._report(d, d.finish.job_id in applied)
        return [_KIND[r.state] for r in results]

    def _move_files(self, r: Finish) -> None:
        """The files of a committed filter or quarantine outcome. The job's state is decided
        already: files a full or failing disk kept in ``incoming/`` stay there, where the
        operator commands find them too."""
        try:
            if r.state is JobState.FILTERED:
                self._spool.remove_job(r.job_id)
            elif r.state is JobState.QUARANTINED:
                self._spool.to_quarantine(r.job_id)
        except OSError as exc:
            log.warning("spool_move_failed", job_id=r.job_id, state=r.state.value,
                        exc_type=type(exc).__name__, errno=exc.errno)

    def _flush_or_retry(self, jobs: Sequence[ClaimedJob], done: list[_Processed]) -> None:
        assert self._flush is not None
        try:
            self._flush()  # pseudonym map rows are committed before any instance may leave
        except Exception as exc:
            reason_class = node_condition(exc) or "transient"
            outcome = Outcome.retry(describe_exception("pseudonyms", exc), reason_class)
            for job, d in zip(jobs, done, strict=True):
                if d.finish.state is JobState.READY:
                    self._spool.remove_output(job.id)
                    d.finish = self._retry(job, outcome, "pseudonyms")
                    d.stage = "pseudonyms"

    def process(self, job: ClaimedJob) -> Finish:
        """Run the pipeline on one job from its original bytes; write the output if any."""
        item = self._load(job)
        item.observe()
        return self._run(item).finish

    def _load(self, job: ClaimedJob) -> _Loaded:
        """Read the job's original bytes and pick its stages (or decide it cannot run)."""
        track = _Tracker(self._observe, job)
        src = self._spool.incoming_path(job.id)
        ctx = StageContext(
            job_id=job.id, calling_ae=job.calling_ae, called_ae=job.called_ae, source_path=src
        )
        decoding = time.perf_counter()
        failed: Finish | None = None
        ds: Dataset | None = None
        try:
            # Values over 16 MiB (large pixel data) stay in the file until a stage reads them or the
            # output is written, so a large instance is not held twice in memory.
            ds = dcmread(src, defer_size=DEFER_SIZE)
        except FileNotFoundError:
            failed = self._quarantine("receive: original file missing from spool", "missing", job,
                                      "decode")
        except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError) as exc:
            failed = self._quarantine(describe_exception("decode", exc), "decode", job, "decode")
        else:
            if "SOPClassUID" not in ds or "SOPInstanceUID" not in ds:
                failed = self._quarantine("decode: no SOP Class or Instance UID", "decode", job,
                                          "decode")
        track.stage("decode", _as_outcome(failed), time.perf_counter() - decoding)
        if failed is not None or ds is None:
            return _Loaded(job, ctx, track, None, (), failed, "decode")
        track.watch(ds)
        stages, failed = self._stages_for(job, track)
        return _Loaded(job, ctx, track, ds, stages, failed, "release")

    def _run(self, item: _Loaded) -> _Processed:
        """Run the stages of a loaded job and write its output (or decide what holds it)."""
        job, ctx, track, ds = item.job, item.ctx, item.track, item.ds
        if item.failed is not None or ds is None:
            assert item.failed is not None
            return _Processed(item.failed, track, item.failed_stage)
        result = run_stages(item.stages, ds, ctx, track.stage, item.observed)
        if ctx.notes.get("pixels_cleaned"):
            self._observe("scrubbed", track.labels, 1)
        outcome = result.outcome
        if outcome.kind is OutcomeKind.CONTINUE:
            writing = time.perf_counter()
            finish = self._write(job, ds, ctx)
            track.stage("encode", _as_outcome(finish), time.perf_counter() - writing)
            return _Processed(finish, track, "" if finish.state is JobState.READY else "encode")
        if outcome.kind is OutcomeKind.FILTER:
            finish = Finish(job.id, JobState.FILTERED, outcome.reason, outcome.reason_class)
        elif outcome.kind is OutcomeKind.QUARANTINE:
            finish = self._quarantine(outcome.reason, outcome.reason_class, job, result.stage,
                                      outcome.paths)
        else:
            finish = self._retry(job, outcome, result.stage)
        return _Processed(finish, track, result.stage)

    def _stages_for(self, job: ClaimedJob, track: _Tracker) -> tuple[Sequence[Stage],
                                                                     Finish | None]:
        """The configured stages, or those of the rules an operator released the job with;
        rules that cannot be used hold the job again (it never runs with other rules)."""
        if not (job.release_profile or job.release_override):
            return self._stages, None
        started = time.perf_counter()
        failed: Finish | None = None
        stages: Sequence[Stage] = ()
        if self._release is None:
            failed = self._quarantine("release: this worker cannot use released rules",
                                      "release", job, "release")
        else:
            try:
                stages = self._release(job.release_profile, job.release_override)
            except Exception as exc:
                if node_condition(exc) is not None:  # the released rules live in the database
                    failed = self._retry(job, failure_outcome("release", exc), "release")
                else:
                    failed = self._quarantine(describe_exception("release", exc), "release",
                                              job, "release")
        track.stage("release", _as_outcome(failed), time.perf_counter() - started)
        return stages, failed

    def _report(self, done: _Processed, applied: bool) -> None:
        """The job's metric event and its one summary log line."""
        finish, track = done.finish, done.track
        kind = _KIND[finish.state]
        reason_class = finish.reason_class or ""
        seconds = time.monotonic() - track.started
        self._observe(f"job_{kind.value}",
                      {**track.labels, "reason_class": reason_class, "stage": done.stage},
                      seconds)
        fields: dict[str, object] = {"job_id": finish.job_id, "outcome": kind.value,
                                     "duration_ms": round(seconds * 1000, 2)}
        if kind is not OutcomeKind.CONTINUE:
            fields.update(stage=done.stage, reason_class=reason_class, reason=finish.reason)
        if not applied:
            fields["lease_lost"] = True  # another worker's result for this job won
        uid = track.output_uid()
        if uid:
            fields["sop_instance_uid"] = uid
        if kind in (OutcomeKind.QUARANTINE, OutcomeKind.RETRY):
            log.warning("job", **fields)
        else:
            log.info("job", **fields)

    def _write(self, job: ClaimedJob, ds: Dataset, ctx: StageContext) -> Finish:
        try:
            self._spool.write_output(job.id, lambda fh: write_dataset(ds, fh))
        except OSError as exc:
            reason = f"write: spool output failed{errno_suffix(exc)}"
            return self._retry(job, Outcome.retry(reason, node_condition(exc) or "spool"),
                               "encode")
        except Exception as exc:
            return self._quarantine(describe_exception("encode", exc), "encode", job, "encode")
        ruleset = ";".join(ctx.versions)[:RULESET_MAX] or None
        return Finish(job.id, JobState.READY, ruleset=ruleset)

    @staticmethod
    def _quarantine(reason: str, reason_class: str, job: ClaimedJob, stage: str,
                    paths: tuple[str, ...] = ()) -> Finish:
        return Finish(job.id, JobState.QUARANTINED, reason, reason_class, stage=stage,
                      paths=paths)

    def _retry(self, job: ClaimedJob, outcome: Outcome, stage: str) -> Finish:
        if outcome.reason_class in NODE_CONDITIONS:
            # The node's condition, not the job's: its attempt is given back; the worker
            # pauses before claiming again (NodeWait), so the job's own delay stays short.
            return Finish(job.id, JobState.RECEIVED, outcome.reason, outcome.reason_class,
                          NODE_RETRY_DELAY, counted=False)
        if job.attempts >= self._settings.workers.max_attempts:
            reason = f"{outcome.reason} (after {job.attempts} attempts)"
            return self._quarantine(reason, outcome.reason_class or "retries", job, stage,
                                    outcome.paths)
        delay = min(60.0, 2.0 ** job.attempts)
        return Finish(job.id, JobState.RECEIVED, outcome.reason, outcome.reason_class, delay)


class _Tracker:
    """Per-job bookkeeping for metrics and logs: bounded labels, the stage lines, and whether
    the dataset's SOP Instance UID is now a pseudonym (so that it may be logged)."""

    def __init__(self, observe: Observer, job: ClaimedJob) -> None:
        self._observe = observe
        self.started = time.monotonic()
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


@dataclass
class _Loaded:
    """A claimed job read from the spool, with its stages, before it is processed."""

    job: ClaimedJob
    ctx: StageContext
    track: _Tracker
    ds: Dataset | None
    stages: Sequence[Stage]
    failed: Finish | None  # the job cannot run (unreadable, unusable release rules)
    failed_stage: str
    observed: tuple[Outcome, str] | None = None

    def observe(self) -> None:
        """Run the stages' ``observe_input`` hooks on the input as it came."""
        if self.failed is None and self.ds is not None:
            self.observed = observe_input(self.stages, self.ds, self.ctx)


@dataclass
class _Processed:
    """A processed job before its commit: the outcome, its tracker, the step that decided."""

    finish: Finish
    track: _Tracker
    stage: str


def _as_outcome(finish: Finish | None) -> Outcome:
    """The step outcome a Finish stands for (None: the step continued)."""
    if finish is None or finish.state is JobState.READY:
        return Outcome.proceed()
    kind = _KIND[finish.state]
    return Outcome(kind, finish.reason or "", finish.reason_class or "")


_KIND = {
    JobState.READY: OutcomeKind.CONTINUE,
    JobState.FILTERED: OutcomeKind.FILTER,
    JobState.QUARANTINED: OutcomeKind.QUARANTINE,
    JobState.RECEIVED: OutcomeKind.RETRY,
}


class LeaseKeeper:
    """Renews the leases of the batch in hand every third of the lease, so that a job that
    takes longer than one lease (a large multi-frame scrub) is not claimed twice."""

    def __init__(self, store: JobStore, owner: str, lease_seconds: float) -> None:
        self._store = store
        self._owner = owner
        self._lease = lease_seconds
        self._ids: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)
        self._thread.start()

    def hold(self, job_ids: Sequence[str]) -> None:
        with self._lock:
            self._ids = list(job_ids)

    def _run(self) -> None:
        while not self._stop.wait(self._lease / 3):
            with self._lock:
                ids = list(self._ids)
            if ids:
                with contextlib.suppress(Exception):  # a failed renewal: the next one may work
                    self._store.renew(ids, self._owner, self._lease)

    def close(self) -> None:
        self._stop.set()


class NodeWait:
    """A worker's pauses while the node has a condition (:data:`NODE_CONDITIONS`): the spool's
    disk is full or failing, or the database does not answer (stopped, restarting,
    unreachable).

    Each time the worker meets the condition it waits (0.5 s, doubling up to
    :data:`NODE_WAIT_MAX`) before it claims again; it logs once when the condition starts and
    once when it is over. The ids of a batch whose outcomes could not be committed are kept:
    those jobs go back to the queue, their attempt untouched, before the next claim (they run
    again from their original bytes; processing is idempotent).
    """

    def __init__(self, store: JobStore, owner: str) -> None:
        self._store = store
        self._owner = owner
        self._condition: str | None = None
        self._since = 0.0
        self._tries = 0
        self._held: list[str] = []

    def wait(self, condition: str, stop: StopEvent, held: Sequence[str] = ()) -> None:
        """The worker met ``condition``: remember ``held``, pause before claiming again."""
        if self._condition is None:
            self._since = time.monotonic()
            log.warning("worker_waiting", condition=condition)
        self._condition = condition
        self._held.extend(held)
        self._tries += 1
        stop.wait(backoff_delay(self._tries, 0.5, NODE_WAIT_MAX))

    def give_back(self) -> None:
        """Return the held jobs to the queue (raises while the database is still away)."""
        while self._held:
            self._store.release(self._held[-1], self._owner, None, 0.0)
            self._held.pop()

    def over(self, condition: str | None = None) -> None:
        """The condition is over (only if it is ``condition``, when given)."""
        if self._condition is None or condition not in (None, self._condition):
            return
        log.info("worker_resumed", condition=self._condition,
                 seconds=round(time.monotonic() - self._since, 1))
        self._condition = None
        self._tries = 0


def worker_loop(
    runner: JobRunner,
    store: JobStore,
    settings: Settings,
    owner: str,
    stop: StopEvent,
    parent_pid: int | None = None,
) -> None:
    """Claim and run jobs until ``stop`` is set or the parent process is gone."""
    keeper = LeaseKeeper(store, owner, settings.workers.lease_seconds)
    try:
        _loop(runner, store, settings, owner, stop, parent_pid, keeper)
    finally:
        keeper.close()


def _loop(
    runner: JobRunner,
    store: JobStore,
    settings: Settings,
    owner: str,
    stop: StopEvent,
    parent_pid: int | None,
    keeper: LeaseKeeper,
) -> None:
    ws = settings.workers
    idle = ws.poll_interval
    waiting = NodeWait(store, owner)
    while not stop.is_set():
        if parent_pid is not None and os.getppid() != parent_pid:
            return
        runner.heartbeat()
        try:
            waiting.give_back()
            jobs = store.claim(owner, ws.batch_size, ws.lease_seconds)
        except Exception as exc:
            waiting.wait(_condition_of(exc), stop)
            continue
        waiting.over(DATABASE)  # it answered
        if not jobs:
            stop.wait(idle)
            idle = min(idle * 2, max(ws.poll_interval, 0.5))
            continue
        idle = ws.poll_interval
        if stop.is_set():
            for job in jobs:
                store.release(job.id, owner, None, 0.0)
            return
        keeper.hold([j.id for j in jobs])
        try:
            runner.run_batch(jobs)
        except Exception as exc:
            waiting.wait(_condition_of(exc), stop, held=[j.id for j in jobs])
            continue
        finally:
            keeper.hold([])
        if runner.condition is not None:
            waiting.wait(runner.condition, stop)
        else:
            waiting.over()


def _condition_of(exc: Exception) -> str:
    """The node condition an exception that escaped the loop reports; any other is raised."""
    condition = node_condition(exc)
    if condition is None:
        raise exc
    return condition


def _set_parent_death_signal() -> None:
    """Ask Linux to SIGTERM this worker when its parent dies (prctl PR_SET_PDEATHSIG)."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)


def worker_main(settings: Settings, index: int, parent_pid: int) -> None:
    """Entry point of a worker process (spawned). It stops on SIGTERM (from serve, or from a
    service manager signalling the whole group) or when its parent is gone.

    No multiprocessing.Event is shared with the parent: setting one whose waiters were killed
    blocks for ever (its condition waits for every sleeper to acknowledge the wake-up), and a
    group SIGTERM kills the waiters first."""
    _set_parent_death_signal()
    with contextlib.suppress(OSError):
        os.nice(settings.workers.nice)  # the receiver, which a sender waits on, comes first
    local = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    signal.signal(signal.SIGTERM, lambda *_: local.set())
    owner = f"{settings.node_id}/w{index}/{os.getpid()}"
    try:
        built = _build_worker(settings, owner, index, local, parent_pid)
        if built is None:
            return
        runner, store, services = built
        try:
            worker_loop(runner, store, settings, owner, local, parent_pid)
        finally:
            close = getattr(services.pseudonymizer, "close", None)
            if close is not None:
                close()
    except Exception as exc:
        # multiprocessing would print the traceback, message included, to stderr.
        log.error("worker_failed", worker=index, exc_type=type(exc).__name__)
        raise SystemExit(1) from None


def _build_worker(settings: Settings, owner: str, index: int, stop: StopEvent,
                  parent_pid: int) -> tuple[JobRunner, JobStore, StageServices] | None:
    """What the worker needs (:func:`gateway.app.build_worker`), built again after a pause
    while a node condition prevents it (the pseudonym store checks the site secret against
    the database): a worker started during a database outage waits instead of dying every
    few seconds. None when told to stop meanwhile."""
    from gateway.app import build_worker

    tries = 0
    while not stop.is_set() and os.getppid() == parent_pid:
        try:
            built = build_worker(settings, owner, index)
        except Exception as exc:
            condition = node_condition(exc)
            if condition is None:
                raise
            if not tries:
                log.warning("worker_waiting", condition=condition, step="start")
            tries += 1
            stop.wait(backoff_delay(tries, 0.5, NODE_WAIT_MAX))
            continue
        if tries:
            log.info("worker_resumed", step="start", tries=tries)
        return built
    return None
