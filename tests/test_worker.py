"""The worker: outcomes of stages, idempotent output, and no PHI in recorded reasons."""

from __future__ import annotations

import datetime as dt
import errno
import random
from pathlib import Path

import pytest
from pydicom import Dataset, dcmread
from pydicom.uid import generate_uid
from sqlalchemy.exc import OperationalError

from gateway.config import Settings, parse_settings
from gateway.db import make_engine, upgrade
from gateway.jobs.models import utcnow
from gateway.jobs.states import JobState
from gateway.jobs.store import JobStore, NewJob
from gateway.pipeline.compose import build_pipeline
from gateway.pipeline.stage import Outcome, Stage, StageContext, StageServices
from gateway.pipeline.worker import JobRunner
from gateway.pseudonyms.interface import InMemoryPseudonymizer
from gateway.spool import Spool

import dicomgen
from harness import can_mount, fill, tmpfs


class Scripted:
    """A stage that returns a fixed outcome or raises."""

    name = "scripted"

    def __init__(self, outcome: Outcome | None = None, exc: Exception | None = None) -> None:
        self.outcome = outcome
        self.exc = exc

    def __call__(self, ds: Dataset, ctx: StageContext) -> Outcome:
        if self.exc is not None:
            raise self.exc
        assert self.outcome is not None
        return self.outcome


def _setup(tmp_path: Path, stages: list[Stage] | None = None, settings: Settings | None = None
           ) -> tuple[JobRunner, JobStore, Spool, Settings]:
    s = settings or parse_settings({"spool": {"root": str(tmp_path / "spool")}})
    spool = Spool(s.spool.root)
    spool.create()
    engine = make_engine(f"sqlite:///{tmp_path / 'g.db'}")
    upgrade(engine)
    store = JobStore(engine, s.node_id)
    if stages is None:
        services = StageServices(settings=s, pseudonymizer=InMemoryPseudonymizer())
        stages = build_pipeline(s.pipeline.stages, services)
    return JobRunner(s, store, spool, stages, "w"), store, spool, s


def _receive(store: JobStore, spool: Spool, ds: Dataset, job_id: str) -> None:
    dicomgen.save(ds, spool.incoming_path(job_id))
    store.add_received(NewJob(job_id, "MOD", "GW", ds.SOPClassUID, "1.2.840.10008.1.2.1",
                              ds.Modality, 100))


def _ct(seed: int = 1) -> Dataset:
    study = dicomgen.Study.random(random.Random(seed))
    return dicomgen.ct(study, generate_uid(), 1)


def test_default_pipeline_deidentifies_and_is_idempotent(tmp_path: Path) -> None:
    """Running the same job twice (a crash and a re-claim) gives byte-identical output."""
    runner, store, spool, _s = _setup(tmp_path)
    ds = _ct()
    _receive(store, spool, ds, "job1")
    [job] = store.claim("w", 1, 60)
    first = runner.process(job)
    assert first.state is JobState.READY
    out1 = spool.outgoing_path("job1").read_bytes()
    second = runner.process(job)
    assert second.state is JobState.READY
    assert spool.outgoing_path("job1").read_bytes() == out1
    out = dcmread(spool.outgoing_path("job1"))
    assert str(out.PatientName) != str(ds.PatientName)
    assert out.SOPInstanceUID != ds.SOPInstanceUID
    assert ds.PatientID.encode() not in out1


def test_batch_commit_records_each_outcome(tmp_path: Path) -> None:
    """A batch with a filtered and a quarantined job commits both, and moves their files."""
    filt = Scripted(Outcome.filter("sop class not wanted", "sop_class"))
    runner, store, spool, _s = _setup(tmp_path, [filt])
    _receive(store, spool, _ct(1), "jobA")
    jobs = store.claim("w", 5, 60)
    runner.run_batch(jobs)
    info = store.get("jobA")
    assert info is not None and info.state == JobState.FILTERED
    assert not spool.incoming_path("jobA").exists()

    runner2, *_ = _setup(tmp_path, [Scripted(Outcome.quarantine("verify: leak", "leak"))])
    _receive(store, spool, _ct(2), "jobB")
    runner2.run_batch(store.claim("w", 5, 60))
    info = store.get("jobB")
    assert info is not None and info.state == JobState.QUARANTINED
    assert spool.quarantined_original("jobB").exists()


def test_stage_exception_quarantines_without_its_message(tmp_path: Path) -> None:
    """A crashing stage quarantines the job, recording the exception class, not its text."""
    ds = _ct()
    boom = Scripted(exc=ValueError(f"bad value {ds.PatientName}"))
    runner, store, spool, _s = _setup(tmp_path, [boom])
    _receive(store, spool, ds, "job1")
    runner.run_batch(store.claim("w", 1, 60))
    info = store.get("job1")
    assert info is not None and info.state == JobState.QUARANTINED
    assert info.last_error == "scripted: ValueError"
    assert str(ds.PatientName) not in (info.last_error or "")


