"""The state the builders share: a patient with their studies and series, seeded choices of
variant forms, deterministic UIDs, and the modules every composite IOD has (PS3.3 C.7)."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from pydicom import Dataset
from pydicom.charset import convert_encodings, encode_string
from pydicom.sequence import Sequence

from realistic import identity as ident
from realistic.identity import Form, Person, Template
from realistic.plant import Keep, Part, Planter

ROOT = "1.2.826.0.1.3680043.10.997"  # a made-up root for the synthetic originals


class Uids:
    """Deterministic UIDs under :data:`ROOT`: one counter per generated folder and seed."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.count = 0

    def new(self) -> str:
        self.count += 1
        return f"{ROOT}.1.{self.seed}.{self.count}"


@dataclass
class Ref:
    """An instance another one may reference."""

    sop_class: str
    sop_instance: str
    series: str
    frame_of_reference: str = ""
    rows: int = 0
    columns: int = 0


@dataclass
class SeriesCtx:
    uid: str
    number: int
    modality: str
    description: list[Part]
    protocol: list[Part] = field(default_factory=list)
    frame_of_reference: str = ""
    operator: str = "operator"


@dataclass
class StudyCtx:
    index: int
    uid: str
    date: str
    time: str
    accession: str
    study_id: str
    charset: str  # values joined by "\"; "" for none
    flavor: str  # rt | mr | us | pet
    description: list[Part]
    procedure: tuple[str, str, list[Part]]  # code value, scheme, meaning
    request: dict[str, list[Part]]
    refs: dict[str, list[Ref]] = field(default_factory=dict)
    series: list[SeriesCtx] = field(default_factory=list)
    specimen: tuple[str, str] = ("", "")  # container/specimen identifier, Specimen UID

    @property
    def encodings(self) -> list[str]:
        return convert_encodings(self.charset.split("\\") if self.charset else ["ISO_IR 6"])


