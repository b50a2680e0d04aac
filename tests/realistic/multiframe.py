"""Enhanced multi-frame IODs: Segmentation (A.51), Enhanced MR Image (A.36.2) and VL Whole Slide
Microscopy Image LABEL and OVERVIEW (A.32.8), with the functional groups and dimensions their
IODs require."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageCms, ImageDraw
from pydicom import Dataset
from pydicom.pixels import pack_bits

from realistic.context import (
    InstanceCtx,
    K,
    Ref,
    add_minutes,
    code,
    equipment,
    frame_of_reference,
    patient,
    seq,
    series,
    sop_common,
    study,
)
from realistic.documents import content_label
from realistic.images import color, gray, image_comments, privates
from realistic.plant import Part

SEG = "1.2.840.10008.5.1.4.1.1.66.4"
ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
WSI = "1.2.840.10008.5.1.4.1.1.77.1.6"


def _dimensions(ds: Dataset, c: InstanceCtx, pointers: list[tuple[int, int, str]]) -> None:
    """Multi-frame Dimension module (C.7.6.17): (index pointer, functional group, label)."""
    uid = c.uid()
    org = Dataset()
    org.DimensionOrganizationUID = uid
    ds.DimensionOrganizationSequence = seq(org)
    items = []
    for pointer, group, label in pointers:
        d = Dataset()
        d.DimensionOrganizationUID = uid
        d.DimensionIndexPointer = pointer
        d.FunctionalGroupPointer = group
        d.DimensionDescriptionLabel = label
        items.append(d)
    ds.DimensionIndexSequence = seq(*items)


def _item(**values: object) -> Dataset:
    item = Dataset()
    for key, value in values.items():
        setattr(item, key, value)
    return item


def segmentation(c: InstanceCtx) -> Dataset:
    """A binary Segmentation of two planning CT slices: a harmless segment and one labelled
    with the patient's name."""
    ds = Dataset()
    sop_common(ds, c)
    patient(ds, c)
    study(ds, c)
    series(ds, c, "SEG", request=False)
    frame_of_reference(ds, c)
    equipment(ds, c, "ACME AI", "SegTool 2")
    p = c.patient
    cts: list[Ref] = c.study.refs["CT"][:2]
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.ContentDate = c.study.date
    ds.ContentTime = add_minutes(c.study.time, 150)
    ds.ContentLabel = c.text("ContentLabel", "CS", *content_label(c, "LIVER"))
    ds.ContentDescription = c.text("ContentDescription", "LO", "Segmentation of ", p.name())
    ds.ContentCreatorName = c.pn("performing")
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelRepresentation = 0
    ds.BitsAllocated = ds.BitsStored = 1
    ds.HighBit = 0
    ds.LossyImageCompression = "00"
    ds.SegmentationType = "BINARY"
    labels: list[list[Part]] = [[K("Liver segment")], ["Lesion ", p.name()]]
    segments = []
    for i, label in enumerate(labels):
        s = Dataset()
        s.SegmentNumber = i + 1
        s.SegmentLabel = c.text(f"SegmentSequence[{i}]>SegmentLabel", "LO", *label)
        s.SegmentDescription = c.text(f"SegmentSequence[{i}]>SegmentDescription", "ST",
                                      "Drawn by ", p.name("performing"), " for ", p.name())
        s.SegmentAlgorithmType = "SEMIAUTOMATIC"
        s.SegmentAlgorithmName = c.text(f"SegmentSequence[{i}]>SegmentAlgorithmName", "LO",
                                        K("nnU-Net v2"))
        s.SegmentedPropertyCategoryCodeSequence = seq(code("91723000", "SCT",
                                                           "Anatomical Structure"))
        if i == 0:
            s.SegmentedPropertyTypeCodeSequence = seq(code("10200004", "SCT", c.text(
                f"SegmentSequence[{i}]>SegmentedPropertyTypeCodeSequence[0]>CodeMeaning",
                "LO", K("Liver"))))
        else:
            s.SegmentedPropertyTypeCodeSequence = seq(code(f"LES{c.study.index}", "99ACME", c.text(
                f"SegmentSequence[{i}]>SegmentedPropertyTypeCodeSequence[0]>CodeMeaning",
                "LO", K("Liver segment"), " lesion of ", p.name())))
        segments.append(s)
    ds.SegmentSequence = seq(*segments)
    rows = cols = 64
    ds.Rows, ds.Columns = rows, cols
    shared = Dataset()
    shared.PixelMeasuresSequence = seq(_item(PixelSpacing=[0.8, 0.8], SliceThickness=3.0))
    shared.PlaneOrientationSequence = seq(_item(ImageOrientationPatient=[1, 0, 0, 0, 1, 0]))
    ds.SharedFunctionalGroupsSequence = seq(shared)
    frames, masks = [], []
    yy, xx = np.mgrid[0:rows, 0:cols]
    for seg in (1, 2):
        for k, ct in enumerate(cts):
            f = Dataset()
            src = _item(ReferencedSOPClassUID=ct.sop_class,
                        ReferencedSOPInstanceUID=ct.sop_instance,
                        PurposeOfReferenceCodeSequence=seq(code(
                            "121322", "DCM", "Source image for image processing operation")))
            f.DerivationImageSequence = seq(_item(
                SourceImageSequence=seq(src),
                DerivationCodeSequence=seq(code("113076", "DCM", "Segmentation"))))
            f.FrameContentSequence = seq(_item(DimensionIndexValues=[seg, k + 1]))
            f.PlanePositionSequence = seq(_item(
                ImagePositionPatient=[-25.6, -25.6, -100.0 + 3.0 * (k + 1)]))
            f.SegmentIdentificationSequence = seq(_item(ReferencedSegmentNumber=seg))
            frames.append(f)
            radius = 10 + 5 * seg + k
            masks.append(((yy - 32) ** 2 + (xx - 30) ** 2) < radius ** 2)
    ds.PerFrameFunctionalGroupsSequence = seq(*frames)
    ds.NumberOfFrames = len(frames)
    _dimensions(ds, c, [(0x0062000B, 0x0062000A, "ReferencedSegmentNumber"),
                        (0x00200032, 0x00209113, "ImagePositionPatient")])
    ds.PixelData = pack_bits(np.stack(masks).astype(np.uint8))
    rs = Dataset()
    rs.SeriesInstanceUID = cts[0].series
    rs.ReferencedInstanceSequence = seq(*[_item(ReferencedSOPClassUID=ct.sop_class,
                                                ReferencedSOPInstanceUID=ct.sop_instance)
                                          for ct in cts])
    ds.ReferencedSeriesSequence = seq(rs)
    return ds


