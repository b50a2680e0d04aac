"""Radiotherapy IODs: RT Structure Set (A.19), RT Plan (A.20) and RT Dose (A.18) of one
planning CT, with the names that planners type into labels, ROIs and beams."""

from __future__ import annotations

import numpy as np
from pydicom import Dataset

from realistic.context import (
    InstanceCtx,
    K,
    Ref,
    add_minutes,
    equipment,
    frame_of_reference,
    general_image,
    patient,
    seq,
    series,
    sop_common,
    study,
)
from realistic.documents import cs_identity
from realistic.plant import Part, join

RTSTRUCT = "1.2.840.10008.5.1.4.1.1.481.3"
RTPLAN = "1.2.840.10008.5.1.4.1.1.481.5"
RTDOSE = "1.2.840.10008.5.1.4.1.1.481.2"
STUDY_COMPONENT = "1.2.840.10008.3.1.2.3.1"  # Detached Study Management (retired), as C.8.8.5

# (ROI name parts, interpreted type): harmless names and one that a planner typed a name into
_ROIS: tuple[tuple[str, str], ...] = (("GTV", "GTV"), ("PTV 60Gy", "PTV"), ("Left lung", "ORGAN"),
                                      ("BODY", "EXTERNAL"))


def _rt_common(ds: Dataset, c: InstanceCtx, modality: str) -> None:
    sop_common(ds, c)
    patient(ds, c)
    study(ds, c)
    series(ds, c, modality, request=False)
    equipment(ds, c, "Varian Medical Systems", "Eclipse")


def _label(c: InstanceCtx) -> list[Part]:
    """A short label (SH, 16 characters): the patient in capitals and a suffix."""
    parts = cs_identity(c)
    return [*parts, " RT1"] if len(join(parts)) <= 12 else parts


def structure_set(c: InstanceCtx) -> Dataset:
    """RT Structure Set on the planning CT: GTV, PTV, organ and body contours, one ROI with the
    patient's name in it."""
    ds = Dataset()
    _rt_common(ds, c, "RTSTRUCT")
    frame_of_reference(ds, c)
    p = c.patient
    cts: list[Ref] = c.study.refs["CT"]
    ds.StructureSetLabel = c.text("StructureSetLabel", "SH", *_label(c))
    ds.StructureSetName = c.text("StructureSetName", "LO", K("Thorax"), " ", p.name())
    ds.StructureSetDescription = c.text("StructureSetDescription", "ST", "Contoured by ",
                                        p.name("performing"), " for ", p.name(), " on ",
                                        p.date("study.date", c.study.date))
    ds.StructureSetDate = c.study.date
    ds.StructureSetTime = add_minutes(c.study.time, 200)
    contour_images = []
    for r in cts:
        img = Dataset()
        img.ReferencedSOPClassUID = r.sop_class
        img.ReferencedSOPInstanceUID = r.sop_instance
        contour_images.append(img)
    rs = Dataset()
    rs.SeriesInstanceUID = cts[0].series
    rs.ContourImageSequence = seq(*contour_images)
    rstudy = Dataset()
    rstudy.ReferencedSOPClassUID = STUDY_COMPONENT
    rstudy.ReferencedSOPInstanceUID = c.study.uid
    rstudy.RTReferencedSeriesSequence = seq(rs)
    rfor = Dataset()
    rfor.FrameOfReferenceUID = cts[0].frame_of_reference
    rfor.RTReferencedStudySequence = seq(rstudy)
    ds.ReferencedFrameOfReferenceSequence = seq(rfor)
    rois, contours, observations = [], [], []
    names: list[list[Part]] = [[K(n)] for n, _ in _ROIS]
    names.append(["PTV ", p.name()])
    kinds = [k for _, k in _ROIS] + ["PTV"]
    for i, (name, kind) in enumerate(zip(names, kinds, strict=True)):
        number = i + 1
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = cts[0].frame_of_reference
        roi.ROIName = c.text(f"StructureSetROISequence[{i}]>ROIName", "LO", *name)
        if i in (0, 4):
            roi.ROIDescription = c.text(f"StructureSetROISequence[{i}]>ROIDescription", "ST",
                                        K("Liver segment"), " excluded; drawn by ",
                                        p.name("reading"))
        roi.ROIGenerationAlgorithm = "MANUAL"
        rois.append(roi)
        contour = Dataset()
        contour.ReferencedROINumber = number
        contour.ROIDisplayColor = [255, 40 * i, 0]
        ring = Dataset()
        img = Dataset()
        img.ReferencedSOPClassUID = cts[0].sop_class
        img.ReferencedSOPInstanceUID = cts[0].sop_instance
        ring.ContourImageSequence = seq(img)
        ring.ContourGeometricType = "CLOSED_PLANAR"
        z = -100.0 + 3.0
        radius = 4.0 + 2 * i
        angles = np.linspace(0, 2 * np.pi, 6)[:-1]
        pts = [(radius * np.cos(a), radius * np.sin(a), z) for a in angles]
        ring.NumberOfContourPoints = len(pts)
        ring.ContourData = [round(float(v), 2) for pt in pts for v in pt]
        contour.ContourSequence = seq(ring)
        contours.append(contour)
        obs = Dataset()
        obs.ObservationNumber = number
        obs.ReferencedROINumber = number
        obs.ROIObservationLabel = c.text(f"RTROIObservationsSequence[{i}]>ROIObservationLabel",
                                         "SH", *name) if i < 4 else "PTV2"
        obs.RTROIInterpretedType = kind
        obs.ROIInterpreter = c.pn("performing")
        observations.append(obs)
    ds.StructureSetROISequence = seq(*rois)
    ds.ROIContourSequence = seq(*contours)
    ds.RTROIObservationsSequence = seq(*observations)
    return ds


