"""Variants of the refinement on cached maps; prints recall/outside on validation."""
import sys, json, pickle, os
import numpy as np, torch
from scipy import ndimage
from gateway.pixels import evaluate as E, model as M
from gateway.pixels.boxes import Box

torch.set_num_threads(1)
N = int(os.environ.get("N", 150)); SPLIT = os.environ.get("SPLIT", "val")
cache = os.environ.get("CACHE", "/tmp") + f"/maps-{SPLIT}-{N}.pkl"
samples = E.validation(N) if SPLIT == "val" else E.held_out(N)
det = M.load_detector(None, "cpu")
if os.path.exists(cache):
    probs = pickle.load(open(cache, "rb"))
else:
    probs = [det.probability([M.frame_to_grey(E.frame_of(s))])[0] for s in samples]
    pickle.dump(probs, open(cache, "wb"))
greys = [M.frame_to_grey(E.frame_of(s)) for s in samples]

def run(label, pad=1, **kw):
    found = [det.boxes(p, g) for p, g in zip(probs, greys)]
    it = iter(found)
    q = E.evaluate(lambda fr: [next(it) for _ in fr], samples, pad, 0.0)
    s = q.summary()
    print(json.dumps({"v": label, "pad": pad, "recall": s["recall"], "ink": s["recall_ink"], "outside": s["outside_fraction"], "prec": s["box_precision"]}), flush=True)
    return q
