"""Synthetic burned-in text on medical-looking frames, with ground-truth boxes and masks.

The text detector (:mod:`gateway.pixels.model`) is trained and evaluated only on what this
generator makes. A frame is a background (CT/MR-like slice, noise, ultrasound speckle fan,
photograph-like gradient, black/white bars, X-ray-like), decoys that are not text (rulers, tick
marks, grids, orientation markers, calipers, grey-scale bars) and text rendered with Pillow in
several fonts, 6-48 px, light-on-dark and dark-on-light, anti-aliased or not, slightly rotated
and partly cut at the border. Everything is driven by one ``numpy`` generator, so a seed gives
the same frames on every machine that has the same fonts.

Three splits exist: :data:`TRAIN`, :data:`VALIDATION` and :data:`HELD_OUT`. Training and
held-out use disjoint font files and disjoint layout families, and callers give them different
seeds, so the held-out figures measure generalisation rather than memory; validation has the
training fonts and layouts plus two layout families of its own. Pillow is needed (the ``ocr``
extra).
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/truetype/liberation"))
# Pillow's built-in fonts: the bitmap one (no size) and the scalable one (Aileron).
PIL_BITMAP = "pil:bitmap"
PIL_SCALABLE = "pil:scalable"

TRAIN_FONTS = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSansMono.ttf", "DejaVuSerif.ttf",
    "LiberationSans-Regular.ttf", "LiberationSans-Bold.ttf", "LiberationMono-Regular.ttf",
    "LiberationSerif-Regular.ttf", "LiberationSansNarrow-Regular.ttf",
    "LiberationSans-BoldItalic.ttf", PIL_BITMAP,
)
HELD_OUT_FONTS = (
    "DejaVuSansMono-Bold.ttf", "DejaVuSerif-Bold.ttf", "LiberationMono-Bold.ttf",
    "LiberationSans-Italic.ttf", "LiberationSerif-BoldItalic.ttf",
    "LiberationSansNarrow-Bold.ttf", PIL_SCALABLE,
)

Array = np.ndarray

# A glyph pixel is part of the ground truth only where drawing the text changed the frame by
# at least this much (of the [0, 1] range, about 10 of 255 grey levels).
VISIBLE_CONTRAST = 0.04


@dataclass(frozen=True)
class TextBox:
    """One planted text item: its ink box (clipped to the frame), string and font size."""

    x0: int
    y0: int
    x1: int  # exclusive
    y1: int  # exclusive
    text: str
    size: int  # nominal font size in pixels, the "text height" of the acceptance criteria
    cut: bool = False  # partly outside the frame
    # the visible ink pixels inside the box (bool, the box's shape); None: all of the box
    ink: Array | None = field(default=None, compare=False, repr=False)
    outlined: bool = False  # drawn with a contrasting outline, so all of its ink shows

    @property
    def area(self) -> int:
        return max(0, self.x1 - self.x0) * max(0, self.y1 - self.y0)


@dataclass
class Sample:
    """A frame in [0, 1] (H, W) float32, its text boxes and the union mask of those boxes."""

    image: Array
    boxes: list[TextBox]
    mask: Array  # bool (H, W): inside some text box
    rgb: Array | None = None  # (H, W, 3) uint8 when the frame was made in colour


@dataclass(frozen=True)
class Split:
    """What distinguishes training data from held-out data."""

    name: str
    fonts: tuple[str, ...]
    layouts: tuple[str, ...]
    colour_fraction: float = 0.2


# What detector v1 and v2 were trained on (kept so that their figures can be reproduced).
TRAIN_V2 = Split("train", TRAIN_FONTS, ("corners", "scatter", "header_band", "us_side_panel"))
# v3 adds dense text: wrapped lines of scanned pages and annotation blocks on the anatomy.
TRAIN = Split("train", TRAIN_FONTS, (*TRAIN_V2.layouts, "document", "annotation_block"))
# Validation (tuning, and the choice between training phases): the training fonts, the
# training layouts and two dense layout families of its own that training never draws, so
# that it can show what unseen dense layouts cost.
VALIDATION = Split("validation", TRAIN_FONTS, (*TRAIN.layouts, "mosaic", "caption_stack"))
HELD_OUT = Split("held_out", HELD_OUT_FONTS, ("footer_band", "table", "label_card", "centred"))


@lru_cache(maxsize=512)
def _font(name: str, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if name == PIL_BITMAP:
        return ImageFont.load_default()
    if name == PIL_SCALABLE:
        return ImageFont.load_default(size=size)
    for d in FONT_DIRS:
        p = d / name
        if p.exists():
            return ImageFont.truetype(str(p), size=size)
    raise FileNotFoundError(f"font {name} not found (install fonts-dejavu-core, fonts-liberation)")


def available_fonts(names: Sequence[str]) -> tuple[str, ...]:
    """The subset of ``names`` present on this machine (Pillow's own are always present)."""
    out = []
    for n in names:
        try:
            _font(n, 12)
        except (FileNotFoundError, OSError):
            continue
        out.append(n)
    return tuple(out)


# --------------------------------------------------------------------------- backgrounds

def _smooth_field(rng: np.random.Generator, h: int, w: int, scale: int) -> Array:
    """Low-frequency noise in [0, 1]: random values on a coarse grid, bilinearly enlarged."""
    gh, gw = max(2, h // scale + 2), max(2, w // scale + 2)
    coarse = rng.random((gh, gw)).astype(np.float32)
    img = Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC)
    a = np.array(img, dtype=np.float32)
    a -= a.min()
    return a / max(float(a.max()), 1e-6)


def _ellipse_mask(h: int, w: int, cy: float, cx: float, ry: float, rx: float,
                  angle: float = 0.0) -> Array:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c, s = math.cos(angle), math.sin(angle)
    dx, dy = xx - cx, yy - cy
    u = (c * dx + s * dy) / max(rx, 1.0)
    v = (-s * dx + c * dy) / max(ry, 1.0)
    return np.asarray((u * u + v * v) <= 1.0)


def _blur(a: Array, radius: float) -> Array:
    return np.asarray(ndimage.gaussian_filter(a.astype(np.float32), radius), dtype=np.float32)


def bg_ct(rng: np.random.Generator, h: int, w: int) -> Array:
    """A CT-like slice: dark field, a body ellipse with organs, a bright bone ring, noise."""
    img = np.zeros((h, w), np.float32)
    cy, cx = h * rng.uniform(0.4, 0.6), w * rng.uniform(0.4, 0.6)
    ry, rx = h * rng.uniform(0.25, 0.45), w * rng.uniform(0.3, 0.48)
    body = _ellipse_mask(h, w, cy, cx, ry, rx, rng.uniform(-0.3, 0.3))
    img[body] = rng.uniform(0.3, 0.5)
    for _ in range(rng.integers(2, 7)):
        m = _ellipse_mask(h, w, cy + rng.normal(0, ry / 3), cx + rng.normal(0, rx / 3),
                          ry * rng.uniform(0.1, 0.4), rx * rng.uniform(0.1, 0.4),
                          rng.uniform(0, math.pi))
        img[m & body] = rng.uniform(0.2, 0.65)
    ring = body & ~_ellipse_mask(h, w, cy, cx, ry * 0.93, rx * 0.93)
    if rng.random() < 0.6:
        img[ring] = rng.uniform(0.75, 1.0)
    img += _smooth_field(rng, h, w, 24) * 0.1 * body
    img = _blur(img, rng.uniform(0.5, 1.5))
    img += rng.normal(0, rng.uniform(0.005, 0.04), (h, w)).astype(np.float32)
    if rng.random() < 0.4:  # the patient table under the body
        y = int(min(h - 3, cy + ry + rng.uniform(3, 20)))
        img[y:y + int(rng.integers(2, 6)), :] = rng.uniform(0.3, 0.7)
    return img


def bg_mr(rng: np.random.Generator, h: int, w: int) -> Array:
    """An MR-like slice: smooth blobs with a bias field and Rician-looking noise."""
    img = np.zeros((h, w), np.float32)
    cy, cx = h * rng.uniform(0.4, 0.6), w * rng.uniform(0.4, 0.6)
    ry, rx = h * rng.uniform(0.3, 0.45), w * rng.uniform(0.25, 0.4)
    head = _ellipse_mask(h, w, cy, cx, ry, rx)
    tex = _smooth_field(rng, h, w, int(rng.integers(6, 20)))
    img[head] = (0.3 + 0.5 * tex)[head]
    img *= 0.6 + 0.4 * _smooth_field(rng, h, w, max(h, w) // 2)
    img = _blur(img, rng.uniform(0.7, 2.0))
    n1 = rng.normal(0, 0.03, (h, w))
    n2 = rng.normal(0, 0.03, (h, w))
    return np.sqrt((img + n1) ** 2 + n2**2).astype(np.float32)


def bg_noise(rng: np.random.Generator, h: int, w: int) -> Array:
    """Plain noise on a random level, sometimes heavy."""
    base = rng.uniform(0, 1)
    sigma = rng.choice([0.02, 0.08, 0.2])
    return (base + rng.normal(0, sigma, (h, w))).astype(np.float32)


def bg_us(rng: np.random.Generator, h: int, w: int) -> Array:
    """An ultrasound sector: a speckled fan on black, brighter near the probe."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    apex_x, apex_y = w * rng.uniform(0.4, 0.6), h * rng.uniform(-0.05, 0.12)
    half = rng.uniform(0.4, 0.8)
    r0, r1 = h * rng.uniform(0.03, 0.12), h * rng.uniform(0.7, 0.95)
    r = np.hypot(xx - apex_x, yy - apex_y)
    ang = np.arctan2(xx - apex_x, yy - apex_y)
    fan = (np.abs(ang) <= half) & (r >= r0) & (r <= r1)
    if rng.random() < 0.25:  # linear probe: a rectangle instead of a fan
        x0, x1 = int(w * rng.uniform(0.1, 0.3)), int(w * rng.uniform(0.7, 0.9))
        fan = (xx >= x0) & (xx < x1) & (yy >= h * 0.08) & (yy < h * 0.9)
    tissue = 0.3 + 0.7 * _smooth_field(rng, h, w, int(rng.integers(8, 30)))
    speckle = rng.rayleigh(0.5, (h, w)).astype(np.float32)
    speckle = _blur(speckle, rng.uniform(0.5, 1.2))
    atten = np.exp(-r / (h * rng.uniform(0.6, 1.5)))
    img = np.where(fan, tissue * speckle * atten * rng.uniform(0.6, 1.0), 0).astype(np.float32)
    return img


def bg_gradient(rng: np.random.Generator, h: int, w: int) -> Array:
    """A photograph-like frame: gradients, soft blobs and texture."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = rng.uniform(0, 2 * math.pi)
    lin = (math.cos(t) * xx / w + math.sin(t) * yy / h)
    img = rng.uniform(0, 0.6) + rng.uniform(-0.5, 0.5) * lin
    img = img + 0.4 * (_smooth_field(rng, h, w, int(rng.integers(20, 80))) - 0.5)
    img = img + 0.1 * (_smooth_field(rng, h, w, 4) - 0.5)
    return img.astype(np.float32)


def bg_bars(rng: np.random.Generator, h: int, w: int) -> Array:
    """Black and white bars and flat panels, as on screenshots and secondary captures."""
    img = np.full((h, w), rng.choice([0.0, 1.0, rng.uniform(0, 1)]), np.float32)
    for _ in range(rng.integers(1, 6)):
        v = float(rng.choice([0.0, 1.0, rng.uniform(0, 1)]))
        if rng.random() < 0.5:
            y0 = int(rng.integers(0, h))
            img[y0:y0 + int(rng.integers(4, max(5, h // 3))), :] = v
        else:
            x0 = int(rng.integers(0, w))
            img[:, x0:x0 + int(rng.integers(4, max(5, w // 3)))] = v
    if rng.random() < 0.5:  # a panel holding another picture
        y0, x0 = int(rng.integers(0, h // 2)), int(rng.integers(0, w // 2))
        ph, pw = int(rng.integers(h // 4, h // 2)), int(rng.integers(w // 4, w // 2))
        img[y0:y0 + ph, x0:x0 + pw] = bg_ct(rng, h, w)[y0:y0 + ph, x0:x0 + pw]
    return img


def bg_xray(rng: np.random.Generator, h: int, w: int) -> Array:
    """A projection radiograph: bright smooth anatomy, collimation edges."""
    img = 0.2 + 0.6 * _smooth_field(rng, h, w, int(rng.integers(30, 90)))
    img = img + 0.15 * _smooth_field(rng, h, w, 8)
    if rng.random() < 0.5:
        m = int(rng.integers(0, max(1, w // 8)))
        img[:, :m] = 0.95
        img[:, w - m:] = 0.95
    img = img + rng.normal(0, 0.015, (h, w))
    return img.astype(np.float32)


BACKGROUNDS: tuple[Callable[[np.random.Generator, int, int], Array], ...] = (
    bg_ct, bg_mr, bg_noise, bg_us, bg_gradient, bg_bars, bg_xray,
)


# --------------------------------------------------------------------------- decoys

def _line(d: ImageDraw.ImageDraw, xy: Sequence[float], v: int, width: int = 1) -> None:
    d.line([float(c) for c in xy], fill=v, width=width)


def decoy_ruler(rng: np.random.Generator, d: ImageDraw.ImageDraw, h: int, w: int, v: int) -> None:
    """A depth/length ruler: a line with evenly spaced long and short ticks, no numbers."""
    vertical = rng.random() < 0.6
    step = int(rng.integers(4, 20))
    length = int(rng.integers(min(h, w) // 4, min(h, w)))
    tick = int(rng.integers(3, 10))
    x, y = int(rng.integers(2, w - 2)), int(rng.integers(2, h - 2))
    for i in range(0, length, step):
        t = tick * (2 if (i // step) % 5 == 0 else 1)
        if vertical:
            _line(d, (x, y + i, x + t, y + i), v)
        else:
            _line(d, (x + i, y, x + i, y + t), v)
    if rng.random() < 0.7:
        _line(d, (x, y, x, y + length) if vertical else (x, y, x + length, y), v)


def decoy_grid(rng: np.random.Generator, d: ImageDraw.ImageDraw, h: int, w: int, v: int) -> None:
    """A grid of thin lines or dots (graph paper, ECG grids, alignment overlays)."""
    step = int(rng.integers(8, 60))
    dots = rng.random() < 0.3
    ox, oy = int(rng.integers(0, step)), int(rng.integers(0, step))
    for x in range(ox, w, step):
        for y in range(oy, h, step) if dots else [0]:
            if dots:
                d.point((x, y), fill=v)
            else:
                _line(d, (x, 0, x, h), v)
    if not dots:
        for y in range(oy, h, step):
            _line(d, (0, y, w, y), v)


def decoy_ticks(rng: np.random.Generator, d: ImageDraw.ImageDraw, h: int, w: int, v: int) -> None:
    """Tick marks along one edge of the image area."""
    edge = int(rng.integers(0, 4))
    step = int(rng.integers(5, 30))
    t = int(rng.integers(2, 8))
    off = int(rng.integers(0, 20))
    n = (w if edge < 2 else h)
    for i in range(0, n, step):
        if edge == 0:
            _line(d, (i, off, i, off + t), v)
        elif edge == 1:
            _line(d, (i, h - 1 - off, i, h - 1 - off - t), v)
        elif edge == 2:
            _line(d, (off, i, off + t, i), v)
        else:
            _line(d, (w - 1 - off, i, w - 1 - off - t, i), v)


def decoy_marker(rng: np.random.Generator, d: ImageDraw.ImageDraw, h: int, w: int, v: int) -> None:
    """An orientation marker drawn as a graphic: arrow, triangle, dot, ring or probe mark."""
    s = int(rng.integers(6, 40))
    x, y = int(rng.integers(0, max(1, w - s))), int(rng.integers(0, max(1, h - s)))
    kind = int(rng.integers(0, 5))
    if kind == 0:
        d.polygon([(x, y + s), (x + s // 2, y), (x + s, y + s)], fill=v)
    elif kind == 1:
        d.ellipse((x, y, x + s, y + s), fill=v)
    elif kind == 2:
        d.ellipse((x, y, x + s, y + s), outline=v, width=max(1, s // 8))
        _line(d, (x + s / 2, y, x + s / 2, y + s), v)
        _line(d, (x, y + s / 2, x + s, y + s / 2), v)
    elif kind == 3:  # arrow
        _line(d, (x, y + s / 2, x + s, y + s / 2), v, max(1, s // 10))
        d.polygon([(x + s, y + s / 2), (x + s * 0.7, y + s * 0.3), (x + s * 0.7, y + s * 0.7)],
                  fill=v)
    else:  # a filled square with a notch, like a probe-side mark
        d.rectangle((x, y, x + s // 2, y + s // 2), fill=v)


def decoy_caliper(rng: np.random.Generator, d: ImageDraw.ImageDraw, h: int, w: int,
                  v: int) -> None:
    """Measurement calipers: small crosses joined by a dotted line."""
    s = int(rng.integers(3, 8))
    x0, y0 = int(rng.integers(s, w - s)), int(rng.integers(s, h - s))
    x1, y1 = int(rng.integers(s, w - s)), int(rng.integers(s, h - s))
    for x, y in ((x0, y0), (x1, y1)):
        _line(d, (x - s, y, x + s, y), v)
        _line(d, (x, y - s, x, y + s), v)
    n = max(2, int(math.hypot(x1 - x0, y1 - y0) // 6))
    for i in range(1, n):
        px, py = x0 + (x1 - x0) * i / n, y0 + (y1 - y0) * i / n
        d.point((px, py), fill=v)


def decoy_greybar(rng: np.random.Generator, d: ImageDraw.ImageDraw, h: int, w: int,
                  v: int) -> None:
    """A grey-scale bar: a vertical gradient strip, as shown beside ultrasound images."""
    bw, bh = int(rng.integers(4, 16)), int(rng.integers(h // 6, h // 2))
    x, y = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
    for i in range(bh):
        _line(d, (x, y + i, x + bw, y + i), int(255 * i / max(1, bh - 1)))


DECOYS = (decoy_ruler, decoy_grid, decoy_ticks, decoy_marker, decoy_caliper, decoy_greybar)


# --------------------------------------------------------------------------- text content

_SURNAMES = ("SMITH", "MULLER", "GARCIA", "NGUYEN", "OKAFOR", "ROSSI", "KOWALSKI", "TANAKA",
             "DUBOIS", "HANSEN", "SILVA", "BERG", "O'NEILL", "VAN DER MEER", "LEE")
_GIVEN = ("ANNA", "JOHN", "MARIA", "PETER", "LI", "FATIMA", "JOSE", "EMMA", "OLA", "KENJI")
_WORDS = ("Hospital", "Radiology", "Abdomen", "Liver", "Thyroid", "Left", "Right", "Study",
          "Series", "Image", "Gain", "Depth", "Freq", "Frame", "Acc", "Ref", "Dr", "Clinic",
          "Cardiology", "Echo", "Portable", "Supine", "Contrast", "Zoom", "Dyn")


def _rand_word(rng: np.random.Generator) -> str:
    n = int(rng.integers(1, 9))
    pool = string.ascii_letters + string.digits
    return "".join(pool[int(i)] for i in rng.integers(0, len(pool), n))


def _date(rng: np.random.Generator) -> str:
    y, m, dd = int(rng.integers(1930, 2026)), int(rng.integers(1, 13)), int(rng.integers(1, 29))
    fmt = int(rng.integers(0, 4))
    return (f"{y:04d}-{m:02d}-{dd:02d}", f"{dd:02d}/{m:02d}/{y:04d}", f"{y:04d}{m:02d}{dd:02d}",
            f"{dd:02d}.{m:02d}.{y % 100:02d}")[fmt]


def random_text(rng: np.random.Generator) -> str:
    """One burned-in string: a name, an ID, a date, a time, a parameter, words or a token."""
    kind = int(rng.integers(0, 11))
    sur, giv = _SURNAMES[int(rng.integers(len(_SURNAMES)))], _GIVEN[int(rng.integers(len(_GIVEN)))]
    if kind == 0:
        return f"{sur}^{giv}" if rng.random() < 0.5 else f"{sur.title()}, {giv.title()}"
    if kind == 1:
        return f"ID: {int(rng.integers(10**5, 10**9))}"
    if kind == 2:
        return _date(rng)
    if kind == 3:
        return f"{int(rng.integers(0, 24)):02d}:{int(rng.integers(0, 60)):02d}:" \
               f"{int(rng.integers(0, 60)):02d}"
    if kind == 4:
        return f"{_WORDS[int(rng.integers(len(_WORDS)))]} {int(rng.integers(1, 200))}" \
               f"{rng.choice(['', ' cm', ' mm', ' dB', ' Hz', '%', ' MHz'])}"
    if kind == 5:
        return " ".join(_WORDS[int(i)] for i in rng.integers(0, len(_WORDS), rng.integers(1, 4)))
    if kind == 6:
        return str(rng.choice(["L", "R", "A", "P", "H", "F", "S", "I", "LAO", "RAO", "AP", "PA"]))
    if kind == 7:
        return _rand_word(rng)
    if kind == 8:
        return f"{rng.uniform(0, 99):.1f}{rng.choice([' cm', ' mm', ' s', ' ms', ''])}"
    if kind == 9:
        return f"DOB {_date(rng)}"
    return f"{sur} {giv} {int(rng.integers(1, 99))}Y {rng.choice(['M', 'F'])}"


# --------------------------------------------------------------------------- rendering

@dataclass
class _Canvas:
    """The frame being built: grey image in [0, 1] plus the boxes planted so far."""

    image: Array
    boxes: list[TextBox] = field(default_factory=list)
    # the frame as it was under the text: a pixel's value just before the first string drew
    # over it (bands and cards painted first are part of it, the text is not)
    plain: Array = field(init=False)
    touched: Array = field(init=False)

    def __post_init__(self) -> None:
        self.plain = self.image.copy()
        self.touched = np.zeros(self.image.shape, bool)

    def before_text(self, ys: slice, xs: slice) -> None:
        """Record the region's values under the text about to be drawn there."""
        fresh = ~self.touched[ys, xs]
        self.plain[ys, xs][fresh] = self.image[ys, xs][fresh]
        self.touched[ys, xs] = True

    @property
    def h(self) -> int:
        return int(self.image.shape[0])

    @property
    def w(self) -> int:
        return int(self.image.shape[1])


def _font_size(rng: np.random.Generator) -> int:
    """Sizes 6-48, weighted toward the small sizes that overlays use."""
    return round(math.exp(rng.uniform(math.log(6), math.log(48.9))))


def _render_layer(text: str, font_name: str, size: int, aa: bool,
                  outline: int) -> tuple[Array, Array]:
    """Render ``text`` on its own layer: (ink alpha in [0,1], outline alpha in [0,1])."""
    font = _font(font_name, size)
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    left, top, right, bottom = probe.textbbox((0, 0), text, font=font, stroke_width=outline)
    pad = 2 + outline
    img = Image.new("L", (int(right - left) + 2 * pad, int(bottom - top) + 2 * pad), 0)
    d = ImageDraw.Draw(img)
    d.fontmode = "L" if aa else "1"
    d.text((pad - left, pad - top), text, fill=255, font=font)
    ink = np.asarray(img, np.float32) / 255.0
    if outline:
        o = Image.new("L", img.size, 0)
        od = ImageDraw.Draw(o)
        od.fontmode = d.fontmode
        od.text((pad - left, pad - top), text, fill=255, font=font, stroke_width=outline,
                stroke_fill=255)
        return ink, np.asarray(o, np.float32) / 255.0
    return ink, np.zeros_like(ink)


def _rotate(a: Array, angle: float) -> Array:
    img = Image.fromarray(np.ascontiguousarray(a, np.float32))
    img = img.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
    return np.array(img, np.float32)


def _ink_value(rng: np.random.Generator, region: Array) -> tuple[float, float]:
    """Choose ink and outline values that contrast with the background under the text."""
    mean = float(np.clip(region.mean(), 0, 1)) if region.size else 0.5
    if rng.random() < 0.75:  # most overlays are pure white or pure black
        ink = 1.0 if mean < 0.5 else 0.0
    else:
        ink = float(np.clip(mean + rng.choice([-1, 1]) * rng.uniform(0.3, 0.7), 0, 1))
        if abs(ink - mean) < 0.25:
            ink = 1.0 if mean < 0.5 else 0.0
    return ink, 1.0 - ink


def plant_text(rng: np.random.Generator, canvas: _Canvas, fonts: Sequence[str], x: int, y: int,
               size: int | None = None, text: str | None = None, allow_rotation: bool = True,
               font: str | None = None, angle: float = 0.0) -> TextBox | None:
    """Draw one string with its top-left ink corner at (x, y); record its clipped ink box.

    ``angle`` (degrees) turns the string by that much; otherwise, with ``allow_rotation``, a
    quarter of the strings are turned by up to 6 degrees either way."""
    text = text if text is not None else random_text(rng)
    size = size if size is not None else _font_size(rng)
    font = font if font is not None else fonts[int(rng.integers(len(fonts)))]
    if font == PIL_BITMAP:
        size = 11  # the bitmap font has one size
    aa = rng.random() < 0.7
    outline = int(rng.integers(1, 3)) if rng.random() < 0.12 and size >= 10 else 0
    ink, edge = _render_layer(text, font, size, aa, outline)
    if not angle and allow_rotation and rng.random() < 0.25:
        angle = float(rng.uniform(-6, 6))
    if angle:
        ink, edge = _rotate(ink, angle), _rotate(edge, angle)
    return _composite(rng, canvas, ink, edge, x, y, text, size)


def _composite(rng: np.random.Generator, canvas: _Canvas, ink: Array, edge: Array, x: int,
               y: int, text: str, size: int) -> TextBox | None:
    ys, xs = np.nonzero(ink > 0.25)
    if ys.size == 0:
        return None
    # align so that the ink's top-left lands at (x, y)
    x -= int(xs.min())
    y -= int(ys.min())
    lh, lw = ink.shape
    cx0, cy0 = max(0, x), max(0, y)
    cx1, cy1 = min(canvas.w, x + lw), min(canvas.h, y + lh)
    if cx1 <= cx0 or cy1 <= cy0:
        return None
    sub = (slice(cy0 - y, cy1 - y), slice(cx0 - x, cx1 - x))
    canvas.before_text(slice(cy0, cy1), slice(cx0, cx1))
    dst = canvas.image[cy0:cy1, cx0:cx1]
    ink_v, edge_v = _ink_value(rng, dst)
    a_edge, a_ink = edge[sub], ink[sub]
    dst[:] = dst * (1 - a_edge) + edge_v * a_edge
    dst[:] = dst * (1 - a_ink) + ink_v * a_ink
    ink_px = a_ink > 0.25
    iy, ix = np.nonzero(ink_px)
    if iy.size == 0:
        return None
    bx0, by0 = cx0 + int(ix.min()), cy0 + int(iy.min())
    bx1, by1 = cx0 + int(ix.max()) + 1, cy0 + int(iy.max()) + 1
    full_w, full_h = int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)
    cut = (bx1 - bx0) < full_w or (by1 - by0) < full_h
    box = TextBox(bx0, by0, bx1, by1, text, size, cut,
                  ink_px[by0 - cy0:by1 - cy0, bx0 - cx0:bx1 - cx0].copy(), bool(a_edge.any()))
    canvas.boxes.append(box)
    return box


# --------------------------------------------------------------------------- layouts

def _line_height(size: int) -> int:
    return int(size * 1.25) + 1


def layout_corners(rng: np.random.Generator, c: _Canvas, fonts: Sequence[str]) -> None:
    """Overlay blocks of 1-6 lines in the corners, as on CT/MR/US viewers."""
    for corner in rng.permutation(4)[: int(rng.integers(1, 5))]:
        size = _font_size(rng) if rng.random() < 0.5 else int(rng.integers(6, 16))
        n = int(rng.integers(1, 7))
        margin = int(rng.integers(-size // 2, 12))
        font = fonts[int(rng.integers(len(fonts)))]
        for i in range(n):
            text = random_text(rng)
            top = corner < 2
            y = margin + i * _line_height(size) if top else \
                c.h - margin - (n - i) * _line_height(size)
            est_w = int(len(text) * size * 0.6)
            x = margin if corner % 2 == 0 else c.w - margin - est_w
            plant_text(rng, c, fonts, x, y, size, text, allow_rotation=False, font=font)


def layout_scatter(rng: np.random.Generator, c: _Canvas, fonts: Sequence[str]) -> None:
    """Strings anywhere, some running off an edge."""
    for _ in range(int(rng.integers(1, 9))):
        x = int(rng.integers(-c.w // 8, c.w - 4))
        y = int(rng.integers(-8, c.h - 4))
        plant_text(rng, c, fonts, x, y)


def layout_header_band(rng: np.random.Generator, c: _Canvas, fonts: Sequence[str]) -> None:
    """A flat band across the top holding a line of text, as on screenshots."""
    size = int(rng.integers(7, 28))
    bh = _line_height(size) + int(rng.integers(2, 10))
    c.image[:bh, :] = float(rng.choice([0.0, 1.0, rng.uniform(0.1, 0.9)]))
    x = int(rng.integers(0, 20))
    while x < c.w - size:
        box = plant_text(rng, c, fonts, x, int(rng.integers(1, max(2, bh - size))), size,
                         allow_rotation=False)
        x = (box.x1 if box else x + size * 4) + int(rng.integers(size, size * 4))


def layout_us_side_panel(rng: np.random.Generator, c: _Canvas, fonts: Sequence[str]) -> None:
    """A column of parameters down one side, as ultrasound machines print them."""
    size = int(rng.integers(6, 18))
    x = int(rng.integers(0, 10)) if rng.random() < 0.5 else c.w - int(size * 6)
    y = int(rng.integers(0, c.h // 4))
    font = fonts[int(rng.integers(len(fonts)))]
    while y < c.h - size and rng.random() < 0.92:
        plant_text(rng, c, fonts, x, y, size, allow_rotation=False, font=font)
        y += _line_height(size) + int(rng.integers(0, size))


def layout_footer_band(rng: np.random.Generator, c: _Canvas, fonts: Sequence[str]) -> None:
    """Held-out: a band along the bottom with 2-3 lines and right-aligned items."""
    size = int(rng.integers(6, 24))
    lines = int(rng.integers(1, 4))
    top = c.h - lines * _line_height(size) - int(rng.integers(0, 8))
    c.image[top:, :] *= float(rng.uniform(0, 0.3))
    for i in range(lines):
        y = top + i * _line_height(size)
        plant_text(rng, c, fonts, int(rng.integers(2, 30)), y, size, allow_rotation=False)
        t = random_text(rng)
        plant_text(rng, c, fonts, c.w - int(len(t) * size * 0.6) - int(rng.integers(0, 20)), y,
                   size, t, allow_rotation=False)


def layout_table(rng: np.random.Generator, c: _Canvas, fonts: Sequence[str]) -> None:
    """Held-out: a table of label/value pairs, as on scanned forms and report screenshots."""
    size = int(rng.integers(6, 20))
    rows, x0 = int(rng.integers(2, 8)), int(rng.integers(0, c.w // 3))
    y = int(rng.integers(0, c.h // 2))
    col = int(size * rng.uniform(5, 9))
    for _ in range(rows):
        plant_text(rng, c, fonts, x0, y, size, allow_rotation=False)
        plant_text(rng, c, fonts, x0 + col, y, size, allow_rotation=False)
        y += _line_height(size) + int(rng.integers(2, size + 3))


def layout_label_card(rng: np.random.Generator, c: _Canvas, fonts: Sequence[str]) -> None:
    """Held-out: a slide label: a light card with large and small lines, slightly turned."""
    ch, cw = int(c.h * rng.uniform(0.3, 0.6)), int(c.w * rng.uniform(0.4, 0.8))
    y0, x0 = int(rng.integers(0, c.h - ch)), int(rng.integers(0, c.w - cw))
    c.image[y0:y0 + ch, x0:x0 + cw] = float(rng.uniform(0.75, 1.0))
    y = y0 + 4
    while y < y0 + ch - 8:
        size = int(rng.integers(8, 40))
        plant_text(rng, c, fonts, x0 + int(rng.integers(2, 12)), y, size)
        y += _line_height(size) + 2


def layout_centred(rng: np.random.Generator, c: _Canvas, fonts: Sequence[str]) -> None:
    """Held-out: one to three centred titles of larger type across the frame."""
    for _ in range(int(rng.integers(1, 4))):
        size = int(rng.integers(10, 49))
        t = random_text(rng)
        x = (c.w - int(len(t) * size * 0.6)) // 2
        plant_text(rng, c, fonts, x, int(rng.integers(0, c.h - size)), size, t)


def _line_of_items(rng: np.random.Generator, width: int, size: int) -> str:
    """Burned-in strings joined with spaces until they fill about ``width`` pixels."""
    items: list[str] = []
    est = 0.0
    while est < width:
        t = random_text(rng)
        items.append(t)
        est += (len(t) + 1) * size * 0.55
    return " ".join(items)


def layout_document(rng: np.random.Generator, c: _Canvas, fonts: Sequence[str]) -> None:
    """A scanned page or report screenshot: wrapped lines in one font at tight spacing (1.0-1.5
    line heights), sometimes on a page of its own shade, sometimes skewed a little."""
    size = int(rng.integers(6, 22))
    font = fonts[int(rng.integers(len(fonts)))]
    step = max(size + 1, int(size * rng.uniform(1.0, 1.5)))
    x0 = int(rng.integers(0, c.w // 3))
    x1 = int(rng.integers(max(x0 + size * 4, c.w // 2), c.w + size * 4))
    y0 = int(rng.integers(-size // 2, c.h // 2))
    n = int(rng.integers(3, 18))
    if rng.random() < 0.5:  # the page
        c.image[max(0, y0 - 4):max(0, y0 + n * step + 4), max(0, x0 - 6):x1] = \
            float(rng.choice([1.0, 0.0, rng.uniform(0.6, 1.0)]))
    angle = float(rng.uniform(-2.5, 2.5)) if rng.random() < 0.3 else 0.0
    for i in range(n):
        y = y0 + i * step
        if y >= c.h:
            break
        indent = size * 2 if rng.random() < 0.15 else 0
        text = _line_of_items(rng, int((x1 - x0 - indent) * rng.uniform(0.4, 1.0)), size)
        plant_text(rng, c, fonts, x0 + indent, y, size, text, allow_rotation=False, font=font,
                   angle=angle)


def layout_annotation_block(rng: np.random.Generator, c: _Canvas, fonts: Sequence[str]) -> None:
    """Notes typed onto the anatomy itself: one to three blocks of 2-6 short lines anywhere in
    the frame, over whatever texture lies there."""
    for _ in range(int(rng.integers(1, 4))):
        size = int(rng.integers(7, 30))
        font = fonts[int(rng.integers(len(fonts)))]
        step = max(size + 1, int(size * rng.uniform(1.05, 1.4)))
        x = int(rng.integers(0, max(1, c.w - size * 6)))
        y = int(rng.integers(0, max(1, c.h - size * 2)))
        for i in range(int(rng.integers(2, 7))):
            plant_text(rng, c, fonts, x + int(rng.integers(0, size)) * (rng.random() < 0.3),
                       y + i * step, size, allow_rotation=False, font=font)


def layout_mosaic(rng: np.random.Generator, c: _Canvas, fonts: Sequence[str]) -> None:
    """Validation only: a multi-panel capture (2x2 to 3x3 tiles split by dark lines), each
    tile with small overlay lines in one or two of its corners."""
    ny, nx = int(rng.integers(2, 4)), int(rng.integers(2, 4))
    th, tw = c.h // ny, c.w // nx
    for j in range(1, ny):
        c.image[j * th - 1:j * th + 1, :] = 0.0
    for i in range(1, nx):
        c.image[:, i * tw - 1:i * tw + 1] = 0.0
    size = int(rng.integers(6, 14))
    font = fonts[int(rng.integers(len(fonts)))]
    for j in range(ny):
        for i in range(nx):
            for corner in rng.permutation(4)[: int(rng.integers(1, 3))]:
                lines = int(rng.integers(1, 4))
                for k in range(lines):
                    top = corner < 2
                    y = j * th + 3 + k * _line_height(size) if top else \
                        (j + 1) * th - 3 - (lines - k) * _line_height(size)
                    text = random_text(rng)
                    x = i * tw + 3 if corner % 2 == 0 else \
                        (i + 1) * tw - 3 - int(len(text) * size * 0.6)
                    plant_text(rng, c, fonts, x, y, size, text, allow_rotation=False, font=font)


def layout_caption_stack(rng: np.random.Generator, c: _Canvas, fonts: Sequence[str]) -> None:
    """Validation only: a stack of centred lines of falling size at tight spacing, as on a
    title slide or a printed film's caption."""
    size = int(rng.integers(14, 45))
    y = int(rng.integers(0, c.h // 2))
    while y < c.h and size >= 6:
        t = random_text(rng)
        x = (c.w - int(len(t) * size * 0.6)) // 2 + int(rng.integers(-20, 21))
        plant_text(rng, c, fonts, x, y, size, t, allow_rotation=False)
        y += max(size + 1, int(size * rng.uniform(1.0, 1.3)))
        size = int(size * rng.uniform(0.6, 1.0))


LAYOUTS: dict[str, Callable[[np.random.Generator, _Canvas, Sequence[str]], None]] = {
    "corners": layout_corners, "scatter": layout_scatter, "header_band": layout_header_band,
    "us_side_panel": layout_us_side_panel, "footer_band": layout_footer_band,
    "table": layout_table, "label_card": layout_label_card, "centred": layout_centred,
    "document": layout_document, "annotation_block": layout_annotation_block,
    "mosaic": layout_mosaic, "caption_stack": layout_caption_stack,
}


_PAINTING = frozenset({"header_band", "footer_band", "label_card", "document", "mosaic"})

# --------------------------------------------------------------------------- samples

def _add_decoys(rng: np.random.Generator, img: Array) -> Array:
    h, w = img.shape
    layer = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(layer)
    for _ in range(int(rng.integers(0, 4))):
        decoy = DECOYS[int(rng.integers(len(DECOYS)))]
        decoy(rng, d, h, w, 255)
    a = np.asarray(layer, np.float32) / 255.0
    if not a.any():
        return img
    v = float(rng.choice([1.0, 0.0, rng.uniform(0.3, 1.0)]))
    return img * (1 - a) + v * a


def _colourise(rng: np.random.Generator, img: Array, boxes: list[TextBox]) -> Array:
    """Make an RGB frame: a tinted background and text in a saturated colour (US, screenshots)."""
    tint = rng.uniform(0.6, 1.0, 3).astype(np.float32)
    rgb = np.clip(img, 0, 1)[..., None] * tint[None, None, :]
    colour = np.array(
        [(1, 1, 0), (0, 1, 0), (0, 1, 1), (1, 0.5, 0), (1, 1, 1), (1, 0, 0)][
            int(rng.integers(6))], np.float32)
    for b in boxes:
        region = rgb[b.y0:b.y1, b.x0:b.x1]
        grey = img[b.y0:b.y1, b.x0:b.x1]
        bright = grey > 0.6
        region[bright] = (colour * grey[bright][:, None]).astype(np.float32)
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def make_sample(rng: np.random.Generator, h: int, w: int, split: Split,
                fonts: Sequence[str] | None = None, text_prob: float = 0.9) -> Sample:
    """One frame of ``split``: background, decoys and (usually) text, with ground truth."""
    fonts = tuple(fonts) if fonts is not None else available_fonts(split.fonts)
    bg = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    img = bg(rng, h, w)
    img = np.clip(img, 0, 1).astype(np.float32)
    img = _add_decoys(rng, img)
    canvas = _Canvas(np.ascontiguousarray(img, dtype=np.float32))
    if rng.random() < text_prob:
        chosen = rng.choice(split.layouts, size=int(rng.integers(1, 3)), replace=False)
        # at most one layout paints a band or card, and it goes first: nothing covers text
        names = sorted((str(n) for n in chosen), key=lambda n: n not in _PAINTING)
        if len(names) > 1 and names[1] in _PAINTING:
            names = names[:1]
        for name in names:
            LAYOUTS[name](rng, canvas, fonts)
    out = np.clip(canvas.image, 0, 1).astype(np.float32)
    plain = np.clip(canvas.plain, 0, 1)  # the same frame without its text
    gamma = float(rng.uniform(0.6, 1.6)) if rng.random() < 0.3 else 1.0  # display LUTs vary
    if gamma != 1.0:
        out = out ** gamma
        plain = plain ** gamma
    rgb = None
    if rng.random() < split.colour_fraction:
        rgb = _colourise(rng, out, canvas.boxes)
    boxes = _visible(canvas.boxes, np.abs(out - plain) >= VISIBLE_CONTRAST)
    return Sample(out, boxes, boxes_mask(boxes, h, w), rgb)


def _visible(boxes: Sequence[TextBox], changed: Array) -> list[TextBox]:
    """The truth: each string cut down to the ink that can be seen in the finished frame.

    Where glyphs land on a background of their own value (white text running onto bone,
    dark text off a panel onto black, or a dark grey that the gamma then crushes) nothing is
    drawn, and those pixels carry no text; a string with no visible ink is no text at all.
    An outline makes all of the ink visible.
    """
    out = []
    for b in boxes:
        ink = b.ink if b.ink is not None else np.ones((b.y1 - b.y0, b.x1 - b.x0), bool)
        if not b.outlined:
            ink = ink & changed[b.y0:b.y1, b.x0:b.x1]
        iy, ix = np.nonzero(ink)
        if iy.size == 0:
            continue
        y0, y1, x0, x1 = int(iy.min()), int(iy.max()) + 1, int(ix.min()), int(ix.max()) + 1
        shrunk = (y0, x0, y1, x1) != (0, 0, ink.shape[0], ink.shape[1])
        out.append(TextBox(b.x0 + x0, b.y0 + y0, b.x0 + x1, b.y0 + y1, b.text, b.size,
                           b.cut or shrunk, ink[y0:y1, x0:x1], b.outlined))
    return out


def boxes_mask(boxes: Sequence[TextBox], h: int, w: int) -> Array:
    """The union of the boxes as a boolean (H, W) mask."""
    m = np.zeros((h, w), bool)
    for b in boxes:
        m[b.y0:b.y1, b.x0:b.x1] = True
    return m


def samples(seed: int, n: int, h: int, w: int, split: Split) -> Iterator[Sample]:
    """``n`` frames from one seed (deterministic for a given machine's fonts)."""
    rng = np.random.default_rng(seed)
    fonts = available_fonts(split.fonts)
    for _ in range(n):
        yield make_sample(rng, h, w, split, fonts)
