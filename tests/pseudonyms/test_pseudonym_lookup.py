"""The site lookup table: CSV forms, validation by line number without values, all-or-nothing
import, and the missing-entry policy both ways."""

from __future__ import annotations

from pathlib import Path

import pytest
from pseudonym_support import settings_for, synthetic_patient
from sqlalchemy import func, select

from gateway.config import Settings
from gateway.pseudonyms.factory import open_pseudonymizer
from gateway.pseudonyms.interface import PatientPseudonym, PseudonymUnavailable
from gateway.pseudonyms.lookup import (
    LookupTableError,
    import_lookup,
    parse_lookup_rows,
    read_lookup_csv,
)
from gateway.pseudonyms.store import PATIENTS


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_positional_three_and_four_columns() -> None:
    """Without a header, 4 columns carry an issuer and 3 columns do not."""
    entries = parse_lookup_rows(
        [["MRN1", "HOSP", "S001", "SUBJ^ONE"], ["MRN2", "S002", "SUBJ^TWO"]])
    assert [(e.patient_id, e.issuer, e.pseudonym_id, e.pseudonym_name) for e in entries] == [
        ("MRN1", "HOSP", "S001", "SUBJ^ONE"), ("MRN2", "", "S002", "SUBJ^TWO")]


def test_header_names_columns_and_offset(tmp_path: Path) -> None:
    """A header row (UTF-8 BOM and CRLF allowed) names the columns in any order and may give
    a date offset."""
    path = _write(tmp_path / "l.csv", "\ufeffpseudonym_name,patient_id,pseudonym_id,"
                  "date_offset_days\r\nSUBJ^ONE,MRN1,S001,-400\r\n")
    (entry,) = read_lookup_csv(path)
    assert (entry.patient_id, entry.issuer, entry.pseudonym_id, entry.pseudonym_name) == (
        "MRN1", "", "S001", "SUBJ^ONE")
    assert entry.date_offset_days == -400


def test_unreadable_file_named(tmp_path: Path) -> None:
    """A missing or non-UTF-8 file is an error naming the file."""
    with pytest.raises(LookupTableError, match="cannot read"):
        read_lookup_csv(tmp_path / "absent.csv")
    bad = tmp_path / "latin1.csv"
    bad.write_bytes("M\xdcLLER,S1,A^B\n".encode("latin-1"))
    with pytest.raises(LookupTableError, match="not a UTF-8 CSV"):
        read_lookup_csv(bad)


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ([["MRN1", "", "SUBJ^ONE"]], r"line 1: pseudonym id is empty"),
        ([["MRN1", "S1", "A^B"], ["MRN1", "S2", "C^D"]], r"line 2: same patient as line 1"),
        ([["MRN1", "S1", "A^B"], ["MRN2", "S1", "C^D"]], r"line 2: same pseudonym ID as line 1"),
        ([["MRN1", "S\\1", "A^B"]], r"line 1: pseudonym ID contains a backslash"),
        ([["MRN1", "S1"]], r"line 1: expected 3 or 4 columns"),
        ([["patient_id", "pseudonym_id", "pseudonym_name", "date_offset_days"],
          ["MRN1", "S1", "A^B", "0"]], r"line 2: date offset must not be 0"),
        ([["patient_id", "pseudonym_id", "pseudonym_name", "date_offset_days"],
          ["MRN1", "S1", "A^B", "soon"]], r"line 2: date_offset_days is not a whole number"),
        ([["patient_id", "pseudonym", "name"]], r"line 1: header"),
    ],
)
def test_invalid_rows_named_by_line(rows: list[list[str]], match: str) -> None:
    """Each problem is reported with its line number."""
    with pytest.raises(LookupTableError, match=match):
        parse_lookup_rows(rows)


def test_errors_never_echo_values() -> None:
    """Validation messages hold no value from the file."""
    rows = [["SECRETMRN", "", "SECRETNAME"], ["SECRETMRN", "PSEUDO", "NAME^X"]]
    with pytest.raises(LookupTableError) as info:
        parse_lookup_rows(rows)
    assert "SECRET" not in str(info.value) and "PSEUDO" not in str(info.value)


