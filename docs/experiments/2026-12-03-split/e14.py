"""Split each component at its cores (p >= level): every cell goes to its nearest core;
each region is boxed and refined on its own."""
import json, sys
from h import *

def make(level, mincore=1, margin=2):
    def fn(prob, grey):
        rows, columns = grey.shape
        stride, threshold, hyst = det.stride, det.threshold, det.hysteresis
        p = prob[: -(-rows // stride), : -(-columns // stride)]
        labels, n = ndimage.label(p >= threshold * hyst, structure=np.ones((3, 3), bool))
        out = []
        peaked = np.zeros(n + 1, bool)
        peaked[labels[p >= np.float64(threshold)]] = True
        for i, sl in enumerate(ndimage.find_objects(labels)):
            if sl is None or not peaked[i + 1]:
                continue
            comp = labels[sl] == i + 1
            ps = p[sl]
            cores, nc = ndimage.label(comp & (ps >= level), structure=np.ones((3, 3), bool))
            if nc > 1 and mincore > 1:
                sizes = np.bincount(cores.ravel(), minlength=nc + 1)
                keep = sizes >= mincore; keep[0] = False
                cores = np.where(keep[cores], cores, 0)
                cores, nc = ndimage.label(cores > 0, structure=np.ones((3, 3), bool))
            if nc > 1:
                _, (iy, ix) = ndimage.distance_transform_edt(cores == 0, return_indices=True)
                owner = np.where(comp, cores[iy, ix], 0)
                regions = [owner == k for k in range(1, nc + 1)]
            else:
                regions = [comp]
            ys0, xs0 = sl[0].start, sl[1].start
            for reg in regions:
                yy, xx = np.nonzero(reg)
                if yy.size == 0:
                    continue
                cy0, cy1, cx0, cx1 = yy.min(), yy.max() + 1, xx.min(), xx.max() + 1
                sub = reg[cy0:cy1, cx0:cx1]
                b = Box((xs0 + cx0) * stride, (ys0 + cy0) * stride, min(columns, (xs0 + cx1) * stride),
                        min(rows, (ys0 + cy1) * stride), float(ps[reg].max()))
                conf = sub & (ps[cy0:cy1, cx0:cx1] >= M.CONFIDENT)
                out.extend(M.refine_box(grey, b, conf, (ys0 + cy0, xs0 + cx0), stride, margin))
        return out
    return fn

if __name__ == "__main__":
    for spec in sys.argv[1:]:
        c = json.loads(spec)
        run(spec, c.get("pad", 1), make(c["level"], c.get("mincore", 1), c.get("m", 2)))
