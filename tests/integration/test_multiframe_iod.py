"""Multi-frame objects keep a valid IOD through the pixel and de-identification stages: DCMTK's
``dciodvfy`` finds no error in an output that it did not find in its input.

The instances are built in code: VL Whole Slide Microscopy images (LABEL, OVERVIEW and VOLUME
image types, PS3.3 A.32.8), a Legacy Converted Enhanced MR and CT (built by highdicom from
single-frame series), an Ultrasound Multi-frame image and a Segmentation (highdicom). WSI labels
and overviews are single-frame images of a multi-frame IOD, whose Number of Frames is Type 1.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from pydicom import Dataset, dcmread
from pydicom.dataset import FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

from gateway.config import parse_settings
from gateway.deid.offline import write_atomically
from gateway.pipeline.compose import build_pipeline
from gateway.pipeline.stage import OutcomeKind, StageContext, StageServices
from gateway.pseudonyms.interface import InMemoryPseudonymizer

import dicomgen

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy is not installed"),
]

WSI = "1.2.840.10008.5.1.4.1.1.77.1.6"
US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _label_text(rows: int, cols: int) -> np.ndarray:
    """An RGB slide label with printed lines of text (what the pixel stage must blank)."""
    img = Image.new("RGB", (cols, rows), (235, 235, 230))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=22)
    for i, line in enumerate(("SYNTHWAITE^ZEBULON", "SYN12345678", "1971-02-03 S-24-0042")):
        draw.text((12, 14 + 34 * i), line, fill=(10, 10, 10), font=font)
    return np.asarray(img)


def wsi(image_type: str, frames: int = 1, rows: int = 128, cols: int = 320) -> Dataset:
    """A VL Whole Slide Microscopy Image (PS3.3 A.32.8) with the modules dciodvfy checks."""
    study = dicomgen.Study.random(random.Random(11))
    ds = dicomgen._base(study, WSI, "SM", generate_uid(), 1)
    for keyword in ("ReferringPhysicianName", "StationName"):
        delattr(ds, keyword)
    ds.ReferringPhysicianName = "Referrer^Synthetic"
    flavour = {"LABEL": "NONE", "OVERVIEW": "NONE", "VOLUME": "RESAMPLED"}[image_type]
    ds.ImageType = ["ORIGINAL", "PRIMARY", image_type, flavour]
    ds.FrameOfReferenceUID = generate_uid()
    ds.PositionReferenceIndicator = "SLIDE_CORNER"
    ds.ManufacturerModelName = "SynthScan 1"
    ds.DeviceSerialNumber = "SN-0001"
    ds.SoftwareVersions = "1.0"
    ds.AcquisitionDateTime = study.date + study.time
    ds.ContentDate, ds.ContentTime = study.date, study.time
    ds.NumberOfFrames = frames
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.TotalPixelMatrixColumns, ds.TotalPixelMatrixRows = cols, rows * frames
    ds.TotalPixelMatrixFocalPlanes = 1
    origin = Dataset()
    origin.XOffsetInSlideCoordinateSystem = 0.0
    origin.YOffsetInSlideCoordinateSystem = 0.0
    ds.TotalPixelMatrixOriginSequence = Sequence([origin])
    ds.ImageOrientationSlide = [0.0, -1.0, 0.0, -1.0, 0.0, 0.0]
    ds.ImagedVolumeWidth, ds.ImagedVolumeHeight, ds.ImagedVolumeDepth = 25.0, 75.0, 1.0
    ds.ExtendedDepthOfField = "NO"
    ds.FocusMethod = "AUTO"
    ds.SpecimenLabelInImage = "YES" if image_type in ("LABEL", "OVERVIEW") else "NO"
    ds.BurnedInAnnotation = "YES" if image_type in ("LABEL", "OVERVIEW") else "NO"
    ds.LossyImageCompression = "00"
    ds.VolumetricProperties = "VOLUME"
    ds.DimensionOrganizationType = "TILED_FULL"
    ds.ContainerIdentifier = "S-24-0042"
    ds.LabelText = "SYNTHWAITE^ZEBULON SYN12345678"
    ds.BarcodeValue = "SYN12345678"
    frame_type = Dataset()
    frame_type.FrameType = ds.ImageType
    shared_frame_type = Sequence([frame_type])
    ds.IssuerOfTheContainerIdentifierSequence = Sequence()
    ds.ContainerTypeCodeSequence = Sequence([_code("433466003", "SCT",
                                                   "Microscope slide")])
    specimen = Dataset()
    specimen.SpecimenIdentifier = "S-24-0042-A"
    specimen.SpecimenUID = generate_uid()
    specimen.IssuerOfTheSpecimenIdentifierSequence = Sequence()
    specimen.SpecimenPreparationSequence = Sequence()
    ds.SpecimenDescriptionSequence = Sequence([specimen])
    ds.AcquisitionContextSequence = Sequence()
    path = Dataset()
    path.OpticalPathIdentifier = "1"
    path.IlluminationTypeCodeSequence = Sequence([_code("111744", "DCM",
                                                        "Brightfield illumination")])
    path.IlluminationColorCodeSequence = Sequence([_code("11744", "DCM", "Full Spectrum")])
    path.ICCProfile = b"\x00" * 128
    ds.OpticalPathSequence = Sequence([path])
    ds.NumberOfOpticalPaths = 1
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [0.25, 0.25]
    measures.SliceThickness = 0.001
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.WholeSlideMicroscopyImageFrameTypeSequence = shared_frame_type
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    dim = Dataset()
    dim.DimensionOrganizationUID = generate_uid()
    ds.DimensionOrganizationSequence = Sequence([dim])
    if image_type in ("LABEL", "OVERVIEW"):
        pixels = _label_text(rows, cols)[None]
    else:
        rng = np.random.default_rng(5)
        pixels = rng.integers(120, 200, size=(frames, rows, cols, 3), dtype=np.uint8)
    ds.PixelData = pixels.tobytes()
    return ds


def us_multiframe(frames: int = 4) -> Dataset:
    """An Ultrasound Multi-frame Image (PS3.3 A.7) with a burned-in name in every frame."""
    study = dicomgen.Study.random(random.Random(12))
    ds = dicomgen.us(study, generate_uid(), 1, rows=128, cols=320)
    ds.SOPClassUID = US_MULTIFRAME
    ds.NumberOfFrames = frames
    ds.FrameTime = 33.3
    ds.FrameIncrementPointer = 0x00181063
    ds.PhotometricInterpretation = "RGB"
    label = _label_text(128, 320)
    ds.PixelData = np.stack([label] * frames).tobytes()
    return ds


def _legacy(kind: str) -> Dataset:
    """A Legacy Converted Enhanced MR or CT image of four slices (highdicom, PS3.3 A.71/A.70)."""
    legacy = pytest.importorskip("highdicom.legacy")
    study = dicomgen.Study.random(random.Random(13))
    series = generate_uid()
    build = dicomgen.mr if kind == "MR" else dicomgen.ct
    slices = []
    for n in range(1, 5):
        ds = build(study, series, n, size=32)
        ds.PatientBirthDate = study.patient.birth_date
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        slices.append(ds)
    cls = (legacy.LegacyConvertedEnhancedMRImage if kind == "MR"
           else legacy.LegacyConvertedEnhancedCTImage)
    return cls(slices, series_instance_uid=generate_uid(), series_number=100,
               sop_instance_uid=generate_uid(), instance_number=1)


def segmentation() -> Dataset:
    """A binary Segmentation of a small CT series (highdicom, PS3.3 A.51)."""
    hd = pytest.importorskip("highdicom")
    study = dicomgen.Study.random(random.Random(14))
    series = generate_uid()
    images = []
    for n in range(1, 3):
        ds = dicomgen.ct(study, series, n, size=32)
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        images.append(ds)
    mask = np.zeros((2, 32, 32), dtype=bool)
    mask[:, 8:20, 10:22] = True
    description = hd.seg.SegmentDescription(
        segment_number=1, segment_label="lesion",
        segmented_property_category=hd.sr.CodedConcept("49755003", "SCT",
                                                       "Morphologically Altered Structure"),
        segmented_property_type=hd.sr.CodedConcept("4147007", "SCT", "Mass"),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
    return hd.seg.Segmentation(
        source_images=images, pixel_array=mask,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[description], series_instance_uid=generate_uid(),
        series_number=200, sop_instance_uid=generate_uid(), instance_number=1,
        manufacturer="SynthCorp", manufacturer_model_name="Seg 1", software_versions="1.0",
        device_serial_number="SN-2", omit_empty_frames=False)


BUILDERS: dict[str, Callable[[], Dataset]] = {
    "wsi-label": lambda: wsi("LABEL"),
    "wsi-overview": lambda: wsi("OVERVIEW"),
    "wsi-volume": lambda: wsi("VOLUME", frames=3, rows=64, cols=64),
    "us-multiframe": us_multiframe,
    "legacy-enhanced-mr": lambda: _legacy("MR"),
    "legacy-enhanced-ct": lambda: _legacy("CT"),
    "segmentation": segmentation,
}
# The instances whose pixels the pixel stage must blank (its policy selects them and they
# carry printed text), so that the re-encode path is the one checked.
SCRUBBED = {"wsi-label", "wsi-overview", "us-multiframe"}


def dciodvfy_errors(path: Path) -> set[str]:
    """The error lines of ``dciodvfy``, with runs of digits that can be UIDs or dates masked
    (they differ between an input and its de-identified output)."""
    proc = subprocess.run(["dciodvfy", "-new", str(path)], capture_output=True, text=True,
                          timeout=120)
    lines = (proc.stdout + proc.stderr).splitlines()
    return {re.sub(r"\d[\d.]{5,}", "#", line.strip()) for line in lines
            if line.startswith("Error")}


@pytest.fixture(scope="module")
def stages_by_profile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list]:
    """The pixel (in process) and deidentify stages of each profile."""
    root = tmp_path_factory.mktemp("stages")
    out = {}
    for profile in ("basic", "research"):
        settings = parse_settings({
            "spool": {"root": str(root / "spool")},
            "deid": {"profile": profile},
            "pixels": {"service": {"mode": "inprocess"}},
        })
        services = StageServices(settings=settings, pseudonymizer=InMemoryPseudonymizer())
        out[profile] = build_pipeline(["pixels", "deidentify"], services)
    return out


@pytest.mark.parametrize("profile", ["basic", "research"])
@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_output_has_no_iod_error_its_input_did_not_have(
    kind: str, profile: str, stages_by_profile: dict[str, list], tmp_path: Path
) -> None:
    """After pixels + deidentify, dciodvfy reports no error the input did not already have
    (a Type 1 attribute such as Number of Frames is never lost)."""
    ds = BUILDERS[kind]()
    if hasattr(ds, "file_meta"):  # (highdicom's objects come with theirs)
        source = tmp_path / "in.dcm"
        ds.save_as(source, enforce_file_format=True)
    else:
        source = dicomgen.save(ds, tmp_path / "in.dcm")
    before = dciodvfy_errors(source)
    out = dcmread(source)
    ctx = StageContext(job_id="t", source_path=source)
    for stage in stages_by_profile[profile]:
        outcome = stage(out, ctx)
        assert outcome.kind is OutcomeKind.CONTINUE, outcome.reason
    if kind in SCRUBBED:
        assert ctx.notes.get("pixels_boxes", 0) > 0  # the pixels were blanked and re-encoded
    target = tmp_path / "out.dcm"
    write_atomically(out, target)
    after = dciodvfy_errors(target)
    assert after - before == set()
    written = dcmread(target)
    assert written.get("NumberOfFrames") == ds.get("NumberOfFrames")


def test_rle_wsi_label_keeps_number_of_frames(stages_by_profile: dict[str, list],
                                              tmp_path: Path) -> None:
    """A WSI label stored RLE Lossless is re-encoded RLE with Number of Frames = 1 kept."""
    source = dicomgen.save(wsi("LABEL"), tmp_path / "in.dcm", RLELossless)
    out = dcmread(source)
    ctx = StageContext(job_id="t", source_path=source)
    for stage in stages_by_profile["basic"]:
        assert stage(out, ctx).kind is OutcomeKind.CONTINUE
    assert ctx.notes.get("pixels_boxes", 0) > 0
    write_atomically(out, tmp_path / "out.dcm")
    written = dcmread(tmp_path / "out.dcm")
    assert written.file_meta.TransferSyntaxUID == RLELossless
    assert written.NumberOfFrames == 1
    assert dciodvfy_errors(tmp_path / "out.dcm") - dciodvfy_errors(source) == set()
