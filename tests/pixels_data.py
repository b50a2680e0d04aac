"""Synthetic instances with burned-in text for the pixel stage's tests (and the gateway's).

Everything is built in code: a speckled ultrasound fan with a patient name, ID and date burned
into the top-left corner, in grey or colour, one or several frames. ``planted`` gives the
boxes where the text was drawn, so a test can check that exactly that area changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from gateway.pixels.boxes import Box

US_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.6.1"
US_MULTIFRAME_STORAGE = "1.2.840.10008.5.1.4.1.1.3.1"
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"

PATIENT_NAME = "TESTPATIENT^JANE"
PATIENT_ID = "PX93417"
BIRTH_DATE = "19710203"


@dataclass
class Planted:
    """An instance and where its text was burned in (frame pixel coordinates)."""

    ds: Dataset
    boxes: list[Box]
    lines: list[str]


def us_background(rows: int, columns: int, seed: int = 0) -> np.ndarray:
    """A speckled ultrasound sector on black, 8-bit grey."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:columns].astype(np.float32)
    ax, ay = columns / 2, -rows * 0.05
    r = np.hypot(xx - ax, yy - ay)
    ang = np.arctan2(xx - ax, yy - ay)
    fan = (np.abs(ang) < 0.6) & (r > rows * 0.1) & (r < rows * 0.95)
    speckle = rng.rayleigh(0.35, (rows, columns)) * np.exp(-r / rows)
    return np.where(fan, np.clip(speckle * 255, 0, 200), 0).astype(np.uint8)


def burn_text(img: np.ndarray, lines: list[str], x: int = 12, y: int = 10,
              size: int = 18, value: int = 255) -> list[Box]:
    """Draw ``lines`` into the 8-bit grey image in place; return their ink boxes."""
    pil = Image.fromarray(img)
    d = ImageDraw.Draw(pil)
    font = ImageFont.truetype(FONT, size)
    boxes = []
    for i, line in enumerate(lines):
        pos = (x, y + i * int(size * 1.4))
        left, top, right, bottom = d.textbbox(pos, line, font=font)
        d.text(pos, line, fill=value, font=font)
        boxes.append(Box(int(left), int(top), int(right), int(bottom)))
    img[:] = np.asarray(pil)
    return boxes


def _base(rows: int, columns: int, frames: int, sop_class: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = PATIENT_NAME, PATIENT_ID, BIRTH_DATE
    ds.StudyDate, ds.Modality, ds.Manufacturer = "20240105", "US", "SYNTHETIC"
    ds.BurnedInAnnotation = "YES"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.Rows, ds.Columns = rows, columns
    if frames > 1:
        ds.NumberOfFrames = frames
    return ds


def ultrasound(rows: int = 480, columns: int = 640, frames: int = 1, colour: bool = False,
               seed: int = 0) -> Planted:
    """A US instance with the patient's name, ID and birth date burned top-left."""
    lines = [PATIENT_NAME.replace("^", " "), f"ID {PATIENT_ID}", "03/02/1971"]
    stack, boxes = [], []
    for f in range(frames):
        img = us_background(rows, columns, seed + f)
        boxes = burn_text(img, lines)
        stack.append(img)
    grey = np.stack(stack)
    sop = US_MULTIFRAME_STORAGE if frames > 1 else US_IMAGE_STORAGE
    ds = _base(rows, columns, frames, sop)
    if colour:
        rgb = np.repeat(grey[..., None], 3, axis=-1)
        rgb[..., 2] = (rgb[..., 2] * 0.8).astype(np.uint8)  # a tint, so channels differ
        ds.SamplesPerPixel, ds.PlanarConfiguration = 3, 0
        arr, pi = (rgb if frames > 1 else rgb[0]), "RGB"
    else:
        ds.SamplesPerPixel = 1
        arr, pi = (grey if frames > 1 else grey[0]), "MONOCHROME2"
    ds.BitsAllocated, ds.PixelRepresentation = 8, 0
    ds.set_pixel_data(arr, pi, 8, generate_instance_uid=False)
    return Planted(ds, boxes, lines)


def grey16(rows: int = 256, columns: int = 256, bits_stored: int = 12, signed: bool = False,
           photometric: str = "MONOCHROME2", frames: int = 1) -> Planted:
    """An 'OT' grey instance of the given depth with one burned-in line (bright in display)."""
    rng = np.random.default_rng(7)
    hi = (1 << (bits_stored - 1)) - 1 if signed else (1 << bits_stored) - 1
    lo = -(1 << (bits_stored - 1)) if signed else 0
    base = us_background(rows, columns, 3)
    text8 = np.zeros_like(base)
    boxes = burn_text(text8, [f"ID {PATIENT_ID}"], size=16)
    stack = []
    for _ in range(frames):
        v = lo + (base.astype(np.int64) * (hi - lo) // 400) + rng.integers(0, 4, base.shape)
        bright = hi if photometric == "MONOCHROME2" else lo
        v = np.where(text8 > 128, bright, v)
        if photometric == "MONOCHROME1":
            v = np.where(text8 > 128, v, hi - (v - lo))
        stack.append(np.clip(v, lo, hi))
    dtype = np.int16 if signed else np.uint16
    arr = np.stack(stack).astype(dtype)
    ds = _base(rows, columns, frames, "1.2.840.10008.5.1.4.1.1.7")
    ds.Modality = "OT"
    ds.SamplesPerPixel, ds.BitsAllocated = 1, 16
    ds.PixelRepresentation = 1 if signed else 0
    ds.set_pixel_data(arr if frames > 1 else arr[0], photometric, bits_stored,
                      generate_instance_uid=False)
    return Planted(ds, boxes, [f"ID {PATIENT_ID}"])
