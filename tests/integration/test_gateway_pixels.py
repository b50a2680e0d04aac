"""End to end with pixel scrubbing: an ultrasound image with a burned-in name goes through the
gateway (default pipeline: filter, pixels, deidentify, verify, with the scrubber process) and
arrives at Orthanc with the text gone and the rest of the image unchanged."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread

import pixels_data
from harness import destination, gateway, orthanc, storescu, wait_for

pytestmark = pytest.mark.integration


def _box_mask(shape: tuple[int, int], boxes: list, pad: int) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    for b in boxes:
        mask[max(0, b.y0 - pad): b.y1 + pad, max(0, b.x0 - pad): b.x1 + pad] = True
    return mask


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr not installed")
def test_burned_in_name_is_blanked_on_the_way(tmp_path: Path) -> None:
    """The name, ID and date burned into a US frame are unreadable at the PACS; pixels away
    from the text are the sent ones; the header says Burned In Annotation NO."""
    import pytesseract

    planted = pixels_data.ultrasound(rows=480, columns=640)
    src = tmp_path / "us.dcm"
    planted.ds.save_as(src, enforce_file_format=True)
    before = planted.ds.pixel_array.copy()
    read_before = pytesseract.image_to_string(before)
    assert "TESTPATIENT" in read_before.upper()  # the check can fail: tesseract reads it

    with orthanc(tmp_path / "orthanc") as o, gateway(
        tmp_path / "gw", {"destinations": [destination(o)], "deid": {"profile": "research"}}
    ) as g:
        storescu(g.port, [src])
        wait_for(lambda: g.status().get("sent") == 1, 180, 0.5, "sent")
        assert g.status()["quarantined"] == 0

    [stored] = [p for p in (tmp_path / "orthanc" / "storage").rglob("*") if p.is_file()]
    out = dcmread(stored)
    assert out.BurnedInAnnotation == "NO"
    codes = {item.CodeValue for item in out.DeidentificationMethodCodeSequence}
    assert "113101" in codes  # Clean Pixel Data Option, since the stage ran
    after = out.pixel_array
    text = pytesseract.image_to_string(after).upper()
    for word in ("TESTPATIENT", "JANE", pixels_data.PATIENT_ID, "1971"):
        assert word not in text
    # away from the planted text (with a margin for padding), nothing changed
    far = ~_box_mask(after.shape, planted.boxes, pad=24)
    assert np.array_equal(after[far], before[far])
    near = _box_mask(after.shape, planted.boxes, pad=0)
    assert (after[near] != before[near]).any()
