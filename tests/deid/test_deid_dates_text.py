"""Modified Dates shift every date of a patient by one offset; free text is cleaned."""

from __future__ import annotations

import datetime as dt

import pytest
from deid_support import deidentify
from pydicom import Dataset
from pydicom.sequence import Sequence

from gateway.deid.textclean import TextCleaner
from gateway.deid.values import shift_da, shift_dt
from gateway.identity import Identity
from gateway.pseudonyms.interface import InMemoryPseudonymizer

CT = "1.2.840.10008.5.1.4.1.1.2"


@pytest.mark.parametrize(
    ("value", "days", "expected"),
    [
        ("20210423", -10, "20210413"),
        ("2021.04.23", 1, "20210424"),
        ("20210101-20210131", -1, "20201231-20210130"),
        ("notadate", 3, None),
        ("20210230", 3, None),
    ],
)
def test_shift_da(value: str, days: int, expected: str | None) -> None:
    """DA values (incl. ACR-NEMA dots and ranges) move by whole days; invalid ones give None."""
    assert shift_da(value, days) == expected


@pytest.mark.parametrize(
    ("value", "days", "expected"),
    [
        ("20210423093000.123456+0200", -1, "20210422093000.123456+0200"),
        ("20210423235959-0500", 1, "20210424235959-0500"),
        ("202104", -31, "202103"),
        ("2021", -400, "2020"),
    ],
)
def test_shift_dt_keeps_time_and_utc_offset(value: str, days: int, expected: str) -> None:
    """DT keeps its time of day, precision and &ZZXX offset while its date moves."""
    assert shift_dt(value, days) == expected


def _patient(pid: str, study_date: str) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = CT, "1.2.3." + pid[1:]
    ds.PatientID, ds.PatientName = pid, "Doe^" + pid
    ds.StudyDate = study_date
    ds.AcquisitionDateTime = study_date + "101500+0100"
    ds.AcquisitionTime = "101500"
    item = Dataset()
    item.ContentDate = study_date[:6] + "28"
    ds.ReferencedSeriesSequence = Sequence([item])
    return ds


def test_every_date_of_a_patient_shifts_by_the_same_offset() -> None:
    """Top-level, nested DA and DT move by the patient's stored offset; TM is unchanged."""
    ds = _patient("P1", "20210423")
    deidentify(ds, "research")
    offset = InMemoryPseudonymizer().patient("P1", "", "Doe^P1").date_offset_days
    expect = (dt.date(2021, 4, 23) + dt.timedelta(days=offset)).strftime("%Y%m%d")
    assert ds.StudyDate == expect
    assert ds.AcquisitionDateTime == expect + "101500+0100"
    nested = (dt.date(2021, 4, 28) + dt.timedelta(days=offset)).strftime("%Y%m%d")
    assert ds.ReferencedSeriesSequence[0].ContentDate == nested
    assert ds.AcquisitionTime == "101500"
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"


def test_intervals_survive_between_instances_of_one_patient() -> None:
    """Two studies of one patient keep their interval; another patient gets another offset."""
    a, b, c = _patient("P1", "20210423"), _patient("P1", "20210501"), _patient("P2", "20210423")
    for ds in (a, b, c):
        deidentify(ds, "research")
    day = dt.datetime.strptime
    assert (day(b.StudyDate, "%Y%m%d") - day(a.StudyDate, "%Y%m%d")).days == 8
    assert a.StudyDate != c.StudyDate


def _cleaner() -> TextCleaner:
    found = Identity()
    found.add("name", "Zebulon^Quixote")
    found.add("id", "MRN-48213977")
    found.add("address", "17 Fernleaf Crescent^Wolverhampton")
    found.add("date", "19610423")
    return TextCleaner(found)


@pytest.mark.parametrize(
    ("text", "gone"),
    [
        ("seen: QUIXOTE, zebulon", ["quixote", "zebulon"]),
        ("Zebulon Quixote 1961-04-23", ["zebulon", "quixote", "1961"]),
        ("id MRN-48213977 ok", ["48213977"]),
        ("lives at 17 Fernleaf Crescent, Wolverhampton", ["fernleaf", "wolverhampton"]),
        ("call +44 (0)1632 960123 now", ["960123"]),
        ("born 23/04/1961, seen 4 March 2021 and March 5, 2021", ["1961", "2021"]),
        ("scan 20210304 ok", ["20210304"]),
        ("mail z.q@example.org", ["example.org"]),
        ("at 12 Elm Street tomorrow", ["elm street"]),
    ],
)
def test_cleaner_removes_identifying_values(text: str, gone: list[str]) -> None:
    """Names in any order or case, IDs, addresses, phones, e-mails and dates are removed."""
    cleaned = _cleaner().clean(text)
    assert cleaned is not None
    for word in gone:
        assert word not in cleaned.lower()


def test_cleaner_keeps_ordinary_words() -> None:
    """Text without identifying values is unchanged."""
    assert _cleaner().clean("CT thorax 5 mm, contrast 80 ml") == "CT thorax 5 mm, contrast 80 ml"


def test_what_cannot_be_cleaned_is_removed() -> None:
    """Binary free text cannot be cleaned and is refused (the caller removes it)."""
    assert _cleaner().clean(b"Zebulon") is None