def plan(c: InstanceCtx) -> Dataset:
    """RT Plan: two static photon beams on the structure set's PTV, 30 fractions."""
    ds = Dataset()
    _rt_common(ds, c, "RTPLAN")
    frame_of_reference(ds, c)
    p = c.patient
    rtstruct: Ref = c.study.refs["RTSTRUCT"][0]
    ds.RTPlanLabel = c.text("RTPlanLabel", "SH", *_label(c))
    ds.RTPlanName = c.text("RTPlanName", "LO", K("PTV 60Gy"), " ", p.name())
    ds.RTPlanDescription = c.text("RTPlanDescription", "ST", "Approved by ", p.name("reading"),
                                  " on ", p.date("study.date", c.study.date))
    ds.RTPlanDate = c.study.date
    ds.RTPlanTime = add_minutes(c.study.time, 300)
    ds.PlanIntent = "CURATIVE"
    ds.RTPlanGeometry = "PATIENT"
    ref = Dataset()
    ref.ReferencedSOPClassUID = rtstruct.sop_class
    ref.ReferencedSOPInstanceUID = rtstruct.sop_instance
    ds.ReferencedStructureSetSequence = seq(ref)
    ds.PrescriptionDescription = c.text("PrescriptionDescription", "ST", K("PTV 60Gy"),
                                        " in 30 fractions for ", p.name())
    dose = Dataset()
    dose.DoseReferenceNumber = 1
    dose.DoseReferenceStructureType = "SITE"
    dose.DoseReferenceDescription = c.text("DoseReferenceSequence[0]>DoseReferenceDescription",
                                           "LO", K("PTV 60Gy"))
    dose.DoseReferenceType = "TARGET"
    dose.TargetPrescriptionDose = 60.0
    ds.DoseReferenceSequence = seq(dose)
    setup = Dataset()
    setup.PatientSetupNumber = 1
    setup.PatientPosition = "HFS"
    ds.PatientSetupSequence = seq(setup)
    fraction = Dataset()
    fraction.FractionGroupNumber = 1
    fraction.FractionGroupDescription = c.text(
        "FractionGroupSequence[0]>FractionGroupDescription", "ST", K("Left lung"), " boost ",
        p.name())
    fraction.NumberOfFractionsPlanned = 30
    fraction.NumberOfBeams = 2
    fraction.NumberOfBrachyApplicationSetups = 0
    refs = []
    beams = []
    beam_names: tuple[list[Part], list[Part]] = ([K("AP FIELD")], [K("Arc 1"), " ", p.name()])
    for i, name in enumerate(beam_names):
        rb = Dataset()
        rb.ReferencedBeamNumber = i + 1
        rb.BeamMeterset = 120.5
        refs.append(rb)
        beams.append(_beam(c, i, name))
    fraction.ReferencedBeamSequence = seq(*refs)
    ds.FractionGroupSequence = seq(fraction)
    ds.BeamSequence = seq(*beams)
    ds.ApprovalStatus = "APPROVED"
    ds.ReviewDate = c.study.date
    ds.ReviewTime = add_minutes(c.study.time, 310)
    ds.ReviewerName = c.pn("reading")
    return ds


