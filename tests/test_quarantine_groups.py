"""Quarantined jobs group by reason class, stage and normalised reason and paths, under ids
that are the same in every run."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pytest

from gateway.jobs.groups import (
    QuarantineEntry,
    clean_paths,
    decode_paths,
    encode_paths,
    group_entries,
    normalise_path,
    normalise_reason,
)

T0 = dt.datetime(2026, 3, 1, 9, 0, 0)
LEAK = "identifying value of the input found at"


def _entry(job: str, minutes: int, reason: str, paths: list[str] | None,
           reason_class: str = "leak", stage: str = "verify") -> QuarantineEntry:
    stored = None if paths is None else encode_paths(paths) or "[]"
    return QuarantineEntry(job, T0 + dt.timedelta(minutes=minutes), reason_class, stage, reason,
                           stored)


@pytest.mark.parametrize(("path", "expected"), [
    ("(0008,1032)[0]>(0008,0104)", "(0008,1032)>(0008,0104)"),
    ("(0040,a730)[12]>(0040,A730)[3]>(0040,a160)", "(0040,A730)>(0040,A730)>(0040,A160)"),
    ("(0010,0010)", "(0010,0010)"),
])
def test_item_indexes_are_removed(path: str, expected: str) -> None:
    """A path loses its item indexes and gets upper-case hex digits."""
    assert normalise_path(path) == expected


def test_only_tag_paths_are_kept() -> None:
    """Anything that is not a well-formed tag path (a value, a keyword) is dropped, the rest
    is normalised, de-duplicated and sorted."""
    got = clean_paths(["(0010,0010)", "Fakename^Zebulon", "(0008,1032)[1]>(0008,0104)",
                       "(0008,1032)[0]>(0008,0104)", "PatientName", "(0010,0010) x"])
    assert got == ("(0008,1032)>(0008,0104)", "(0010,0010)")
    assert decode_paths(encode_paths(["(0008,1032)[2]>(0008,0104)"])) == (
        "(0008,1032)>(0008,0104)",)
    assert encode_paths(["Fakename"]) is None and decode_paths(None) is None


def test_verify_reason_is_normalised_with_its_paths() -> None:
    """Item indexes and the 'and N more' tail give way to the unique normalised paths."""
    reason = (f"{LEAK} (0008,1032)[0]>(0008,0104), (0008,1032)[1]>(0008,0104), "
              "(0010,0010) and 3 more")
    paths = clean_paths(["(0008,1032)[0]>(0008,0104)", "(0010,0010)"])
    assert normalise_reason(reason, paths) == f"{LEAK} (0008,1032)>(0008,0104), (0010,0010)"


def test_numbers_outside_paths_do_not_split_groups() -> None:
    """Attempt counts become '#'; tags and hex statuses stay."""
    assert (normalise_reason("forward to pacs: 0xA700 Out of Resources (after 5 attempts)", ())
            == "forward to pacs: 0xA700 Out of Resources (after # attempts)")
    assert normalise_reason("decode: no (7FE0,0010) in 2 frames", ()) == (
        "decode: no (7FE0,0010) in # frames")


def test_jobs_group_by_class_stage_and_paths() -> None:
    """Jobs whose leaks differ only by item index form one group; another path, class or stage
    is another group; groups come newest first with their counts and times."""
    entries = [
        _entry("a", 0, f"{LEAK} (0008,1032)[0]>(0008,0104)", ["(0008,1032)[0]>(0008,0104)"]),
        _entry("b", 5, f"{LEAK} (0008,1032)[1]>(0008,0104)", ["(0008,1032)[1]>(0008,0104)"]),
        _entry("c", 2, f"{LEAK} (0010,0010)", ["(0010,0010)"]),
        _entry("d", 3, "filter rule hold-sc", [], "filter", "filter"),
        _entry("e", 1, f"{LEAK} (0008,1032)[0]>(0008,0104)", ["(0008,1032)[0]>(0008,0104)"],
               stage="pixels"),
    ]
    groups = group_entries(entries)
    assert [g.job_ids for g in groups] == [("a", "b"), ("d",), ("c",), ("e",)]
    first = groups[0]
    assert first.count == 2 and first.oldest == T0 and first.newest == T0 + dt.timedelta(minutes=5)
    assert first.reason == f"{LEAK} (0008,1032)>(0008,0104)"
    assert first.paths == ("(0008,1032)>(0008,0104)",)
    assert len({g.id for g in groups}) == 4
    assert all(len(g.id) == 10 and int(g.id, 16) >= 0 for g in groups)


def test_jobs_from_before_the_migration_fall_back_to_the_reason_text() -> None:
    """A job without stored paths is grouped by the paths written in its reason, with the job
    that has them stored."""
    legacy = _entry("old", 0, f"{LEAK} (0008,1032)[3]>(0008,0104)", None)
    new = _entry("new", 1, f"{LEAK} (0008,1032)[0]>(0008,0104)", ["(0008,1032)[0]>(0008,0104)"])
    assert legacy.paths() == ("(0008,1032)>(0008,0104)",)
    [group] = group_entries([legacy, new])
    assert group.job_ids == ("old", "new")


_PRINT_ID = (
    "import datetime as dt; from gateway.jobs.groups import QuarantineEntry as Q; "
    "print(Q('x', dt.datetime(2020, 1, 1), 'leak', 'verify', "
    "'identifying value of the input found at (0008,1032)[4]>(0008,0104)', None).group())"
)


def test_group_ids_are_stable_across_runs() -> None:
    """Another interpreter, with another hash seed, on another day, gives the same group id."""
    here = _entry("y", 99, f"{LEAK} (0008,1032)[0]>(0008,0104)", ["(0008,1032)[7]>(0008,0104)"])
    ids = set()
    for seed in ("1", "2"):
        run = subprocess.run([sys.executable, "-c", _PRINT_ID], capture_output=True, text=True,
                             env={**os.environ, "PYTHONHASHSEED": seed}, check=True)
        ids.add(run.stdout.strip())
    assert ids == {here.group()}
