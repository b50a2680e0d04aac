"""Flat fit with an ink threshold relative to the string's contrast."""
import os, sys; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
argv = sys.argv[1:]; sys.argv = sys.argv[:1]
from exp import *
import e2, e3
C = {}
def split_lines(grey, box):
    x0, y0, x1, y1 = box.x0, box.y0, box.x1, box.y1
    rows, cols = grey.shape
    ring = grey[max(0, y0 - 2):min(rows, y1 + 2), max(0, x0 - 2):min(cols, x1 + 2)].copy()
    oy, ox = y0 - max(0, y0 - 2), x0 - max(0, x0 - 2)
    inner = ring[oy:oy + (y1 - y0), ox:ox + (x1 - x0)]
    outside = np.ones(ring.shape, bool); outside[oy:oy + (y1 - y0), ox:ox + (x1 - x0)] = False
    ref = ring[outside]
    if ref.size < 8:
        return [box]
    bg = float(np.median(ref))
    noise = float(np.percentile(np.abs(ref - bg), 99))
    if noise > 0.06:
        return None
    d = np.abs(inner - bg)
    thr = max(M.FLAT_INK, 1.5 * noise)
    rel = C.get("rel", 0)
    if rel:
        thr = max(thr, rel * float(np.percentile(d, C.get("peak", 99.5))))
    ink = d > thr
    out = []
    for r0, r1 in M._runs(np.asarray(ink.any(axis=1)), 2):
        band = ink[r0:r1]
        for c0, c1 in M._runs(np.asarray(band.any(axis=0)), max(3, 2 * (r1 - r0))):
            rr = np.nonzero(band[:, c0:c1].any(axis=1))[0]
            out.append(Box(x0 + c0, y0 + r0 + int(rr[0]), x0 + c1, y0 + r0 + int(rr[-1]) + 1, box.score, box.source))
    return out or [box]
M._split_lines = split_lines
base = None
for spec in argv:
    C.clear(); C.update(json.loads(spec)); e3.CF = e2.CFG = C
    q = run(spec, pad=C.get("pad", 1))
    ms = set(q.missed)
    if base is None: base = ms
    else: print("  newly missed:", sorted(ms - base), " recovered:", sorted(base - ms))
