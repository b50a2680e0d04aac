"""The optional OCR pass: read each detected box so that harmless tokens may stay visible.

A box is left unblanked only when tesseract reads at least one word in it, every word is on
the configured allow-list (orientation letters, units), each with enough confidence, and no
word matches an identifying value of the instance (PatientName parts, IDs, dates, ...), read
from the dataset before de-identification. Everything else that was detected is blanked, so an
OCR failure or an unreadable box always errs toward blanking.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from pydicom import Dataset
from pydicom.multival import MultiValue

from gateway.pixels.boxes import Box

_NAME_KEYWORDS = ("PatientName", "ReferringPhysicianName", "PerformingPhysicianName",
                  "OperatorsName", "NameOfPhysiciansReadingStudy", "PatientMotherBirthName",
                  "OtherPatientNames", "PatientBirthName")
_ID_KEYWORDS = ("PatientID", "OtherPatientIDs", "AccessionNumber", "StudyID",
                "InstitutionName", "StationName", "DeviceSerialNumber", "InstitutionAddress")
_DATE_KEYWORDS = ("PatientBirthDate", "StudyDate", "SeriesDate", "AcquisitionDate",
                  "ContentDate", "InstanceCreationDate")
_NON_ALNUM = re.compile(r"[^0-9A-Z%/]")


def normalise(text: str) -> str:
    """Upper case, letters, digits, '%' and '/' only (what comparisons use)."""
    return _NON_ALNUM.sub("", text.upper())


def _values(ds: Dataset, keyword: str) -> list[str]:
    v = ds.get(keyword)
    if v is None or v == "":
        return []
    if isinstance(v, MultiValue | list | tuple):
        return [str(x) for x in v]
    return [str(v)]


def _date_forms(value: str) -> list[str]:
    """A DA value in the forms it is printed on screens (ISO, European, US, two-digit year)."""
    v = value.strip()[:8]
    if len(v) != 8 or not v.isdigit():
        return [v] if v else []
    y, m, d = v[:4], v[4:6], v[6:8]
    return [v, d + m + y, m + d + y, d + m + y[2:], y[2:] + m + d]


def identifying_values(ds: Dataset) -> set[str]:
    """Normalised identifying values of the instance (names split into their parts)."""
    found: set[str] = set()
    for kw in _NAME_KEYWORDS:
        for name in _values(ds, kw):
            found.update(normalise(p) for p in re.split(r"[\^= ,]+", name))
    for kw in _ID_KEYWORDS:
        for v in _values(ds, kw):
            found.add(normalise(v))
            found.update(normalise(p) for p in v.split() if len(p) > 2)
    for kw in _DATE_KEYWORDS:
        for v in _values(ds, kw):
            found.update(_date_forms(v))
    found.discard("")
    return found


@dataclass(frozen=True)
class Word:
    text: str
    confidence: float


def _crop_for_ocr(frame: np.ndarray, box: Box) -> np.ndarray:
    """The box as an 8-bit grey image, enlarged so that small text reaches ~32 px."""
    from PIL import Image

    from gateway.pixels.model import frame_to_grey

    crop = frame[box.y0:box.y1, box.x0:box.x1]
    grey = (frame_to_grey(crop) * 255 + 0.5).astype(np.uint8)
    scale = max(1, min(8, round(32 / max(1, box.height))))
    img = Image.fromarray(grey)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.BICUBIC)
    if float(np.mean(grey)) < 128:  # tesseract reads dark text on light best
        img = Image.fromarray(255 - np.asarray(img))
    pad = Image.new("L", (img.width + 20, img.height + 20), 255)
    pad.paste(img, (10, 10))
    return np.asarray(pad)


class TesseractReader:
    """Reads words and their confidences from one box with pytesseract (one line, psm 7)."""

    def __init__(self, language: str = "eng", tesseract_cmd: str | None = None) -> None:
        import pytesseract

        if tesseract_cmd:
            pytesseract.pytesseract.tesseract_cmd = tesseract_cmd
        self._tess = pytesseract
        self.language = language

    def read(self, frame: np.ndarray, box: Box) -> list[Word]:
        img = _crop_for_ocr(frame, box)
        data = self._tess.image_to_data(img, lang=self.language, config="--psm 7",
                                        output_type=self._tess.Output.DICT)
        words = []
        for text, conf in zip(data["text"], data["conf"], strict=True):
            if str(text).strip():
                words.append(Word(str(text).strip(), float(conf)))
        return words


def may_keep(words: list[Word], allowed: frozenset[str], identifiers: set[str],
             min_confidence: float) -> bool:
    """Whether a box whose words are ``words`` may stay visible."""
    if not words:
        return False
    joined = "".join(normalise(w.text) for w in words)
    for ident in identifiers:
        if ident and ident in joined:
            return False
    for w in words:
        token = normalise(w.text)
        if w.confidence < min_confidence or not token or token not in allowed:
            return False
    return True
