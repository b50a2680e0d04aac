"""Recall/area points on validation seed 778 (300 frames) with the code on PYTHONPATH."""
import json, sys, itertools
import torch
from gateway.pixels import evaluate as E, model as M
torch.set_num_threads(1)
n, seed, levels = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
samples = E.validation(n, seed=seed)
det = M.load_detector(None, "cpu")
grey = [M.frame_to_grey(E.frame_of(s)) for s in samples]
probs = [det.probability([g])[0] for g in grey]
for thr, m, lv in itertools.product((0.08, 0.1, 0.15), (0, 1, 2), levels):
    det.threshold = thr; det.unsure_margin = m
    if lv is not None: det.split_level = lv
    found = [det.boxes(p, g) for p, g in zip(probs, grey)]
    for pad in (0, 1, 2):
        it = iter(found)
        s = E.evaluate(lambda fr: [next(it) for _ in fr], samples, pad, 0.0).summary()
        print(json.dumps({"thr": thr, "m": m, "level": lv, "pad": pad, "recall": s["recall"], "out": round(100 * s["outside_fraction"], 3)}), flush=True)
