"""The exact ground truth of a generated folder: what is identifying, where each written form of
it was planted, and which harmless text was planted where and should survive which profile."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

PROFILES = ("basic", "research")


@dataclass(frozen=True)
class Variant:
    """One identifying value written one way at one place of one instance.

    ``form`` occurs verbatim in the decoded value at ``path``; ``value`` is the canonical value
    it writes (as its own DICOM attribute holds it: "GARCÍA^ZOË", "00123-4567", "20210304")."""

    source: str  # identity field: patient.name, patient.id, patient.other_id, patient.birth_date,
    #              patient.address, patient.phone, study.date, study.accession,
    #              staff.<role>, institution.name, institution.address, specimen.id
    value: str
    form: str
    kind: str  # variant class: name.*, id.*, date.*, phone.*, address.*, institution.*
    accents: str  # "kept" | "stripped" | "none"
    case: str  # "as-is" | "upper" | "lower" | "natural"
    path: str  # attribute path, see realistic.paths
    vr: str  # the VR written ("UN" where the element is written as UN)
    local: bool  # the source value is also an attribute of the same instance


@dataclass(frozen=True)
class Harmless:
    """Text that identifies nobody, planted at ``path``; it should be in the output of every
    profile in ``kept_by`` (the profiles that keep or clean that attribute rather than remove
    or replace it), as a substring of the value once folded."""

    text: str
    path: str
    kept_by: tuple[str, ...]


@dataclass(frozen=True)
class InstanceTruth:
    file: str  # relative to Truth.root
    patient: str  # PatientTruth.key
    kind: str  # generator kind, see realistic.KINDS
    modality: str
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    charset: str  # Specific Character Set as written ("" when absent), values joined by "\"
    uids: tuple[str, ...]  # every original instance-level UID the file holds (not class UIDs)
    identity: tuple[tuple[str, str], ...]  # (source, value) held as attributes by this file
    variants: tuple[Variant, ...]
    harmless: tuple[Harmless, ...]


@dataclass(frozen=True)
class PatientTruth:
    key: str
    name: str  # Patient's Name as written (PN)
    patient_id: str
    birth_date: str
    values: tuple[tuple[str, str], ...]  # every identifying (source, value) of the patient,
    #                                      their studies and their staff
    tokens: tuple[str, ...]  # identifying words as written: name parts of the patient and
    #                          staff, address and institution words (not folded)
    studies: tuple[str, ...]  # Study Instance UIDs


@dataclass(frozen=True)
class Truth:
    seed: int
    root: Path
    patients: tuple[PatientTruth, ...]
    instances: tuple[InstanceTruth, ...]

    def variants(self) -> Iterator[tuple[InstanceTruth, Variant]]:
        for inst in self.instances:
            for v in inst.variants:
                yield inst, v

    def by_sop_instance(self) -> dict[str, InstanceTruth]:
        return {i.sop_instance_uid: i for i in self.instances}

    def patient(self, key: str) -> PatientTruth:
        return next(p for p in self.patients if p.key == key)

    def all_uids(self) -> frozenset[str]:
        return frozenset(u for i in self.instances for u in i.uids)

    def to_json(self) -> str:
        data = asdict(self)
        data["root"] = str(self.root)
        return json.dumps(data, ensure_ascii=False, indent=1)
