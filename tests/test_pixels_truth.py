"""The synthetic ground truth counts only ink that can be seen, and the ink criterion of
recall looks at the string's ink pixels rather than its whole bounding box."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.pixels import evaluate as E
from gateway.pixels import synth
from gateway.pixels.boxes import Box


def _plant(monkeypatch: pytest.MonkeyPatch, image: np.ndarray, ink_value: float,
           text: str = "MMMMMMMMMMMM") -> tuple[synth._Canvas, np.ndarray]:
    monkeypatch.setattr(synth, "_ink_value", lambda rng, region: (ink_value, 1 - ink_value))
    canvas = synth._Canvas(image.copy())
    plain = image.copy()
    ink, edge = synth._render_layer(text, synth.PIL_SCALABLE, 20, False, 0)
    assert synth._composite(np.random.default_rng(0), canvas, ink, edge, 10, 10, text, 20)
    return canvas, plain


def test_text_running_onto_its_own_colour_is_truth_only_where_visible(
        monkeypatch: pytest.MonkeyPatch) -> None:
    image = np.zeros((60, 400), np.float32)
    image[:, 120:] = 1.0  # white text leaves the black panel onto white
    canvas, plain = _plant(monkeypatch, image, 1.0)
    (drawn,) = canvas.boxes
    assert drawn.x1 > 150  # the string itself runs well past the edge
    (seen,) = synth._visible(canvas.boxes,
                             np.abs(canvas.image - plain) >= synth.VISIBLE_CONTRAST)
    assert seen.x0 == drawn.x0 and seen.x1 <= 120 and seen.cut
    assert seen.ink is not None and seen.ink.shape == (seen.y1 - seen.y0, seen.x1 - seen.x0)


def test_invisible_string_is_no_truth(monkeypatch: pytest.MonkeyPatch) -> None:
    image = np.zeros((60, 400), np.float32)
    canvas, plain = _plant(monkeypatch, image, 0.0)  # black on black
    assert len(canvas.boxes) == 1
    assert synth._visible(canvas.boxes, np.abs(canvas.image - plain) >= 0.04) == []


def test_ink_recall_ignores_the_gap_between_words() -> None:
    """Blanking each word but not the space around a short word counts as found by ink and
    not by the bounding box."""
    image = np.zeros((40, 200), np.float32)
    ink = np.zeros((20, 150), bool)
    ink[:, :60] = True  # a tall word
    ink[:8, 90:] = True  # a short word beside it
    image[10:30, 20:170][ink] = 1.0
    box = synth.TextBox(20, 10, 170, 30, "tall short", 20, ink=ink)
    sample = synth.Sample(image, [box], synth.boxes_mask([box], 40, 200))
    words = [Box(20, 10, 80, 30), Box(110, 10, 170, 18)]
    q = E.Quality()
    E.score_frame(q, 0, sample, words, 0, 0.0, 8)
    assert (q.found, q.found_ink, q.planted) == (0, 1, 1)
    q = E.Quality()
    E.score_frame(q, 0, sample, words[:1], 0, 0.0, 8)
    assert (q.found, q.found_ink) == (0, 0)
