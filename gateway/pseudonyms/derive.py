"""Keyed, deterministic derivations (DESIGN.md decision 4); pure functions of secret and input.

A new UID is ``2.25.`` followed by the integer of the first 16 bytes of
HMAC-SHA256(secret, original UID) (PS3.5 B.2: a UUID-derived UID under the 2.25 root). Every
worker and node with the same secret derives the same answer without a lock or a round trip.
Unsalted hashes are open to dictionary attacks and are never used.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import lru_cache
from typing import Literal

from pydicom.uid import UID_dictionary

_WELL_KNOWN = frozenset(UID_dictionary)


def _mac(secret: bytes, domain: str, value: str) -> bytes:
    return hmac.new(secret, f"{domain}\x00{value}".encode(), hashlib.sha256).digest()


def is_well_known_uid(uid: str) -> bool:
    """A UID defined by the standard (SOP classes, transfer syntaxes, coding schemes...)."""
    return uid in _WELL_KNOWN


def uid_for(secret: bytes, original: str) -> str:
    """``2.25.<int of the first 16 bytes of HMAC-SHA256(secret, original)>``.

    The UID is hashed as its UTF-8 bytes: for every valid UID (ASCII digits and dots) that is
    its ASCII form; a malformed non-ASCII value still maps injectively (no ``?`` replacement).
    """
    digest = hmac.new(secret, original.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def patient_key(patient_id: str, issuer: str) -> str:
    """The identity a patient pseudonym is keyed by: Patient ID qualified by its issuer."""
    return f"{issuer}\\{patient_id}"


def _token(secret: bytes, domain: str, value: str, length: int) -> str:
    raw = base64.b32encode(_mac(secret, domain, value)).decode("ascii")
    return raw[:length]


PatientIdForm = Literal["base32", "digits"]


def patient_id_for(
    secret: bytes, key: str, prefix: str = "P", length: int = 12, form: PatientIdForm = "base32"
) -> str:
    """A generated Patient ID: ``prefix`` + ``length`` characters derived from the HMAC.

    ``base32`` uses A-Z and 2-7 (60 bits at length 12); ``digits`` uses 0-9 (about 40 bits at
    length 12), for sites whose systems expect numeric IDs. The store detects the rare
    collision of two patients on one pseudonym and refuses it rather than merging them.
    """
    if length < 1 or length > 40:
        raise ValueError("patient ID length must be 1-40")
    if form == "digits":
        number = int.from_bytes(_mac(secret, "patient-id", key), "big") % 10**length
        return prefix + str(number).zfill(length)
    return prefix + _token(secret, "patient-id", key, length)


def patient_name_for(secret: bytes, key: str, prefix: str = "ANON") -> str:
    """A generated Patient Name ``prefix^TOKEN`` (family^given, PS3.5 6.2 PN)."""
    return f"{prefix}^{_token(secret, 'patient-name', key, 10)}"


def identifier_for(secret: bytes, kind: str, original: str, length: int = 14) -> str:
    """A replacement for a short identifier (SH: at most 16 characters)."""
    return _token(secret, kind, original, length)


@lru_cache(maxsize=65536)
def _offset(secret: bytes, key: str, low: int, high: int) -> int:
    span = high - low + 1
    n = int.from_bytes(_mac(secret, "date-offset", key)[:8], "big")
    value = low + n % span
    if value == 0:  # never zero: a zero shift would leave real dates in place
        value = low if low != 0 else high
    return value


def date_offset_for(secret: bytes, key: str, low: int, high: int) -> int:
    """A per-patient shift in days within [low, high], never zero."""
    if low > high or (low == 0 == high):
        raise ValueError("date offset range must be non-empty and not only zero")
    return _offset(secret, key, low, high)
