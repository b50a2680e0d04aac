"""Image IODs: CT, MR, PET, US (single and multi-frame), Secondary Capture (PS3.3 A.3-A.8, A.21),
with identity planted where hospital systems put it, and private elements."""

from __future__ import annotations

import numpy as np
from pydicom import Dataset

from realistic import paths
from realistic.context import (
    InstanceCtx,
    K,
    add_minutes,
    code,
    equipment,
    frame_of_reference,
    general_image,
    image_plane,
    patient,
    seq,
    series,
    sop_common,
    study,
)
from realistic.plant import Part

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
PET_IMAGE = "1.2.840.10008.5.1.4.1.1.128"
US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"
US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
SC_IMAGE = "1.2.840.10008.5.1.4.1.1.7"

ACME = "ACME RIS 1.0"  # a private creator no dictionary knows: UN when read from implicit VR
PACS = "ZETA PACS 2"  # written with VR UN in explicit VR files, as a forwarding PACS does
GEMS = "GEMS_ACQU_01"  # in the Safe Private table: (0019,xx9E) Internal Pulse Sequence Name
UNKNOWN_PUBLIC = 0x00189999  # a public tag no dictionary knows: read as UN


def _seed(c: InstanceCtx) -> int:
    return int(c.sop_instance.rsplit(".", 1)[-1]) * 7919 + c.patient.index


