"""Busy fit with polarity-aware growth near strong ink."""
import os, sys; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
argv = sys.argv[1:]; sys.argv = sys.argv[:1]
from exp import *
import e2, e3

def split_busy(grey, box):
    C = e2.CFG
    ring = M._ring(grey, box, 3)
    if ring.size < 16:
        return None
    lo, hi = np.percentile(ring, (1.0, 99.0))
    x0, y0, x1, y1 = box.x0, box.y0, box.x1, box.y1
    inner = grey[y0:y1, x0:x1]
    ink = (inner > hi) | (inner < lo)
    labels, n = ndimage.label(ink, structure=np.ones((3, 3), bool))
    if n:
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        ink = (sizes >= M.MIN_SPECK)[labels] & ink
    if int(ink.sum()) < 4:
        return None
    g = C.get("pg")
    if g:
        bright = int((ink & (inner > hi)).sum()) >= int((ink & (inner < lo)).sum())
        t = np.percentile(ring, 100 - g if bright else g)
        weak = inner > t if bright else inner < t
        near = ndimage.binary_dilation(ink, np.ones((3, 3), bool), iterations=C.get("it", 2))
        ink = ink | (weak & near)
    im = C.get("inner", 1)
    out = []
    for r0, r1 in M._runs(np.asarray(ink.any(axis=1)), 2):
        band = ink[r0:r1]
        for c0, c1 in M._runs(np.asarray(band.any(axis=0)), max(3, 2 * (r1 - r0))):
            rr = np.nonzero(band[:, c0:c1].any(axis=1))[0]
            out.append(Box(max(x0, x0 + c0 - im), max(y0, y0 + r0 + int(rr[0]) - im),
                           min(x1, x0 + c1 + im), min(y1, y0 + r0 + int(rr[-1]) + 1 + im),
                           box.score, box.source))
    return out or None
e3.split_busy = split_busy
for spec in argv:
    e3.CF = e2.CFG = json.loads(spec)
    run(spec, pad=e2.CFG.get("pad", 1))
