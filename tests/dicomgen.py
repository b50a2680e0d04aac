"""Synthetic DICOM instances built in code: synthetic patients only, no real data.

Each builder returns a complete Part-10 dataset (file meta included) of a real SOP class with
the attributes of its IOD that matter for routing and de-identification.
"""

from __future__ import annotations

import datetime as dt
import io
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

CT_IMAGE = UID("1.2.840.10008.5.1.4.1.1.2")
MR_IMAGE = UID("1.2.840.10008.5.1.4.1.1.4")
US_IMAGE = UID("1.2.840.10008.5.1.4.1.1.6.1")
SC_IMAGE = UID("1.2.840.10008.5.1.4.1.1.7")

_GIVEN = ["Zebulon", "Quintessa", "Barnaby", "Ottoline", "Cuthbert", "Perpetua", "Ignatius"]
_FAMILY = ["Fakename", "Synthwaite", "Testerly", "Mockridge", "Placeholt", "Nullsworth"]


@dataclass(frozen=True)
class Patient:
    """A synthetic patient with distinctive, greppable identifying values."""

    name: str
    patient_id: str
    birth_date: str
    sex: str

    @classmethod
    def random(cls, rng: random.Random) -> Patient:
        name = f"{rng.choice(_FAMILY)}{rng.randint(100, 999)}^{rng.choice(_GIVEN)}"
        pid = f"SYN{rng.randint(10**7, 10**8 - 1)}"
        born = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randint(0, 25000))
        return cls(name, pid, born.strftime("%Y%m%d"), rng.choice("MF"))


@dataclass(frozen=True)
class Study:
    patient: Patient
    study_uid: str
    accession: str
    date: str
    time: str

    @classmethod
    def random(cls, rng: random.Random, patient: Patient | None = None) -> Study:
        day = dt.date(2015, 1, 1) + dt.timedelta(days=rng.randint(0, 3000))
        return cls(
            patient=patient or Patient.random(rng),
            study_uid=generate_uid(),
            accession=f"ACC{rng.randint(10**6, 10**7 - 1)}",
            date=day.strftime("%Y%m%d"),
            time=f"{rng.randint(7, 18):02d}{rng.randint(0, 59):02d}{rng.randint(0, 59):02d}",
        )


def _file_meta(sop_class: str, sop_instance: str, ts: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ts
    meta.ImplementationClassUID = UID("1.2.826.0.1.3680043.10.1038.99")
    return meta


def _base(study: Study, sop_class: str, modality: str, series_uid: str, number: int) -> Dataset:
    p = study.patient
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study.date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = study.time
    ds.AccessionNumber = study.accession
    ds.Modality = modality
    ds.Manufacturer = "SynthCorp"
    ds.InstitutionName = "Synthetic General Hospital"
    ds.ReferringPhysicianName = "Referrer^Synthetic"
    ds.StationName = "SYNSTATION1"
    ds.StudyDescription = "Synthetic study"
    ds.SeriesDescription = f"Synthetic {modality} series"
    ds.PatientName = p.name
    ds.PatientID = p.patient_id
    ds.PatientBirthDate = p.birth_date
    ds.PatientSex = p.sex
    ds.StudyInstanceUID = study.study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = number
    return ds


def _pixels_gray(ds: Dataset, rows: int, cols: int, rng: np.random.Generator) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    yy, xx = np.mgrid[0:rows, 0:cols]
    body = ((yy - rows / 2) ** 2 + (xx - cols / 2) ** 2 < (min(rows, cols) * 0.4) ** 2) * 1000
    arr = (body + rng.integers(0, 200, size=(rows, cols))).astype(np.uint16)
    ds.PixelData = arr.tobytes()


def ct(study: Study, series_uid: str, number: int, size: int = 64, seed: int = 0) -> Dataset:
    """A CT Image Storage instance (PS3.3 A.3) with 12-bit pixels."""
    ds = _base(study, CT_IMAGE, "CT", series_uid, number)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.FrameOfReferenceUID = generate_uid(entropy_srcs=[series_uid, "for"])
    ds.ImagePositionPatient = [0.0, 0.0, float(number)]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [0.7, 0.7]
    ds.SliceThickness = 1.0
    ds.KVP = 120
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    _pixels_gray(ds, size, size, np.random.default_rng(seed + number))
    return ds


def mr(study: Study, series_uid: str, number: int, size: int = 64, seed: int = 0) -> Dataset:
    """An MR Image Storage instance (PS3.3 A.4)."""
    ds = _base(study, MR_IMAGE, "MR", series_uid, number)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
    ds.FrameOfReferenceUID = generate_uid(entropy_srcs=[series_uid, "for"])
    ds.ImagePositionPatient = [0.0, 0.0, float(number)]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [1.0, 1.0]
    ds.SliceThickness = 3.0
    ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions = "SE", "NONE", ""
    ds.MRAcquisitionType = "2D"
    ds.EchoTime, ds.RepetitionTime = 10.0, 500.0
    _pixels_gray(ds, size, size, np.random.default_rng(seed + number))
    return ds


def us(study: Study, series_uid: str, number: int, rows: int = 120, cols: int = 160) -> Dataset:
    """An Ultrasound Image Storage instance (PS3.3 A.6), RGB."""
    ds = _base(study, US_IMAGE, "US", series_uid, number)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "ABDOMINAL"]
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelRepresentation = 0
    rng = np.random.default_rng(number)
    arr = rng.integers(0, 255, size=(rows, cols, 3), dtype=np.uint8)
    ds.PixelData = arr.tobytes()
    return ds


