"""The worker runs a released job's deidentify stage with the profile or site override the
operator chose, and every other stage (verify included) as configured."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from pydicom import dcmread
from sqlalchemy import select

from gateway.jobs import decisions
from gateway.jobs.models import Job, utcnow
from gateway.jobs.states import JobState
from gateway.pipeline.stage import RulesText

from quarantine_support import CLEAN_CODE_MEANINGS, LEAK_PATH, World, named_procedure_ct, phi


def test_leak_is_held_with_its_normalised_paths(tmp_path: Path) -> None:
    """Verify's quarantine records its stage and the leak paths without item indexes, and
    no value, on the job row."""
    w = World(tmp_path)
    ds = named_procedure_ct(1, items=2)
    w.receive(ds, "job1")
    w.run()
    info = w.store.get("job1")
    assert info is not None and info.state == JobState.QUARANTINED
    assert info.reason_class == "leak" and info.reason_stage == "verify"
    assert json.loads(info.reason_paths or "") == [LEAK_PATH]
    assert "[1]" in (info.last_error or "")  # the reason keeps the exact paths
    for value in phi(ds):
        assert value not in (info.reason_paths or "") + (info.last_error or "")


def test_release_with_override_gets_through_and_without_is_held_again(tmp_path: Path) -> None:
    """Released with the override that removes the code meanings, the job is ready, its output
    has no code meaning and its ruleset names the override; released plainly, it is held again."""
    w = World(tmp_path)
    first, second = named_procedure_ct(1), named_procedure_ct(2)
    w.receive(first, "job1")
    w.receive(second, "job2")
    w.run()
    assert w.state("job1") == w.state("job2") == JobState.QUARANTINED
    override = w.rules("clean-code-meanings", CLEAN_CODE_MEANINGS)
    assert w.release_jobs(["job1"], override=override) == ["job1"]
    assert w.release_jobs(["job2"]) == ["job2"]
    w.run()
    assert w.state("job1") == JobState.READY
    assert w.state("job2") == JobState.QUARANTINED
    info = w.store.get("job1")
    assert info is not None and "+site+clean-code-meanings@" in (info.ruleset or "")
    assert info.release_override == override.sha256
    out = dcmread(w.spool.outgoing_path("job1"))
    assert "CodeMeaning" not in out.ProcedureCodeSequence[0]
    assert out.ProcedureCodeSequence[0].CodeValue == "P0"
    blob = w.spool.outgoing_path("job1").read_bytes()
    for value in phi(first):
        assert value.encode() not in blob


def test_release_with_a_profile_replaces_the_configured_one(tmp_path: Path) -> None:
    """A job released with a named profile is de-identified by it instead of the site profile
    (which keeps the code meanings as written): the shipped basic profile cleans the local code
    meaning of the name and the job gets through; with an override on top the ruleset names
    both."""
    w = World(tmp_path)
    ds = named_procedure_ct(1)
    w.receive(ds, "job1")
    w.run()
    assert w.state("job1") == JobState.QUARANTINED
    basic = w.rules("basic", (Path(__file__).parents[1] / "rules/profiles/basic.yaml")
                    .read_text())
    w.release_jobs(["job1"], profile=basic)
    w.run()
    info = w.store.get("job1")
    assert info is not None and info.state == JobState.READY
    assert "+basic@" in (info.ruleset or "")
    out = dcmread(w.spool.outgoing_path("job1"))
    assert out.ProcedureCodeSequence[0].CodeMeaning == "CT chest ***"
    with_override = w.rules("clean-code-meanings", CLEAN_CODE_MEANINGS)
    w.receive(named_procedure_ct(2), "job2")
    w.run()
    w.release_jobs(["job2"], profile=basic, override=with_override)
    w.run()
    info = w.store.get("job2")
    assert info is not None and info.state == JobState.READY
    assert "+basic+clean-code-meanings@" in (info.ruleset or "")


def test_release_never_skips_verify(tmp_path: Path) -> None:
    """An override that does not remove the leak leaves the job held by verify again."""
    w = World(tmp_path)
    w.receive(named_procedure_ct(1), "job1")
    w.run()
    unrelated = w.rules("unrelated", "- keyword: StudyDescription\n  action: X\n")
    w.release_jobs(["job1"], override=unrelated)
    w.run()
    info = w.store.get("job1")
    assert info is not None and info.state == JobState.QUARANTINED
    assert info.reason_class == "leak" and info.reason_stage == "verify"


def test_released_engines_are_built_once_and_bounded(tmp_path: Path) -> None:
    """Jobs released with the same rules share one engine (their text is read once); the cache
    keeps at most its size of distinct rules."""
    w = World(tmp_path, cache_size=1)
    for i in range(3):
        w.receive(named_procedure_ct(i), f"job{i}")
    w.run()
    override = w.rules("clean-code-meanings", CLEAN_CODE_MEANINGS)
    w.release_jobs(["job0", "job1"], override=override)
    w.run()
    assert w.loads == [override.sha256] and len(w.release) == 1
    other = w.rules("other", CLEAN_CODE_MEANINGS.replace("action: X", "action: Z"))
    w.release_jobs(["job2"], override=other)
    w.run()
    assert len(w.release) == 1
    assert w.release(None, override.sha256) is not w.release(None, other.sha256)
    assert w.state("job2") == JobState.READY


@pytest.mark.parametrize("case", ["missing", "invalid"])
def test_unusable_released_rules_hold_the_job(tmp_path: Path, case: str) -> None:
    """Rules that are gone or no longer validate hold the job with reason class 'release';
    it never runs with other rules."""
    w = World(tmp_path)
    w.receive(named_procedure_ct(1), "job1")
    w.run()
    text = "- keyword: NotAKeyword\n  action: X\n"
    rules = RulesText(hashlib.sha256(text.encode()).hexdigest(), "broken", text)
    if case == "invalid":
        decisions.save_rules(w.store.engine, rules, utcnow())
    w.release_jobs(["job1"], override=rules)
    w.run()
    info = w.store.get("job1")
    assert info is not None and info.state == JobState.QUARANTINED
    assert info.reason_class == "release" and info.reason_stage == "release"
    assert info.attempts == 1
    with w.store.engine.connect() as conn:
        assert conn.execute(select(Job.ruleset).where(Job.id == "job1")).scalar() is None
