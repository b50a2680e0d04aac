"""Busy fit on a top-hat (strokes minus a smooth background) instead of raw grey."""
import os, sys; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
argv = sys.argv[1:]; sys.argv = sys.argv[:1]
from exp import *
import e2, e3
C = {}
orig = e2.split_busy

def split_busy(grey, box):
    if not C.get("th"):
        return orig(grey, box)
    rows, cols = grey.shape
    x0, y0, x1, y1 = box.x0, box.y0, box.x1, box.y1
    w = C.get("w", 4)
    ry0, rx0, ry1, rx1 = max(0, y0 - w), max(0, x0 - w), min(rows, y1 + w), min(cols, x1 + w)
    area = grey[ry0:ry1, rx0:rx1]
    k = int(np.clip(round((y1 - y0) * C.get("kf", 0.4)), 3, C.get("kmax", 15)))
    wt = area - ndimage.grey_opening(area, size=(k, k))
    bt = ndimage.grey_closing(area, size=(k, k)) - area
    inside = np.zeros(area.shape, bool)
    inside[y0 - ry0:y1 - ry0, x0 - rx0:x1 - rx0] = True
    best = None
    for t in (wt, bt):
        ref = t[~inside]
        if ref.size < 16:
            return orig(grey, box)
        thr = max(C.get("floor", 0.05), float(np.percentile(ref, C.get("pct", 99))))
        ink = (t > thr) & inside
        lab, n = ndimage.label(ink, structure=np.ones((3, 3), bool))
        if n:
            sz = np.bincount(lab.ravel(), minlength=n + 1)
            ink = (sz >= M.MIN_SPECK)[lab] & ink
        score = float(t[ink].sum())
        if best is None or score > best[0]:
            best = (score, ink)
    ink = best[1][y0 - ry0:y1 - ry0, x0 - rx0:x1 - rx0]
    if int(ink.sum()) < 4:
        return orig(grey, box) if C.get("fallback", True) else None
    im = C.get("inner", 0)
    out = []
    for r0, r1 in M._runs(np.asarray(ink.any(axis=1)), 2):
        band = ink[r0:r1]
        for c0, c1 in M._runs(np.asarray(band.any(axis=0)), max(3, 2 * (r1 - r0))):
            rr = np.nonzero(band[:, c0:c1].any(axis=1))[0]
            out.append(Box(max(x0, x0 + c0 - im), max(y0, y0 + r0 + int(rr[0]) - im),
                           min(x1, x0 + c1 + im), min(y1, y0 + r0 + int(rr[-1]) + 1 + im), box.score))
    return out or None
e3.split_busy = split_busy
base = None
for spec in argv:
    C.clear(); C.update(json.loads(spec)); e3.CF = e2.CFG = C
    q = run(spec, pad=C.get("pad", 1))
    ms = set(q.missed)
    if base is None: base = ms
    else: print("  newly missed:", sorted(ms - base), " recovered:", sorted(base - ms))