def test_imported_entry_is_used(settings: Settings) -> None:
    """A patient in the lookup table gets the table's pseudonyms and a derived offset."""
    pid, issuer, name = synthetic_patient(1)
    with open_pseudonymizer(settings) as s:
        report = import_lookup(s, parse_lookup_rows([[pid, issuer, "STUDY-001", "SUBJECT^ONE"]]))
        p = s.patient(pid, issuer, name)
        expected_offset = s.derived_patient_values(f"{issuer}\\{pid}").date_offset_days
    assert (report.added, report.unchanged) == (1, 0)
    assert p == PatientPseudonym("STUDY-001", "SUBJECT^ONE", expected_offset)


def test_offset_from_table_is_kept(settings: Settings) -> None:
    """A date offset given in the lookup table is the patient's offset."""
    rows = [["patient_id", "pseudonym_id", "pseudonym_name", "date_offset_days"],
            ["MRN9", "S9", "A^B", "-1234"]]
    with open_pseudonymizer(settings) as s:
        import_lookup(s, parse_lookup_rows(rows))
        assert s.patient("MRN9", "", "").date_offset_days == -1234


def test_reimport_is_idempotent(settings: Settings) -> None:
    """Importing the same table twice adds nothing the second time."""
    entries = parse_lookup_rows([["MRN1", "S1", "A^B"], ["MRN2", "S2", "C^D"]])
    with open_pseudonymizer(settings) as s:
        assert import_lookup(s, entries).added == 2
        second = import_lookup(s, entries)
    assert (second.added, second.unchanged) == (0, 2)


def test_import_never_replaces_existing_pseudonyms(settings: Settings) -> None:
    """A patient already pseudonymised keeps its pseudonym; the whole import is refused."""
    pid, issuer, name = synthetic_patient(2)
    with open_pseudonymizer(settings) as s:
        before = s.patient(pid, issuer, name)
        rows = [["NEWMRN", "", "S5", "E^F"], [pid, issuer, "S6", "G^H"]]
        with pytest.raises(LookupTableError, match="line 2: the patient already has"):
            import_lookup(s, parse_lookup_rows(rows))
        with s.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(PATIENTS)).scalar_one() == 1
        assert s.patient(pid, issuer, name) == before


def test_import_refuses_a_taken_pseudonym(settings: Settings) -> None:
    """A pseudonym ID that another stored patient holds is refused."""
    with open_pseudonymizer(settings) as s:
        import_lookup(s, parse_lookup_rows([["MRN1", "S1", "A^B"]]))
        with pytest.raises(LookupTableError, match="already another patient's"):
            import_lookup(s, parse_lookup_rows([["MRN2", "S1", "C^D"]]))


def test_missing_entry_quarantine_policy(db_url: str, secret_file: Path) -> None:
    """With quarantine, a patient absent from the table raises; a listed one is served."""
    settings = settings_for(db_url, secret_file, lookup_policy="quarantine")
    with open_pseudonymizer(settings) as s:
        import_lookup(s, parse_lookup_rows([["LISTED", "S1", "A^B"]]))
        assert s.patient("LISTED", "", "").patient_id == "S1"
        with pytest.raises(PseudonymUnavailable):
            s.patient("UNLISTED", "", "")


def test_missing_entry_generate_policy(db_url: str, secret_file: Path) -> None:
    """With generate, a patient absent from the table gets derived pseudonyms."""
    settings = settings_for(db_url, secret_file, lookup_policy="generate")
    with open_pseudonymizer(settings) as s:
        import_lookup(s, parse_lookup_rows([["LISTED", "S1", "A^B"]]))
        generated = s.patient("UNLISTED", "", "")
        assert generated == s.derived_patient_values("\\UNLISTED")
        assert generated.patient_id != "S1"


def test_quarantined_patient_served_after_import(db_url: str, secret_file: Path) -> None:
    """A patient held for a missing entry is served once the entry is imported (no stale
    negative cache)."""
    settings = settings_for(db_url, secret_file, lookup_policy="quarantine")
    with open_pseudonymizer(settings) as s:
        with pytest.raises(PseudonymUnavailable):
            s.patient("LATE", "", "")
        import_lookup(s, parse_lookup_rows([["LATE", "S7", "L^ATE"]]))
        assert s.patient("LATE", "", "").patient_id == "S7"
