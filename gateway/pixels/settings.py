"""The ``pixels:`` section of the gateway configuration (Clean Pixel Data, DESIGN.md decision 6).

Defined here and attached to :class:`gateway.config.Settings` as one field so that the pixel
stage's options live beside the code that reads them. Every option has a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.paths import shipped

# Modalities whose images often carry burned-in text (PS3.3 C.7.3.1.1.1 defined terms).
TEXT_MODALITIES = ("US", "IVUS", "SC", "XA", "RF", "ES", "XC", "GM", "OT", "SM", "DOC", "OP")
# Projection modalities scrubbed when the image is derived or secondary (screen captures).
DERIVED_MODALITIES = ("DX", "CR", "MG", "IO", "PX")
# Image Type (0008,0008) values that mark captures, labels and overviews (PS3.3 C.8.12.4.1.1).
TEXT_IMAGE_TYPES = ("SECONDARY", "SCREEN SAVE", "SCREENSHOT", "SCREEN SHOT", "LABEL",
                    "OVERVIEW", "CAPTURE", "REPORT")
# Secondary Capture SOP classes (PS3.4 B.5): the images whose pixels are someone's screen.
SECONDARY_CAPTURE_SOP_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.7.1", "1.2.840.10008.5.1.4.1.1.7.2",
    "1.2.840.10008.5.1.4.1.1.7.3", "1.2.840.10008.5.1.4.1.1.7.4",
)
# Tokens an OCR pass may leave visible: orientation letters and units (never identifying).
DEFAULT_ALLOWED_TOKENS = (
    "L", "R", "A", "P", "H", "F", "S", "I", "AP", "PA", "LAT", "LAO", "RAO", "LL", "RL",
    "CM", "MM", "HZ", "KHZ", "MHZ", "DB", "%", "MS", "FPS", "CM/S", "M/S",
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PixelPolicySettings(_Section):
    """Which instances the stage scrubs. Any rule that matches makes it run."""

    every_image: bool = False
    modalities: tuple[str, ...] = TEXT_MODALITIES
    derived_modalities: tuple[str, ...] = DERIVED_MODALITIES
    image_types: tuple[str, ...] = TEXT_IMAGE_TYPES
    sop_classes: tuple[str, ...] = SECONDARY_CAPTURE_SOP_CLASSES
    # Burned In Annotation (0028,0301) = YES always makes the stage run.
    burned_in_annotation_yes: bool = True
    # Modalities for which Burned In Annotation = NO is believed and the image is skipped.
    # Empty by default: a modality that often carries text is scrubbed whatever it claims.
    trust_burned_in_annotation_no: tuple[str, ...] = ()
    # Run the detector on images matched only by a region signature (the fixed boxes are
    # blanked in any case).
    detect_on_signature_match: bool = False


class PixelModelSettings(_Section):
    """The text detector and how its boxes are grown before blanking.

    The padding defaults were chosen on the validation split (models/textdet/MODEL_CARD.md).
    """

    weights: Path | None = None  # None: models/textdet/textdet-v2.pt of this checkout
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threshold: float | None = Field(default=None, gt=0, lt=1)  # None: the one in the weights
    pad_px: int = Field(default=1, ge=0, le=64)
    pad_fraction: float = Field(default=0.0, ge=0, le=2)
    torch_threads: int = Field(default=1, ge=1, le=256)


class PixelOcrSettings(_Section):
    """The optional OCR pass over detected boxes (pytesseract with Debian's tesseract-ocr)."""

    enabled: bool = False
    allowed_tokens: tuple[str, ...] = DEFAULT_ALLOWED_TOKENS
    # A box whose words are all allowed (and none identifying) with at least this confidence
    # (0-100) is left visible; anything else detected is blanked.
    min_confidence: float = Field(default=60.0, ge=0, le=100)
    tesseract_cmd: str | None = None
    language: str = "eng"


class PixelServiceSettings(_Section):
    """Where the detector runs: one scrubber process for all workers, or in each process."""

    mode: Literal["scrubber", "inprocess"] = "scrubber"
    socket: Path | None = None  # None: <runtime folder>/pixels.sock
    timeout_seconds: float = Field(default=60.0, gt=0)
    # What an instance gets when the scrubber is down or too slow. Never "pass".
    on_unavailable: Literal["retry", "quarantine"] = "retry"
    max_batch_frames: int = Field(default=64, ge=1, le=4096)
    batch_wait_ms: float = Field(default=5.0, ge=0, le=1000)
    # Torch threads of the scrubber process (0: one per CPU core). On a machine without a GPU
    # ``mode: inprocess`` spreads the detector over the workers instead.
    scrubber_threads: int = Field(default=0, ge=0, le=256)


class PixelSettings(_Section):
    """Clean Pixel Data: policy, region signatures, detector, OCR, serving, encodings."""

    policy: PixelPolicySettings = PixelPolicySettings()
    signatures_dir: Path | None = None  # None: rules/pixels of this checkout
    # Multi-frame: blank the boxes found in any frame in every frame (static overlays stay
    # covered even in a frame where the detector missed them).
    union_frames: bool = True
    # Ultrasound: also blank everything outside the Sequence of Ultrasound Regions.
    us_blank_outside_regions: bool = False
    model: PixelModelSettings = PixelModelSettings()
    ocr: PixelOcrSettings = PixelOcrSettings()
    service: PixelServiceSettings = PixelServiceSettings()
    # Transfer syntax written for inputs we cannot re-encode as they came (lossy JPEG,
    # JPEG Lossless process 14): always a lossless one.
    reencode_fallback: Literal[
        "explicit_vr_little_endian", "rle_lossless", "jpeg_ls_lossless", "jpeg2000_lossless"
    ] = "explicit_vr_little_endian"
    # Remove APPn/COM segments (EXIF, comments, ICC) from JPEG bitstreams left unchanged.
    strip_jpeg_metadata: bool = True

    def weights_path(self) -> Path:
        return self.model.weights or shipped("models") / "textdet" / "textdet-v2.pt"

    def signatures_path(self) -> Path:
        return self.signatures_dir or shipped("rules") / "pixels"

    def socket_path(self, runtime_dir: Path) -> Path:
        return self.service.socket or runtime_dir / "pixels.sock"
