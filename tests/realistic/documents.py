"""Structured documents and presentation states: Basic Text, Enhanced and Comprehensive SR
(A.35.1-A.35.3, TID 2000), Key Object Selection (A.35.4, TID 2010) and Grayscale Softcopy
Presentation State (A.33.1) with text annotations."""

from __future__ import annotations

import re
from dataclasses import replace

from pydicom import Dataset

from realistic.context import (
    InstanceCtx,
    K,
    Ref,
    add_minutes,
    code,
    equipment,
    patient,
    seq,
    series,
    sop_common,
    study,
)
from realistic.plant import Part

_CS_OTHER = re.compile(r"[^A-Z0-9 ]")

BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
ENHANCED_SR = "1.2.840.10008.5.1.4.1.1.88.22"
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
KOS = "1.2.840.10008.5.1.4.1.1.88.59"
GSPS = "1.2.840.10008.5.1.4.1.1.11.1"


def _template(tid: str) -> Dataset:
    item = Dataset()
    item.MappingResource = "DCMR"
    item.TemplateIdentifier = tid
    return item


def _item(rel: str, value_type: str, concept: Dataset | None) -> Dataset:
    """A content item (C.17.3); by-value IMAGE items may have no concept name."""
    item = Dataset()
    item.RelationshipType = rel
    item.ValueType = value_type
    if concept is not None:
        item.ConceptNameCodeSequence = seq(concept)
    return item


def _image(rel: str, ref: Ref, concept: Dataset | None = None) -> Dataset:
    item = _item(rel, "IMAGE", concept)
    sop = Dataset()
    sop.ReferencedSOPClassUID = ref.sop_class
    sop.ReferencedSOPInstanceUID = ref.sop_instance
    item.ReferencedSOPSequence = seq(sop)
    return item


def evidence(study_uid: str, refs: list[Ref]) -> Dataset:
    """A Hierarchical SOP Instance Reference Macro item (C.17.2.1) for one study."""
    by_series: dict[str, list[Ref]] = {}
    for r in refs:
        by_series.setdefault(r.series, []).append(r)
    items = []
    for uid, rs in by_series.items():
        se = Dataset()
        se.SeriesInstanceUID = uid
        sops = []
        for r in rs:
            sop = Dataset()
            sop.ReferencedSOPClassUID = r.sop_class
            sop.ReferencedSOPInstanceUID = r.sop_instance
            sops.append(sop)
        se.ReferencedSOPSequence = seq(*sops)
        items.append(se)
    st = Dataset()
    st.StudyInstanceUID = study_uid
    st.ReferencedSeriesSequence = seq(*items)
    return st


def _document(ds: Dataset, c: InstanceCtx, modality: str) -> None:
    sop_common(ds, c)
    patient(ds, c)
    study(ds, c)
    series(ds, c, modality, request=False)
    ds.ReferencedPerformedProcedureStepSequence = seq()
    equipment(ds, c, "ACME Reporting", "Reporter 5")
    ds.ContentDate = c.study.date
    ds.ContentTime = add_minutes(c.study.time, 120)


def _observer(c: InstanceCtx) -> list[Dataset]:
    """Observer context (TID 1002, 1003): a person and their organisation."""
    kind = _item("HAS OBS CONTEXT", "CODE", code("121005", "DCM", "Observer Type"))
    kind.ConceptCodeSequence = seq(code("121006", "DCM", "Person"))
    name = _item("HAS OBS CONTEXT", "PNAME", code("121008", "DCM", "Person Observer Name"))
    name.PersonName = c.pn("reading")
    return [kind, name]


