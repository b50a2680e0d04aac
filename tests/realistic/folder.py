"""Patients, studies and series in the order a hospital produces them, and the folder of Part-10
files with its truth."""

from __future__ import annotations

import datetime as dt
import io
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)

from realistic import documents, images, multiframe, rt
from realistic.context import (
    ROOT,
    Builder,
    InstanceCtx,
    K,
    PatientCtx,
    Ref,
    StudyCtx,
    Uids,
    new_series,
    new_study,
)
from realistic.identity import TEMPLATES, Template
from realistic.plant import Part
from realistic.truth import InstanceTruth, PatientTruth, Truth

IMPLEMENTATION_CLASS_UID = f"{ROOT}.0.1"


@dataclass(frozen=True)
class Kind:
    """A kind of instance the generator makes: its SOP class, modality, builder and the transfer
    syntaxes a series of it may be written in."""

    name: str
    sop_class: str
    modality: str
    build: Builder
    syntaxes: tuple[str, ...]


_PLAIN = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("CT", images.CT_IMAGE, "CT", images.ct,
         (ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless, JPEGLSLossless)),
    Kind("MR", images.MR_IMAGE, "MR", images.mr,
         (ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEG2000Lossless)),
    Kind("MR-ENHANCED", multiframe.ENHANCED_MR, "MR", multiframe.enhanced_mr,
         (ExplicitVRLittleEndian,)),
    Kind("PT", images.PET_IMAGE, "PT", images.pet, _PLAIN),
    Kind("US", images.US_IMAGE, "US", images.us, (ExplicitVRLittleEndian, RLELossless)),
    Kind("US-MULTIFRAME", images.US_MULTIFRAME, "US", images.us_multiframe, (JPEGBaseline8Bit,)),
    Kind("SC", images.SC_IMAGE, "OT", images.sc, _PLAIN),
    Kind("SR-BASIC", documents.BASIC_TEXT_SR, "SR", documents.sr, _PLAIN),
    Kind("SR-ENHANCED", documents.ENHANCED_SR, "SR", documents.sr, _PLAIN),
    Kind("SR-COMPREHENSIVE", documents.COMPREHENSIVE_SR, "SR", documents.sr, _PLAIN),
    Kind("KO", documents.KOS, "KO", documents.kos, _PLAIN),
    Kind("PR", documents.GSPS, "PR", documents.gsps, _PLAIN),
    Kind("RTSTRUCT", rt.RTSTRUCT, "RTSTRUCT", rt.structure_set, _PLAIN),
    Kind("RTPLAN", rt.RTPLAN, "RTPLAN", rt.plan, _PLAIN),
    Kind("RTDOSE", rt.RTDOSE, "RTDOSE", rt.dose, _PLAIN),
    Kind("SEG", multiframe.SEG, "SEG", multiframe.segmentation, (ExplicitVRLittleEndian,)),
    Kind("SM-LABEL", multiframe.WSI, "SM", multiframe.slide_label, (JPEGBaseline8Bit,)),
    Kind("SM-OVERVIEW", multiframe.WSI, "SM", multiframe.slide_overview, (JPEGBaseline8Bit,)),
)}


# ---------------------------------------------------------------- study-level texts


def _rt_texts(p: PatientCtx, s: StudyCtx) -> None:
    s.description = [K("CT THORAX RT PLANNING"), " ", p.name()]
    s.procedure = ("CTRTP", "99ACME", [K("CT RT PLANNING THORAX"), " ", p.name()])
    s.request = {
        "description": [K("RT planning CT"), " for ", p.name()],
        "protocol": [K("CHEST"), " 3mm ", p.patient_id()],
        "reason": ["Known ", K("Left lung"), " lesion, DOB ", p.birth_date()],
        "performed": [K("CT THORAX"), " ", p.ident_("study.accession", s.accession)],
        "history": ["Lives at ", p.address(), ", tel ", p.phone()],
    }


def _mr_texts(p: PatientCtx, s: StudyCtx) -> None:
    prior = p.other_study(s)
    s.description = [K("MR BRAIN W/O CONTRAST"), " - ", p.name()]
    s.procedure = ("MRBR", "99ACME", [K("MR BRAIN"), " ", p.name("referring")])
    s.request = {
        "description": [K("MR head"), " after CT of ", p.date("study.date", prior.date)],
        "protocol": [K("T1 MPRAGE SAG"), " ", p.name()],
        "reason": ["Follow-up ", p.name(), " after ", K("PTV 60Gy")],
        "performed": [K("MR BRAIN"), " ", p.ident_("study.accession", s.accession)],
        "history": ["Tel. ", p.phone(), " (", p.institution(), ")"],
    }


