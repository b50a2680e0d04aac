"""The site lookup table: patient pseudonyms a site assigns itself, imported from CSV.

Columns, in this order: original Patient ID, Issuer of Patient ID (optional), pseudonym Patient
ID, pseudonym Patient Name. A first row with a cell ``patient_id`` is a header naming the
columns, in any order: ``patient_id``, ``issuer`` (optional), ``pseudonym_id``,
``pseudonym_name`` and ``date_offset_days`` (optional: a site's existing shift; otherwise the
HMAC gives one). Without a header, three columns mean no issuer.

An import is all or nothing. A patient that already has pseudonyms in the store keeps them
(instances have already left with them); an entry that would change them is refused, as is a
pseudonym used twice. Error messages give line numbers, never values from the file.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, insert, select

from gateway.pseudonyms import derive
from gateway.pseudonyms.models import ORIGINAL_MAX, PN_MAX, utcnow
from gateway.pseudonyms.store import PATIENTS, PseudonymStore, run_transaction

_COLUMNS = ("patient_id", "issuer", "pseudonym_id", "pseudonym_name", "date_offset_days")
_REQUIRED = ("patient_id", "pseudonym_id", "pseudonym_name")
_MAX_ERRORS = 20
_CHUNK = 500


class LookupTableError(Exception):
    """The lookup table cannot be imported; the message lists line numbers and problems."""


@dataclass(frozen=True)
class LookupEntry:
    """One row of the site lookup table."""

    line: int
    patient_id: str
    issuer: str
    pseudonym_id: str
    pseudonym_name: str
    date_offset_days: int | None = None

    @property
    def key(self) -> str:
        return derive.patient_key(self.patient_id, self.issuer)


@dataclass(frozen=True)
class ImportReport:
    """What an import did."""

    added: int
    unchanged: int


def _bad_text(value: str, limit: int, allow_caret: bool = False) -> str | None:
    if len(value) > limit:
        return f"longer than {limit} characters"
    if "\\" in value or any(ord(c) < 0x20 for c in value):
        return "contains a backslash or a control character"
    if not allow_caret and "^" in value:
        return "contains '^'"
    return None


def _entry_problems(e: LookupEntry) -> list[str]:
    checks = [
        ("original patient ID", e.patient_id, ORIGINAL_MAX, False),
        ("issuer", e.issuer, ORIGINAL_MAX, False),
        ("pseudonym ID", e.pseudonym_id, 64, False),
        ("pseudonym name", e.pseudonym_name, PN_MAX, True),
    ]
    problems = [f"{label} {why}" for label, value, limit, caret in checks
                if (why := _bad_text(value, limit, caret))]
    problems += [f"{name.replace('_', ' ')} is empty" for name in _REQUIRED if not getattr(e, name)]
    if e.date_offset_days == 0:
        problems.append("date offset must not be 0")
    return problems


def _parse_offset(text: str, line: int, errors: list[str]) -> int | None:
    if not text.strip():
        return None
    try:
        value = int(text)
    except ValueError:
        errors.append(f"line {line}: date_offset_days is not a whole number")
        return None
    if abs(value) > 36500:
        errors.append(f"line {line}: date_offset_days is outside -36500..36500")
    return value


def _header(row: Sequence[str]) -> list[str] | None:
    names = [c.strip().lower() for c in row]
    if "patient_id" not in names:
        return None
    unknown = [n for n in names if n not in _COLUMNS]
    missing = [n for n in _REQUIRED if n not in names]
    if unknown or missing:
        raise LookupTableError(
            f"line 1: header must name {', '.join(_COLUMNS)} (issuer and date_offset_days "
            f"optional); unknown: {unknown or 'none'}, missing: {missing or 'none'}"
        )
    return names


def _positional(row: Sequence[str]) -> dict[str, str] | None:
    if len(row) == 3:
        return dict(zip(("patient_id", "pseudonym_id", "pseudonym_name"), row, strict=True))
    if len(row) == 4:
        return dict(zip(_COLUMNS[:4], row, strict=True))
    return None


def _row_entry(
    row: Sequence[str], line: int, names: list[str] | None, errors: list[str]
) -> LookupEntry | None:
    if names is not None:
        fields = dict(zip(names, row, strict=False)) if len(row) == len(names) else None
    else:
        fields = _positional(row)
    if fields is None:
        errors.append(f"line {line}: expected {len(names) if names else '3 or 4'} columns")
        return None
    entry = LookupEntry(
        line=line,
        patient_id=fields.get("patient_id", "").strip(),
        issuer=fields.get("issuer", "").strip(),
        pseudonym_id=fields.get("pseudonym_id", "").strip(),
        pseudonym_name=fields.get("pseudonym_name", "").strip(),
        date_offset_days=_parse_offset(fields.get("date_offset_days", ""), line, errors),
    )
    errors.extend(f"line {line}: {p}" for p in _entry_problems(entry))
    return entry


def parse_lookup_rows(rows: Iterable[Sequence[str]]) -> list[LookupEntry]:
    """Validate CSV rows into entries; raises :class:`LookupTableError` listing every problem."""
    entries: list[LookupEntry] = []
    errors: list[str] = []
    names: list[str] | None = None
    for line, row in enumerate(rows, start=1):
        if not any(cell.strip() for cell in row):
            continue
        if line == 1 and (names := _header(row)) is not None:
            continue
        entry = _row_entry(row, line, names, errors)
        if entry is not None:
            entries.append(entry)
    errors.extend(_duplicates(entries))
    if errors:
        raise LookupTableError(_summary(errors))
    return entries


def read_lookup_csv(path: Path) -> list[LookupEntry]:
    """Read and validate a lookup-table CSV file (UTF-8, optional BOM)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            return parse_lookup_rows(csv.reader(fh))
    except OSError as err:
        raise LookupTableError(f"cannot read {path} ({err.strerror})") from None
    except (UnicodeDecodeError, csv.Error):
        raise LookupTableError(f"{path} is not a UTF-8 CSV file") from None


