"""Busy fit whose background reference is the pixels the map calls not-text, near and inside the box."""
import os, sys; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
argv = sys.argv[1:]; sys.argv = sys.argv[:1]
from exp import *
import e2, e3
C = {}

def split_busy(grey, box, bgmask):
    x0, y0, x1, y1 = box.x0, box.y0, box.x1, box.y1
    rows, cols = grey.shape
    w = C.get("w", 3)
    ry0, rx0, ry1, rx1 = max(0, y0 - w), max(0, x0 - w), min(rows, y1 + w), min(cols, x1 + w)
    area = grey[ry0:ry1, rx0:rx1]
    sel = bgmask[ry0:ry1, rx0:rx1].copy()
    if not C.get("inside", False):
        sel[y0 - ry0:y1 - ry0, x0 - rx0:x1 - rx0] = False
    ring = area[sel]
    if ring.size < 16:
        ring = M._ring(grey, box, 3)
        if ring.size < 16:
            return None
    pl = C.get("pct", 1.0)
    lo, hi = np.percentile(ring, (pl, 100 - pl))
    inner = grey[y0:y1, x0:x1]
    ink = (inner > hi) | (inner < lo)
    labels, n = ndimage.label(ink, structure=np.ones((3, 3), bool))
    if n:
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        ink = (sizes >= M.MIN_SPECK)[labels] & ink
    if int(ink.sum()) < 4:
        return None
    im = C.get("inner", 1)
    out = []
    for r0, r1 in M._runs(np.asarray(ink.any(axis=1)), 2):
        band = ink[r0:r1]
        for c0, c1 in M._runs(np.asarray(band.any(axis=0)), max(3, 2 * (r1 - r0))):
            rr = np.nonzero(band[:, c0:c1].any(axis=1))[0]
            out.append(Box(max(x0, x0 + c0 - im), max(y0, y0 + r0 + int(rr[0]) - im),
                           min(x1, x0 + c1 + im), min(y1, y0 + r0 + int(rr[-1]) + 1 + im), box.score))
    return out or None

def boxes_from_probability(prob, rows, columns, threshold, grey=None, hysteresis=0.5, stride=2, unsure_margin=2):
    p = prob[: -(-rows // stride), : -(-columns // stride)]
    low = p < threshold * hysteresis * C.get("bgk", 1.0)
    if C.get("erode", 0):
        low = ndimage.binary_erosion(low, np.ones((3, 3), bool), iterations=C["erode"], border_value=1)
    bgmask = np.repeat(np.repeat(low, stride, 0), stride, 1)[:rows, :columns]
    labels, n = ndimage.label(p >= threshold * hysteresis, structure=np.ones((3, 3), bool))
    if n == 0:
        return []
    out = []
    peaks = ndimage.maximum(p, labels, np.arange(1, n + 1))
    m = C.get("m", unsure_margin)
    for i, sl in enumerate(ndimage.find_objects(labels)):
        if sl is None or peaks[i] < threshold:
            continue
        ys, xs = sl
        b = Box(xs.start * stride, ys.start * stride, min(columns, xs.stop * stride), min(rows, ys.stop * stride), float(peaks[i]))
        comp = labels[sl] == i + 1
        confident = comp & (p[sl] >= M.CONFIDENT)
        bb = [b.x0, b.y0, b.x1, b.y1]
        for side in ("top", "bottom", "left", "right"):
            M._shrink_side(grey, bb, side)
        fitted = Box(*bb, b.score)
        pieces = M._split_lines(grey, fitted)
        if pieces is not None:
            out.extend(pieces); continue
        busy = split_busy(grey, fitted, bgmask)
        ok = busy is not None and M._covers(busy, confident, ys.start, xs.start, stride)
        if not ok:
            if C.get("mode") == "cells":
                rects = e3.cell_rects(comp, 0)
                busy = [Box(max(fitted.x0, (xs.start + c0) * stride), max(fitted.y0, (ys.start + r0) * stride),
                            min(fitted.x1, (xs.start + c1) * stride), min(fitted.y1, (ys.start + r1) * stride), b.score) for r0, c0, r1, c1 in rects]
                busy = [c for c in busy if c.area > 0]
            else:
                busy = [fitted]
        out.extend(Box(max(0, q.x0 - m), max(0, q.y0 - m), min(columns, q.x1 + m), min(rows, q.y1 + m), q.score) for q in busy)
    return out
M.boxes_from_probability = boxes_from_probability
for spec in argv:
    C.clear(); C.update(json.loads(spec))
    run(spec, pad=C.get("pad", 1))
