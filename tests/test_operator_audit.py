"""Operator decisions on SQLite and PostgreSQL: releases and purges audited in the same
transaction, the rules a release names kept by sha256, quarantine stage and paths on the job
row, and the schema migration that adds them."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, func, insert, select, text

from gateway.db import Base, make_engine, upgrade
from gateway.jobs import decisions
from gateway.jobs.decisions import AUDIT, AUDIT_JOBS, Decision
from gateway.jobs.groups import group_entries
from gateway.jobs.models import Job, utcnow
from gateway.jobs.states import JobState
from gateway.jobs.store import Finish, JobStore, NewJob
from gateway.pipeline.stage import RulesText

OVERRIDE = RulesText("ab" * 32, "clean-code-meanings", "- keyword: StudyDescription\n  action: X\n")


def _new(i: int) -> NewJob:
    return NewJob(f"job{i:04d}", "MODALITY", "GW", "1.2.840.10008.5.1.4.1.1.2",
                  "1.2.840.10008.1.2.1", "CT", 1000 + i)


@pytest.fixture
def store(engine: Engine) -> JobStore:
    return JobStore(engine, "node-a")


def _quarantined(store: JobStore, n: int) -> list[str]:
    for i in range(n):
        store.add_received(_new(i))
    jobs = store.claim("w", n, 60)
    store.finish("w", [
        Finish(j.id, JobState.QUARANTINED, f"identifying value of the input found at "
               f"(0008,1032)[{i}]>(0008,0104)", "leak", stage="verify",
               paths=(f"(0008,1032)[{i}]>(0008,0104)", "Fakename123^Zebulon"))
        for i, j in enumerate(jobs)
    ])
    return [j.id for j in jobs]


def _decision(action: str = "release", **kw: str) -> Decision:
    return Decision(action, "alice", "deid", "group 0123456789", "names in code meanings", **kw)


def test_quarantine_records_stage_and_clean_paths(store: JobStore) -> None:
    """A quarantine stores its stage and normalised tag paths; anything else is dropped."""
    [job_id] = _quarantined(store, 1)
    info = store.get(job_id)
    assert info is not None and info.reason_stage == "verify"
    assert json.loads(info.reason_paths or "") == ["(0008,1032)>(0008,0104)"]
    [group] = group_entries(store.quarantine_entries())
    assert group.job_ids == (job_id,) and group.stage == "verify"


def test_release_with_rules_is_audited_with_its_jobs(store: JobStore) -> None:
    """A release sets the jobs' override, and one audit row with who, what, the rules' name and
    sha256, the note and the jobs is written with it; jobs no longer held are left alone."""
    ids = _quarantined(store, 3)
    decisions.save_rules(store.engine, OVERRIDE, utcnow())
    decisions.save_rules(store.engine, OVERRIDE, utcnow())  # kept once
    assert decisions.load_rules(store.engine, OVERRIDE.sha256) == OVERRIDE
    decision = _decision(override=OVERRIDE.name, override_sha256=OVERRIDE.sha256)
    assert store.release_jobs(ids[:2], decision) == ids[:2]
    assert store.release_jobs(ids[:2], decision) == []  # already released: no second row
    claimed = {j.id: j for j in store.claim("w", 5, 60)}
    assert set(claimed) == set(ids[:2])
    assert claimed[ids[0]].release_override == OVERRIDE.sha256
    assert claimed[ids[0]].release_profile is None
    [entry] = decisions.entries(store.engine)
    assert entry.decision == decision and entry.job_ids == tuple(sorted(ids[:2]))
    assert entry.node_id == "node-a" and entry.at <= utcnow()
    assert decisions.entries_for_jobs(store.engine, [ids[1]]) == [entry]
    assert decisions.entries_for_jobs(store.engine, [ids[2]]) == []
    assert decisions.entries_for_subject(store.engine, "group 0123456789") == [entry]


def test_plain_release_clears_the_rules_of_an_earlier_one(store: JobStore) -> None:
    """A job released again without rules goes back to the configured profile."""
    [job_id] = _quarantined(store, 1)
    store.release_jobs([job_id], _decision(override="x", override_sha256=OVERRIDE.sha256))
    [job] = store.claim("w", 1, 60)
    store.quarantine(job.id, "again", "leak", owner="w", stage="verify")
    store.release_jobs([job_id], _decision())
    [job] = store.claim("w", 1, 60)
    assert job.release_override is None and job.release_profile is None


def test_purge_is_audited_and_keeps_its_audit(store: JobStore) -> None:
    """A purge deletes the jobs and records them; the audit outlives the jobs."""
    ids = _quarantined(store, 2)
    assert store.purge_jobs(ids, _decision("purge")) == ids
    assert store.get(ids[0]) is None
    [entry] = decisions.entries(store.engine)
    assert entry.decision.action == "purge" and entry.job_ids == tuple(sorted(ids))
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(AUDIT_JOBS)).scalar_one() == 2


def test_audit_holds_no_value_of_the_reason(store: JobStore) -> None:
    """Nothing a stage passed as a path that is not a tag path reaches the job or audit rows."""
    ids = _quarantined(store, 2)
    store.release_jobs(ids, _decision())
    with store.engine.connect() as conn:
        rows = [*conn.execute(select(Job.reason_paths, Job.last_error)).all(),
                *conn.execute(select(AUDIT)).all()]
    assert "Fakename" not in repr(rows)


def test_newest_decisions_first_limited(store: JobStore) -> None:
    """`entries` gives the newest N decisions, oldest first."""
    ids = _quarantined(store, 3)
    for i, job_id in enumerate(ids):
        store.release_jobs([job_id], Decision("release", f"op{i}", "deid", "jobs"))
    got = decisions.entries(store.engine, limit=2)
    assert [e.decision.operator for e in got] == ["op1", "op2"]


def test_migration_matches_the_models(engine: Engine) -> None:
    """The migrated schema is the one the models declare (SQLite keeps VARCHAR lengths loose)."""
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    if engine.dialect.name == "sqlite":
        diffs = [d for d in diffs if not (d[0][0] == "modify_type" and d[0][3] == "ruleset")]
    assert diffs == []


def test_upgrade_keeps_jobs_quarantined_before_it(db_url: str) -> None:
    """A job quarantined at the previous revision is grouped by the paths in its reason."""
    eng = make_engine(db_url)
    upgrade(eng, "0002_pseudonyms")
    now = dt.datetime(2026, 1, 1, 12, 0, 0)
    with eng.begin() as conn:
        conn.execute(insert(Job).values(
            id="legacy1", state="quarantined", node_id="n", calling_ae="", called_ae="",
            sop_class_uid="", transfer_syntax_uid="", modality="CT", size_bytes=1, attempts=1,
            next_attempt_at=now, received_at=now, updated_at=now, reason_class="leak",
            last_error="identifying value of the input found at (0008,1032)[2]>(0008,0104)",
        ))
    upgrade(eng)
    store = JobStore(eng, "n")
    [group] = group_entries(store.quarantine_entries())
    assert group.paths == ("(0008,1032)>(0008,0104)",) and group.stage == ""
    with eng.connect() as conn:
        assert conn.execute(text("select count(*) from operator_audit")).scalar_one() == 0
    eng.dispose()