def _duplicates(entries: list[LookupEntry]) -> list[str]:
    errors = []
    for label, attr in (("patient", "key"), ("pseudonym ID", "pseudonym_id")):
        first: dict[str, int] = {}
        for e in entries:
            value = getattr(e, attr)
            if value in first:
                errors.append(f"line {e.line}: same {label} as line {first[value]}")
            else:
                first[value] = e.line
    return errors


def _summary(errors: list[str]) -> str:
    shown = errors[:_MAX_ERRORS]
    more = len(errors) - len(shown)
    tail = f"\n  ... and {more} more" if more else ""
    return "lookup table refused, nothing imported:\n  " + "\n  ".join(shown) + tail


def _existing(conn: Connection, entries: list[LookupEntry]) -> tuple[dict[str, tuple], set[str]]:
    by_key: dict[str, tuple] = {}
    taken: set[str] = set()
    for start in range(0, len(entries), _CHUNK):
        chunk = entries[start : start + _CHUNK]
        rows = conn.execute(
            select(PATIENTS.c.patient_key, PATIENTS.c.pseudonym_id, PATIENTS.c.pseudonym_name,
                   PATIENTS.c.date_offset_days)
            .where(PATIENTS.c.patient_key.in_([e.key for e in chunk]))
        )
        by_key.update((r.patient_key, tuple(r)[1:]) for r in rows)
        ids = conn.execute(
            select(PATIENTS.c.pseudonym_id)
            .where(PATIENTS.c.pseudonym_id.in_([e.pseudonym_id for e in chunk]))
        )
        taken.update(r.pseudonym_id for r in ids)
    return by_key, taken


def _same(e: LookupEntry, stored: tuple) -> bool:
    pid, name, offset = stored
    offset_ok = e.date_offset_days is None or e.date_offset_days == offset
    return bool(pid == e.pseudonym_id and name == e.pseudonym_name and offset_ok)


def _plan(
    conn: Connection, entries: list[LookupEntry]
) -> tuple[list[LookupEntry], int, list[str]]:
    by_key, taken = _existing(conn, entries)
    new: list[LookupEntry] = []
    unchanged = 0
    errors: list[str] = []
    for e in entries:
        stored = by_key.get(e.key)
        if stored is not None:
            if _same(e, stored):
                unchanged += 1
            else:
                errors.append(f"line {e.line}: the patient already has other pseudonyms in "
                              "the store; they are kept (not replaced)")
        elif e.pseudonym_id in taken:
            errors.append(f"line {e.line}: the pseudonym ID is already another patient's")
        else:
            new.append(e)
    return new, unchanged, errors


def import_lookup(store: PseudonymStore, entries: list[LookupEntry]) -> ImportReport:
    """Add the entries to the store's patient table in one transaction, or none of them."""

    def work(conn: Connection) -> ImportReport:
        new, unchanged, errors = _plan(conn, entries)
        if errors:
            raise LookupTableError(_summary(errors))
        now = utcnow()
        rows = [
            {"patient_key": e.key, "original_id": e.patient_id, "original_issuer": e.issuer,
             "pseudonym_id": e.pseudonym_id, "pseudonym_name": e.pseudonym_name,
             "date_offset_days": (e.date_offset_days if e.date_offset_days is not None
                                  else store.date_offset(e.key)),
             "source": "lookup", "first_seen": now, "node_id": store.node_id}
            for e in new
        ]
        for start in range(0, len(rows), _CHUNK):
            conn.execute(insert(PATIENTS), rows[start : start + _CHUNK])
        return ImportReport(added=len(rows), unchanged=unchanged)

    return run_transaction(store.engine, work)