class PatientCtx:
    """One synthetic patient and the seeded choice of how each value is written next."""

    def __init__(self, template: Template, index: int, seed: int, uids: Uids) -> None:
        self.t = template
        self.index = index
        self.rng = random.Random(f"{seed}:{template.key}")
        self.uids = uids
        self._cyclers: dict[str, ident.Cycler] = {}
        self.studies: list[StudyCtx] = []

    def _next(self, key: str, items: tuple[object, ...]) -> object:
        if key not in self._cyclers:
            self._cyclers[key] = ident.Cycler(self.rng, items)
        return self._cyclers[key].next()

    def person(self, role: str) -> Person:
        return self.t.name if role == "patient" else self.t.staff[role]

    def name(self, role: str = "patient", kinds: tuple[str, ...] | None = None) -> Form:
        """The next written form of a person's name (each class in turn)."""
        person = self.person(role)
        if kinds is None:
            kinds = ident.NAME_KINDS if role != "patient" else ident.NAME_KINDS[:-1]
            if person.ideographic:
                kinds += ident.IDEOGRAPHIC_KINDS[:2]
            if person.phonetic:
                kinds += ident.IDEOGRAPHIC_KINDS[2:]
        kind = str(self._next(f"{role}.kind.{kinds}", kinds))
        case = str(self._next(f"{role}.case", ident.CASES))
        accents = bool(self._next(f"{role}.accents", (False, True)))
        source = "patient.name" if role == "patient" else f"staff.{role}"
        return ident.name_form(source, person, kind, case, accents)

    def shorter(self, form: Form) -> Form:
        """The family-name-alone form of a name form (other forms unchanged)."""
        if not form.source.startswith(("patient.name", "staff.")):
            return form
        role = "patient" if form.source == "patient.name" else form.source[len("staff."):]
        case = form.case if form.case in ident.CASES else "upper"
        return ident.name_form(form.source, self.person(role), "name.family", case,
                               form.accents == "stripped")

    def ascii_name(self, role: str = "patient", kinds: tuple[str, ...] | None = None) -> Form:
        """A form in ASCII capitals, for CS and AE-like values."""
        person = self.person(role)
        kind = str(self._next(f"{role}.ascii", kinds or ("name.family_given",
                                                         "name.family_initial", "name.family")))
        form = ident.name_form(f"staff.{role}" if role != "patient" else "patient.name",
                               person, kind, "upper", True)
        return form

    def ident_(self, source: str, value: str) -> Form:
        return ident.id_form(source, value, str(self._next(source, ident.ID_KINDS)))

    def patient_id(self) -> Form:
        return self.ident_("patient.id", self.t.patient_id)

    def date(self, source: str, value: str) -> Form:
        return ident.date_form(source, value, str(self._next(f"date.{source}", ident.DATE_KINDS)))

    def birth_date(self) -> Form:
        return self.date("patient.birth_date", self.t.birth_date)

    def phone(self) -> Form:
        kind = str(self._next("phone", ident.PHONE_KINDS))
        return ident.phone_form("patient.phone", self.t.phone, self.t.phone_national, kind)

    def address(self) -> Form:
        kind = str(self._next("address", ident.ADDRESS_KINDS))
        parts = self.t.address.split("^")
        text = self.t.street if kind == "address.street" else f"{parts[0]}, {parts[1]}"
        case = str(self._next("address.case", ("natural", "upper")))
        return ident.text_form("patient.address", self.t.address, text, kind,
                               case="as-is" if case == "natural" else case,
                               accents=bool(self._next("address.accents", (False, True))))

    def institution(self) -> Form:
        kind = str(self._next("institution", ident.INSTITUTION_KINDS))
        text = self.t.institution if kind == "institution.full" else self.t.institution_short
        case = str(self._next("institution.case", ("as-is", "upper")))
        return ident.text_form("institution.name", self.t.institution, text, kind, case=case,
                               accents=bool(self._next("institution.accents", (False, True))))

    def any_identity(self, study: StudyCtx) -> Form:
        """A form of any identifying value of the patient, each kind of value in turn."""
        which = str(self._next("any", ("name", "id", "birth", "study_date", "accession",
                                       "referring", "phone", "address", "reading")))
        if which == "name":
            return self.name()
        if which == "id":
            return self.patient_id()
        if which == "birth":
            return self.birth_date()
        if which == "study_date":
            return self.date("study.date", study.date)
        if which == "accession":
            return self.ident_("study.accession", study.accession)
        if which == "phone":
            return self.phone()
        if which == "address":
            return self.address()
        return self.name(which)

    def other_study(self, study: StudyCtx) -> StudyCtx:
        """An earlier study of the patient (a "prior"), or another one."""
        others = [s for s in self.studies if s is not study]
        return others[0] if others else study


@dataclass
class InstanceCtx:
    """What one builder needs: its patient, study, series, number and a planter."""

    patient: PatientCtx
    study: StudyCtx
    series: SeriesCtx
    number: int
    sop_class: str
    kind: str
    ts: str = ""  # the transfer syntax the file is written in
    sop_instance: str = ""
    planter: Planter = field(default_factory=Planter)

    @property
    def implicit(self) -> bool:
        """Written in Implicit VR: private elements of unknown creators are read as UN."""
        return self.ts == "1.2.840.10008.1.2"

    @property
    def t(self) -> Template:
        return self.patient.t

    @property
    def rng(self) -> random.Random:
        return self.patient.rng

    def uid(self) -> str:
        return self.patient.uids.new()

    def text(self, path: str, vr: str, *parts: Part) -> str:
        """Plant ``parts`` at ``path``; a name that makes the value too long for its VR is
        written by its family name alone."""
        self.planter.encodings = self.study.encodings
        if not self.planter.fits(vr, *parts):
            parts = tuple(self.patient.shorter(p) if isinstance(p, Form) else p for p in parts)
        return self.planter.text(path, vr, *parts)

    def hold(self, source: str, value: str) -> str:
        return self.planter.hold(source, value)

    def pn(self, role: str) -> str:
        person = self.patient.person(role)
        return self.hold("patient.name" if role == "patient" else f"staff.{role}", person.pn())

    def encode(self, text: str) -> bytes:
        """``text`` in the instance's character set (for values written as UN)."""
        return encode_string(text, self.study.encodings)


Builder = Callable[[InstanceCtx], Dataset]


