"""Our burned-in text detector: a small fully-convolutional network and the code around it.

The network maps one grey channel in [0, 1] to a text-probability map at half the resolution
(one cell per 2x2 pixels; v1 had one per 4x4, ``TextDetNet(stride=4)``). Boxes are the
bounding rectangles of the connected components of the thresholded map, fitted to the ink at
full resolution. It is a light encoder/decoder (stride 16 at the bottom, dilated
depthwise-separable blocks for context, three top-down fusions), about 32 k parameters,
designed to run at tens of frames per second on one CPU core and in large batches on a GPU.

:func:`frame_to_grey` turns any frame the stage sees (grey of any depth, signed or not, RGB)
into the network's input, the same way in training and in service. Loading the weights reads
one local file (``torch.load(weights_only=True)``); nothing touches the network.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import nn

from gateway.paths import shipped
from gateway.pixels.boxes import Box

MODEL_NAME = "textdet"
MODEL_VERSION = "v2"  # v2: output stride 2 (v1, stride 4, is in the git history)
STRIDE = 4  # the functions' default cell size (v1); a loaded net's own is ``net.stride``
ALIGN = 16  # input sides are padded to a multiple of this
DEFAULT_WEIGHTS = shipped("models") / "textdet" / "textdet-v2.pt"  # checkout or installed


def _cbr(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class SepBlock(nn.Module):
    """Depthwise 3x3 (optionally dilated or strided) then pointwise 1x1, with a residual."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.dw = nn.Conv2d(cin, cin, 3, stride, dilation, dilation=dilation, groups=cin,
                            bias=False)
        self.bn1 = nn.BatchNorm2d(cin)
        self.pw = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.dw(x)), inplace=True)
        y = self.bn2(self.pw(y))
        if self.residual:
            y = y + x
        return F.relu(y, inplace=True)


class TextDetNet(nn.Module):
    """Grey frame (N, 1, H, W), H and W multiples of 16 -> text logits (N, 1, H/s, W/s),
    ``s`` the output ``stride``: 4, or 2 with one more top-down fusion onto the stem's
    features (v2)."""

    def __init__(self, c1: int = 8, c2: int = 24, c3: int = 48, c4: int = 64,
                 stride: int = 4, c2out: int = 16) -> None:
        super().__init__()
        if stride not in (2, 4):
            raise ValueError(f"output stride must be 2 or 4, not {stride}")
        self.stride = stride
        self.stem = _cbr(1, c1, 2)  # 1/2
        self.down4 = _cbr(c1, c2, 2)  # 1/4
        self.block4 = SepBlock(c2, c2)
        self.down8 = SepBlock(c2, c3, stride=2)  # 1/8
        self.block8 = nn.Sequential(SepBlock(c3, c3), SepBlock(c3, c3, dilation=2))
        self.down16 = SepBlock(c3, c4, stride=2)  # 1/16
        self.block16 = nn.Sequential(SepBlock(c4, c4, dilation=2), SepBlock(c4, c4, dilation=4))
        self.lat16 = nn.Conv2d(c4, c3, 1)
        self.fuse8 = SepBlock(c3, c3)
        self.lat8 = nn.Conv2d(c3, c2, 1)
        self.fuse4 = SepBlock(c2, c2, dilation=2)
        if stride == 4:
            self.head = nn.Conv2d(c2, 1, 1)
        else:
            self.lat4 = nn.Conv2d(c2, c1, 1)
            self.fuse2 = SepBlock(c1, c2out)
            self.head2 = nn.Conv2d(c2out, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f2 = self.stem(x)
        f4 = self.block4(self.down4(f2))
        f8 = self.block8(self.down8(f4))
        f16 = self.block16(self.down16(f8))
        u8 = self.fuse8(f8 + F.interpolate(self.lat16(f16), scale_factor=2.0, mode="nearest"))
        u4 = self.fuse4(f4 + F.interpolate(self.lat8(u8), scale_factor=2.0, mode="nearest"))
        if self.stride == 4:
            return self.head(u4)
        u2 = self.fuse2(f2 + F.interpolate(self.lat4(u4), scale_factor=2.0, mode="nearest"))
        return self.head2(u2)


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """One convolution computing ``bn(conv(x))`` of an eval-mode batch norm."""
    mean, var = bn.running_mean, bn.running_var
    assert mean is not None and var is not None  # tracked: the nets are built that way
    scale = bn.weight.detach() / torch.sqrt(var + bn.eps)
    out = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size,  # type: ignore[arg-type]
                    conv.stride, conv.padding, conv.dilation,  # type: ignore[arg-type]
                    conv.groups, bias=True)
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(mean)
    with torch.no_grad():
        out.weight.copy_(conv.weight.detach() * scale.reshape(-1, 1, 1, 1))
        out.bias.copy_((bias - mean) * scale + bn.bias.detach())  # type: ignore[union-attr]
    return out


