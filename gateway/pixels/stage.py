"""The ``pixels`` stage: Clean Pixel Data before the header is de-identified.

For an instance the policy selects (:mod:`gateway.pixels.policy`), every frame is decoded,
the region-signature boxes, the area outside the ultrasound regions (optional) and the
detector's padded boxes are blanked, an optional OCR pass lets allow-listed tokens stay, and
the pixel data is written back losslessly (:mod:`gateway.pixels.frames`). JPEG metadata
segments are stripped from any JPEG-family bitstream left unchanged. The stage sets
``ctx.notes["pixels_cleaned"] = True`` only when it ran on the image, so that the
de-identifier then writes Burned In Annotation = NO and code 113101 (PS3.15 E.3.1).

When the scrubber cannot be reached in time the instance is retried or quarantined, never
passed on with pixels unscrubbed; undecodable pixel data is quarantined.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import structlog
from pydicom import Dataset

from gateway.pipeline.stage import Outcome, Stage, StageContext, StageServices
from gateway.pixels import frames as px
from gateway.pixels import jpegmeta
from gateway.pixels.boxes import Box, boxes_mask, prepare
from gateway.pixels.ocr import identifying_values, may_keep, normalise
from gateway.pixels.policy import Decision, decide
from gateway.pixels.service import DetectorClient, ScrubberUnavailable, build_client
from gateway.pixels.signatures import SignatureSet, load_signatures

if TYPE_CHECKING:
    from gateway.pixels.ocr import TesseractReader
    from gateway.pixels.settings import PixelSettings

log = structlog.get_logger("gateway.pixels")


def us_region_mask(ds: Dataset, rows: int, columns: int) -> np.ndarray | None:
    """Pixels inside any Sequence of Ultrasound Regions item (PS3.3 C.8.5.5), or None."""
    regions = ds.get("SequenceOfUltrasoundRegions")
    if not regions:
        return None
    keep = np.zeros((rows, columns), bool)
    for r in regions:
        try:
            x0, y0 = int(r.RegionLocationMinX0), int(r.RegionLocationMinY0)
            x1, y1 = int(r.RegionLocationMaxX1), int(r.RegionLocationMaxY1)
        except (AttributeError, TypeError, ValueError):
            return None
        keep[max(0, y0):max(0, y1 + 1), max(0, x0):max(0, x1 + 1)] = True
    return keep if keep.any() else None


class PixelStage:
    """Finds and blanks burned-in text; see the module docstring."""

    name = "pixels"

    def __init__(self, settings: PixelSettings, client: DetectorClient,
                 signatures: SignatureSet, reader: TesseractReader | None = None) -> None:
        self.settings = settings
        self.client = client
        self.signatures = signatures
        self.reader = reader
        self.allowed = frozenset(normalise(t) for t in settings.ocr.allowed_tokens)

    def __call__(self, ds: Dataset, ctx: StageContext) -> Outcome:
        start = time.perf_counter()
        decision = decide(ds, self.settings.policy, self.signatures)
        if not decision.scrub:
            self._strip(ds)
            return Outcome.proceed()
        identifiers = identifying_values(ds) if self.reader is not None else set()
        try:
            dec = px.decode(ds)
        except px.PixelDecodeError as err:
            return Outcome.quarantine(str(err), "decode")
        try:
            boxes, kept = self._boxes(ds, dec, decision, identifiers)
        except ScrubberUnavailable as err:
            reason = f"pixels not scrubbed: {err}"
            if self.settings.service.on_unavailable == "quarantine":
                return Outcome.quarantine(reason, "scrubber")
            return Outcome.retry(reason, "scrubber")
        fill = px.fill_value(dec, ds)
        changed = self._blank(dec, boxes, fill)
        changed += self._blank_outside_regions(ds, dec, fill)
        try:
            written = px.encode(ds, dec, self.settings.reencode_fallback) if changed else None
        except px.PixelEncodeError as err:
            return Outcome.quarantine(str(err), "encode")
        if written is None:
            self._strip(ds)
        self._record(ctx, decision, dec, boxes, kept, changed, written, start)
        return Outcome.proceed()

    # ------------------------------------------------------------------ steps

    def _boxes(self, ds: Dataset, dec: px.Decoded, decision: Decision,
               identifiers: set[str]) -> tuple[list[list[Box]], int]:
        """Per frame: the boxes to blank, and how many detected boxes OCR let stay."""
        rows, cols = int(dec.frames.shape[1]), int(dec.frames.shape[2])
        fixed = [b for s in decision.signatures for b in s.resolve(rows, cols)]
        per_frame: list[list[Box]] = [list(fixed) for _ in range(dec.count)]
        if not decision.detect:
            return per_frame, 0
        display = [px.display_frame(dec, i, ds) for i in range(dec.count)]
        detected = self.client.detect(display)
        m = self.settings.model
        kept = 0
        for i, found in enumerate(detected):
            padded = prepare(found, rows, cols, m.pad_px, m.pad_fraction)
            if self.reader is not None:
                before = len(padded)
                padded = self._ocr_filter(display[i], padded, identifiers)
                kept += before - len(padded)
            per_frame[i].extend(padded)
        return per_frame, kept

    def _ocr_filter(self, frame: np.ndarray, boxes: Sequence[Box],
                    identifiers: set[str]) -> list[Box]:
        """The boxes that must be blanked after reading them (unreadable ones included)."""
        assert self.reader is not None
        o = self.settings.ocr
        out = []
        for b in boxes:
            try:
                words = self.reader.read(frame, b)
            except Exception:  # OCR trouble never uncovers text
                words = []
            if not may_keep(words, self.allowed, identifiers, o.min_confidence):
                out.append(b)
        return out

    def _blank(self, dec: px.Decoded, boxes: list[list[Box]], fill: int | tuple[int, ...]) -> int:
        """Blank each frame's boxes, or (union_frames) every frame's boxes in all frames."""
        if not (self.settings.union_frames and dec.count > 1):
            return px.blank(dec, boxes, fill)
        rows, cols = int(dec.frames.shape[1]), int(dec.frames.shape[2])
        union = boxes_mask([b for fb in boxes for b in fb], rows, cols)
        return px.blank_outside(dec, ~union, fill)

    def _blank_outside_regions(self, ds: Dataset, dec: px.Decoded,
                               fill: int | tuple[int, ...]) -> int:
        if not self.settings.us_blank_outside_regions:
            return 0
        if str(ds.get("Modality", "")).upper() != "US":
            return 0
        keep = us_region_mask(ds, int(dec.frames.shape[1]), int(dec.frames.shape[2]))
        return px.blank_outside(dec, keep, fill) if keep is not None else 0

    def _strip(self, ds: Dataset) -> None:
        if self.settings.strip_jpeg_metadata and "PixelData" in ds:
            try:
                jpegmeta.strip_dataset(ds, px.transfer_syntax(ds))
            except (jpegmeta.BitstreamError, ValueError, IndexError, struct.error):
                log.warning("pixels.jpeg_metadata_not_stripped")

    def _record(self, ctx: StageContext, decision: Decision, dec: px.Decoded,
                boxes: list[list[Box]], kept: int, changed: int, written: object,
                start: float) -> None:
        ctx.notes["pixels_cleaned"] = True
        ctx.notes["pixels_boxes"] = sum(len(b) for b in boxes)
        ctx.notes["pixels_lossy_input"] = dec.lossy
        if decision.detect:
            ctx.versions.append(self.client.version)
        if decision.signatures or self.signatures.signatures:
            ctx.versions.append(self.signatures.version)
        log.info("pixels.scrubbed", job_id=ctx.job_id, reasons=list(decision.reasons),
                 frames=dec.count, boxes=ctx.notes["pixels_boxes"], ocr_kept=kept,
                 pixels_changed=changed, transfer_syntax=str(written or dec.transfer_syntax),
                 ms=round((time.perf_counter() - start) * 1000, 1))


def make_stage(services: StageServices) -> Stage:
    """Build the stage from settings; ``extras`` may carry ``pixels_client`` or ``pixels_mode``
    (``"inprocess"`` for the offline command and tests)."""
    settings = services.settings
    client = services.extras.get("pixels_client") or build_client(
        settings, services.extras.get("pixels_mode"))
    reader = None
    if settings.pixels.ocr.enabled:
        from gateway.pixels.ocr import TesseractReader

        reader = TesseractReader(settings.pixels.ocr.language, settings.pixels.ocr.tesseract_cmd)
    return PixelStage(settings.pixels, client, load_signatures(settings.pixels.signatures_path()),
                      reader)