def code(value: str, scheme: str, meaning: str) -> Dataset:
    """A Code Sequence Macro item (PS3.3 Table 8.8-1)."""
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def seq(*items: Dataset) -> Sequence:
    return Sequence(list(items))


def _time(rng: random.Random) -> str:
    return f"{rng.randint(7, 18):02d}{rng.randint(0, 59):02d}{rng.randint(0, 59):02d}"


def add_minutes(time: str, minutes: int) -> str:
    t = dt.datetime(2000, 1, 1, int(time[:2]), int(time[2:4]), int(time[4:6]))
    t += dt.timedelta(minutes=minutes)
    return t.strftime("%H%M%S")


# ------------------------------------------------------------------ common modules


def sop_common(ds: Dataset, c: InstanceCtx) -> None:
    """SOP Common (C.12.1) with the study's character set."""
    if c.study.charset:
        values = c.study.charset.split("\\")
        ds.SpecificCharacterSet = values if len(values) > 1 else values[0]
    ds.SOPClassUID = c.sop_class
    ds.SOPInstanceUID = c.sop_instance
    ds.InstanceCreationDate = c.study.date
    ds.InstanceCreationTime = add_minutes(c.study.time, 30 + c.series.number)
    ds.InstanceNumber = c.number


def patient(ds: Dataset, c: InstanceCtx, contact: bool = False) -> None:
    """Patient (C.7.1.1) and Patient Study (C.7.2.2); ``contact`` adds address and phone as the
    RIS of some modalities copies them."""
    t = c.t
    ds.PatientName = c.pn("patient")
    ds.PatientID = c.hold("patient.id", t.patient_id)
    ds.IssuerOfPatientID = t.issuer
    ds.PatientBirthDate = c.hold("patient.birth_date", t.birth_date)
    ds.PatientSex = t.sex
    other = Dataset()
    other.PatientID = c.hold("patient.other_id", t.other_id)
    other.TypeOfPatientID = "TEXT"
    ds.OtherPatientIDsSequence = seq(other)
    if contact:
        ds.PatientAddress = c.hold("patient.address", t.address)
        ds.PatientTelephoneNumbers = c.hold("patient.phone", t.phone)
    age = int(c.study.date[:4]) - int(t.birth_date[:4])
    ds.PatientAge = f"{age:03d}Y"
    ds.PatientWeight = 50 + c.patient.index * 3


def study(ds: Dataset, c: InstanceCtx) -> None:
    """General Study (C.7.2.1) with a locally coded procedure."""
    s = c.study
    ds.StudyInstanceUID = s.uid
    ds.StudyDate = c.hold("study.date", s.date)
    ds.StudyTime = s.time
    ds.ReferringPhysicianName = c.pn("referring")
    ds.StudyID = s.study_id
    ds.AccessionNumber = c.hold("study.accession", s.accession)
    ds.StudyDescription = c.text("StudyDescription", "LO", *s.description)
    value, scheme, meaning = s.procedure
    ds.ProcedureCodeSequence = seq(code(value, scheme, c.text(
        "ProcedureCodeSequence[0]>CodeMeaning", "LO", *meaning)))
    ds.NameOfPhysiciansReadingStudy = c.pn("reading")
    if "history" in s.request:
        ds.AdditionalPatientHistory = c.text("AdditionalPatientHistory", "LT",
                                             *s.request["history"])


