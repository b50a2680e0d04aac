"""Harness: cached validation maps, run(label, pad, boxes_fn) -> Quality."""
import json, os, pickle, sys
import numpy as np, torch
from scipy import ndimage
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
from gateway.pixels import evaluate as E, model as M
from gateway.pixels.boxes import Box
torch.set_num_threads(2)
N = int(os.environ.get("N", 150)); SPLIT = os.environ.get("SPLIT", "val")
cache = os.environ.get("CACHE", "/tmp") + f"/maps-{SPLIT}-{N}.pkl"
samples = E.validation(N) if SPLIT == "val" else E.held_out(N)
det = M.load_detector(None, "cpu")
greys = [M.frame_to_grey(E.frame_of(s)) for s in samples]
if os.path.exists(cache):
    probs = pickle.load(open(cache, "rb"))
else:
    probs = [det.probability([g])[0] for g in greys]
    pickle.dump(probs, open(cache, "wb"))

def run(label, pad=1, boxes_fn=None, margin=None):
    m = det.unsure_margin if margin is None else margin
    fn = boxes_fn or (lambda p, g: M.boxes_from_probability(p, g.shape[0], g.shape[1], det.threshold, g, det.hysteresis, det.stride, m))
    found = [fn(p, g) for p, g in zip(probs, greys)]
    it = iter(found)
    q = E.evaluate(lambda fr: [next(it) for _ in fr], samples, pad, 0.0)
    s = q.summary()
    print(json.dumps({"v": label, "pad": pad, "recall": round(s["recall"], 4), "ink": round(s["recall_ink"], 4), "outside": round(100 * s["outside_fraction"], 3), "prec": round(s["box_precision"], 4)}), flush=True)
    return q
if __name__ == "__main__":
    print(det.threshold, det.hysteresis, det.unsure_margin, det.stride)
    for m in (2, 1, 0):
        run(f"shipped m{m}", 1, margin=m)