def fold_batchnorm(net: TextDetNet) -> TextDetNet:
    """For inference: fold every batch norm into the convolution before it, in place (the
    same function up to float rounding, about a quarter faster on a CPU). The net can no
    longer be trained or saved as a state dict of the architecture afterwards."""
    for m in net.modules():
        if (isinstance(m, nn.Sequential) and len(m) == 3 and isinstance(m[0], nn.Conv2d)
                and isinstance(m[1], nn.BatchNorm2d)):
            m[0], m[1] = _fold(m[0], m[1]), nn.Identity()
        elif isinstance(m, SepBlock):
            m.dw, m.bn1 = _fold(m.dw, m.bn1), nn.Identity()  # type: ignore[assignment]
            m.pw, m.bn2 = _fold(m.pw, m.bn2), nn.Identity()  # type: ignore[assignment]
    return net


_ONEDNN = torch.backends.mkldnn.is_available() and hasattr(torch, "mkldnn_convolution")


def _is_pointwise(conv: nn.Conv2d) -> bool:
    """A 1x1, stride 1, unpadded, ungrouped convolution: what :class:`PointwiseConv` computes."""
    return (conv.kernel_size == (1, 1) and conv.stride == (1, 1) and conv.groups == 1
            and conv.padding in ((0, 0), 0) and conv.padding_mode == "zeros")


class PointwiseConv(nn.Module):
    """A 1x1 convolution that runs through oneDNN on a CPU.

    With one thread and small batches PyTorch sends 1x1 convolutions to its generic GEMM
    path, which is slow for these thin layers (8-48 channels): oneDNN runs the same sums
    1.6-3x faster there (24 -> 8 channels at a quarter of 1024x768: 2.2 ms -> 0.7 ms), about
    a tenth of the whole network (docs/performance.md). Elsewhere (CUDA, no oneDNN) it is a
    plain ``F.conv2d``. Inference only: the weights are not meant to be trained here.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        if not _is_pointwise(conv):
            raise ValueError("PointwiseConv takes a 1x1, stride 1, unpadded, ungrouped convolution")
        self.weight = nn.Parameter(conv.weight.detach().clone(), requires_grad=False)
        bias = conv.bias.detach().clone() if conv.bias is not None else None
        self.bias = nn.Parameter(bias, requires_grad=False) if bias is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and x.dtype == torch.float32 and _ONEDNN:
            return torch.mkldnn_convolution(x, self.weight, self.bias, [0, 0], [1, 1],
                                            [1, 1], 1)
        return F.conv2d(x, self.weight, self.bias)


def pointwise_through_onednn(net: TextDetNet) -> TextDetNet:
    """For CPU inference: every 1x1 convolution with more than one output channel becomes a
    :class:`PointwiseConv`, in place (the same function up to float rounding). The head
    (one output channel) stays: a GEMM against one column is faster than oneDNN's kernel."""
    for m in list(net.modules()):
        for name, child in list(m.named_children()):
            if isinstance(child, nn.Conv2d) and _is_pointwise(child) and child.out_channels > 1:
                setattr(m, name, PointwiseConv(child))
    return net


