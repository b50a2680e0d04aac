"""Which instances the pixel stage scrubs, and region signatures from YAML."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import Dataset

from gateway.pixels.policy import decide
from gateway.pixels.settings import PixelPolicySettings
from gateway.pixels.signatures import SignatureError, SignatureSet, load_signatures

NONE = SignatureSet((), "0" * 64)
REPO = Path(__file__).resolve().parents[1]


def _ds(**kw: object) -> Dataset:
    ds = Dataset()
    ds.PixelData = b"\0\0"
    ds.Rows, ds.Columns = 480, 640
    for k, v in kw.items():
        setattr(ds, k, v)
    return ds


def test_ultrasound_is_scrubbed_even_when_it_claims_no_burned_in_text() -> None:
    """By default Burned In Annotation = NO does not exempt a modality that often has text."""
    d = decide(_ds(Modality="US", BurnedInAnnotation="NO"), PixelPolicySettings(), NONE)
    assert d.scrub and d.detect and "modality:US" in d.reasons


def test_trusted_no_skips_only_the_listed_modality() -> None:
    """A site may trust Burned In Annotation = NO for named modalities only."""
    policy = PixelPolicySettings(trust_burned_in_annotation_no=("US",))
    assert not decide(_ds(Modality="US", BurnedInAnnotation="NO"), policy, NONE).scrub
    assert decide(_ds(Modality="XA", BurnedInAnnotation="NO"), policy, NONE).scrub


def test_ct_original_primary_is_not_scrubbed() -> None:
    """An original CT slice without markers of text is left to the header stages."""
    ds = _ds(Modality="CT", ImageType=["ORIGINAL", "PRIMARY", "AXIAL"])
    assert not decide(ds, PixelPolicySettings(), NONE).scrub


@pytest.mark.parametrize(("kw", "reason"), [
    ({"Modality": "CT", "BurnedInAnnotation": "YES"}, "burned_in_annotation"),
    ({"Modality": "DX", "ImageType": ["DERIVED", "SECONDARY"]}, "derived:DX"),
    ({"Modality": "SM", "ImageType": ["ORIGINAL", "PRIMARY", "LABEL"]}, "image_type:LABEL"),
    ({"Modality": "MR", "ImageType": ["DERIVED", "SECONDARY", "SCREEN SAVE"]},
     "image_type:SCREEN SAVE"),
    ({"Modality": "CT", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.7"},
     "sop_class:secondary_capture"),
])
def test_each_policy_rule_fires(kw: dict[str, object], reason: str) -> None:
    """Burned-in YES, derived projections, label/screen-save image types and SC classes."""
    assert reason in decide(_ds(**kw), PixelPolicySettings(), NONE).reasons


def test_every_image_overrides_trusted_no() -> None:
    """every_image scrubs all instances with pixel data."""
    policy = PixelPolicySettings(every_image=True, trust_burned_in_annotation_no=("CT",))
    assert decide(_ds(Modality="CT", BurnedInAnnotation="NO"), policy, NONE).scrub


def test_no_pixel_data_is_never_scrubbed() -> None:
    """Instances without Pixel Data pass untouched."""
    ds = Dataset()
    ds.Modality = "US"
    assert not decide(ds, PixelPolicySettings(), NONE).scrub


def _write(tmp_path: Path, text: str) -> SignatureSet:
    (tmp_path / "site.yaml").write_text(text)
    return load_signatures(tmp_path)


SITE = """
signatures:
  - name: vendor-ct-banner
    match: {manufacturer: "acme.*", model: "Scan ?9", modality: CT, rows: 480, columns: 640}
    boxes:
      - [0, 0, 0, 32]
      - [-180, -20, 0, 0]
      - [10, 40, 50, 10]
"""


def test_signature_boxes_resolve_negative_and_edge_coordinates(tmp_path: Path) -> None:
    """Negative x/y count from the right/bottom; width/height 0 run to the edge."""
    sigs = _write(tmp_path, SITE)
    (sig,) = sigs.signatures
    boxes = [(b.x0, b.y0, b.x1, b.y1) for b in sig.resolve(480, 640)]
    assert boxes == [(0, 0, 640, 32), (460, 460, 640, 480), (10, 40, 60, 50)]


def test_signature_matches_case_insensitively_on_whole_values(tmp_path: Path) -> None:
    """Manufacturer/model patterns are whole-value, case-insensitive; size must match."""
    sigs = _write(tmp_path, SITE)
    ok = _ds(Modality="CT", Manufacturer="ACME Medical", ManufacturerModelName="scan9")
    assert sigs.matching(ok)
    assert not sigs.matching(_ds(Modality="CT", Manufacturer="NOT ACME",
                                 ManufacturerModelName="Scan 9"))
    small = _ds(Modality="CT", Manufacturer="ACME", ManufacturerModelName="Scan 9")
    small.Rows = 512
    assert not sigs.matching(small)


def test_signature_match_blanks_without_the_detector(tmp_path: Path) -> None:
    """A CT matched only by a signature is scrubbed with fixed boxes and no detector run."""
    sigs = _write(tmp_path, SITE)
    ds = _ds(Modality="CT", Manufacturer="ACME", ManufacturerModelName="Scan 9",
             ImageType=["ORIGINAL", "PRIMARY"])
    d = decide(ds, PixelPolicySettings(), sigs)
    assert d.scrub and not d.detect and d.signatures
    d2 = decide(ds, PixelPolicySettings(detect_on_signature_match=True), sigs)
    assert d2.detect


def test_malformed_signature_is_rejected_with_its_file_name(tmp_path: Path) -> None:
    """A bad box is reported with the file and entry, not silently ignored."""
    with pytest.raises(SignatureError, match=r"site.yaml entry 0"):
        _write(tmp_path, "signatures:\n  - name: x\n    boxes: [[0, 0, -5, 3]]\n")


def test_shipped_signature_files_load() -> None:
    """rules/pixels parses and its digest is stable across loads."""
    a = load_signatures(REPO / "rules" / "pixels")
    b = load_signatures(REPO / "rules" / "pixels")
    assert a.signatures and a.version == b.version
