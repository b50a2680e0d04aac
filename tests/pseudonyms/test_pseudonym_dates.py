"""Date offsets: one per patient, stored with its pseudonym, so that every study of that
patient (before and after a restart, on any node) shifts by the same number of days."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pseudonym_support import settings_for, synthetic_patient

from gateway.config import Settings
from gateway.pseudonyms.factory import open_pseudonymizer


def _shift(da: str, days: int) -> str:
    """Shift a DICOM DA value (YYYYMMDD) by ``days``."""
    return (dt.datetime.strptime(da, "%Y%m%d").date() + dt.timedelta(days=days)).strftime("%Y%m%d")


def _days_between(a: str, b: str) -> int:
    return (dt.datetime.strptime(b, "%Y%m%d") - dt.datetime.strptime(a, "%Y%m%d")).days


def test_interval_between_two_studies_survives(settings: Settings) -> None:
    """Two studies of one patient 74 days apart are still 74 days apart after shifting, and
    the dates themselves did move."""
    first_study, second_study = "20200101", "20200315"
    pid, issuer, name = synthetic_patient(11)
    with open_pseudonymizer(settings) as s:
        offset_1 = s.patient(pid, issuer, name).date_offset_days
    with open_pseudonymizer(settings) as s:  # the second study arrives after a restart
        offset_2 = s.patient(pid, issuer, name).date_offset_days
    shifted = (_shift(first_study, offset_1), _shift(second_study, offset_2))
    assert _days_between(*shifted) == _days_between(first_study, second_study) == 74
    assert shifted[0] != first_study


def test_offset_same_on_every_node(settings: Settings, db_url: str, secret_file: Path) -> None:
    """Another node sharing the database gives the patient the same offset."""
    other = settings_for(db_url, secret_file, node_id="node-b")
    with open_pseudonymizer(settings) as a, open_pseudonymizer(other) as b:
        for n in range(10):
            assert a.patient(*synthetic_patient(n)) == b.patient(*synthetic_patient(n))


def test_offsets_in_configured_range(db_url: str, secret_file: Path) -> None:
    """Offsets fall in the configured range, never 0, and vary between patients."""
    settings = settings_for(db_url, secret_file, date_offset_min_days=-2,
                            date_offset_max_days=2)
    with open_pseudonymizer(settings) as s:
        offsets = {s.patient(*synthetic_patient(n)).date_offset_days for n in range(40)}
    assert offsets <= {-2, -1, 1, 2}
    assert len(offsets) > 1