def _beam(c: InstanceCtx, i: int, name: list[Part]) -> Dataset:
    p = c.patient
    beam = Dataset()
    beam.BeamNumber = i + 1
    beam.BeamName = c.text(f"BeamSequence[{i}]>BeamName", "LO", *name)
    beam.BeamDescription = c.text(f"BeamSequence[{i}]>BeamDescription", "ST",
                                  K("GTV"), " coverage checked by ", p.name("operator"))
    beam.BeamType = "STATIC"
    beam.RadiationType = "PHOTON"
    beam.TreatmentMachineName = "TrueBeam1"
    beam.Manufacturer = "Varian Medical Systems"
    beam.InstitutionName = c.hold("institution.name", c.t.institution)
    beam.PrimaryDosimeterUnit = "MU"
    beam.SourceAxisDistance = 1000.0
    devices = []
    for kind in ("ASYMX", "ASYMY"):
        d = Dataset()
        d.RTBeamLimitingDeviceType = kind
        d.NumberOfLeafJawPairs = 1
        devices.append(d)
    beam.BeamLimitingDeviceSequence = seq(*devices)
    beam.ReferencedPatientSetupNumber = 1
    beam.TreatmentDeliveryType = "TREATMENT"
    beam.NumberOfWedges = beam.NumberOfCompensators = beam.NumberOfBoli = 0
    beam.NumberOfBlocks = 0
    beam.FinalCumulativeMetersetWeight = 1.0
    beam.NumberOfControlPoints = 2
    points = []
    for k in range(2):
        cp = Dataset()
        cp.ControlPointIndex = k
        cp.CumulativeMetersetWeight = float(k)
        if k == 0:
            cp.NominalBeamEnergy = 6.0
            cp.DoseRateSet = 600.0
            positions = []
            for kind in ("ASYMX", "ASYMY"):
                pos = Dataset()
                pos.RTBeamLimitingDeviceType = kind
                pos.LeafJawPositions = [-50.0, 50.0]
                positions.append(pos)
            cp.BeamLimitingDevicePositionSequence = seq(*positions)
            cp.GantryAngle = 0.0 if i == 0 else 180.0
            cp.GantryRotationDirection = "NONE"
            cp.BeamLimitingDeviceAngle = 0.0
            cp.BeamLimitingDeviceRotationDirection = "NONE"
            cp.PatientSupportAngle = 0.0
            cp.PatientSupportRotationDirection = "NONE"
            cp.TableTopEccentricAngle = 0.0
            cp.TableTopEccentricRotationDirection = "NONE"
            cp.TableTopVerticalPosition = ""
            cp.TableTopLongitudinalPosition = ""
            cp.TableTopLateralPosition = ""
            cp.IsocenterPosition = [0.0, 0.0, -97.0]
        points.append(cp)
    beam.ControlPointSequence = seq(*points)
    return beam


def dose(c: InstanceCtx) -> Dataset:
    """RT Dose: a 3-frame 16x16 dose grid of the plan, with a typed dose comment."""
    ds = Dataset()
    _rt_common(ds, c, "RTDOSE")
    frame_of_reference(ds, c)
    general_image(ds, c, orientation=False)
    p = c.patient
    rtplan: Ref = c.study.refs["RTPLAN"][0]
    frames, rows, cols = 3, 16, 16
    ds.ImagePositionPatient = [-24.0, -24.0, -100.0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [3.0, 3.0]
    ds.SliceThickness = ""
    ds.NumberOfFrames = frames
    ds.FrameIncrementPointer = 0x3004000C
    ds.GridFrameOffsetVector = [0.0, 3.0, 6.0]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated = ds.BitsStored = 32
    ds.HighBit = 31
    ds.PixelRepresentation = 0
    ds.DoseUnits, ds.DoseType, ds.DoseSummationType = "GY", "PHYSICAL", "PLAN"
    ds.DoseGridScaling = 1e-5
    ds.DoseComment = c.text("DoseComment", "LO", "Plan dose ", p.name(), " ",
                            p.date("study.date", c.study.date))
    ref = Dataset()
    ref.ReferencedSOPClassUID = rtplan.sop_class
    ref.ReferencedSOPInstanceUID = rtplan.sop_instance
    ds.ReferencedRTPlanSequence = seq(ref)
    zz, yy, xx = np.mgrid[0:frames, 0:rows, 0:cols]
    grid = 6_000_000 * np.exp(-((yy - 8) ** 2 + (xx - 8) ** 2) / 30.0) * (1 - 0.1 * zz)
    ds.PixelData = grid.astype(np.uint32).tobytes()
    return ds