def enhanced_mr(c: InstanceCtx) -> Dataset:
    """An Enhanced MR Image: a 3-frame T1 volume, 64x64, with its functional groups."""
    ds = Dataset()
    sop_common(ds, c)
    patient(ds, c)
    study(ds, c)
    series(ds, c, "MR")
    ds.PatientPosition = "HFS"
    frame_of_reference(ds, c)
    equipment(ds, c, "GE MEDICAL SYSTEMS", "SIGNA Premier")
    p = c.patient
    acquired = c.study.date + add_minutes(c.study.time, 20)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    ds.ContentDate = c.study.date
    ds.ContentTime = add_minutes(c.study.time, 20)
    ds.AcquisitionNumber = 1
    ds.AcquisitionDateTime = acquired
    ds.AcquisitionDuration = 312.0
    ds.ContentQualification = "PRODUCT"
    ds.ResonantNucleus = "1H"
    ds.KSpaceFiltering = "NONE"
    ds.MagneticFieldStrength = 3
    ds.ApplicableSafetyStandardAgency = "IEC"
    ds.PixelPresentation = "MONOCHROME"
    ds.VolumetricProperties = "VOLUME"
    ds.VolumeBasedCalculationTechnique = "NONE"
    ds.ComplexImageComponent = "MAGNITUDE"
    ds.AcquisitionContrast = "T1"
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.PresentationLUTShape = "IDENTITY"
    ds.AcquisitionContextSequence = seq()
    image_comments(ds, c)
    _pulse_sequence(ds)
    frames = 3
    arr = gray(64, 64, c, frames=frames)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = 64, 64
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.NumberOfFrames = frames
    ds.PixelData = arr.tobytes()
    ds.SharedFunctionalGroupsSequence = seq(_mr_shared())
    per_frame = []
    for k in range(frames):
        f = Dataset()
        content = _item(FrameAcquisitionNumber=1, FrameReferenceDateTime=acquired,
                        FrameAcquisitionDateTime=acquired, FrameAcquisitionDuration=104.0,
                        DimensionIndexValues=[k + 1])
        content.FrameComments = c.text(
            f"PerFrameFunctionalGroupsSequence[{k}]>FrameContentSequence[0]>FrameComments",
            "LT", K("T1 MPRAGE SAG"), " slab ", str(k + 1), " ", p.name())
        f.FrameContentSequence = seq(content)
        f.PlanePositionSequence = seq(_item(ImagePositionPatient=[-32.0, -32.0, 5.0 * k]))
        per_frame.append(f)
    ds.PerFrameFunctionalGroupsSequence = seq(*per_frame)
    _dimensions(ds, c, [(0x00200032, 0x00209113, "ImagePositionPatient")])
    privates(ds, c, c.implicit, safe=True)
    return ds