def _us_texts(p: PatientCtx, s: StudyCtx) -> None:
    s.description = [K("US ABDOMEN"), " ", p.date("study.date", s.date)]
    s.procedure = ("USABD", "99ACME", [K("US ABDOMEN"), " ", p.name()])
    s.request = {
        "description": [K("Liver segment"), " check ", p.name()],
        "protocol": [K("ABDOMEN"), " ", p.ident_("study.accession", s.accession)],
        "reason": ["Pain, see ", p.name("referring")],
        "performed": [K("US ABDOMEN"), " ", p.patient_id()],
    }


def _pet_texts(p: PatientCtx, s: StudyCtx) -> None:
    s.description = [K("PET-CT WHOLE BODY"), " ", p.name()]
    s.procedure = ("PETWB", "99ACME", [K("PET-CT WHOLE BODY"), " ", p.patient_id()])
    s.request = {
        "description": [K("PET staging"), " ", p.date("study.date", p.other_study(s).date)],
        "protocol": [K("WHOLE BODY"), " ", p.name()],
        "reason": ["Staging for ", p.name(), " ", p.birth_date()],
        "performed": [K("PET-CT"), " ", p.ident_("study.accession", s.accession)],
    }


def _sm_texts(p: PatientCtx, s: StudyCtx) -> None:
    s.description = [K("LIVER BIOPSY"), " ", p.ident_("study.accession", s.accession)]
    s.procedure = ("PATHLB", "99ACME", [K("LIVER BIOPSY"), " ", p.name()])
    s.request = {
        "description": [K("Liver segment"), " biopsy ", p.name()],
        "protocol": [K("H&E"), " ", p.patient_id()],
        "reason": ["Lesion, ", p.name("requesting")],
        "performed": [K("WSI SCAN"), " ", p.date("study.date", s.date)],
    }


_TEXTS: dict[str, Callable[[PatientCtx, StudyCtx], None]] = {
    "rt": _rt_texts, "mr": _mr_texts, "us": _us_texts, "pet": _pet_texts, "sm": _sm_texts}


# The series of a study of each flavor: (kind, instances; 0 for the number of CT slices asked).
_SERIES: dict[str, list[tuple[str, int]]] = {
    "rt": [("CT", 0), ("RTSTRUCT", 1), ("RTPLAN", 1), ("RTDOSE", 1), ("SEG", 1), ("PR", 1),
           ("KO", 1), ("SR-COMPREHENSIVE", 1)],
    "mr": [("MR", 2), ("MR-ENHANCED", 1), ("SR-BASIC", 1)],
    "us": [("US", 1), ("US-MULTIFRAME", 1), ("SC", 1), ("SR-ENHANCED", 1)],
    "pet": [("PT", 2), ("SR-ENHANCED", 1)],
    "sm": [("SM-LABEL", 1), ("SM-OVERVIEW", 1)],
}


def _series_texts(p: PatientCtx, s: StudyCtx, kind: str) -> tuple[list[Part], list[Part], str]:
    """Series Description, Protocol Name and the operator role of a series of ``kind``."""
    table: dict[str, tuple[list[Part], list[Part]]] = {
        "CT": ([K("Thorax 3.0 B31f"), " ", p.name()], [K("CHEST"), " ", p.name()]),
        "MR": ([K("T1 MPRAGE SAG")], [K("T1 MPRAGE SAG"), " ", p.name()]),
        "MR-ENHANCED": ([K("T1 MPRAGE SAG"), " ", p.name()], [K("T1 MPRAGE SAG")]),
        "PT": ([K("PET WB AC"), " ", p.date("study.date", s.date)], [K("WHOLE BODY")]),
        "US": ([K("Liver segment"), " ", p.name()], [K("ABDOMEN")]),
        "US-MULTIFRAME": ([K("Left lung"), " cine ", p.patient_id()], [K("ABDOMEN")]),
        "SC": ([K("Dose report"), " ", p.name()], []),
        "RTSTRUCT": ([K("GTV"), " contours ", p.name()], []),
        "RTPLAN": ([K("PTV 60Gy"), " plan ", p.name("reading")], []),
        "RTDOSE": ([K("PTV 60Gy"), " dose"], []),
        "SEG": ([K("Liver segment"), " ", p.name()], []),
        "PR": ([K("CHEST"), " key images ", p.name("reading")], []),
        "KO": ([K("Liver segment"), " teaching ", p.name()], []),
        "SM-LABEL": ([K("Label"), " ", p.name()], []),
        "SM-OVERVIEW": ([K("Overview"), " ", p.name()], []),
    }
    if kind.startswith("SR"):
        return [K("Report"), " ", p.name("reading")], [], "reading"
    desc, protocol = table[kind]
    return desc, protocol, "reading" if kind in ("PR", "KO") else "operator"


