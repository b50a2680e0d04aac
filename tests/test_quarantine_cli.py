"""`quarantine list|show|release|purge` by group, release with a site override, and
`audit list`, as an operator types them (in process, against a worker run in the test)."""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.jobs.models import utcnow
from gateway.jobs.states import JobState

from quarantine_support import (
    CLEAN_CODE_MEANINGS,
    LEAK_PATH,
    World,
    named_procedure_ct,
    phi,
    write,
)

Capture = pytest.CaptureFixture[str]


def _cli(capsys: Capture, world: World, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main([*argv, "-c", str(world.config)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


OTHER_PATH = "(0008,2218)>(0008,0104)"


def _held(tmp_path: Path) -> tuple[World, list[str]]:
    """Two jobs held for a name in a procedure code meaning (at different item indexes), then
    one held for a name in an anatomic region code meaning (another group, newer)."""
    w = World(tmp_path)
    values: list[str] = []
    for i, items in enumerate((1, 2)):
        ds = named_procedure_ct(i, items=items)
        values += phi(ds)
        w.receive(ds, f"job{i}")
    w.run()
    other = named_procedure_ct(7)
    other.AnatomicRegionSequence = other.ProcedureCodeSequence
    del other.ProcedureCodeSequence
    values += phi(other)
    w.receive(other, "job9")
    w.store._now = lambda: utcnow() + dt.timedelta(seconds=5)  # quarantined later
    w.run()
    return w, values


def _group_line(out: str, needle: str) -> list[str]:
    [line] = [ln for ln in out.splitlines() if needle in ln]
    return line.split()


def test_list_groups_then_jobs(tmp_path: Path, capsys: Capture) -> None:
    """`list` shows one line per group with its id, count, times, class, stage and the reason
    with normalised paths; `list --group ID` and `list --jobs` list jobs."""
    w, values = _held(tmp_path)
    status, out, err = _cli(capsys, w, "quarantine", "list")
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["group", "jobs", "newest"]
    assert OTHER_PATH in lines[1] and LEAK_PATH in lines[2]  # newest group first
    fields = _group_line(out, LEAK_PATH)
    group_id, count = fields[0], fields[1]
    assert count == "2" and fields[6:8] == ["leak", "verify"]
    assert "[0]" not in out and "[1]" not in out
    assert "3 job(s) in 2 group(s)" in out
    status, jobs, _ = _cli(capsys, w, "quarantine", "list", "--group", group_id[:6])
    assert status == 0 and [ln.split()[0] for ln in jobs.splitlines()[1:]] == ["job0", "job1"]
    assert all(ln.split()[3] == group_id for ln in jobs.splitlines()[1:])
    status, alljobs, _ = _cli(capsys, w, "quarantine", "list", "--jobs")
    assert [ln.split()[0] for ln in alljobs.splitlines()[1:]] == ["job0", "job1", "job9"]
    assert _cli(capsys, w, "quarantine", "list", "--group", "ffffffffff")[0] == 1
    for value in values:
        assert value not in out + jobs + err


def test_release_group_with_override_is_audited(tmp_path: Path, capsys: Capture) -> None:
    """A bad override releases nothing and names the key; a good one releases the group,
    records the operator, the override's name and sha256 and the note, and the jobs get
    through; `show` gives the group's and the job's history."""
    w, values = _held(tmp_path)
    group_id = _group_line(_cli(capsys, w, "quarantine", "list")[1], LEAK_PATH)[0]
    bad = write(tmp_path, "bad.yaml", CLEAN_CODE_MEANINGS.replace("action: X", "action: XX"))
    status, out, err = _cli(capsys, w, "quarantine", "release", "--group", group_id,
                            "--override", str(bad))
    assert status == 2 and "bad.yaml" in err and "overrides.0.action" in err
    assert "nothing was released" in err and w.state("job0") == JobState.QUARANTINED
    good = write(tmp_path, "clean.yaml", CLEAN_CODE_MEANINGS)
    sha = hashlib.sha256(CLEAN_CODE_MEANINGS.encode()).hexdigest()
    status, out, err = _cli(capsys, w, "quarantine", "release", "--group", group_id,
                            "--override", str(good), "--operator", "alice",
                            "--note", "site writes names into code meanings")
    assert status == 0, err
    assert out.splitlines()[:2] == ["released job0", "released job1"]
    assert f"override clean-code-meanings sha256:{sha}" in out and "alice" in out
    good.unlink()  # the text was kept in the database
    w.run()
    assert w.state("job0") == w.state("job1") == JobState.READY
    status, audit, _ = _cli(capsys, w, "audit", "list")
    header, row = audit.splitlines()
    assert header.split("\t")[:3] == ["at", "who", "os_user"]
    cols = row.split("\t")
    assert cols[1] == "alice" and cols[4:7] == ["release", f"group {group_id}", "released 2"]
    assert cols[7] == f"override clean-code-meanings sha256:{sha}"
    assert cols[8] == "site writes names into code meanings" and cols[9] == "job0 job1"
    status, shown, _ = _cli(capsys, w, "quarantine", "show", "--group", group_id)
    assert "no job is quarantined in it now" in shown and "release by alice" in shown
    status, job, _ = _cli(capsys, w, "quarantine", "show", "job1")
    assert f"released with:  override clean-code-meanings sha256:{sha}" in job
    assert "+site+clean-code-meanings@" in job and "history:" in job
    for value in values:
        assert value not in out + audit + shown + job


def test_show_group_lists_paths_and_jobs(tmp_path: Path, capsys: Capture) -> None:
    """`show --group` prints the group's normalised paths and its jobs; `show JOB` its group."""
    w, _ = _held(tmp_path)
    group_id = _group_line(_cli(capsys, w, "quarantine", "list")[1], LEAK_PATH)[0]
    status, out, _ = _cli(capsys, w, "quarantine", "show", "--group", group_id)
    assert status == 0
    assert f"path:           {LEAK_PATH}" in out
    assert "job:            job0" in out and "job:            job1" in out
    status, job, _ = _cli(capsys, w, "quarantine", "show", "job1")
    assert f"group:          {group_id}" in job and "stage:          verify" in job
    assert _cli(capsys, w, "quarantine", "show")[0] == 1


def test_plain_release_and_purge_are_audited_with_the_login_name(tmp_path: Path,
                                                                  capsys: Capture) -> None:
    """Without --operator the login name is recorded; a plain release is held again; a purge
    needs --yes and is audited; the old `audit` output (re-identification) is unchanged."""
    w, _ = _held(tmp_path)
    status, _, _ = _cli(capsys, w, "quarantine", "release", "job0")
    assert status == 0
    w.run()
    assert w.state("job0") == JobState.QUARANTINED
    assert _cli(capsys, w, "quarantine", "purge", "--all")[0] == 1
    assert w.state("job0") == JobState.QUARANTINED
    assert _cli(capsys, w, "quarantine", "purge", "--all", "--reason-class", "leak", "--yes",
                "--note", "not needed")[0] == 0
    assert [w.store.get(j) for j in ("job0", "job1", "job9")] == [None, None, None]
    _, audit, _ = _cli(capsys, w, "audit", "list", "--limit", "5")
    rows = [r.split("\t") for r in audit.splitlines()[1:]]
    assert [(r[1], r[4], r[5], r[6]) for r in rows] == [
        (getpass.getuser(), "release", "jobs", "released 1"),
        (getpass.getuser(), "purge", "all reason-class leak", "purged 3"),
    ]
    _, legacy, _ = _cli(capsys, w, "audit")
    assert legacy.splitlines() == ["at\tuser\tnode\taction\tsubject\toutcome\treason"]


def test_release_refuses_a_bad_operator_or_selection(tmp_path: Path, capsys: Capture) -> None:
    """An operator name with control characters, or no / two selections, releases nothing."""
    w, _ = _held(tmp_path)
    assert _cli(capsys, w, "quarantine", "release", "job0", "--operator", "a\tb")[0] == 2
    assert _cli(capsys, w, "quarantine", "release")[0] == 1
    assert _cli(capsys, w, "quarantine", "release", "job0", "--all")[0] == 1
    assert _cli(capsys, w, "quarantine", "release", "--group", "0000000000")[0] == 1
    assert w.state("job0") == JobState.QUARANTINED
    _, audit, _ = _cli(capsys, w, "audit", "list")
    assert len(audit.splitlines()) == 1
