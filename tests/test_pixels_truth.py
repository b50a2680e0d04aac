"""The synthetic ground truth counts only ink that can be seen, and the ink criterion of
recall looks at the string's ink pixels rather than its whole bounding box."""

from __future__ import annotations

import itertools

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


def test_text_on_a_painted_card_is_seen_against_the_card(monkeypatch: pytest.MonkeyPatch) -> None:
    """Visibility is judged against the frame as it was under the text, bands and cards
    included: dark text on a light card laid over a dark background is all truth (it used to
    be judged against the frame before the card, where that text matched the black)."""
    def card(rng: np.random.Generator, c: synth._Canvas, fonts: tuple[str, ...]) -> None:
        c.image[20:100, 20:480] = 0.9
        synth.plant_text(rng, c, fonts, 40, 40, 24, "SMITH^ANNA 1961", allow_rotation=False)

    monkeypatch.setattr(synth, "BACKGROUNDS", (lambda rng, h, w: np.zeros((h, w), np.float32),))
    monkeypatch.setattr(synth, "_add_decoys", lambda rng, img: img)
    monkeypatch.setitem(synth.LAYOUTS, "card", card)
    monkeypatch.setattr(synth, "_ink_value", lambda rng, region: (0.0, 1.0))
    # named twice so that make_sample may draw two; a second painting layout is then dropped
    split = synth.Split("t", (synth.PIL_SCALABLE,), ("card", "card"), colour_fraction=0.0)
    monkeypatch.setattr(synth, "_PAINTING", frozenset({"card"}))
    for seed in range(6):
        s = synth.make_sample(np.random.default_rng(seed), 128, 512, split, text_prob=1.0)
        (box,) = s.boxes
        assert box.text == "SMITH^ANNA 1961" and not box.cut
        assert box.x1 - box.x0 > 150 and box.ink is not None
        dark = (s.image[box.y0:box.y1, box.x0:box.x1] < 0.5)
        assert box.ink[dark].all()  # every dark glyph pixel on the card is truth


def test_splits_keep_their_layouts_and_fonts_apart() -> None:
    train, val, held = synth.TRAIN, synth.VALIDATION, synth.HELD_OUT
    assert not set(train.layouts) & set(held.layouts)
    assert not set(train.fonts) & set(held.fonts)
    assert set(train.layouts) <= set(val.layouts) and val.fonts == train.fonts
    own = set(val.layouts) - set(train.layouts)
    assert own and not own & set(held.layouts)
    assert set(synth.TRAIN_V2.layouts) < set(train.layouts)
    assert all(n in synth.LAYOUTS for n in (*val.layouts, *held.layouts))


@pytest.mark.parametrize("name", ["document", "annotation_block", "mosaic", "caption_stack"])
def test_dense_layouts_stack_several_lines(name: str) -> None:
    """The dense families plant several strings, on lines at most 1.5 line heights apart.
    (Pillow's bitmap font is left out: it draws at 11 px whatever size the layout spaced its
    lines for, a quirk of the generator that the trained weights were made with.)"""
    fonts = tuple(f for f in synth.available_fonts(synth.TRAIN.fonts) if f != synth.PIL_BITMAP)
    counts = []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        c = synth._Canvas(np.zeros((512, 512), np.float32))
        synth.LAYOUTS[name](rng, c, fonts)
        counts.append(len(c.boxes))
        assert all(0 <= b.x0 < b.x1 <= 512 and 0 <= b.y0 < b.y1 <= 512 for b in c.boxes)
        tops = sorted({b.y0 for b in c.boxes})
        gaps = [b - a for a, b in itertools.pairwise(tops) if b > a]
        assert gaps and min(gaps) <= 1.5 * max(b.size for b in c.boxes) + 2
    assert min(counts) >= 2 and max(counts) >= 4