def test_retry_then_quarantine_after_max_attempts(tmp_path: Path) -> None:
    """A transient failure goes back to the queue until attempts run out."""
    s = parse_settings({"spool": {"root": str(tmp_path / "spool")},
                        "workers": {"max_attempts": 2}})
    runner, store, spool, _ = _setup(tmp_path, [Scripted(Outcome.retry("scrubber busy"))], s)
    _receive(store, spool, _ct(), "job1")
    runner.run_batch(store.claim("w", 1, 60))
    assert store.get("job1").state == JobState.RECEIVED  # type: ignore[union-attr]
    store._now = lambda: utcnow() + dt.timedelta(seconds=3600)
    runner.run_batch(store.claim("w", 1, 60))
    info = store.get("job1")
    assert info is not None and info.state == JobState.QUARANTINED
    assert "after 2 attempts" in (info.last_error or "")


def test_undecodable_original_is_quarantined(tmp_path: Path) -> None:
    """An original that pydicom cannot read is held with reason class 'decode'."""
    runner, store, spool, _s = _setup(tmp_path)
    spool.incoming_path("job1").write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00\x00")
    store.add_received(NewJob("job1", "MOD", "GW", "", "", "", 10))
    runner.run_batch(store.claim("w", 1, 60))
    info = store.get("job1")
    assert info is not None and info.state == JobState.QUARANTINED
    assert info.reason_class == "decode"


def test_flush_failure_retries_and_removes_output(tmp_path: Path) -> None:
    """If the pseudonym map cannot be made durable, nothing is marked ready."""
    runner, store, spool, _s = _setup(tmp_path)

    def broken() -> None:
        raise ConnectionError("database went away")

    runner._flush = broken
    _receive(store, spool, _ct(), "job1")
    runner.run_batch(store.claim("w", 1, 60))
    info = store.get("job1")
    assert info is not None and info.state == JobState.RECEIVED
    assert not spool.outgoing_path("job1").exists()
    assert info.last_error == "pseudonyms: ConnectionError"


@pytest.mark.parametrize("stage_names", [("passthrough",)])
def test_passthrough_output_equals_input(tmp_path: Path, stage_names: tuple[str, ...]) -> None:
    """The pass-through pipeline forwards the data set unchanged."""
    s = parse_settings({"spool": {"root": str(tmp_path / "spool")},
                        "pipeline": {"stages": list(stage_names)}})
    runner, store, spool, _ = _setup(tmp_path, settings=s)
    ds = _ct()
    _receive(store, spool, ds, "job1")
    runner.run_batch(store.claim("w", 1, 60))
    assert dcmread(spool.outgoing_path("job1")) == dcmread(spool.incoming_path("job1"))


class Slow:
    """A stage that takes longer than one lease."""

    name = "slow"

    def __call__(self, ds: Dataset, ctx: StageContext) -> Outcome:
        import time

        time.sleep(1.0)
        return Outcome.proceed()


def test_lease_is_renewed_while_a_long_job_runs(tmp_path: Path) -> None:
    """A job taking longer than its lease is not claimed by another worker meanwhile."""
    import threading

    from gateway.pipeline.worker import worker_loop

    s = parse_settings({"spool": {"root": str(tmp_path / "spool")},
                        "workers": {"lease_seconds": 0.3, "poll_interval": 0.01}})
    runner, store, spool, _ = _setup(tmp_path, [Slow()], s)
    _receive(store, spool, _ct(), "job1")
    stop = threading.Event()
    t = threading.Thread(target=worker_loop, args=(runner, store, s, "w", stop))
    t.start()
    try:
        stolen = []
        for _ in range(8):  # over 0.8 s, i.e. well past the first lease
            stop.wait(0.1)
            stolen += store.claim("thief", 1, 0.3)
        assert stolen == []
    finally:
        stop.set()
        t.join(5)
    assert store.get("job1").state == JobState.READY  # type: ignore[union-attr]


