"""The pixels stage with a stand-in detector: outcomes, notes, signatures, OCR and US regions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from pydicom import Dataset
from pydicom.dataset import Dataset as Item
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit

from gateway.config import Settings
from gateway.pipeline.compose import build_pipeline
from gateway.pipeline.stage import OutcomeKind, StageContext, StageServices
from gateway.pixels.boxes import Box
from gateway.pixels.ocr import Word, identifying_values, may_keep, normalise
from gateway.pixels.service import ScrubberUnavailable
from gateway.pixels.signatures import load_signatures
from gateway.pixels.stage import PixelStage
from tests.pixels_data import PATIENT_ID, ultrasound


class FixedClient:
    """Reports the same boxes on every frame and counts its calls."""

    version = "fixed@test"

    def __init__(self, boxes: list[Box]) -> None:
        self.boxes, self.calls = boxes, 0

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Box]]:
        self.calls += 1
        return [list(self.boxes) for _ in frames]


class DownClient:
    version = "down@test"

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Box]]:
        raise ScrubberUnavailable("pixel scrubber is not running")


class FakeReader:
    """Answers OCR with the words given for a box's top-left corner."""

    def __init__(self, words: dict[tuple[int, int], list[Word]]) -> None:
        self.words = words

    def read(self, frame: np.ndarray, box: Box) -> list[Word]:
        return self.words.get((box.x0, box.y0), [])


def _settings(tmp_path: Path, **pixels: object) -> Settings:
    return Settings.model_validate({"spool": {"root": str(tmp_path)},
                                    "pixels": {"signatures_dir": str(tmp_path / "sig"),
                                               "model": {"pad_px": 0, "pad_fraction": 0},
                                               **pixels}})


def _stage(tmp_path: Path, client: object, reader: object = None, **pixels: object) -> PixelStage:
    s = _settings(tmp_path, **pixels)
    return PixelStage(s.pixels, client, load_signatures(s.pixels.signatures_path()),  # type: ignore[arg-type]
                      reader)  # type: ignore[arg-type]


def test_detected_boxes_are_blanked_and_the_note_is_set(tmp_path: Path) -> None:
    """The boxes the detector reports become black; pixels_cleaned and the model version are
    recorded."""
    pl = ultrasound()
    before = pl.ds.pixel_array.copy()
    ctx = StageContext(job_id="j")
    out = _stage(tmp_path, FixedClient(pl.boxes))(pl.ds, ctx)
    assert out.kind is OutcomeKind.CONTINUE
    after = pl.ds.pixel_array
    for b in pl.boxes:
        assert (after[b.y0:b.y1, b.x0:b.x1] == 0).all()
    assert (after != before).any()
    assert ctx.notes["pixels_cleaned"] is True and "fixed@test" in ctx.versions


def test_image_outside_policy_is_untouched_and_not_marked(tmp_path: Path) -> None:
    """A CT original is not scrubbed and pixels_cleaned stays unset."""
    pl = ultrasound()
    pl.ds.Modality, pl.ds.BurnedInAnnotation = "CT", "NO"
    pl.ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    data = bytes(pl.ds.PixelData)
    client = FixedClient(pl.boxes)
    ctx = StageContext(job_id="j")
    assert _stage(tmp_path, client)(pl.ds, ctx).kind is OutcomeKind.CONTINUE
    assert bytes(pl.ds.PixelData) == data and client.calls == 0
    assert "pixels_cleaned" not in ctx.notes


@pytest.mark.parametrize(("mode", "kind"), [("retry", OutcomeKind.RETRY),
                                            ("quarantine", OutcomeKind.QUARANTINE)])
def test_scrubber_down_never_passes_pixels(tmp_path: Path, mode: str, kind: OutcomeKind) -> None:
    """With the scrubber unreachable the stage retries or quarantines, never continues."""
    pl = ultrasound()
    ctx = StageContext(job_id="j")
    out = _stage(tmp_path, DownClient(), service={"on_unavailable": mode})(pl.ds, ctx)
    assert out.kind is kind and out.reason_class == "scrubber"
    assert "pixels_cleaned" not in ctx.notes