def sr(c: InstanceCtx) -> Dataset:
    """A diagnostic imaging report (TID 2000) whose findings and impressions are typed text.
    Basic Text, Enhanced or Comprehensive SR by ``c.sop_class``; the last two add a NUM."""
    ds = Dataset()
    _document(ds, c, "SR")
    p = c.patient
    refs = c.study.refs.get("image", [])[:2]
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "VERIFIED"
    observer = Dataset()
    observer.VerifyingObserverName = c.pn("reading")
    observer.VerifyingOrganization = c.hold("institution.name", c.t.institution)
    observer.VerificationDateTime = c.study.date + "170000"
    observer.VerifyingObserverIdentificationCodeSequence = seq()
    ds.VerifyingObserverSequence = seq(observer)
    ds.PerformedProcedureCodeSequence = seq()
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = seq(code("18748-4", "LN", "Diagnostic imaging report"))
    ds.ContinuityOfContent = "SEPARATE"
    ds.ContentTemplateSequence = seq(_template("2000"))
    n = 0

    def path(*rest: str) -> str:
        return ">".join([f"ContentSequence[{n}]", *rest])

    items = _observer(c)
    n = len(items)
    findings = _item("CONTAINS", "CONTAINER", code("121070", "DCM", "Findings"))
    findings.ContinuityOfContent = "SEPARATE"
    f1 = _item("CONTAINS", "TEXT", code("121071", "DCM", "Finding"))
    f1.TextValue = c.text(path("ContentSequence[0]>TextValue"), "UT",
                          K("Left lung"), " nodule of 6 mm in ", p.name(), ", MRN ",
                          p.patient_id(), ". Compared with the prior of ",
                          p.date("study.date", p.other_study(c.study).date), ".")
    f2 = _item("CONTAINS", "CODE", code("121071", "DCM", "Finding"))
    f2.ConceptCodeSequence = seq(code(f"F{c.study.index}", "99ACME", c.text(
        path("ContentSequence[1]>ConceptCodeSequence[0]>CodeMeaning"), "LO",
        K("Liver segment"), " lesion ", p.name())))
    children = [f1, f2]
    if refs:
        f1.ContentSequence = seq(_image("INFERRED FROM", refs[0],
                                        code("121112", "DCM", "Source of Measurement")))
    if c.sop_class != BASIC_TEXT_SR:
        num = _item("CONTAINS", "NUM", code("410668003", "SCT", "Length"))
        measured = Dataset()
        unit = code("mm", "UCUM", "millimeter")
        measured.MeasurementUnitsCodeSequence = seq(unit)
        measured.NumericValue = "6"
        num.MeasuredValueSequence = seq(measured)
        children.append(num)
    findings.ContentSequence = seq(*children)
    items.append(findings)
    n = len(items)
    impression = _item("CONTAINS", "CONTAINER", code("121072", "DCM", "Impressions"))
    impression.ContinuityOfContent = "SEPARATE"
    i1 = _item("CONTAINS", "TEXT", code("121073", "DCM", "Impression"))
    i1.TextValue = c.text(path("ContentSequence[0]>TextValue"), "UT",
                          "Discussed with ", p.name("referring"), " on ",
                          p.date("study.date", c.study.date), ". Patient (", p.name(),
                          ", born ", p.birth_date(), ", ", p.address(), ", tel ", p.phone(),
                          ") informed. ", K("PTV 60Gy"), " unchanged. Accession ",
                          p.ident_("study.accession", c.study.accession), ".")
    impression.ContentSequence = seq(i1)
    items.append(impression)
    ds.ContentSequence = seq(*items)
    if refs:
        ds.CurrentRequestedProcedureEvidenceSequence = seq(evidence(c.study.uid, refs))
    return ds


def kos(c: InstanceCtx) -> Dataset:
    """Key Object Selection (TID 2010) of the study's images, with a typed description."""
    ds = Dataset()
    _document(ds, c, "KO")
    p = c.patient
    refs = c.study.refs.get("image", [])[:3]
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = seq(code("113000", "DCM", "Of Interest"))
    ds.ContinuityOfContent = "SEPARATE"
    ds.ContentTemplateSequence = seq(_template("2010"))
    text = _item("CONTAINS", "TEXT", code("113012", "DCM", "Key Object Description"))
    text.TextValue = c.text("ContentSequence[0]>TextValue", "UT",
                            K("Liver segment"), " teaching case - ", p.name(), " ",
                            p.date("study.date", c.study.date), " (", p.name("reading"), ")")
    ds.ContentSequence = seq(text, *[_image("CONTAINS", r) for r in refs])
    ds.CurrentRequestedProcedureEvidenceSequence = seq(evidence(c.study.uid, refs))
    return ds


