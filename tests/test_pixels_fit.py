"""Fitting the detector's coarse boxes to the ink: flat and textured backgrounds, and the
rule that keeps faint text whole."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from gateway.pixels.boxes import Box, boxes_mask
from gateway.pixels.model import (
    FLAT_TOL,
    STRIDE,
    _median,
    _percentiles,
    _shrink_side,
    _side_reference,
    boxes_from_probability,
    frame_to_grey,
    refine_box,
)


def _text(canvas: np.ndarray, xy: tuple[int, int], text: str, value: float,
          size: int = 16) -> tuple[int, int, int, int]:
    """Draw ``text`` (no anti-aliasing) and return its ink box (x0, y0, x1, y1)."""
    layer = Image.new("L", (canvas.shape[1], canvas.shape[0]), 0)
    d = ImageDraw.Draw(layer)
    d.fontmode = "1"
    d.text(xy, text, fill=255, font=ImageFont.load_default(size))
    ink = np.asarray(layer) > 0
    canvas[ink] = value
    ys, xs = np.nonzero(ink)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _coarse(*inks: tuple[int, int, int, int]) -> Box:
    """The cell-aligned box around some ink boxes, one cell larger on each side."""
    x0 = min(b[0] for b in inks) // STRIDE * STRIDE - STRIDE
    y0 = min(b[1] for b in inks) // STRIDE * STRIDE - STRIDE
    x1 = -(-max(b[2] for b in inks) // STRIDE) * STRIDE + STRIDE
    y1 = -(-max(b[3] for b in inks) // STRIDE) * STRIDE + STRIDE
    return Box(x0, y0, x1, y1, 0.9)


def _covered(boxes: list[Box], ink: tuple[int, int, int, int], shape: tuple[int, int]) -> float:
    m = boxes_mask(boxes, *shape)
    return float(m[ink[1]:ink[3], ink[0]:ink[2]].mean())


def test_flat_background_fits_each_line_exactly() -> None:
    grey = np.zeros((120, 240), np.float32)
    a = _text(grey, (20, 20), "SMITH^JOHN", 1.0)
    b = _text(grey, (20, 48), "1970-01-01", 1.0)
    boxes = refine_box(grey, _coarse(a, b))
    assert sorted((x.x0, x.y0, x.x1, x.y1) for x in boxes) == sorted([a, b])


def test_textured_background_is_cut_into_lines_with_a_margin() -> None:
    rng = np.random.default_rng(5)
    grey = np.clip(rng.normal(0.45, 0.08, (120, 240)), 0, 1).astype(np.float32)
    a = _text(grey, (20, 20), "SMITH^JOHN", 1.0)
    b = _text(grey, (20, 48), "1970-01-01", 1.0)
    coarse = _coarse(a, b)
    boxes = sorted(refine_box(grey, coarse), key=lambda x: x.y0)
    assert len(boxes) == 2
    for box, ink in zip(boxes, (a, b), strict=True):
        assert _covered([box], ink, grey.shape) == 1.0
        # noise touching the glyphs may add a pixel or two, the margin one more
        assert box.x0 >= ink[0] - 4 and box.y0 >= ink[1] - 4
        assert box.x1 <= ink[2] + 4 and box.y1 <= ink[3] + 4
    assert boxes_mask(boxes, *grey.shape).sum() < coarse.area * 0.7


def test_unsure_margin_grows_only_boxes_that_are_not_flat_fits() -> None:
    """The margin tuned into the weights (unsure_margin) grows textured fits by exactly that
    much more, and leaves the exact fits on a flat background alone."""
    rng = np.random.default_rng(5)
    busy = np.clip(rng.normal(0.45, 0.08, (120, 240)), 0, 1).astype(np.float32)
    flat = np.zeros((120, 240), np.float32)
    for grey in (busy, flat):
        ink = _text(grey, (20, 20), "SMITH^JOHN", 1.0)
        one = refine_box(grey, _coarse(ink), unsure_margin=1)
        three = refine_box(grey, _coarse(ink), unsure_margin=3)
        assert len(one) == len(three) == 1
        grown = (one[0].x0 - three[0].x0, one[0].y0 - three[0].y0,
                 three[0].x1 - one[0].x1, three[0].y1 - one[0].y1)
        assert grown == ((2, 2, 2, 2) if grey is busy else (0, 0, 0, 0))


def test_faint_text_on_texture_is_kept_where_the_map_is_confident() -> None:
    """Ink that does not stand out from the background's range is not cut away when the
    map is confident about the cells it would lose: those cells are blanked too, while the
    ink that does stand out keeps its tight fit."""
    rng = np.random.default_rng(6)
    grey = np.clip(rng.normal(0.5, 0.15, (100, 240)), 0, 1).astype(np.float32)
    strong = _text(grey, (20, 20), "ID", 1.0)
    faint = _text(grey, (60, 20), "123456789", 0.62)  # inside the background's spread
    coarse = _coarse(strong, faint)
    rows, cols = (coarse.y1 - coarse.y0) // STRIDE, (coarse.x1 - coarse.x0) // STRIDE
    confident = np.zeros((rows, cols), bool)
    for x0, y0, x1, y1 in (strong, faint):
        confident[(y0 - coarse.y0) // STRIDE:-(-(y1 - coarse.y0) // STRIDE),
                  (x0 - coarse.x0) // STRIDE:-(-(x1 - coarse.x0) // STRIDE)] = True
    kept = refine_box(grey, coarse, confident, (coarse.y0 // STRIDE, coarse.x0 // STRIDE))
    assert _covered(kept, faint, grey.shape) == 1.0
    assert _covered(kept, strong, grey.shape) == 1.0
    # not the whole coarse box: the background between the two strings stays
    blanked = boxes_mask(kept, *grey.shape)
    assert not blanked[strong[1]:strong[3], strong[2] + 4:faint[0] - 8].any()
    # without the map's say, the same fit would have dropped the faint string
    cut = refine_box(grey, coarse)
    assert _covered(cut, faint, grey.shape) < 0.95


def test_a_component_is_cut_between_its_cores() -> None:
    """Two strongly marked lines that the map joins through weak cells are one component
    but two parts: each is boxed on its own (split_level), every cell of the component in
    exactly one part; split level 0 keeps the component whole."""
    prob = np.zeros((40, 60), np.float32)
    prob[4:8, 5:50] = 0.9    # line one
    prob[14:18, 5:40] = 0.8  # line two
    prob[8:14, 20] = 0.2     # the weak bridge: above the low level (0.15), below the cores
    whole = boxes_from_probability(prob, 40 * STRIDE, 60 * STRIDE, 0.3, None, 0.5,
                                   split_level=0)
    assert [(b.x0, b.y0, b.x1, b.y1) for b in whole] == [(5 * STRIDE, 4 * STRIDE,
                                                          50 * STRIDE, 18 * STRIDE)]
    parts = sorted(boxes_from_probability(prob, 40 * STRIDE, 60 * STRIDE, 0.3, None, 0.5,
                                          split_level=0.5), key=lambda b: b.y0)
    assert len(parts) == 2
    one, two = parts
    assert (one.x0, one.y0, one.x1) == (5 * STRIDE, 4 * STRIDE, 50 * STRIDE)
    assert (two.x0, two.x1, two.y1) == (5 * STRIDE, 40 * STRIDE, 18 * STRIDE)
    # the bridge is shared out by distance: its cells go to the nearer line, none to both
    assert one.y1 <= two.y0
    assert one.y1 == 11 * STRIDE and two.y0 == 11 * STRIDE
    assert (one.score, two.score) == (np.float32(0.9), np.float32(0.8))


def test_boxes_from_probability_fits_lines_on_texture_within_the_map() -> None:
    """End to end from a map: two lines on a textured background, marked by the map as
    one component, come back as fitted boxes that cover both and leave the gap alone."""
    rng = np.random.default_rng(7)
    grey = np.clip(rng.normal(0.4, 0.1, (128, 256)), 0, 1).astype(np.float32)
    a = _text(grey, (16, 16), "DOE^JANE", 1.0, 20)
    b = _text(grey, (16, 52), "19700101", 1.0, 20)
    prob = np.zeros((128 // STRIDE, 256 // STRIDE), np.float32)
    for x0, y0, x1, y1 in (a, b):
        prob[y0 // STRIDE:-(-y1 // STRIDE), x0 // STRIDE:-(-x1 // STRIDE)] = 0.9
    prob[a[3] // STRIDE:b[1] // STRIDE, 6] = 0.2  # the map joins the two lines
    boxes = boxes_from_probability(prob, 128, 256, 0.3, grey, 0.5)
    assert len(boxes) == 2
    for ink in (a, b):
        assert _covered(boxes, ink, grey.shape) == 1.0
    gap = boxes_mask(boxes, 128, 256)[a[3] + 4:b[1] - 4, a[0]:a[2]]
    assert not gap.any()


def test_components_are_kept_when_they_reach_the_threshold_scored_by_their_peak() -> None:
    """Hysteresis: a component of cells >= threshold * hysteresis is kept only when one of
    its cells reaches the threshold; its score is its highest probability."""
    prob = np.zeros((32, 32), np.float32)
    prob[2:4, 2:10] = 0.2   # reaches only the low level: dropped
    prob[10:12, 2:10] = 0.2
    prob[11, 7] = 0.25  # reaches the threshold exactly (0.25 is exact in float32): kept
    prob[20:22, 2:10] = 0.2
    prob[21, 3] = 0.95
    boxes = boxes_from_probability(prob, 128, 128, 0.25, None, 0.5)
    assert sorted((b.y0, round(b.score, 6)) for b in boxes) == [(10 * STRIDE, 0.25),
                                                                (20 * STRIDE, 0.95)]


def test_grey_window_is_the_same_for_8_bit_lookup_colour_and_wider_types() -> None:
    """8-bit frames go through a lookup table and colour frames take the channel maximum
    plane by plane; both must give exactly what the plain arithmetic gives."""
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (96, 128, 3)).astype(np.uint8)
    rgb[10:20, 10:60, 1] = 255
    plain = frame_to_grey(rgb.max(axis=2).astype(np.int32))  # float path, axis reduce
    assert np.array_equal(frame_to_grey(rgb), plain)
    signed = rng.integers(-128, 128, (64, 64)).astype(np.int8)
    assert np.array_equal(frame_to_grey(signed), frame_to_grey(signed.astype(np.float64)))
    flat = np.full((16, 16), 200, np.uint8)
    assert not frame_to_grey(flat).any()


def test_fast_median_and_percentiles_are_numpys() -> None:
    """The box fit's own median and percentiles give numpy's numbers exactly (odd and even
    sizes, ties, one element, both of numpy's precisions)."""
    rng = np.random.default_rng(3)
    for i in range(3000):
        a = rng.random(int(rng.integers(1, 300)), dtype=np.float32)
        if i % 3 == 0:
            a = (np.round(a * 8) / 8).astype(np.float32)  # ties
        if i % 4 == 0:
            a = a.reshape(1, -1)
        assert _median(a) == float(np.median(a))
        for qs in (99, 0.5, (1.0, 99.0), (0.1, 99.9), (0.0, 100.0)):
            want = [float(x) for x in np.atleast_1d(np.percentile(a, qs))]
            assert _percentiles(a, qs) == want, (a.size, qs)


def _shrink_reference(grey: np.ndarray, b: list[int], side: str) -> None:
    """The side shrink written as the rule says: one line at a time."""
    ref = _side_reference(grey, (b[0], b[1], b[2], b[3]), side)
    if ref is None or ref.size == 0:
        return
    bg = float(np.median(ref))
    tol = FLAT_TOL + min(0.05, 3.0 * float(np.median(np.abs(ref - bg))))
    span = b[3] - b[1] if side in ("top", "bottom") else b[2] - b[0]
    budget = max(4, span // 4)
    while budget > 0 and b[2] - b[0] > 1 and b[3] - b[1] > 1:
        budget -= 1
        x0, y0, x1, y1 = b
        line = {"top": grey[y0, x0:x1], "bottom": grey[y1 - 1, x0:x1],
                "left": grey[y0:y1, x0], "right": grey[y0:y1, x1 - 1]}[side]
        if float(np.abs(line - bg).max()) > tol:
            return
        b[{"top": 1, "bottom": 3, "left": 0, "right": 2}[side]] += 1 if side in ("top", "left") \
            else -1


def test_side_shrink_moves_as_far_as_the_line_by_line_rule() -> None:
    """Flat margins, a glyph's row, texture and boxes of one or two lines: the side stops
    where the line-by-line rule stops, never passes its budget, keeps one line."""
    rng = np.random.default_rng(5)
    grey = np.full((64, 80), 0.2, np.float32)
    grey[20:40, 30:60] = rng.random((20, 30), dtype=np.float32)  # texture
    grey[8, 5:70] = 0.9  # a stroke's row
    grey[:, 75] = 0.95  # a column of ink
    grey += rng.normal(0, 0.01, grey.shape).astype(np.float32)
    for k in range(12):  # single pixels departing by graded amounts, around the tolerance
        grey[44 + k, 10 + 5 * k] += 0.03 + 0.01 * k
        grey[2 + 5 * k, 64 + k % 8] -= 0.03 + 0.01 * k
    moved = 0
    for _ in range(2000):
        x0, y0 = int(rng.integers(0, 78)), int(rng.integers(0, 62))
        b = [x0, y0, int(rng.integers(x0 + 1, 81)), int(rng.integers(y0 + 1, 65))]
        for side in ("top", "bottom", "left", "right"):
            got, want = list(b), list(b)
            _shrink_side(grey, got, side)
            _shrink_reference(grey, want, side)
            assert got == want, (b, side)
            moved += got != b
    assert moved > 500  # the cases moved sides, not only stopped at once