def gray(rows: int, cols: int, c: InstanceCtx, bits: int = 12, frames: int = 1) -> np.ndarray:
    rng = np.random.default_rng(_seed(c))
    yy, xx = np.mgrid[0:rows, 0:cols]
    body = ((yy - rows / 2) ** 2 + (xx - cols / 2) ** 2 < (min(rows, cols) * 0.4) ** 2)
    top = (1 << bits) - 1
    out = body * (top // 3) + rng.integers(0, top // 8, size=(frames, rows, cols))
    return out.astype(np.uint16).squeeze()


def color(rows: int, cols: int, c: InstanceCtx, frames: int = 1) -> np.ndarray:
    rng = np.random.default_rng(_seed(c))
    yy, xx = np.mgrid[0:rows, 0:cols]
    base = np.stack([(yy * 2) % 256, (xx * 3) % 256, ((yy + xx) * 5) % 256], axis=-1)
    noise = rng.integers(0, 40, size=(frames, rows, cols, 3))
    return ((base + noise) % 256).astype(np.uint8).squeeze()


def pixels_gray(ds: Dataset, arr: np.ndarray, bits: int = 12) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = arr.shape[-2:]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits, bits - 1
    ds.PixelRepresentation = 0
    ds.PixelData = arr.tobytes()


def pixels_rgb(ds: Dataset, arr: np.ndarray) -> None:
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = arr.shape[-3:-1]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelRepresentation = 0
    ds.PixelData = arr.tobytes()


def privates(ds: Dataset, c: InstanceCtx, implicit: bool, safe: bool = False) -> None:
    """A RIS's private block with the patient in it, a PACS's block written as UN, a public
    attribute written as UN and, on GE-like devices, a Safe Private text element."""
    p = c.patient
    acme = ds.private_block(0x0029, ACME, create=True)
    read_as = {"LO": "UN", "LT": "UN"} if implicit else {"LO": "LO", "LT": "LT"}
    acme.add_new(0x10, "LO", c.text(paths.private(0x0029, ACME, 0x10), read_as["LO"], p.name()))
    acme.add_new(0x11, "LO", c.text(paths.private(0x0029, ACME, 0x11), read_as["LO"],
                                    p.patient_id()))
    acme.add_new(0x20, "LT", c.text(paths.private(0x0029, ACME, 0x20), read_as["LT"],
                                    "Pat. ", p.name(), ", DOB ", p.birth_date(), ", ",
                                    p.address()))
    if not implicit:
        pacs = ds.private_block(0x0031, PACS, create=True)
        text = c.text(paths.private(0x0031, PACS, 0x01), "UN", "Order ",
                      p.ident_("study.accession", c.study.accession), " / ", p.name())
        pacs.add_new(0x01, "UN", _even(c.encode(text)))
        text = c.text("AcquisitionProtocolDescription", "UN", K("T2 FLAIR AX"), " ", p.name())
        ds.add_new(0x00189424, "UN", _even(c.encode(text)))
    text = c.text(paths.public(UNKNOWN_PUBLIC), "UN", "Patient ", p.name())
    ds.add_new(UNKNOWN_PUBLIC, "UN", _even(c.encode(text)))
    if safe:
        gems = ds.private_block(0x0019, GEMS, create=True)
        parts: list[Part] = [K("efgre3d")] if c.number % 2 else [K("fse-xl"), " ", p.name()]
        gems.add_new(0x9E, "LO", c.text(paths.private(0x0019, GEMS, 0x9E), "LO", *parts))


def _even(data: bytes) -> bytes:
    return data + b" " if len(data) % 2 else data


def image_comments(ds: Dataset, c: InstanceCtx) -> None:
    p = c.patient
    choice = c.number % 3
    parts: list[Part]
    if choice == 0:
        parts = ["Pt ", p.name(), " MRN ", p.patient_id(), " - ", K("Left lung"), " nodule"]
    elif choice == 1:
        parts = [K("CHEST"), " review, see prior of ",
                 p.date("study.date", p.other_study(c.study).date), " (", p.name("reading"), ")"]
    else:
        parts = ["DOB ", p.birth_date(), ", tel ", p.phone(), ". ", K("Liver segment"), " VIII"]
    ds.ImageComments = c.text("ImageComments", "LT", *parts)


def _common(ds: Dataset, c: InstanceCtx, modality: str, contact: bool = True) -> None:
    sop_common(ds, c)
    patient(ds, c, contact=contact)
    study(ds, c)
    series(ds, c, modality)


def ct(c: InstanceCtx) -> Dataset:
    """CT Image (A.3) 64x64 12-bit, with the Frame of Reference of its series."""
    ds = Dataset()
    _common(ds, c, "CT")
    ds.PatientPosition = "HFS"
    ds.BodyPartExamined = "CHEST"
    equipment(ds, c, "GE MEDICAL SYSTEMS", "Revolution EVO")
    frame_of_reference(ds, c)
    general_image(ds, c)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    image_plane(ds, z=-100.0 + 3.0 * c.number)
    ds.SliceThickness = 3.0
    ds.KVP = 120
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
    ds.WindowCenter, ds.WindowWidth = 40, 400
    image_comments(ds, c)
    pixels_gray(ds, gray(64, 64, c))
    privates(ds, c, c.implicit, safe=True)
    return ds


def mr(c: InstanceCtx) -> Dataset:
    """MR Image (A.4) 64x64."""
    ds = Dataset()
    _common(ds, c, "MR")
    ds.PatientPosition = "HFS"
    ds.BodyPartExamined = "BRAIN"
    equipment(ds, c, "GE MEDICAL SYSTEMS", "SIGNA Premier")
    frame_of_reference(ds, c)
    general_image(ds, c)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
    image_plane(ds, z=-40.0 + 5.0 * c.number, spacing=1.0)
    ds.SliceThickness = 5.0
    ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions = ["GR", "IR"], ["SP", "MP"], ""
    ds.MRAcquisitionType = "3D"
    ds.RepetitionTime, ds.EchoTime, ds.InversionTime = 2300.0, 2.98, 900.0
    ds.EchoTrainLength = 1
    ds.MagneticFieldStrength = 3
    ds.SequenceName = "*tfl3d1"
    image_comments(ds, c)
    pixels_gray(ds, gray(64, 64, c))
    privates(ds, c, c.implicit, safe=True)
    return ds


def pet(c: InstanceCtx) -> Dataset:
    """PET Image (A.21) 32x32 16-bit, FDG static whole body."""
    ds = Dataset()
    _common(ds, c, "PT")
    ds.BodyPartExamined = "WHOLEBODY"
    equipment(ds, c, "Siemens", "Biograph Vision")
    frame_of_reference(ds, c)
    general_image(ds, c)
    ds.Units, ds.CountsSource, ds.SeriesType = "BQML", "EMISSION", ["WHOLE BODY", "IMAGE"]
    ds.NumberOfSlices = 2
    ds.CorrectedImage = ["DECY", "ATTN", "SCAT", "DTIM", "RAN", "NORM"]
    ds.DecayCorrection = "START"
    ds.CollimatorType = "NONE"
    radio = Dataset()
    radio.RadionuclideCodeSequence = seq(code("77004003", "SCT", "^18^Fluorine"))
    radio.RadiopharmaceuticalStartTime = c.study.time
    radio.RadionuclideTotalDose = 250000000
    radio.RadionuclideHalfLife = 6586.2
    radio.RadionuclidePositronFraction = 0.97
    ds.RadiopharmaceuticalInformationSequence = seq(radio)
    orientation = code("102538003", "SCT", "recumbent")
    orientation.PatientOrientationModifierCodeSequence = seq(code("40199007", "SCT", "supine"))
    ds.PatientOrientationCodeSequence = seq(orientation)
    ds.PatientGantryRelationshipCodeSequence = seq(code("102540008", "SCT", "headfirst"))
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    image_plane(ds, z=-200.0 + 4.0 * c.number, spacing=4.0)
    ds.SliceThickness = 4.0
    ds.RescaleIntercept, ds.RescaleSlope = 0, 1.0
    ds.FrameReferenceTime = 0
    ds.ImageIndex = c.number
    ds.AcquisitionDate = c.study.date
    ds.AcquisitionTime = add_minutes(c.study.time, 60)
    ds.ActualFrameDuration = 120000
    ds.DecayFactor = 1.0
    image_comments(ds, c)
    pixels_gray(ds, gray(32, 32, c, bits=16), bits=16)
    privates(ds, c, c.implicit)
    return ds


def _us_image(ds: Dataset, c: InstanceCtx) -> None:
    _common(ds, c, "US")
    ds.BodyPartExamined = "ABDOMEN"
    equipment(ds, c, "Philips", "EPIQ 7G")
    general_image(ds, c, orientation=False)
    ds.PatientOrientation = ""
    ds.ImageType = ["ORIGINAL", "PRIMARY", "ABDOMINAL", "0001"]
    ds.BurnedInAnnotation = "YES"
    image_comments(ds, c)
    privates(ds, c, c.implicit)


def us(c: InstanceCtx) -> Dataset:
    """Ultrasound Image (A.6) 120x160 RGB."""
    ds = Dataset()
    _us_image(ds, c)
    pixels_rgb(ds, color(120, 160, c))
    return ds


def us_multiframe(c: InstanceCtx) -> Dataset:
    """Ultrasound Multi-frame Image (A.7): a 4-frame cine loop, 96x128 RGB."""
    ds = Dataset()
    _us_image(ds, c)
    frames = 4
    ds.NumberOfFrames = frames
    ds.FrameIncrementPointer = 0x00181063
    ds.FrameTime = 33.3
    ds.CineRate = 30
    pixels_rgb(ds, color(96, 128, c, frames=frames))
    return ds


def sc(c: InstanceCtx) -> Dataset:
    """Secondary Capture Image (A.8.1): an 8-bit screen capture of a report viewer."""
    ds = Dataset()
    _common(ds, c, "OT")
    ds.BodyPartExamined = "ABDOMEN"
    equipment(ds, c, "ACME Viewer", "Screen Capture 3")
    ds.ConversionType = "WSD"
    general_image(ds, c)
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.BurnedInAnnotation = "YES"
    ds.DateOfSecondaryCapture = c.study.date
    ds.TimeOfSecondaryCapture = add_minutes(c.study.time, 90)
    p = c.patient
    ds.DerivationDescription = c.text("DerivationDescription", "ST", K("Liver segment"),
                                      " volumes exported for ", p.name())
    image_comments(ds, c)
    arr = gray(128, 128, c, bits=8).astype(np.uint8)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = arr.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = arr.tobytes()
    privates(ds, c, c.implicit)
    return ds
