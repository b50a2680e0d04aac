"""Non-flat components: pieces from the upsampled map itself."""
import os, sys; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
argv = sys.argv[1:]; sys.argv = sys.argv[:1]
from exp import *
import e2, e3
C = {}
def pieces_from(mask, x0, y0, score):
    out = []
    for r0, r1 in M._runs(np.asarray(mask.any(axis=1)), 0):
        band = mask[r0:r1]
        for c0, c1 in M._runs(np.asarray(band.any(axis=0)), max(3, 2 * (r1 - r0))):
            rr = np.nonzero(band[:, c0:c1].any(axis=1))[0]
            out.append(Box(x0 + c0, y0 + r0 + int(rr[0]), x0 + c1, y0 + r0 + int(rr[-1]) + 1, score))
    return out

def boxes_from_probability(prob, rows, columns, threshold, grey=None, hysteresis=0.5, stride=2, unsure_margin=2):
    p = prob[: -(-rows // stride), : -(-columns // stride)]
    labels, n = ndimage.label(p >= threshold * hysteresis, structure=np.ones((3, 3), bool))
    if n == 0:
        return []
    up = ndimage.zoom(p, stride, order=1, grid_mode=True, mode="nearest")[:rows, :columns]
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
        compup = np.repeat(np.repeat(comp, stride, 0), stride, 1)
        region = up[b.y0:b.y1, b.x0:b.x1] >= C.get("tau", 0.5)
        region &= compup[:region.shape[0], :region.shape[1]]
        if C.get("also_busy"):
            busy = e2.split_busy(grey, fitted)
            ok = busy is not None and M._covers(busy, confident, ys.start, xs.start, stride)
            if ok:
                out.extend(Box(max(0, q.x0 - C.get("bm", m)), max(0, q.y0 - C.get("bm", m)), min(columns, q.x1 + C.get("bm", m)), min(rows, q.y1 + C.get("bm", m)), q.score) for q in busy)
                continue
        if not region.any():
            region = compup[:region.shape[0], :region.shape[1]]
        ps = pieces_from(region, b.x0, b.y0, b.score)
        out.extend(Box(max(0, q.x0 - m), max(0, q.y0 - m), min(columns, q.x1 + m), min(rows, q.y1 + m), q.score) for q in ps)
    return out
M.boxes_from_probability = boxes_from_probability
base = None
for spec in argv:
    C.clear(); C.update(json.loads(spec)); e2.CFG = C
    q = run(spec, pad=C.get("pad", 1))
    ms = set(q.missed)
    if base is None: base = ms
    else: print("  newly missed:", sorted(ms - base), " recovered:", sorted(base - ms))
