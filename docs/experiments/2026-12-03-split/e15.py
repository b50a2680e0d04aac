"""e14 splitting + when the textured fit misses confident cells: pieces plus boxes of the
missed cells (grown by `dil` cells) instead of the whole coarse box."""
import json, sys
from h import *
import e14
C = {}
orig = M.refine_box
def refine(grey, box, confident=None, cell_origin=(0, 0), stride=2, unsure_margin=2):
    b = [box.x0, box.y0, min(box.x1, grey.shape[1]), min(box.y1, grey.shape[0])]
    for side in ("top", "bottom", "left", "right"):
        M._shrink_side(grey, b, side)
    fitted = Box(*b, box.score, box.source)
    pieces = M._split_lines(grey, fitted)
    if pieces is not None:
        return pieces
    busy = M._split_busy(grey, fitted)
    rows, cols = grey.shape
    m = unsure_margin
    grow = lambda p, k: Box(max(0, p.x0 - k), max(0, p.y0 - k), min(cols, p.x1 + k), min(rows, p.y1 + k), p.score, p.source)
    if busy is None:
        return [grow(fitted, C.get("cm", m))]
    if confident is None or M._covers(busy, confident, *cell_origin, stride):
        return [grow(p, m) for p in busy]
    # cells not hit by pieces
    cy, cx = cell_origin
    hh, ww = confident.shape
    hit = np.zeros((hh, ww), bool)
    for q in busy:
        r0, r1 = q.y0 // stride - cy, -(-q.y1 // stride) - cy
        c0, c1 = q.x0 // stride - cx, -(-q.x1 // stride) - cx
        hit[max(0, r0):max(0, r1), max(0, c0):max(0, c1)] = True
    miss = confident & ~hit
    if C.get("dil", 1):
        miss = ndimage.binary_dilation(miss, iterations=C["dil"]) 
    lab, n = ndimage.label(miss, structure=np.ones((3, 3), bool))
    extra = []
    for sl in ndimage.find_objects(lab):
        ys, xs = sl
        e = Box(max(fitted.x0, (cx + xs.start) * stride), max(fitted.y0, (cy + ys.start) * stride),
                min(fitted.x1, (cx + xs.stop) * stride), min(fitted.y1, (cy + ys.stop) * stride), box.score, box.source)
        if e.x1 > e.x0 and e.y1 > e.y0:
            extra.append(grow(e, C.get("em", m)))
    return [grow(p, m) for p in busy] + extra
M.refine_box = refine
if __name__ == "__main__":
    for spec in sys.argv[1:]:
        C.clear(); C.update(json.loads(spec))
        run(spec, C.get("pad", 1), e14.make(C.get("level", 0.3), C.get("mincore", 1), C.get("m", 2)))