def _dates(rng: random.Random, count: int) -> list[str]:
    start = dt.date(2020, 1, 6)
    days = sorted(rng.sample(range(0, 1400), count))
    return [(start + dt.timedelta(days=d)).strftime("%Y%m%d") for d in days]


def _flavors(index: int) -> list[str]:
    return ["rt", "mr", "us"] if index % 2 == 0 else ["rt", "mr", "pet", "sm"]


@dataclass
class Planned:
    """One instance to build: its context and kind."""

    ctx: InstanceCtx
    kind: Kind


def _plan_patient(p: PatientCtx, ct_slices: int) -> list[Planned]:
    out: list[Planned] = []
    flavors = _flavors(p.index)
    for index, (flavor, date) in enumerate(zip(flavors, _dates(p.rng, len(flavors)),
                                               strict=True)):
        s = new_study(p, index, flavor, date, _TEXTS[flavor])
        if flavor == "sm":
            s.specimen = (f"S{date[2:4]}-{p.rng.randint(1000, 99999):05d}", p.uids.new())
        for kind_name, count in _SERIES[flavor]:
            kind = KINDS[kind_name]
            desc, protocol, operator = _series_texts(p, s, kind_name)
            se = new_series(p, s, kind.modality, desc, protocol, operator)
            se.frame_of_reference = _frame_of_reference(p, s, kind_name)
            ts = kind.syntaxes[p.rng.randrange(len(kind.syntaxes))]
            for number in range(1, (count or ct_slices) + 1):
                ctx = InstanceCtx(patient=p, study=s, series=se, number=number,
                                  sop_class=kind.sop_class, kind=kind_name, ts=ts)
                ctx.sop_instance = p.uids.new()
                out.append(Planned(ctx, kind))
    return out


def _frame_of_reference(p: PatientCtx, s: StudyCtx, kind: str) -> str:
    """One frame of reference per study for its volumes (CT, RT, SEG share the planning CT's)."""
    key = "slide" if kind.startswith("SM") else "patient"
    existing = s.refs.get(f"for:{key}")
    if existing:
        return existing[0].frame_of_reference
    uid = p.uids.new()
    s.refs[f"for:{key}"] = [Ref("", "", "", uid)]
    return uid


def _remember(ctx: InstanceCtx, ds: Dataset) -> None:
    """Make the built instance referable by the instances built after it."""
    ref = Ref(ctx.sop_class, ctx.sop_instance, ctx.series.uid, ctx.series.frame_of_reference,
              int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0))
    ctx.study.refs.setdefault(ctx.kind, []).append(ref)
    if ctx.kind in ("CT", "MR", "PT", "US"):
        ctx.study.refs.setdefault("image", []).append(ref)


# ---------------------------------------------------------------- encoding and files


def _file_meta(ds: Dataset, ts: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = UID(ts)
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = "REALISTIC_1"
    meta.SourceApplicationEntityTitle = "MODALITY1"
    return meta


def _jpeg_frames(ds: Dataset) -> list[bytes]:
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    rows, cols = ds.Rows, ds.Columns
    arr = np.frombuffer(ds.PixelData, dtype=np.uint8).reshape(frames, rows, cols, 3)
    out = []
    for frame in arr:
        buf = io.BytesIO()
        Image.fromarray(frame, "RGB").save(buf, "JPEG", quality=90, subsampling=1)
        out.append(buf.getvalue())
    return out


def encode(ds: Dataset, ts: str) -> Dataset:
    """``ds`` with its pixel data encoded in ``ts`` (a copy when anything changes)."""
    if ts in (ExplicitVRLittleEndian, ImplicitVRLittleEndian) or "PixelData" not in ds:
        return ds
    ds = ds.copy()
    if ts == JPEGBaseline8Bit:
        frames = _jpeg_frames(ds)
        ds.PixelData = encapsulate(frames)
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
        ds.PhotometricInterpretation = "YBR_FULL_422"
        ds.LossyImageCompression = "01"
        raw = ds.Rows * ds.Columns * 3 * len(frames)
        ds.LossyImageCompressionRatio = f"{raw / sum(len(f) for f in frames):.2f}"
        ds.LossyImageCompressionMethod = "ISO_10918_1"
        return ds
    ds.file_meta = _file_meta(ds, ExplicitVRLittleEndian)
    ds.compress(ts, generate_instance_uid=False,
                encoding_plugin="pydicom" if ts == RLELossless else "")
    return ds


def write(ds: Dataset, path: Path, ts: str) -> None:
    """A Part-10 file of ``ds`` in ``ts``."""
    ds = encode(ds, ts)
    ds.file_meta = _file_meta(ds, ts)
    ds.preamble = b"\0" * 128
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, implicit_vr=ts == ImplicitVRLittleEndian, little_endian=True,
               enforce_file_format=True)


