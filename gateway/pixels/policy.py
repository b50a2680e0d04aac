"""Which instances the pixel stage scrubs, and why (DESIGN.md decision 6).

Any one rule that fires makes the stage run: every image; Burned In Annotation (0028,0301) =
YES; a modality that often carries text (US, SC, XA, ES, OT, SM, ...); a projection modality
(DX, CR, ...) whose Image Type says DERIVED or SECONDARY; an Image Type value such as SECONDARY,
SCREEN SAVE, LABEL or OVERVIEW (PS3.3 C.8.12.4.1.1 for slide images); a Secondary Capture SOP
class; a region signature. Burned In Annotation = NO skips an image only for modalities the
site lists in ``trust_burned_in_annotation_no`` (none by default), because devices that write
text into pixels often claim NO.

Reasons are short fixed strings (no patient values) recorded in the stage's log line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydicom import Dataset

from gateway.pixels.settings import PixelPolicySettings
from gateway.pixels.signatures import Signature, SignatureSet


@dataclass(frozen=True)
class Decision:
    """Whether to scrub, whether to run the detector, and the fixed-box signatures matched."""

    scrub: bool
    detect: bool
    reasons: tuple[str, ...]
    signatures: tuple[Signature, ...] = field(default=())


def _image_type(ds: Dataset) -> list[str]:
    value = ds.get("ImageType")
    if value is None:
        return []
    values = [value] if isinstance(value, str) else list(value)
    return [str(v).strip().upper() for v in values]


def _rule_reasons(ds: Dataset, policy: PixelPolicySettings) -> list[str]:
    """The policy rules (other than signatures) that ask for the detector."""
    reasons: list[str] = []
    modality = str(ds.get("Modality", "")).strip().upper()
    burned = str(ds.get("BurnedInAnnotation", "")).strip().upper()
    image_type = _image_type(ds)
    if policy.every_image:
        reasons.append("every_image")
    if policy.burned_in_annotation_yes and burned == "YES":
        reasons.append("burned_in_annotation")
    if modality in policy.modalities:
        reasons.append(f"modality:{modality}")
    if modality in policy.derived_modalities and (
            "DERIVED" in image_type[:1] or "SECONDARY" in image_type[1:2]):
        reasons.append(f"derived:{modality}")
    hits = sorted(set(image_type) & set(policy.image_types))
    reasons.extend(f"image_type:{t}" for t in hits)
    if str(ds.get("SOPClassUID", "")) in policy.sop_classes:
        reasons.append("sop_class:secondary_capture")
    trusted_no = burned == "NO" and modality in policy.trust_burned_in_annotation_no
    if trusted_no and not policy.every_image:
        return []
    return reasons


def decide(ds: Dataset, policy: PixelPolicySettings, signatures: SignatureSet) -> Decision:
    """The decision for one instance."""
    if "PixelData" not in ds:
        return Decision(False, False, ("no_pixel_data",))
    reasons = _rule_reasons(ds, policy)
    matched = tuple(signatures.matching(ds))
    detect = bool(reasons) or (bool(matched) and policy.detect_on_signature_match)
    reasons += [f"signature:{s.name}" for s in matched]
    return Decision(bool(reasons), detect, tuple(reasons), matched)