def _later(store: JobStore, minutes: int) -> None:
    """Move the store's clock on, past any retry delay."""
    store._now = lambda: utcnow() + dt.timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("exc", "reason_class"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "disk_full"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "disk_full"),
        (OSError(errno.EIO, "Input/output error"), "storage_error"),
        (OperationalError("SELECT 1", {}, Exception("server closed the connection")),
         "database"),
    ],
)
def test_node_condition_in_a_stage_waits_without_using_attempts(
    tmp_path: Path, exc: Exception, reason_class: str
) -> None:
    """A stage failing because of the node (full disk, failing disk, database away) sends the
    job back with its attempt given back, however often: it is never quarantined."""
    s = parse_settings({"spool": {"root": str(tmp_path / "spool")},
                        "workers": {"max_attempts": 2}})
    runner, store, spool, _ = _setup(tmp_path, [Scripted(exc=exc)], s)
    _receive(store, spool, _ct(), "job1")
    for n in range(5):
        _later(store, 10 * n)
        runner.run_batch(store.claim("w", 1, 60))
        info = store.get("job1")
        assert info is not None and info.state == JobState.RECEIVED
        assert info.attempts == 0 and info.reason_class == reason_class


def test_oserror_without_errno_in_a_stage_quarantines(tmp_path: Path) -> None:
    """A bare OSError (pydicom's for a malformed sequence) is the instance's problem."""
    runner, store, spool, _s = _setup(tmp_path, [Scripted(exc=OSError("No tag to read"))])
    _receive(store, spool, _ct(), "job1")
    runner.run_batch(store.claim("w", 1, 60))
    info = store.get("job1")
    assert info is not None and info.state == JobState.QUARANTINED


@pytest.mark.skipif(not can_mount(), reason="mounting a tmpfs needs root")
def test_full_disk_on_write_waits_then_completes(tmp_path: Path) -> None:
    """An output that cannot be written on a full spool (ENOSPC) waits, its attempts untouched,
    for longer than max_attempts allows; once space frees, the job completes."""
    with tmpfs(tmp_path / "spool", "2m"):
        s = parse_settings({"spool": {"root": str(tmp_path / "spool")},
                            "pipeline": {"stages": ["passthrough"]},
                            "workers": {"max_attempts": 2}})
        runner, store, spool, _ = _setup(tmp_path, settings=s)
        _receive(store, spool, _ct(), "job1")
        filler = tmp_path / "spool" / "filler"
        fill(filler)
        for n in range(4):
            _later(store, 10 * n)
            runner.run_batch(store.claim("w", 1, 60))
            info = store.get("job1")
            assert info is not None and info.state == JobState.RECEIVED
            assert (info.attempts, info.reason_class) == (0, "disk_full")
            assert info.last_error == "write: spool output failed (ENOSPC)"
        assert not list(spool.tmp.iterdir())  # the partial output is gone
        filler.unlink()
        _later(store, 60)
        runner.run_batch(store.claim("w", 1, 60))
        info = store.get("job1")
        assert info is not None and info.state == JobState.READY and info.attempts == 1
        assert spool.outgoing_path("job1").exists()


class LocksTheDatabase:
    """A stage that, the first time it runs, has another connection take SQLite's write lock
    for ``hold`` seconds: the worker's commit that follows finds the database busy."""

    name = "locks"

    def __init__(self, db: Path, hold: float) -> None:
        self.db = db
        self.hold = hold
        self.calls = 0

    def __call__(self, ds: Dataset, ctx: StageContext) -> Outcome:
        self.calls += 1
        if self.calls == 1:
            import sqlite3
            import threading

            conn = sqlite3.connect(self.db, isolation_level=None, check_same_thread=False)
            conn.execute("BEGIN IMMEDIATE")

            def unlock() -> None:
                conn.execute("ROLLBACK")
                conn.close()

            threading.Timer(self.hold, unlock).start()
        return Outcome.proceed()


def test_worker_waits_for_a_busy_database_and_gives_the_batch_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the batch's outcome cannot be committed (the database is locked), the worker
    neither dies nor quarantines: it waits, gives the job back with its attempt once the
    database answers, and runs it again."""
    import threading

    from gateway.db import engine as engine_module
    from gateway.pipeline.worker import worker_loop

    monkeypatch.setattr(engine_module, "BUSY_TIMEOUT_S", 0.2)  # give up on the lock sooner
    s = parse_settings({"spool": {"root": str(tmp_path / "spool")},
                        "workers": {"poll_interval": 0.01, "max_attempts": 1}})
    stage = LocksTheDatabase(tmp_path / "g.db", hold=2.0)
    runner, store, spool, _ = _setup(tmp_path, [stage], s)
    _receive(store, spool, _ct(), "job1")
    stop = threading.Event()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            worker_loop(runner, store, s, "w", stop)
        except BaseException as exc:
            failed.append(exc)

    t = threading.Thread(target=run)
    t.start()
    try:
        for _ in range(150):
            info = store.get("job1")
            if info is not None and info.state == JobState.READY:
                break
            stop.wait(0.1)
    finally:
        stop.set()
        t.join(10)
    assert failed == []
    info = store.get("job1")
    assert info is not None and info.state == JobState.READY
    assert stage.calls == 2 and info.attempts == 1  # run again; the lost attempt given back
