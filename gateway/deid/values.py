"""Replacement values: dummies consistent with each VR (action D) and date shifting.

Dates move by the patient's offset in whole days (Retain Longitudinal Temporal Information with
Modified Dates, PS3.15 E.3.6), so every interval between two dates or date-times of one patient
survives. A shift by whole days leaves times of day unchanged, so TM values are kept and a DT keeps
its time and its UTC offset suffix (``&ZZXX``, PS3.5 Table 6.2-1) as they were.
"""

from __future__ import annotations

import datetime as dt
import re

DUMMY_TEXT = "ANONYMIZED"
DUMMY_PN = "ANONYMOUS"

# Action D: "a non-zero length value that may be a dummy value and consistent with the VR".
DUMMIES: dict[str, object] = {
    "AE": "ANONYMOUS",
    "AS": "000Y",
    "CS": DUMMY_TEXT,
    "DA": "19000101",
    "DS": "0",
    "DT": "19000101000000",
    "IS": "0",
    "LO": DUMMY_TEXT,
    "LT": DUMMY_TEXT,
    "PN": DUMMY_PN,
    "SH": DUMMY_TEXT,
    "ST": DUMMY_TEXT,
    "TM": "000000",
    "UC": DUMMY_TEXT,
    "UR": "urn:oid:2.25",
    "UT": DUMMY_TEXT,
    "AT": 0,
    "FD": 0.0,
    "FL": 0.0,
    "SL": 0,
    "SS": 0,
    "SV": 0,
    "UL": 0,
    "US": 0,
    "UV": 0,
}
BINARY_DUMMY = b"\x00\x00"

_DT = re.compile(r"^(\d{4})(\d{2})?(\d{2})?([0-9.]*)([+-]\d{4})?$")


def dummy_for(vr: str, count: int = 1) -> object:
    """A dummy of ``vr`` with ``count`` values (at least one), so the value multiplicity holds."""
    value = DUMMIES.get(vr)
    if value is None:
        return BINARY_DUMMY
    count = max(1, count)
    return value if count == 1 else [value] * count


def _shift_date(year: int, month: int, day: int, days: int) -> dt.date | None:
    try:
        return dt.date(year, month, day) + dt.timedelta(days=days)
    except (ValueError, OverflowError):
        return None


def shift_da(value: str, days: int) -> str | None:
    """A DA value moved by ``days``; ``None`` when it is not a date (the caller removes it).

    Accepts YYYYMMDD, the ACR-NEMA form YYYY.MM.DD and query ranges A-B.
    """
    v = value.strip()
    if "-" in v:
        parts = [shift_da(p, days) if p else "" for p in v.split("-", 1)]
        return None if None in parts else "-".join(p or "" for p in parts)
    v = v.replace(".", "")
    if len(v) != 8 or not v.isdigit():
        return None
    shifted = _shift_date(int(v[:4]), int(v[4:6]), int(v[6:]), days)
    return shifted.strftime("%Y%m%d") if shifted else None


def shift_dt(value: str, days: int) -> str | None:
    """A DT value moved by ``days``, keeping its precision, time of day and UTC offset.

    A DT of only a year or a year and month moves by the shift applied to its middle, rounded to
    the precision it had.
    """
    m = _DT.match(value.strip())
    if not m:
        return None
    year, month, day, rest, offset = m.groups()
    anchor = _shift_date(int(year), int(month) if month else 7, int(day) if day else 15, days)
    if anchor is None:
        return None
    if day:
        head = anchor.strftime("%Y%m%d")
    elif month:
        head = anchor.strftime("%Y%m")
    else:
        head = anchor.strftime("%Y")
    return head + (rest or "") + (offset or "")


def shift_value(vr: str, value: str, days: int) -> str | None:
    """Shift one DA/DT/TM value; TM is a time of day and is unchanged by a whole-day shift."""
    if vr == "DA":
        return shift_da(value, days)
    if vr == "DT":
        return shift_dt(value, days)
    return value
