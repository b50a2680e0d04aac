"""The narrow interface through which the de-identification engine asks for pseudonyms.

The engine depends only on :class:`Pseudonymizer`; the database-backed store implements it, and
:class:`InMemoryPseudonymizer` implements it for tests and dry runs. Implementations must be
deterministic: the same original always gives the same replacement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gateway.pseudonyms import derive


@dataclass(frozen=True)
class PatientPseudonym:
    """What replaces one patient's identity, and that patient's date shift."""

    patient_id: str
    patient_name: str
    # Added to every date of this patient (negative shifts into the past); never zero.
    date_offset_days: int


class PseudonymUnavailable(Exception):
    """No pseudonym may be produced (for example: a site lookup table has no entry and the
    policy says quarantine). The message must not contain the original value."""


class Pseudonymizer(Protocol):
    """Maps originals to replacements, consistently."""

    def uid(self, original: str) -> str:
        """The replacement of a UID; well-known UIDs of the standard come back unchanged."""
        ...

    def patient(self, patient_id: str, issuer: str, patient_name: str) -> PatientPseudonym:
        """The pseudonym and date offset of one patient (keyed by ID and issuer)."""
        ...

    def identifier(self, kind: str, original: str) -> str:
        """The replacement of another identifier: ``kind`` is e.g. "accession", "study_id"."""
        ...


class InMemoryPseudonymizer:
    """A Pseudonymizer that derives everything from a secret and keeps a map in memory."""

    def __init__(self, secret: bytes = b"test-secret", offset_range: tuple[int, int] = (-3650, -1)):
        self._secret = secret
        self._range = offset_range
        self.map: dict[tuple[str, str], str] = {}

    def uid(self, original: str) -> str:
        if derive.is_well_known_uid(original):
            return original
        new = derive.uid_for(self._secret, original)
        self.map[("uid", original)] = new
        return new

    def patient(self, patient_id: str, issuer: str, patient_name: str) -> PatientPseudonym:
        key = derive.patient_key(patient_id, issuer)
        pid = derive.patient_id_for(self._secret, key)
        p = PatientPseudonym(
            patient_id=pid,
            patient_name=derive.patient_name_for(self._secret, key),
            date_offset_days=derive.date_offset_for(self._secret, key, *self._range),
        )
        self.map[("patient", key)] = pid
        return p

    def identifier(self, kind: str, original: str) -> str:
        new = derive.identifier_for(self._secret, kind, original)
        self.map[(kind, original)] = new
        return new
