"""Coarse fallback follows the component's cells instead of its bounding box."""
import os, sys; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
argv = sys.argv[1:]; sys.argv = sys.argv[:1]
from exp import *
import e2
from e2 import split_busy

def cell_rects(comp, tol=0):
    """Rectangles (r0, c0, r1, c1) in cells covering a boolean cell mask."""
    open_, out = [], []
    for r in range(comp.shape[0]):
        runs = M._runs(comp[r], 0)
        nxt = []
        for c0, c1 in runs:
            match = None
            for o in open_:
                if abs(o[1] - c0) <= tol and abs(o[3] - c1) <= tol:
                    match = o; break
            if match is not None:
                open_.remove(match)
                nxt.append([match[0], min(match[1], c0), r + 1, max(match[3], c1)])
            else:
                nxt.append([r, c0, r + 1, c1])
        out.extend(open_)
        open_ = nxt
    out.extend(open_)
    return out

CF = {}
def boxes_from_probability(prob, rows, columns, threshold, grey=None, hysteresis=0.5, stride=2, unsure_margin=2):
    p = prob[: -(-rows // stride), : -(-columns // stride)]
    labels, n = ndimage.label(p >= threshold * hysteresis, structure=np.ones((3, 3), bool))
    if n == 0:
        return []
    out = []
    peaks = ndimage.maximum(p, labels, np.arange(1, n + 1))
    m = CF.get("m", unsure_margin)
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
        busy = split_busy(grey, fitted)
        ok = busy is not None and M._covers(busy, confident, ys.start, xs.start, stride)
        if not ok:
            mode = CF.get("mode", "cells")
            if mode == "bbox":
                busy = [fitted]
            else:
                cm_ = ndimage.binary_dilation(comp, np.ones((3, 3), bool), iterations=CF['dil']) if CF.get('dil') else comp
                rects = cell_rects(cm_, CF.get("tol", 0))
                cells = [Box(max(fitted.x0, (xs.start + c0) * stride), max(fitted.y0, (ys.start + r0) * stride),
                             min(fitted.x1, (xs.start + c1) * stride), min(fitted.y1, (ys.start + r1) * stride), b.score) for r0, c0, r1, c1 in rects]
                cells = [c for c in cells if c.area > 0]
                busy = cells + (busy or []) if mode == "union" else cells
        mm = CF.get('cm', m) if not ok else m
        out.extend(Box(max(0, q.x0 - mm), max(0, q.y0 - mm), min(columns, q.x1 + mm), min(rows, q.y1 + mm), q.score) for q in busy)
    return out
M.boxes_from_probability = boxes_from_probability
for spec in argv:
    CF = json.loads(spec)
    e2.CFG = CF
    q = run(spec, pad=CF.get("pad", 1))