def _original_uids(ds: Dataset) -> tuple[str, ...]:
    found: dict[str, None] = {}

    def walk(d: Dataset) -> None:
        for elem in d:
            if elem.VR == "SQ":
                for item in elem.value:
                    walk(item)
            elif elem.VR == "UI":
                values = elem.value if isinstance(elem.value, list) else [elem.value]
                for v in values:
                    if str(v).startswith(ROOT + "."):
                        found[str(v)] = None

    walk(ds)
    return tuple(found)


def _truth(ctx: InstanceCtx, ds: Dataset, file: str) -> InstanceTruth:
    return InstanceTruth(
        file=file, patient=ctx.t.key, kind=ctx.kind, modality=str(ds.Modality),
        sop_class_uid=ctx.sop_class, sop_instance_uid=ctx.sop_instance,
        study_instance_uid=ctx.study.uid, series_instance_uid=ctx.series.uid,
        transfer_syntax_uid=ctx.ts, charset=ctx.study.charset,
        uids=_original_uids(ds), identity=tuple(ctx.planter.identity),
        variants=ctx.planter.variants(), harmless=tuple(ctx.planter.harmless))


def _patient_truth(p: PatientCtx) -> PatientTruth:
    t: Template = p.t
    values: dict[tuple[str, str], None] = {}
    for key, value in (("patient.name", t.name.pn()), ("patient.id", t.patient_id),
                       ("patient.other_id", t.other_id), ("patient.birth_date", t.birth_date),
                       ("patient.address", t.address), ("patient.phone", t.phone),
                       ("institution.name", t.institution),
                       ("institution.address", t.institution_address)):
        values[(key, value)] = None
    for role, person in t.staff.items():
        values[(f"staff.{role}", person.pn())] = None
    for s in p.studies:
        values[("study.date", s.date)] = None
        values[("study.accession", s.accession)] = None
        if s.specimen[0]:
            values[("specimen.id", s.specimen[0])] = None
    tokens = (*t.name.words(), *t.staff_words(), *t.address_words, *t.institution_words)
    return PatientTruth(key=t.key, name=t.name.pn(), patient_id=t.patient_id,
                        birth_date=t.birth_date, values=tuple(values), tokens=tokens,
                        studies=tuple(s.uid for s in p.studies))


def _templates(seed: int, patients: int | None) -> list[Template]:
    if patients is None or patients >= len(TEMPLATES):
        return list(TEMPLATES)
    chosen = list(TEMPLATES)
    random.Random(seed).shuffle(chosen)
    return chosen[:patients]


def _make(seed: int, patients: int | None, ct_slices: int
          ) -> tuple[list[tuple[Dataset, InstanceCtx, str]], list[PatientTruth]]:
    uids = Uids(seed)
    built: list[tuple[Dataset, InstanceCtx, str]] = []
    people: list[PatientTruth] = []
    for index, template in enumerate(_templates(seed, patients)):
        p = PatientCtx(template, index, seed, uids)
        for planned in _plan_patient(p, ct_slices):
            ctx = planned.ctx
            ds = planned.kind.build(ctx)
            _remember(ctx, ds)
            file = (f"{index + 1:02d}_{template.key}/ST{ctx.study.index + 1}/"
                    f"SE{ctx.series.number:02d}_{ctx.kind}/IM{ctx.number:04d}.dcm")
            built.append((ds, ctx, file))
        people.append(_patient_truth(p))
    return built, people


def build(seed: int = 0, patients: int | None = None, ct_slices: int = 2
          ) -> tuple[list[tuple[Dataset, InstanceTruth]], tuple[PatientTruth, ...]]:
    """Every instance of the folder that ``generate`` writes, in memory (pixel data not yet
    encoded in the instance's transfer syntax), with its truth; and the patients' truth."""
    built, people = _make(seed, patients, ct_slices)
    return [(ds, _truth(ctx, ds, file)) for ds, ctx, file in built], tuple(people)


def generate(root: Path, seed: int = 0, patients: int | None = None, ct_slices: int = 2
             ) -> Truth:
    """Write the folder (one Part-10 file per instance under ``root``) and return its truth."""
    built, people = _make(seed, patients, ct_slices)
    instances = []
    for ds, ctx, file in built:
        write(ds, root / file, ctx.ts)
        instances.append(_truth(ctx, ds, file))
    return Truth(seed=seed, root=root, patients=tuple(people), instances=tuple(instances))


__all__ = ["KINDS", "Kind", "build", "encode", "generate", "write"]