def series(ds: Dataset, c: InstanceCtx, modality: str, request: bool = True) -> None:
    """General Series (C.7.3.1) with a request (C.4.10 Request Attributes Sequence)."""
    se = c.series
    ds.Modality = modality
    ds.SeriesInstanceUID = se.uid
    ds.SeriesNumber = se.number
    ds.SeriesDate = c.study.date
    ds.SeriesTime = add_minutes(c.study.time, se.number)
    ds.SeriesDescription = c.text("SeriesDescription", "LO", *se.description)
    ds.OperatorsName = c.pn(se.operator)
    ds.PerformingPhysicianName = c.pn("performing")
    if se.protocol:
        ds.ProtocolName = c.text("ProtocolName", "LO", *se.protocol)
        ds.PerformedProtocolCodeSequence = seq(code(f"PP{se.number}", "local", c.text(
            "PerformedProtocolCodeSequence[0]>CodeMeaning", "LO", *se.protocol)))
    if request:
        req = c.study.request
        item = Dataset()
        item.RequestedProcedureID = c.study.accession[-6:]
        item.RequestedProcedureDescription = c.text(
            "RequestAttributesSequence[0]>RequestedProcedureDescription", "LO",
            *req["description"])
        item.ScheduledProcedureStepID = f"{c.study.accession[-6:]}1"
        item.ScheduledProtocolCodeSequence = seq(code(f"P{c.study.index}", "L", c.text(
            "RequestAttributesSequence[0]>ScheduledProtocolCodeSequence[0]>CodeMeaning", "LO",
            *req["protocol"])))
        item.RequestingPhysician = c.pn("requesting")
        item.ReasonForTheRequestedProcedure = c.text(
            "RequestAttributesSequence[0]>ReasonForTheRequestedProcedure", "LO",
            *req["reason"])
        ds.RequestAttributesSequence = seq(item)
        ds.PerformedProcedureStepID = f"{c.study.accession[-6:]}{se.number}"
        ds.PerformedProcedureStepStartDate = c.study.date
        ds.PerformedProcedureStepStartTime = c.study.time
        ds.PerformedProcedureStepDescription = c.text(
            "PerformedProcedureStepDescription", "LO", *req["performed"])


def equipment(ds: Dataset, c: InstanceCtx, manufacturer: str, model: str) -> None:
    """General Equipment (C.7.5.1) and Enhanced General Equipment (C.7.5.2)."""
    t = c.t
    ds.Manufacturer = manufacturer
    ds.InstitutionName = c.hold("institution.name", t.institution)
    ds.InstitutionAddress = c.hold("institution.address", t.institution_address)
    ds.StationName = t.station
    ds.InstitutionalDepartmentName = t.department
    ds.ManufacturerModelName = model
    ds.DeviceSerialNumber = f"{abs(hash_text(t.key + model)) % 900000 + 100000}"
    ds.SoftwareVersions = "VB20A"


def hash_text(text: str) -> int:
    """A stable small hash (``hash()`` of a str changes between runs)."""
    h = 0
    for ch in text:
        h = (h * 131 + ord(ch)) % 1_000_000_007
    return h


def frame_of_reference(ds: Dataset, c: InstanceCtx) -> None:
    ds.FrameOfReferenceUID = c.series.frame_of_reference
    ds.PositionReferenceIndicator = ""


def image_plane(ds: Dataset, z: float, spacing: float = 0.8) -> None:
    ds.ImagePositionPatient = [-25.6, -25.6, z]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [spacing, spacing]


def general_image(ds: Dataset, c: InstanceCtx, orientation: bool = True) -> None:
    ds.ContentDate = c.study.date
    ds.ContentTime = add_minutes(c.study.time, c.series.number)
    if orientation:
        ds.PatientOrientation = ["L", "P"]
    ds.AcquisitionNumber = 1


def new_study(p: PatientCtx, index: int, flavor: str, date: str,
              desc: Callable[[PatientCtx, StudyCtx], None]) -> StudyCtx:
    """A study of ``p`` whose study-level texts ``desc`` fills in."""
    t = p.t
    charset = t.charsets[index % len(t.charsets)]
    accession = f"{t.accession_prefix}{date[2:4]}-{p.rng.randint(1, 99999):07d}"
    s = StudyCtx(index=index, uid=p.uids.new(), date=date, time=_time(p.rng),
                 accession=accession, study_id=f"{p.rng.randint(1000, 9999)}",
                 charset=charset, flavor=flavor, description=[], procedure=("", "", []),
                 request={})
    p.studies.append(s)
    desc(p, s)
    return s


def new_series(p: PatientCtx, s: StudyCtx, modality: str, description: list[Part],
               protocol: list[Part] | None = None, operator: str = "operator") -> SeriesCtx:
    se = SeriesCtx(uid=p.uids.new(), number=len(s.series) + 1, modality=modality,
                   description=description, protocol=protocol or [],
                   frame_of_reference="", operator=operator)
    s.series.append(se)
    return se


def K(text: str) -> Keep:
    """Harmless text (a short name that reads as a marker in the text templates)."""
    return Keep(text)
