"""The job runner's log lines and metric events: one per stage, keyed by job id, never an
input UID or an exception's text."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from pydicom import Dataset
from sqlalchemy import Engine
from structlog.testing import capture_logs

from gateway.config import Settings
from gateway.jobs.store import JobStore, NewJob
from gateway.pipeline.stage import Outcome, Stage, StageContext
from gateway.pipeline.worker import JobRunner
from gateway.spool import Spool

import dicomgen

PSEUDONYM = "2.25.1234567890123456789"


class FakeDeidentify:
    """Replaces the SOP Instance UID (or keeps it, like a profile retaining UIDs)."""

    name = "deidentify"

    def __init__(self, keep_uid: bool = False) -> None:
        self.keep_uid = keep_uid

    def __call__(self, ds: Dataset, ctx: StageContext) -> Outcome:
        if not self.keep_uid:
            ds.SOPInstanceUID = PSEUDONYM
        return Outcome.proceed()


class Exploding:
    name = "verify"

    def __call__(self, ds: Dataset, ctx: StageContext) -> Outcome:
        raise KeyError(str(ds.PatientName))


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str], float]] = []

    def __call__(self, name: str, labels: dict[str, str], value: float) -> None:
        self.seen.append((name, labels, value))


@pytest.fixture
def setup(tmp_path: Path, engine: Engine) -> tuple[JobStore, Spool, Dataset]:
    store = JobStore(engine, "node-a")
    spool = Spool(tmp_path / "spool")
    spool.create()
    study = dicomgen.Study.random(random.Random(7))
    ds = dicomgen.ct(study, "1.2.826.0.1.3680043.10.1038.1", 1, size=8)
    dicomgen.save(ds, spool.incoming_path("job1"))
    store.add_received(NewJob("job1", "MODALITY", "GW", str(ds.SOPClassUID),
                              "1.2.840.10008.1.2.1", "CT", 100))
    return store, spool, ds


def _run(setup: tuple[JobStore, Spool, Dataset], stages: list[Any]) -> tuple[list[dict[str, Any]],
                                                                           Events]:
    store, spool, _ds = setup
    events = Events()
    settings = Settings(destinations=[{"name": "research", "ae_title": "PACS",
                                       "host": "127.0.0.1", "port": 104}])
    runner = JobRunner(settings, store, spool, stages, "w0", observe=events)
    [job] = store.claim("w0", 1, 60)
    with capture_logs() as logs:
        runner.run(job)
    return logs, events


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_stage_lines_carry_output_uid_only_after_deidentify(
    setup: tuple[JobStore, Spool, Dataset],
) -> None:
    """decode has no UID; lines from deidentify on carry the pseudonym; the input UID never."""
    stages: list[Stage] = [FakeDeidentify()]
    logs, events = _run(setup, stages)
    original = str(setup[2].SOPInstanceUID)
    assert [(e["event"], e.get("stage")) for e in logs] == [
        ("stage", "decode"), ("stage", "deidentify"), ("stage", "encode"), ("job", None)]
    assert all(e["job_id"] == "job1" for e in logs)
    assert "sop_instance_uid" not in logs[0]
    assert {e.get("sop_instance_uid") for e in logs[1:]} == {PSEUDONYM}
    assert original not in repr(logs)
    stages_seen = [labels["stage"] for name, labels, _ in events.seen if name == "stage"]
    assert stages_seen == ["decode", "deidentify", "encode"]
    assert events.seen[-1][0] == "job_continue"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_uid_kept_by_the_profile_is_never_logged(setup: tuple[JobStore, Spool, Dataset]) -> None:
    """A profile that retains UIDs leaves the input UID in place: no line may carry it."""
    logs, _ = _run(setup, [FakeDeidentify(keep_uid=True)])
    assert str(setup[2].SOPInstanceUID) not in repr(logs)
    assert not any("sop_instance_uid" in e for e in logs)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_stage_exception_is_logged_by_class_only(setup: tuple[JobStore, Spool, Dataset]) -> None:
    """A stage raising with a patient's name in the message logs 'verify: KeyError' only."""
    logs, events = _run(setup, [Exploding()])
    name = str(setup[2].PatientName)
    assert name not in repr(logs) and name.split("^")[0] not in repr(logs)
    job = logs[-1]
    assert job["event"] == "job" and job["outcome"] == "quarantine"
    assert job["reason"] == "verify: KeyError" and job["reason_class"] == "error"
    assert events.seen[-1][0] == "job_quarantine"
    assert events.seen[-1][1]["stage"] == "verify"
