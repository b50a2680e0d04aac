import json, sys, itertools
from h import *
import e14, e15
res = []
for thr, level, m, union in itertools.product((0.08, 0.1, 0.15), (None, 0.3, 0.5), (0, 1, 2), (0, 1)):
    if level is None and union: continue
    det.threshold = thr
    e15.C.clear(); e15.C.update({"dil": 1} if union else {})
    if not union:
        M.refine_box = e15.orig
    else:
        M.refine_box = e15.refine
    fn = e14.make(level, 1, m) if level else (lambda p, g, m=m: M.boxes_from_probability(p, 512, 512, det.threshold, g, det.hysteresis, 2, m))
    found = [fn(p, g) for p, g in zip(probs, greys)]
    for pad in (0, 1):
        it = iter(found)
        s = E.evaluate(lambda fr: [next(it) for _ in fr], samples, pad, 0.0).summary()
        r = dict(thr=thr, level=level, m=m, union=union, pad=pad, recall=s["recall"], ink=s["recall_ink"], out=round(100 * s["outside_fraction"], 3))
        print(json.dumps(r), flush=True); res.append(r)
json.dump(res, open(os.environ.get("CACHE", "/tmp") + f"/grid-{SPLIT}-{N}.json", "w"))
