"""Synthetic patients with planted identifying values: after ``research`` none is in the bytes."""

from __future__ import annotations

import pytest
from deid_support import PLANTED, STUDY_DATE, ct, deidentify, gsps, sr, to_bytes, uid
from pydicom import Dataset

from gateway.verify import find_leaks


def _planted_strings(original: Dataset) -> set[str]:
    values = set(PLANTED.values()) | {STUDY_DATE}
    values |= {str(e.value) for e in original.iterall() if e.VR == "UI" and
               str(e.value).startswith(uid())}
    return values


@pytest.mark.parametrize("make", [ct, sr, gsps], ids=["ct", "sr", "gsps"])
def test_no_planted_value_in_output_bytes(make: object) -> None:
    """No planted name, ID, date, address, phone number or original UID survives research."""
    ds = make()  # type: ignore[operator]
    planted = _planted_strings(ds)
    deidentify(ds, "research")
    data = to_bytes(ds)
    lowered = data.lower()
    found = [p for p in planted if p.encode() in data or p.lower().encode() in lowered]
    assert not found, f"planted values in output: {sorted(found)}"


@pytest.mark.parametrize("make", [ct, sr, gsps], ids=["ct", "sr", "gsps"])
def test_verify_finds_nothing_after_research(make: object) -> None:
    """The verify stage finds none of the collected identifiers in a research output."""
    ds = make()  # type: ignore[operator]
    ctx = deidentify(ds, "research")
    assert PLANTED["patient_id"] in ctx.identity.id
    assert find_leaks(ds, ctx.identity) == []


def test_kept_descriptors_are_cleaned_not_dropped() -> None:
    """Clean Descriptors keeps the non-identifying words of a description."""
    ds = ct()
    deidentify(ds, "research")
    assert ds.StudyDescription.startswith("CT chest for ")
    assert "follow-up" in ds.SeriesDescription


def test_safe_private_kept_in_any_block_and_others_removed() -> None:
    """The Safe Private element survives in block 0x11; the vendor's other elements do not."""
    ds = ct()
    deidentify(ds, "research")
    assert ds[0x00190011].value == "GEMS_ACQU_01"
    assert ds[0x00191123].value == "5.0"
    for tag in (0x00191199, 0x00190010, 0x00191001, 0x00290010, 0x00291010, 0x00291011):
        assert tag not in ds