def test_undecodable_pixels_are_quarantined(tmp_path: Path) -> None:
    """Corrupt compressed pixel data goes to quarantine with reason class decode."""
    pl = ultrasound()
    pl.ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    pl.ds.PixelData = encapsulate([b"\xff\xd8\xff\xd9"])
    out = _stage(tmp_path, FixedClient([]))(pl.ds, StageContext(job_id="j"))
    assert out.kind is OutcomeKind.QUARANTINE and out.reason_class == "decode"


def test_nothing_detected_leaves_pixel_data_bytes_identical(tmp_path: Path) -> None:
    """When no text is found the pixel data is not re-encoded, yet the stage ran."""
    pl = ultrasound()
    data = bytes(pl.ds.PixelData)
    ctx = StageContext(job_id="j")
    _stage(tmp_path, FixedClient([]))(pl.ds, ctx)
    assert bytes(pl.ds.PixelData) == data and ctx.notes["pixels_cleaned"] is True


def test_signature_boxes_are_blanked_without_calling_the_detector(tmp_path: Path) -> None:
    """A CT matched by a region signature gets its fixed boxes blanked; the model is not run."""
    (tmp_path / "sig").mkdir()
    (tmp_path / "sig" / "s.yaml").write_text(
        "signatures:\n  - name: t\n    match: {manufacturer: SYNTHETIC, modality: CT}\n"
        "    boxes: [[0, 0, 0, 90]]\n")
    pl = ultrasound()
    pl.ds.Modality, pl.ds.BurnedInAnnotation = "CT", "NO"
    pl.ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    pl.ds.ImageType = ["ORIGINAL", "PRIMARY"]
    client = FixedClient([])
    ctx = StageContext(job_id="j")
    _stage(tmp_path, client)(pl.ds, ctx)
    assert client.calls == 0
    assert (pl.ds.pixel_array[:90] == 0).all()
    assert ctx.notes["pixels_cleaned"] is True
    assert any(v.startswith("pixel-signatures@") for v in ctx.versions)


def test_us_regions_option_blanks_outside_the_regions(tmp_path: Path) -> None:
    """With us_blank_outside_regions, pixels outside every US region become black."""
    pl = ultrasound(rows=120, columns=160)
    region = Item()
    region.RegionLocationMinX0, region.RegionLocationMinY0 = 40, 30
    region.RegionLocationMaxX1, region.RegionLocationMaxY1 = 119, 99
    pl.ds.SequenceOfUltrasoundRegions = [region]
    pl.ds.PixelData = (np.full((120, 160), 90, np.uint8)).tobytes()
    _stage(tmp_path, FixedClient([]), us_blank_outside_regions=True)(pl.ds,
                                                                      StageContext(job_id="j"))
    a = pl.ds.pixel_array
    assert (a[30:100, 40:120] == 90).all()
    inside = np.zeros_like(a, bool)
    inside[30:100, 40:120] = True
    assert (a[~inside] == 0).all()


def test_ocr_keeps_allowed_tokens_and_blanks_identifiers(tmp_path: Path) -> None:
    """A box read as an orientation letter stays; one read as the patient ID is blanked; an
    unreadable box is blanked."""
    pl = ultrasound()
    letter, ident, unread = Box(300, 200, 320, 220), Box(300, 300, 400, 320), Box(10, 400, 40, 420)
    pl.ds.PixelData = np.full((480, 640), 120, np.uint8).tobytes()
    reader = FakeReader({(300, 200): [Word("L", 95.0)], (300, 300): [Word(PATIENT_ID, 95.0)]})
    _stage(tmp_path, FixedClient([letter, ident, unread]), reader)(pl.ds, StageContext(job_id="j"))
    a = pl.ds.pixel_array
    assert (a[200:220, 300:320] == 120).all()
    assert (a[300:320, 300:400] == 0).all() and (a[400:420, 10:40] == 0).all()