def _pulse_sequence(ds: Dataset) -> None:
    """MR Pulse Sequence module (C.8.13.4) of a 3D gradient echo."""
    ds.PulseSequenceName = "MPRAGE"
    ds.MRAcquisitionType = "3D"
    ds.EchoPulseSequence = "GRADIENT"
    ds.MultiPlanarExcitation = "NO"
    ds.PhaseContrast = "NO"
    ds.TimeOfFlightContrast = "NO"
    ds.SteadyStatePulseSequence = "NONE"
    ds.EchoPlanarPulseSequence = "NO"
    ds.SaturationRecovery = "NO"
    ds.SpectrallySelectedSuppression = "NONE"
    ds.OversamplingPhase = "NONE"
    ds.GeometryOfKSpaceTraversal = "RECTILINEAR"
    ds.RectilinearPhaseEncodeReordering = "LINEAR"
    ds.SegmentedKSpaceTraversal = "SINGLE"
    ds.CoverageOfKSpace = "FULL"
    ds.NumberOfKSpaceTrajectories = 1


def _mr_shared() -> Dataset:
    """The shared functional groups of an original Enhanced MR volume (A.36.2.5)."""
    g = Dataset()
    g.PixelMeasuresSequence = seq(_item(PixelSpacing=[1.0, 1.0], SliceThickness=5.0))
    g.PlaneOrientationSequence = seq(_item(ImageOrientationPatient=[1, 0, 0, 0, 1, 0]))
    g.FrameAnatomySequence = seq(_item(
        AnatomicRegionSequence=seq(code("12738006", "SCT", "Brain")), FrameLaterality="U"))
    g.PixelValueTransformationSequence = seq(_item(RescaleIntercept=0, RescaleSlope=1,
                                                   RescaleType="US"))
    g.MRImageFrameTypeSequence = seq(_item(
        FrameType=["ORIGINAL", "PRIMARY", "VOLUME", "NONE"], PixelPresentation="MONOCHROME",
        VolumetricProperties="VOLUME", VolumeBasedCalculationTechnique="NONE",
        ComplexImageComponent="MAGNITUDE", AcquisitionContrast="T1"))
    sar = _item(SpecificAbsorptionRateDefinition="IEC_WHOLE_BODY",
                SpecificAbsorptionRateValue=0.8)
    mode = _item(OperatingModeType="GRADIENT", OperatingMode="IEC_NORMAL")
    g.MRTimingAndRelatedParametersSequence = seq(_item(
        RepetitionTime=2300.0, FlipAngle=9.0, EchoTrainLength=1, RFEchoTrainLength=1,
        GradientEchoTrainLength=1, SpecificAbsorptionRateSequence=seq(sar),
        GradientOutputType="DB_DT", GradientOutput=40.0, OperatingModeSequence=seq(mode)))
    g.MRFOVGeometrySequence = seq(_item(
        InPlanePhaseEncodingDirection="ROW", MRAcquisitionFrequencyEncodingSteps=64,
        MRAcquisitionPhaseEncodingStepsInPlane=64, MRAcquisitionPhaseEncodingStepsOutOfPlane=3,
        PercentSampling=100.0, PercentPhaseFieldOfView=100.0))
    g.MREchoSequence = seq(_item(EffectiveEchoTime=2.98))
    g.MRModifierSequence = seq(_item(
        InversionRecovery="YES", InversionTimes=[900.0], FlowCompensation="NONE",
        T2Preparation="NO", SpectrallySelectedExcitation="NONE", SpatialPresaturation="NONE",
        PartialFourier="NO", ParallelAcquisition="NO"))
    g.MRImagingModifierSequence = seq(_item(
        MagnetizationTransfer="NONE", BloodSignalNulling="NO", Tagging="NONE",
        TransmitterFrequency=127.7, PixelBandwidth=240.0))
    g.MRReceiveCoilSequence = seq(_item(ReceiveCoilName="HEAD 32", ReceiveCoilManufacturerName="",
                                        ReceiveCoilType="VOLUME", QuadratureReceiveCoil="NO"))
    g.MRTransmitCoilSequence = seq(_item(TransmitCoilName="BODY", TransmitCoilManufacturerName="",
                                         TransmitCoilType="BODY"))
    g.MRAveragesSequence = seq(_item(NumberOfAverages=1.0))
    g.MRSpatialSaturationSequence = seq()
    g.MRDiffusionSequence = seq(_item(DiffusionBValue=0.0, DiffusionDirectionality="NONE"))
    return g