def cs_identity(c: InstanceCtx) -> list[Part]:
    """The patient in a CS value (capitals, digits, space, underscore; 16 at most): the name in
    ASCII capitals where it can be written so, else "PT_" and the MRN."""
    form = c.patient.ascii_name()
    text = _CS_OTHER.sub("_", form.form.upper())
    if form.form.isascii() and len(text) <= 16:
        return [replace(form, form=text)]
    mrn = c.patient.patient_id()
    return ["PT_", replace(mrn, form=_CS_OTHER.sub("_", mrn.form.upper()))]


def content_label(c: InstanceCtx, harmless: str) -> list[Part]:
    """A Content Label (CS): harmless for every other patient, else the patient."""
    return [K(harmless)] if c.patient.index % 2 else cs_identity(c)


def gsps(c: InstanceCtx) -> Dataset:
    """Grayscale Softcopy Presentation State on the study's first images, with a text layer
    holding what a radiologist typed."""
    ds = Dataset()
    sop_common(ds, c)
    patient(ds, c)
    study(ds, c)
    series(ds, c, "PR", request=False)
    ds.BodyPartExamined = "CHEST"
    equipment(ds, c, "ACME Viewer", "Viewer 9")
    p = c.patient
    refs = c.study.refs.get("image", [])[:2]
    ds.ContentLabel = c.text("ContentLabel", "CS", *content_label(c, "CHEST"))
    ds.ContentDescription = c.text("ContentDescription", "LO", "Key images for ", p.name())
    ds.ContentCreatorName = c.pn("reading")
    ds.PresentationCreationDate = c.study.date
    ds.PresentationCreationTime = add_minutes(c.study.time, 100)
    se = Dataset()
    se.SeriesInstanceUID = refs[0].series
    images = []
    for r in refs:
        img = Dataset()
        img.ReferencedSOPClassUID = r.sop_class
        img.ReferencedSOPInstanceUID = r.sop_instance
        images.append(img)
    se.ReferencedImageSequence = seq(*images)
    ds.ReferencedSeriesSequence = seq(se)
    area = Dataset()
    area.PixelOriginInterpretation = "VOLUME"
    area.DisplayedAreaTopLeftHandCorner = [1, 1]
    area.DisplayedAreaBottomRightHandCorner = [refs[0].columns, refs[0].rows]
    area.PresentationSizeMode = "SCALE TO FIT"
    area.PresentationPixelAspectRatio = [1, 1]
    ds.DisplayedAreaSelectionSequence = seq(area)
    texts = []
    annotations: list[list[Part]] = [
        [p.name(), " - ", K("Left lung"), " nodule"],
        [K("PTV 60Gy"), " margin ok, ", p.name("reading"), " ",
         p.date("study.date", c.study.date)],
    ]
    for i, parts in enumerate(annotations):
        t = Dataset()
        t.UnformattedTextValue = c.text(
            f"GraphicAnnotationSequence[0]>TextObjectSequence[{i}]>UnformattedTextValue", "ST",
            *parts)
        t.BoundingBoxAnnotationUnits = "PIXEL"
        t.BoundingBoxTopLeftHandCorner = [4.0, 4.0 + 12 * i]
        t.BoundingBoxBottomRightHandCorner = [60.0, 14.0 + 12 * i]
        t.BoundingBoxTextHorizontalJustification = "LEFT"
        texts.append(t)
    ann = Dataset()
    ann.GraphicLayer = "ANNOTATIONS"
    ann.TextObjectSequence = seq(*texts)
    ds.GraphicAnnotationSequence = seq(ann)
    layer = Dataset()
    layer.GraphicLayer = "ANNOTATIONS"
    layer.GraphicLayerOrder = 1
    ds.GraphicLayerSequence = seq(layer)
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
    voi = Dataset()
    voi.WindowCenter, voi.WindowWidth = -600, 1500
    ds.SoftcopyVOILUTSequence = seq(voi)
    ds.PresentationLUTShape = "IDENTITY"
    return ds