def test_ocr_rules_blank_unless_every_word_is_allowed_and_confident() -> None:
    """may_keep needs words, all on the allow-list, confident, and none identifying."""
    allowed = frozenset({"L", "CM", "R"})
    assert may_keep([Word("L", 90)], allowed, set(), 60)
    assert not may_keep([], allowed, set(), 60)
    assert not may_keep([Word("L", 30)], allowed, set(), 60)
    assert not may_keep([Word("L", 90), Word("JANE", 90)], allowed, set(), 60)
    assert not may_keep([Word("L", 90)], allowed, {"L"}, 60)


def test_identifying_values_cover_name_parts_ids_and_date_forms() -> None:
    """Names are split into parts; dates appear in ISO, European and US forms."""
    ds = Dataset()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "DOE^JANE^Q", "AB-123", "19710203"
    v = identifying_values(ds)
    assert {"DOE", "JANE", "Q", normalise("AB-123"), "19710203", "03021971", "02031971"} <= v


def test_stage_is_registered_and_builds_in_process(tmp_path: Path) -> None:
    """'pixels' is a registered stage name and builds with an injected client."""
    services = StageServices(settings=_settings(tmp_path),
                             extras={"pixels_client": FixedClient([])})
    (stage,) = build_pipeline(["pixels"], services)
    assert stage.name == "pixels"


class PerFrameClient:
    """Finds a box only in the first frame (as if the detector missed it elsewhere)."""

    version = "first@test"

    def __init__(self, box: Box) -> None:
        self.box = box

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Box]]:
        return [[self.box] if i == 0 else [] for i in range(len(frames))]


@pytest.mark.parametrize("union", [True, False])
def test_multiframe_union_covers_frames_where_detection_missed(tmp_path: Path,
                                                                union: bool) -> None:
    """With union_frames a box found in one frame is blanked in all; without, only there."""
    pl = ultrasound(rows=120, columns=160, frames=3)
    pl.ds.PixelData = np.full((3, 120, 160), 99, np.uint8).tobytes()
    box = Box(10, 10, 50, 30)
    _stage(tmp_path, PerFrameClient(box), union_frames=union)(pl.ds, StageContext(job_id="j"))
    a = pl.ds.pixel_array
    assert (a[0, 10:30, 10:50] == 0).all()
    assert bool((a[2, 10:30, 10:50] == 0).all()) is union
    assert (a[:, 40:, :] == 99).all()


def test_real_tesseract_keeps_an_orientation_letter_and_blanks_the_name(tmp_path: Path) -> None:
    """With pytesseract, a box reading 'L' stays visible and the name box is blanked."""
    from gateway.pixels.ocr import TesseractReader
    from tests.pixels_data import burn_text

    pl = ultrasound()
    img = pl.ds.pixel_array.copy()
    (letter,) = burn_text(img, ["L"], x=560, y=400, size=28)
    pl.ds.PixelData = img.tobytes()
    name = pl.boxes[0]
    boxes = [Box(letter.x0 - 3, letter.y0 - 3, letter.x1 + 3, letter.y1 + 3),
             Box(name.x0 - 3, name.y0 - 3, name.x1 + 3, name.y1 + 3)]
    stage = _stage(tmp_path, FixedClient(boxes), TesseractReader(), ocr={"enabled": True})
    stage(pl.ds, StageContext(job_id="j"))
    a = pl.ds.pixel_array
    assert (a[letter.y0:letter.y1, letter.x0:letter.x1] == img[letter.y0:letter.y1,
                                                              letter.x0:letter.x1]).all()
    assert (a[name.y0:name.y1, name.x0:name.x1] == 0).all()


def test_unparseable_jpeg_outside_policy_proceeds_untouched(tmp_path: Path) -> None:
    """A JPEG stream the metadata stripper cannot parse is left as it is, not crashed on."""
    pl = ultrasound()
    pl.ds.Modality, pl.ds.BurnedInAnnotation = "CT", "NO"
    pl.ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    pl.ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    pl.ds.PixelData = encapsulate([b"\xff\xd8\xff\xe1\x00"])
    data = bytes(pl.ds.PixelData)
    out = _stage(tmp_path, FixedClient([]))(pl.ds, StageContext(job_id="j"))
    assert out.kind is OutcomeKind.CONTINUE and bytes(pl.ds.PixelData) == data