_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _label_pixels(c: InstanceCtx, text: str, rows: int, cols: int) -> np.ndarray:
    """A slide label photograph: the typed label text on a light background (the pixel stage
    must blank it)."""
    base = color(rows, cols, c) // 4 + 180
    img = Image.fromarray(base.astype(np.uint8))
    draw = ImageDraw.Draw(img)
    ascii_text = text.encode("ascii", "replace").decode()
    for k, line in enumerate(ascii_text.split(" / ")):
        draw.text((6, 6 + 12 * k), line, fill=(10, 10, 10))
    return np.asarray(img)


def slide(c: InstanceCtx, flavor: str) -> Dataset:
    """A VL Whole Slide Microscopy Image of flavor LABEL or OVERVIEW: one frame, the slide label
    (Label Text, Barcode Value) and the specimen it holds."""
    ds = Dataset()
    sop_common(ds, c)
    patient(ds, c)
    study(ds, c)
    series(ds, c, "SM", request=False)
    frame_of_reference(ds, c)
    ds.PositionReferenceIndicator = "SLIDE_CORNER"
    equipment(ds, c, "Leica Biosystems", "Aperio GT 450")
    p = c.patient
    specimen = c.hold("specimen.id", c.study.specimen[0])
    ds.ContentDate = c.study.date
    ds.ContentTime = add_minutes(c.study.time, 45)
    ds.AcquisitionDateTime = c.study.date + add_minutes(c.study.time, 45)
    ds.AcquisitionDuration = 30.0
    ds.ImageType = ["ORIGINAL", "PRIMARY", flavor, "NONE"]
    rows, cols = (64, 160) if flavor == "LABEL" else (96, 192)
    label = c.text("LabelText", "UT", p.ident_("specimen.id", specimen), " / ", p.name(),
                   " / ", p.birth_date(), " / ", K("Liver segment"), " biopsy")
    ds.LabelText = label
    ds.BarcodeValue = c.text("BarcodeValue", "LT", p.ident_("specimen.id", specimen))
    arr = _label_pixels(c, label, rows, cols) if flavor == "LABEL" else color(rows, cols, c)
    ds.ImagedVolumeWidth = cols * 0.05
    ds.ImagedVolumeHeight = rows * 0.05
    ds.ImagedVolumeDepth = 1.0
    ds.TotalPixelMatrixColumns, ds.TotalPixelMatrixRows = cols, rows
    ds.TotalPixelMatrixFocalPlanes = 1
    ds.TotalPixelMatrixOriginSequence = seq(_item(XOffsetInSlideCoordinateSystem=20.0,
                                                  YOffsetInSlideCoordinateSystem=40.0))
    ds.ImageOrientationSlide = [0, -1, 0, -1, 0, 0]
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.NumberOfFrames = 1
    ds.PixelData = arr.astype(np.uint8).tobytes()
    ds.LossyImageCompression = "00"
    ds.VolumetricProperties = "VOLUME"
    ds.SpecimenLabelInImage = "YES"
    ds.BurnedInAnnotation = "YES" if flavor == "LABEL" else "NO"
    ds.FocusMethod = "AUTO"
    ds.ExtendedDepthOfField = "NO"
    ds.AcquisitionContextSequence = seq()
    _specimen(ds, c, specimen)
    _optical_path(ds)
    shared = Dataset()
    shared.PixelMeasuresSequence = seq(_item(PixelSpacing=[0.05, 0.05], SliceThickness=1.0))
    shared.WholeSlideMicroscopyImageFrameTypeSequence = seq(_item(
        FrameType=["ORIGINAL", "PRIMARY", flavor, "NONE"]))
    shared.OpticalPathIdentificationSequence = seq(_item(OpticalPathIdentifier="1"))
    ds.SharedFunctionalGroupsSequence = seq(shared)
    frame = Dataset()
    frame.FrameContentSequence = seq(_item(DimensionIndexValues=[1, 1]))
    frame.PlanePositionSlideSequence = seq(_item(
        XOffsetInSlideCoordinateSystem=20.0, YOffsetInSlideCoordinateSystem=40.0,
        ZOffsetInSlideCoordinateSystem=0.0, ColumnPositionInTotalImagePixelMatrix=1,
        RowPositionInTotalImagePixelMatrix=1))
    ds.PerFrameFunctionalGroupsSequence = seq(frame)
    _dimensions(ds, c, [(0x0048021E, 0x0048021A, "Column Position"),
                        (0x0048021F, 0x0048021A, "Row Position")])
    return ds