# --------------------------------------------------------------------------- input


def frame_to_grey(frame: np.ndarray) -> np.ndarray:
    """One frame (rows, cols) or (rows, cols, 3) of any dtype -> float32 in [0, 1].

    Colour frames take the maximum of the channels (coloured annotations are bright in at
    least one). The window is the 0.1-99.9 percentile range of a subsample, so a few hot
    pixels do not squash the picture and text, which is usually at an extreme, saturates.
    """
    if frame.ndim == 3:  # elementwise over the channel planes: a reduce along axis 2 is slow
        a = frame[..., 0]
        for c in range(1, frame.shape[2]):
            a = np.maximum(a, frame[..., c])
    else:
        a = frame
    step = max(1, int(np.sqrt(a.size / 65536)))
    sub = np.asarray(a[::step, ::step], dtype=np.float32)
    lo, hi = np.percentile(sub, (0.1, 99.9))
    if hi - lo < 1e-6:
        lo, hi = float(a.min()), float(a.max())
        if hi - lo < 1e-6:
            return np.zeros(a.shape, np.float32)
    scale = np.float32(1.0 / (hi - lo))
    if a.dtype.kind in "ui" and a.dtype.itemsize == 1:
        # 8-bit frames: the same arithmetic once per possible value, then a lookup
        base = int(np.iinfo(a.dtype).min)
        levels = np.arange(base, int(np.iinfo(a.dtype).max) + 1, dtype=np.float32)
        lut = (levels - np.float32(lo)) * scale
        np.clip(lut, 0.0, 1.0, out=lut)
        idx = a.astype(np.intp) - base if base else a
        return lut[idx]
    out = (np.asarray(a, dtype=np.float32) - np.float32(lo)) * scale
    np.clip(out, 0.0, 1.0, out=out)
    return out


