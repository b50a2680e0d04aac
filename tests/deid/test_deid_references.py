"""Reference integrity: after de-identification every referenced UID resolves to a delivered
instance (an RT chain, an SR referencing images, a KOS and a SEG, one in-memory pseudonymizer)."""

from __future__ import annotations

from deid_support import (
    CT,
    KOS,
    RTDOSE,
    RTPLAN,
    RTSTRUCT,
    SEG,
    base,
    ct,
    deidentify,
    image_pixels,
    sr,
    uid,
)
from pydicom import Dataset
from pydicom.sequence import Sequence

REFERENCE_KEYWORDS = {"ReferencedSOPInstanceUID", "ReferencedFrameOfReferenceUID",
                      "FrameOfReferenceUID", "SeriesInstanceUID", "StudyInstanceUID"}


def _ref(sop_class: str, instance: str) -> Dataset:
    r = Dataset()
    r.ReferencedSOPClassUID = sop_class
    r.ReferencedSOPInstanceUID = instance
    return r


def _rtstruct(images: list[tuple[str, str]]) -> Dataset:
    ds = base(RTSTRUCT, uid(7, 1), "RTSTRUCT", 70)
    ds.StructureSetLabel = "PLAN"
    ds.StructureSetDate, ds.StructureSetTime = "20210423", "100000"
    series = Dataset()
    series.SeriesInstanceUID = uid(2, 1, 1)
    series.ContourImageSequence = Sequence([_ref(*i) for i in images])
    study = Dataset()
    study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    study.ReferencedSOPInstanceUID = uid(1, 1)
    study.RTReferencedSeriesSequence = Sequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID = uid(4, 1)
    frame.RTReferencedStudySequence = Sequence([study])
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame])
    roi = Dataset()
    roi.ROINumber, roi.ReferencedFrameOfReferenceUID, roi.ROIName = 1, uid(4, 1), "PTV"
    roi.ROIGenerationAlgorithm = "MANUAL"
    ds.StructureSetROISequence = Sequence([roi])
    contour = Dataset()
    contour.ContourImageSequence = Sequence([_ref(*images[0])])
    contour.ContourGeometricType, contour.NumberOfContourPoints = "POINT", 1
    contour.ContourData = [0.0, 0.0, 5.0]
    roic = Dataset()
    roic.ReferencedROINumber, roic.ContourSequence = 1, Sequence([contour])
    ds.ROIContourSequence = Sequence([roic])
    return ds


def _rtplan(struct: str) -> Dataset:
    ds = base(RTPLAN, uid(8, 1), "RTPLAN", 80)
    ds.RTPlanLabel, ds.RTPlanGeometry = "P1", "PATIENT"
    ds.FrameOfReferenceUID = uid(4, 1)
    ds.ReferencedStructureSetSequence = Sequence([_ref(RTSTRUCT, struct)])
    return ds


def _rtdose(plan: str) -> Dataset:
    ds = base(RTDOSE, uid(9, 1), "RTDOSE", 90)
    ds.FrameOfReferenceUID = uid(4, 1)
    ds.DoseUnits, ds.DoseType, ds.DoseSummationType = "GY", "PHYSICAL", "PLAN"
    ds.ReferencedRTPlanSequence = Sequence([_ref(RTPLAN, plan)])
    image_pixels(ds)
    return ds


def _kos(images: list[tuple[str, str]]) -> Dataset:
    ds = sr(referenced=images)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = KOS
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid(10, 1)
    ds.Modality = "KO"
    return ds


def _seg(images: list[tuple[str, str]]) -> Dataset:
    ds = base(SEG, uid(11, 1), "SEG", 110)
    ds.FrameOfReferenceUID = uid(4, 1)
    series = Dataset()
    series.SeriesInstanceUID = uid(2, 1, 1)
    series.ReferencedInstanceSequence = Sequence([_ref(*i) for i in images])
    ds.ReferencedSeriesSequence = Sequence([series])
    frames = []
    for image in images:
        derivation = Dataset()
        derivation.SourceImageSequence = Sequence([_ref(*image)])
        frame = Dataset()
        frame.DerivationImageSequence = Sequence([derivation])
        frames.append(frame)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    ds.NumberOfFrames = len(frames)
    image_pixels(ds)
    return ds


def _references(ds: Dataset) -> set[str]:
    return {str(e.value) for e in ds.iterall() if e.keyword in REFERENCE_KEYWORDS and e.value}


def test_every_reference_resolves_after_deidentification() -> None:
    """RT chain, SR, KOS and SEG references point at delivered instances and their series."""
    cts = [ct(number=n) for n in (1, 2, 3)]
    images = [(CT, str(c.SOPInstanceUID)) for c in cts]
    struct = _rtstruct(images)
    plan = _rtplan(str(struct.SOPInstanceUID))
    dose = _rtdose(str(plan.SOPInstanceUID))
    others = [struct, plan, dose, sr(referenced=images[:2]), _kos(images[1:]), _seg(images)]
    delivered = [*cts, *others]
    for ds in delivered:
        deidentify(ds, "research")
    known = {str(ds.SOPInstanceUID) for ds in delivered}
    known |= {str(ds.SeriesInstanceUID) for ds in delivered}
    known |= {str(ds.StudyInstanceUID) for ds in delivered}
    known |= {str(ds.FrameOfReferenceUID) for ds in delivered if "FrameOfReferenceUID" in ds}
    assert len({str(ds.StudyInstanceUID) for ds in delivered}) == 1
    for ds in others:
        refs = _references(ds)
        assert refs, ds.Modality
        dangling = refs - known
        assert not dangling, f"{ds.Modality}: {len(dangling)} dangling references"
    assert all(not r.startswith(uid()) for ds in delivered for r in _references(ds))


def test_seg_keeps_its_source_references() -> None:
    """A Segmentation keeps Referenced Series and Source Image sequences (Type 1/2 in its IOD)."""
    cts = [ct(number=n) for n in (1, 2)]
    seg = _seg([(CT, str(c.SOPInstanceUID)) for c in cts])
    deidentify(seg, "basic")
    frame = seg.PerFrameFunctionalGroupsSequence[0]
    assert frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
    assert len(seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence) == 2


def test_evidence_sequence_matches_content_references() -> None:
    """An SR's evidence lists the same (replaced) UIDs as its content items."""
    images = [(CT, uid(3, 1, 1, n)) for n in (1, 2)]
    report = sr(referenced=images)
    deidentify(report, "research")
    content = {str(i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
               for i in report.ContentSequence if i.ValueType == "IMAGE"}
    listed = {str(r.ReferencedSOPInstanceUID) for r in
              report.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
              .ReferencedSOPSequence}
    assert content == listed and len(content) == 2