def sc(study: Study, series_uid: str, number: int, size: int = 64) -> Dataset:
    """A Secondary Capture Image Storage instance (PS3.3 A.8.1), 8-bit grayscale."""
    ds = _base(study, SC_IMAGE, "OT", series_uid, number)
    ds.ConversionType = "WSD"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = size
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelRepresentation = 0
    arr = np.random.default_rng(number).integers(0, 255, size=(size, size), dtype=np.uint8)
    ds.PixelData = arr.tobytes()
    return ds


def save(ds: Dataset, path: Path, ts: str = ExplicitVRLittleEndian) -> Path:
    """Write ``ds`` as a Part-10 file in transfer syntax ``ts``. RLE, JPEG-LS and JPEG 2000
    lossless are encoded here, and so is 8-bit JPEG baseline (by Pillow, marked lossy); Deflated
    Explicit VR Little Endian and Explicit VR Big Endian are written by pydicom."""
    ds = ds.copy()
    ds.file_meta = _file_meta(ds.SOPClassUID, ds.SOPInstanceUID, ExplicitVRLittleEndian)
    if ts == RLELossless:
        ds.compress(RLELossless, encoding_plugin="pydicom", generate_instance_uid=False)
    elif ts in (JPEGLSLossless, JPEG2000Lossless):
        ds.compress(ts, generate_instance_uid=False)
    elif ts == JPEGBaseline8Bit:
        buf = io.BytesIO()
        Image.fromarray(ds.pixel_array).save(buf, "JPEG", quality=92)
        ds.PixelData = encapsulate([buf.getvalue()])
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
        ds.LossyImageCompression = "01"
    elif ts == ExplicitVRBigEndian and int(ds.get("BitsAllocated", 8)) == 16:
        # pydicom writes OW values as held: give it the words in big endian order
        ds.PixelData = np.frombuffer(ds.PixelData, "<u2").astype(">u2").tobytes()
    ds.file_meta = _file_meta(ds.SOPClassUID, ds.SOPInstanceUID, ts)
    path.parent.mkdir(parents=True, exist_ok=True)
    # (a Deflated Explicit VR Little Endian file is deflated by pydicom as it is written)
    ds.save_as(path, implicit_vr=ts == ImplicitVRLittleEndian,
               little_endian=ts != ExplicitVRBigEndian, enforce_file_format=True)
    return path


def mixed_set(root: Path, n: int, seed: int = 1) -> Iterator[tuple[Path, str]]:
    """``n`` files of CT, MR, US and SC in explicit, implicit and RLE syntaxes."""
    rng = random.Random(seed)
    kinds = [
        (ct, ExplicitVRLittleEndian),
        (mr, ImplicitVRLittleEndian),
        (us, ExplicitVRLittleEndian),
        (ct, RLELossless),
        (sc, ExplicitVRLittleEndian),
    ]
    study = Study.random(rng)
    series = {k: generate_uid() for k in range(len(kinds))}
    for i in range(n):
        k = i % len(kinds)
        if i % 50 == 0:
            study = Study.random(rng)
            series = {kk: generate_uid() for kk in range(len(kinds))}
        builder, ts = kinds[k]
        ds = builder(study, series[k], i + 1)
        yield save(ds, root / f"{k}" / f"{i:05d}.dcm", ts), ts