def _pad_batch(frames: Sequence[np.ndarray]) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """Stack grey frames into one (N, 1, H, W) tensor padded (edge values) to ALIGN."""
    shapes = [(int(f.shape[0]), int(f.shape[1])) for f in frames]
    H = -(-max(s[0] for s in shapes) // ALIGN) * ALIGN
    W = -(-max(s[1] for s in shapes) // ALIGN) * ALIGN
    batch = np.empty((len(frames), 1, H, W), np.float32)
    for i, f in enumerate(frames):
        h, w = f.shape
        batch[i, 0] = np.pad(f, ((0, H - h), (0, W - w)), mode="edge")
    return torch.from_numpy(batch), shapes


# --------------------------------------------------------------------------- output


EIGHT = np.ones((3, 3), bool)  # 8-connectivity for ndimage
FLAT_TOL = 0.05  # a line within this of the level outside is background
FLAT_INK = 0.04  # on a flat background, ink differs from it by more than this


def _runs(hits: np.ndarray, max_gap: int) -> list[tuple[int, int]]:
    """Half-open runs of True in ``hits``, joining runs separated by at most ``max_gap``."""
    idx = np.nonzero(hits)[0]
    if idx.size == 0:
        return []
    breaks = np.nonzero(np.diff(idx) > max_gap + 1)[0]
    starts = np.concatenate([[idx[0]], idx[breaks + 1]])
    stops = np.concatenate([idx[breaks], [idx[-1]]]) + 1
    return [(int(a), int(b)) for a, b in zip(starts, stops, strict=True)]


def _side_reference(grey: np.ndarray, b: tuple[int, int, int, int],
                    side: str) -> np.ndarray | None:
    """Two pixel lines just outside one side of box ``b`` (x0, y0, x1, y1), if inside."""
    x0, y0, x1, y1 = b
    rows, cols = grey.shape
    if side == "top":
        return grey[max(0, y0 - 2):y0, x0:x1] if y0 > 0 else None
    if side == "bottom":
        return grey[y1:min(rows, y1 + 2), x0:x1] if y1 < rows else None
    if side == "left":
        return grey[y0:y1, max(0, x0 - 2):x0] if x0 > 0 else None
    return grey[y0:y1, x1:min(cols, x1 + 2)] if x1 < cols else None


def _median(a: np.ndarray) -> float:
    """``float(np.median(a))`` of a float array, without ``np.median``'s general machinery
    (a third of the box fit's time went there): the same partition and the same float
    arithmetic on the middle values, so the same number."""
    v = a.ravel()
    n = v.size
    k = n // 2
    if n % 2:
        return float(np.partition(v, k)[k])
    part = np.partition(v, (k - 1, k))
    return float((part[k - 1] + part[k]) / 2)


def _percentiles(a: np.ndarray, qs: float | tuple[float, ...]) -> list[float]:
    """``np.percentile(a, qs)`` (the linear method) of a float array, as floats, without its
    general machinery: the same order statistics and the same arithmetic, so the same
    numbers, including numpy's float32 interpolation when ``qs`` is one plain number and
    float64 when it is a tuple."""
    v = a.ravel()
    n = v.size
    weak = not isinstance(qs, tuple)
    q = np.true_divide(qs, 100)
    virtual = (n - 1) * q
    prev = np.atleast_1d(np.floor(virtual)).astype(np.intp)
    above = np.atleast_1d(virtual >= n - 1)
    prev[above] = n - 1
    nxt = np.where(above, n - 1, prev + 1)
    part = np.partition(v, np.unique(np.concatenate(([0, n - 1], prev, nxt))))
    if part.dtype.kind == "f" and np.isnan(part[-1]):
        return [float("nan")] * prev.size
    lo, hi = part[prev], part[nxt]
    diff = hi - lo
    gamma = np.atleast_1d(virtual) - np.where(above, -1, prev)  # numpy's, -1 above the top
    if weak:  # one plain number: numpy interpolates in the array's own precision
        t = float(gamma[0])
        d, x0, x1 = diff[0], lo[0], hi[0]
        return [float(x1 - d * (1 - t)) if t >= 0.5 else float(x0 + d * t)]
    out = lo + diff * gamma
    out = np.where(gamma >= 0.5, hi - diff * (1 - gamma), out)
    return [float(x) for x in out]


def _shrink_side(grey: np.ndarray, b: list[int], side: str) -> None:
    """Move one side of ``b`` inward while its outermost line is flat background.

    A line goes only when every pixel in it is within a small tolerance of the level just
    outside that side, so any glyph pixel, noise or texture stops the move; at most a quarter
    of the box (or 4 px) goes in any case, and the box keeps at least one line.
    """
    ref = _side_reference(grey, (b[0], b[1], b[2], b[3]), side)
    if ref is None or ref.size == 0:
        return
    bg = _median(ref)
    tol = FLAT_TOL + min(0.05, 3.0 * _median(np.abs(ref - bg)))
    x0, y0, x1, y1 = b
    vertical = side in ("top", "bottom")  # the side moves up or down: its lines are rows
    span, across = (y1 - y0, x1 - x0) if vertical else (x1 - x0, y1 - y0)
    most = min(max(4, span // 4), span - 1) if across > 1 else 0
    if most <= 0:
        return
    # the lines the side may pass, outermost first, and each one's largest departure
    if side == "top":
        dev = np.abs(grey[y0:y0 + most, x0:x1] - bg).max(axis=1)
    elif side == "bottom":
        dev = np.abs(grey[y1 - most:y1, x0:x1] - bg).max(axis=1)[::-1]
    elif side == "left":
        dev = np.abs(grey[y0:y1, x0:x0 + most] - bg).max(axis=0)
    else:
        dev = np.abs(grey[y0:y1, x1 - most:x1] - bg).max(axis=0)[::-1]
    stop = np.asarray(dev, np.float64) > tol  # as float(line max) > tol, line by line
    moved = int(np.argmax(stop)) if stop.any() else most
    if side == "top":
        b[1] += moved
    elif side == "bottom":
        b[3] -= moved
    elif side == "left":
        b[0] += moved
    else:
        b[2] -= moved


def _split_lines(grey: np.ndarray, box: Box) -> list[Box] | None:
    """On a flat background, cut a box into its lines and line pieces, each fit to its ink;
    ``None`` when the background around the box is not flat."""
    x0, y0, x1, y1 = box.x0, box.y0, box.x1, box.y1
    rows, cols = grey.shape
    ring = grey[max(0, y0 - 2):min(rows, y1 + 2), max(0, x0 - 2):min(cols, x1 + 2)].copy()
    inner = ring[(y0 - max(0, y0 - 2)):(y0 - max(0, y0 - 2)) + (y1 - y0),
                 (x0 - max(0, x0 - 2)):(x0 - max(0, x0 - 2)) + (x1 - x0)]
    outside = np.ones(ring.shape, bool)
    outside[(y0 - max(0, y0 - 2)):(y0 - max(0, y0 - 2)) + (y1 - y0),
            (x0 - max(0, x0 - 2)):(x0 - max(0, x0 - 2)) + (x1 - x0)] = False
    ref = ring[outside]
    if ref.size < 8:
        return [box]
    bg = _median(ref)
    noise = _percentiles(np.abs(ref - bg), 99)[0]
    if noise > 0.06:
        return None
    ink = np.abs(inner - bg) > max(FLAT_INK, 1.5 * noise)
    out: list[Box] = []
    for r0, r1 in _runs(np.asarray(ink.any(axis=1)), 2):
        band = ink[r0:r1]
        for c0, c1 in _runs(np.asarray(band.any(axis=0)), max(3, 2 * (r1 - r0))):
            rr = np.nonzero(band[:, c0:c1].any(axis=1))[0]
            out.append(Box(x0 + c0, y0 + r0 + int(rr[0]), x0 + c1, y0 + r0 + int(rr[-1]) + 1,
                           box.score, box.source))
    return out or [box]


def _ring(grey: np.ndarray, b: Box, width: int) -> np.ndarray:
    """The pixels of a frame of ``width`` around box ``b`` (clipped to the image)."""
    rows, cols = grey.shape
    ry0, rx0 = max(0, b.y0 - width), max(0, b.x0 - width)
    area = grey[ry0:min(rows, b.y1 + width), rx0:min(cols, b.x1 + width)]
    outside = np.ones(area.shape, bool)
    outside[b.y0 - ry0:b.y1 - ry0, b.x0 - rx0:b.x1 - rx0] = False
    return area[outside]


MIN_SPECK = 5  # ink components on texture smaller than this (pixels) are noise


def _split_busy(grey: np.ndarray, box: Box) -> list[Box] | None:
    """On a textured background, cut a box into lines and pieces of the pixels that lie
    beyond the range of the background around it (brighter than its 99th percentile or
    darker than its 1st), each piece with one pixel of margin; ``None`` when no ink stands
    out. Specks of fewer than MIN_SPECK pixels are taken for noise."""
    ring = _ring(grey, box, 3)
    if ring.size < 16:
        return None
    lo, hi = _percentiles(ring, (1.0, 99.0))
    x0, y0, x1, y1 = box.x0, box.y0, box.x1, box.y1
    inner = grey[y0:y1, x0:x1]
    ink = (inner > hi) | (inner < lo)
    labels, n = ndimage.label(ink, structure=EIGHT)
    if n:  # specks of a few pixels are noise, not strokes
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        ink = (sizes >= MIN_SPECK)[labels] & ink
    if int(ink.sum()) < 4:
        return None
    out = []
    for r0, r1 in _runs(np.asarray(ink.any(axis=1)), 2):
        band = ink[r0:r1]
        for c0, c1 in _runs(np.asarray(band.any(axis=0)), max(3, 2 * (r1 - r0))):
            rr = np.nonzero(band[:, c0:c1].any(axis=1))[0]
            out.append(Box(max(x0, x0 + c0 - 1), max(y0, y0 + r0 + int(rr[0]) - 1),
                           min(x1, x0 + c1 + 1), min(y1, y0 + r0 + int(rr[-1]) + 2),
                           box.score, box.source))
    return out or None


# A fit to textured ink is complete when its pieces touch this share of the component's
# confident cells (probability >= CONFIDENT); otherwise the cells it missed are boxed too,
# so that ink too faint to stand out against the background is never cut away.
BUSY_COVER = 0.97
CONFIDENT = 0.5
# Boxes not fitted against a flat background are grown by this much more than flat ones:
# their edges are known less exactly. The default; weights files carry their tuned value.
UNSURE_MARGIN = 1


def _missed_cells(pieces: Sequence[Box], confident: np.ndarray, cy: int, cx: int,
                  stride: int, within: Box) -> list[Box]:
    """What a textured fit that missed faint ink adds: nothing when ``pieces`` overlap at
    least BUSY_COVER of the ``confident`` cells (a cell mask whose first cell is (cy, cx) on
    the map's grid, ``stride`` px per cell); otherwise boxes (frame pixels, inside
    ``within``) over the confident cells they miss, each group grown by one cell."""
    total = int(confident.sum())
    if total == 0:
        return []
    hit = np.zeros(confident.shape, bool)
    for b in pieces:
        r0, r1 = b.y0 // stride - cy, -(-b.y1 // stride) - cy
        c0, c1 = b.x0 // stride - cx, -(-b.x1 // stride) - cx
        hit[max(0, r0):max(0, r1), max(0, c0):max(0, c1)] = True
    miss = confident & ~hit
    if total - int(miss.sum()) >= BUSY_COVER * total:
        return []
    miss = ndimage.binary_dilation(miss, structure=EIGHT)
    out = []
    for ys, xs in ndimage.find_objects(ndimage.label(miss, structure=EIGHT)[0]):
        e = Box(max(within.x0, (cx + xs.start) * stride), max(within.y0, (cy + ys.start) * stride),
                min(within.x1, (cx + xs.stop) * stride), min(within.y1, (cy + ys.stop) * stride),
                within.score, within.source)
        if e.x1 > e.x0 and e.y1 > e.y0:
            out.append(e)
    return out


def refine_box(grey: np.ndarray, box: Box, confident: np.ndarray | None = None,
               cell_origin: tuple[int, int] = (0, 0), stride: int = STRIDE,
               unsure_margin: int = UNSURE_MARGIN) -> list[Box]:
    """Fit a coarse box (multiples of the map's ``stride``) to the text inside it, at full
    resolution.

    Each side moves inward while its outermost line looks like the two lines just outside
    it (no pixels clearly different), so a busy neighbourhood on one side does not stop the
    others. On a flat background the box is then cut into lines and pieces, each fit to its
    ink (exact: these get no extra margin). On a textured one it is cut into the pieces of
    ink that stand out from the background around it; where those miss some of the
    component's ``confident`` cells (a mask on the map's grid whose first cell is
    ``cell_origin``; see :data:`BUSY_COVER`), the missed cells, grown by one cell, are
    boxed too, so faint ink the map is sure of is never cut away. Boxes never grow beyond
    the coarse box except by ``unsure_margin`` on those that are not flat fits; where no
    ink stands out at all the shrunk coarse box stays (recall first).
    """
    b = [box.x0, box.y0, min(box.x1, grey.shape[1]), min(box.y1, grey.shape[0])]
    for side in ("top", "bottom", "left", "right"):
        _shrink_side(grey, b, side)
    fitted = Box(b[0], b[1], b[2], b[3], box.score, box.source)
    pieces = _split_lines(grey, fitted)
    if pieces is not None:
        return pieces
    busy = _split_busy(grey, fitted)
    if busy is None:
        busy = [fitted]
    elif confident is not None:
        busy += _missed_cells(busy, confident, *cell_origin, stride, fitted)
    rows, cols = grey.shape
    m = unsure_margin
    return [Box(max(0, p.x0 - m), max(0, p.y0 - m), min(cols, p.x1 + m), min(rows, p.y1 + m),
                p.score, p.source) for p in busy]


HYSTERESIS = 0.5  # default: components reach down to this share of the threshold
# Components are cut between their cores, the 8-connected groups of cells at or above this
# probability, every cell going to the nearest core: two lines of text whose faint margins
# touch on the map are boxed and fitted apart. 0 keeps every component whole. The default;
# weights files carry their tuned value.
SPLIT_LEVEL = 0.3


def _parts(comp: np.ndarray, p: np.ndarray, level: float) -> list[np.ndarray]:
    """Cell masks of the parts of one component (``comp``, over the map window ``p``): one
    per core (cells >= ``level``), each cell going to its nearest core; the whole component
    when it has fewer than two cores."""
    if level <= 0:
        return [comp]
    cores, n = ndimage.label(comp & (p >= level), structure=EIGHT)
    if n < 2:
        return [comp]
    _, (iy, ix) = ndimage.distance_transform_edt(cores == 0, return_indices=True)
    owner = np.where(comp, cores[iy, ix], 0)
    return [owner == k for k in range(1, n + 1)]


def boxes_from_probability(prob: np.ndarray, rows: int, columns: int, threshold: float,
                           grey: np.ndarray | None = None,
                           hysteresis: float = HYSTERESIS, stride: int = STRIDE,
                           unsure_margin: int = UNSURE_MARGIN,
                           split_level: float = SPLIT_LEVEL) -> list[Box]:
    """Boxes (frame pixels) of the text components of the map, each refined against ``grey``
    (the detector's input) when given.

    Hysteresis: a component is an 8-connected region of ``prob >= hysteresis * threshold``
    that peaks at ``threshold`` or more, so a weakly marked letter is boxed whole. A
    component with several cores (``split_level``, see :data:`SPLIT_LEVEL`) is boxed and
    fitted part by part.
    """
    p = prob[: -(-rows // stride), : -(-columns // stride)]
    labels, n = ndimage.label(p >= threshold * hysteresis, structure=EIGHT)
    if n == 0:
        return []
    out = []
    # the components that reach the threshold (compared in float64, as a float peak would
    # be); ndimage.maximum over every label sorts the whole map and took most of the time
    peaked = np.zeros(n + 1, bool)
    peaked[labels[p >= np.float64(threshold)]] = True
    for i, sl in enumerate(ndimage.find_objects(labels)):
        if sl is None or not peaked[i + 1]:
            continue
        window = p[sl]
        for part in _parts(labels[sl] == i + 1, window, split_level):
            ys, xs = ndimage.find_objects(part.astype(np.int8))[0]
            cy, cx = sl[0].start + ys.start, sl[1].start + xs.start
            cells = part[ys, xs]
            b = Box(cx * stride, cy * stride, min(columns, (sl[1].start + xs.stop) * stride),
                    min(rows, (sl[0].start + ys.stop) * stride),
                    float(window[ys, xs][cells].max()))
            if grey is None:
                out.append(b)
                continue
            confident = cells & (window[ys, xs] >= CONFIDENT)
            out.extend(refine_box(grey, b, confident, (cy, cx), stride, unsure_margin))
    return out


def pick_device(preference: str = "auto") -> torch.device:
    """``auto``: CUDA when present, else CPU; ``cpu`` / ``cuda`` / ``cuda:N`` as given."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(preference)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
_HEAP_KEPT: bool | None = None


def keep_activation_memory() -> bool:
    """Let the C heap keep the memory the network's activations use between frames.

    glibc hands each allocation above its mmap threshold (128 KiB at first, adjusted as the
    process runs) to the kernel as fresh pages and returns the heap's free top whenever it
    passes the trim threshold; every frame's activations (megabytes each: 8 channels at half
    a 1024x768 frame are 6 MB) are then page-faulted in anew, which took half the network's
    time on one core (docs/performance.md). This fixes the mmap threshold at 32 MiB (glibc's
    upper limit) and the trim threshold at 1 GiB, so those buffers are reused. Peak memory is
    unchanged (the same buffers are live at the peak); what is no longer returned to the
    kernel is at most the largest frame's activations below 32 MiB a buffer. Process-wide
    and idempotent; returns False where the C library is not glibc (nothing changes).
    """
    global _HEAP_KEPT
    if _HEAP_KEPT is None:
        # the C library this process already runs on (no search for it, no subprocess)
        mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
        _HEAP_KEPT = mallopt is not None and bool(mallopt(_M_MMAP_THRESHOLD, 32 << 20)) \
            and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))
    return _HEAP_KEPT


@dataclass
class Detector:
    """A loaded network on one device, with the threshold that turns probabilities into boxes."""

    net: TextDetNet
    device: torch.device
    threshold: float = 0.35
    version: str = f"{MODEL_NAME}@{MODEL_VERSION}"
    hysteresis: float = HYSTERESIS
    unsure_margin: int = UNSURE_MARGIN
    split_level: float = SPLIT_LEVEL

    @property
    def stride(self) -> int:
        """Frame pixels per map cell along each side."""
        return int(self.net.stride)

    @torch.inference_mode()
    def probability(self, grey: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Text probability at 1/stride resolution for each grey frame (already in [0, 1])."""
        if not grey:
            return []
        if self.device.type == "cpu" and len(grey) > 1:
            # on a CPU one frame at a time is faster (the activations stay in cache)
            return [p for g in grey for p in self.probability([g])]
        batch, shapes = _pad_batch(grey)
        x = batch.to(self.device, non_blocking=True)
        if self.device.type == "cpu":  # the layout load_detector gave the weights there
            x = x.contiguous(memory_format=torch.channels_last)
        logits = self.net(x)
        prob = torch.sigmoid(logits)[:, 0].float().cpu().numpy()
        s = self.stride
        return [prob[i, : -(-h // s), : -(-w // s)] for i, (h, w) in enumerate(shapes)]

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Box]]:
        """Boxes of text for each raw frame (any dtype, grey or RGB); unpadded."""
        grey = [frame_to_grey(f) for f in frames]
        probs = self.probability(grey)
        return [self.boxes(p, g) for p, g in zip(probs, grey, strict=True)]

    def boxes(self, prob: np.ndarray, grey: np.ndarray) -> list[Box]:
        """Boxes of one frame from its map and its grey input, with this detector's
        threshold, hysteresis, margin and split level."""
        return boxes_from_probability(prob, grey.shape[0], grey.shape[1], self.threshold, grey,
                                      self.hysteresis, self.stride, self.unsure_margin,
                                      self.split_level)


def load_detector(path: Path | None = None, device: str = "auto",
                  threshold: float | None = None) -> Detector:
    """Build the network and load its state dict from ``path`` (no network access)."""
    p = Path(path) if path is not None else DEFAULT_WEIGHTS
    blob = torch.load(p, map_location="cpu", weights_only=True)
    state = blob.get("state_dict", blob)
    widths = blob.get("widths", {}) if "state_dict" in blob else {}
    net = TextDetNet(**{k: int(v) for k, v in widths.items()})
    net.load_state_dict(state)
    dev = pick_device(device)
    fold_batchnorm(net.eval()).to(dev)
    if dev.type == "cpu":
        keep_activation_memory()  # half the time on a CPU went to page faults without it
        pointwise_through_onednn(net)  # a tenth faster on one thread
        # oneDNN runs these thin convolutions 1.4-2x faster in NHWC (same maps to ~1e-5)
        net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    thr = float(threshold if threshold is not None else blob.get("threshold", 0.35))
    version = str(blob.get("version", f"{MODEL_NAME}@{MODEL_VERSION}"))
    return Detector(net, dev, thr, version, float(blob.get("hysteresis", HYSTERESIS)),
                    int(blob.get("unsure_margin", UNSURE_MARGIN)),
                    float(blob.get("split_level", SPLIT_LEVEL)))
