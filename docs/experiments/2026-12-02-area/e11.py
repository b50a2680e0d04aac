"""Non-flat: union of the busy ink fit (margin bm) and the upsampled map >= tau (margin m)."""
import os, sys; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
argv = sys.argv[1:]; sys.argv = sys.argv[:1]
from exp import *
import e2, e3, e9
C = {}
def boxes_from_probability(prob, rows, columns, threshold, grey=None, hysteresis=0.5, stride=2, unsure_margin=2):
    p = prob[: -(-rows // stride), : -(-columns // stride)]
    labels, n = ndimage.label(p >= threshold * hysteresis, structure=np.ones((3, 3), bool))
    if n == 0:
        return []
    up = ndimage.zoom(p, stride, order=1, grid_mode=True, mode="nearest")[:rows, :columns]
    out = []
    peaks = ndimage.maximum(p, labels, np.arange(1, n + 1))
    m, bm = C.get("m", 0), C.get("bm", 0)
    cl = lambda q, k: Box(max(0, q.x0 - k), max(0, q.y0 - k), min(columns, q.x1 + k), min(rows, q.y1 + k), q.score)
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
        busy = e2.split_busy(grey, fitted)
        ok = busy is not None and M._covers(busy, confident, ys.start, xs.start, stride)
        compup = np.repeat(np.repeat(comp, stride, 0), stride, 1)
        region = up[b.y0:b.y1, b.x0:b.x1] >= C.get("tau", 0.5)
        region &= compup[:region.shape[0], :region.shape[1]]
        if ok:
            out.extend(cl(q, C.get('bms', bm) if min(q.height, q.width) <= C.get('sh', 0) else bm) for q in busy)
            out.extend(cl(q, m) for q in e9.pieces_from(region, b.x0, b.y0, b.score))
        else:
            out.append(cl(fitted, C.get('cms', C.get('cm', 2)) if min(fitted.height, fitted.width) <= C.get('sh', 0) else C.get('cm', 2)))
    return out
M.boxes_from_probability = boxes_from_probability
base = None
for spec in argv:
    C.clear(); C.update(json.loads(spec)); e2.CFG = C
    q = run(spec, pad=C.get("pad", 1))
    ms = set(q.missed)
    if base is None: base = ms
    else: print("  newly missed:", sorted(ms - base), " recovered:", sorted(base - ms))