def _specimen(ds: Dataset, c: InstanceCtx, specimen: str) -> None:
    """Specimen module (C.7.6.22): the slide and the specimen it holds."""
    p = c.patient
    ds.ContainerIdentifier = specimen
    ds.IssuerOfTheContainerIdentifierSequence = seq()
    ds.ContainerTypeCodeSequence = seq(code("433466003", "SCT", "Microscope slide"))
    desc = Dataset()
    desc.SpecimenIdentifier = specimen
    desc.SpecimenUID = c.study.specimen[1]
    desc.IssuerOfTheSpecimenIdentifierSequence = seq()
    desc.SpecimenPreparationSequence = seq()
    desc.SpecimenShortDescription = c.text(
        "SpecimenDescriptionSequence[0]>SpecimenShortDescription", "LO", K("Liver segment"),
        " core")
    desc.SpecimenDetailedDescription = c.text(
        "SpecimenDescriptionSequence[0]>SpecimenDetailedDescription", "UT",
        "Core biopsy taken from ", p.name(), " by ", p.name("performing"), " on ",
        p.date("study.date", c.study.date))
    ds.SpecimenDescriptionSequence = seq(desc)


def _optical_path(ds: Dataset) -> None:
    """Optical Path module (C.8.12.5): one brightfield path with an sRGB ICC profile."""
    path = Dataset()
    path.OpticalPathIdentifier = "1"
    path.IlluminationTypeCodeSequence = seq(code("111744", "DCM", "Brightfield illumination"))
    path.IlluminationColorCodeSequence = seq(code("414298005", "SCT", "Full Spectrum"))
    path.ICCProfile = _SRGB
    path.ColorSpace = "SRGB"
    ds.OpticalPathSequence = seq(path)
    ds.NumberOfOpticalPaths = 1


def slide_label(c: InstanceCtx) -> Dataset:
    return slide(c, "LABEL")


def slide_overview(c: InstanceCtx) -> Dataset:
    return slide(c, "OVERVIEW")

