import os, sys; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from exp import *
CFG = {}
def split_busy(grey, box):
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
    g = CFG.get("grow")
    if g:
        glo, ghi = np.percentile(ring, (g, 100 - g))
        weak = (inner > ghi) | (inner < glo)
        lab, nn = ndimage.label(weak, structure=np.ones((3, 3), bool))
        keep = np.unique(lab[ink & (lab > 0)])
        ink = np.isin(lab, keep[keep > 0]) | ink
    im = CFG.get("inner", 1)
    out = []
    for r0, r1 in M._runs(np.asarray(ink.any(axis=1)), 2):
        band = ink[r0:r1]
        for c0, c1 in M._runs(np.asarray(band.any(axis=0)), max(3, 2 * (r1 - r0))):
            rr = np.nonzero(band[:, c0:c1].any(axis=1))[0]
            out.append(Box(max(x0, x0 + c0 - im), max(y0, y0 + r0 + int(rr[0]) - im),
                           min(x1, x0 + c1 + im), min(y1, y0 + r0 + int(rr[-1]) + 1 + im),
                           box.score, box.source))
    return out or None

def refine(grey, box, confident=None, cell_origin=(0, 0), stride=2, unsure_margin=2):
    b = [box.x0, box.y0, min(box.x1, grey.shape[1]), min(box.y1, grey.shape[0])]
    for side in ("top", "bottom", "left", "right"):
        M._shrink_side(grey, b, side)
    fitted = Box(b[0], b[1], b[2], b[3], box.score, box.source)
    pieces = M._split_lines(grey, fitted)
    if pieces is not None:
        fm = CFG.get("flat_m", 0)
        return [Box(p.x0 - fm, p.y0 - fm, p.x1 + fm, p.y1 + fm, p.score) for p in pieces]
    busy = split_busy(grey, fitted)
    m = CFG.get("busy_m", unsure_margin)
    if busy is None or (confident is not None and not M._covers(busy, confident, *cell_origin, stride)):
        busy = [fitted]; m = CFG.get("coarse_m", unsure_margin)
    rows, cols = grey.shape
    return [Box(max(0, p.x0 - m), max(0, p.y0 - m), min(cols, p.x1 + m), min(rows, p.y1 + m), p.score) for p in busy]
M.refine_box = refine
import itertools
for spec in sys.argv[1:]:
    CFG = json.loads(spec)
    run(spec, pad=CFG.get("pad", 1))
