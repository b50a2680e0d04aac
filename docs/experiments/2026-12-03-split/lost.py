import json, sys
from h import *
import e14, e15
from gateway.pixels.boxes import prepare, boxes_mask
a_spec, b_spec = json.loads(sys.argv[1]), json.loads(sys.argv[2])
def boxes_for(spec, p, g):
    e15.C.clear(); e15.C.update(spec)
    return e14.make(spec.get("level", 0.3), 1, spec.get("m", 2))(p, g)
e15.C.clear(); e15.C.update(a_spec); qa = run("a", 1, e14.make(a_spec.get("level", .3), 1, a_spec.get("m", 2)))
e15.C.clear(); e15.C.update(b_spec); qb = run("b", 1, e14.make(b_spec.get("level", .3), 1, b_spec.get("m", 2)))
for fi, text, size in sorted(set(qb.missed) - set(qa.missed)):
    s = samples[fi]; tb = [b for b in s.boxes if b.text == text][0]
    bs = boxes_for(b_spec, probs[fi], greys[fi])
    bl = boxes_mask(prepare(bs, 512, 512, 1, 0.0), 512, 512)[tb.y0:tb.y1, tb.x0:tb.x1]
    rows = np.nonzero(~bl.all(axis=1))[0]; cols = np.nonzero(~bl.all(axis=0))[0]
    near = [(b.x0, b.y0, b.x1, b.y1, b.source) for b in bs if b.x1 > tb.x0 and b.x0 < tb.x1 and b.y1 > tb.y0 and b.y0 < tb.y1]
    print(fi, repr(text), size, "truth", (tb.x0, tb.y0, tb.x1, tb.y1), "cov %.3f" % bl.mean(), "uncov rows", rows.tolist()[:20], "ncols", len(cols), near[:6])
