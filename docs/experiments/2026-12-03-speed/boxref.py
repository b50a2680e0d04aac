import os, sys, pickle, time
os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np, torch
torch.set_num_threads(1)
import gateway.pixels.model as M
from gateway.pixels import synth
d = M.load_detector(device="cpu")
cache = "/work/scratch/boxinputs.pkl"
if not os.path.exists(cache):
    sets = [(777, 120, 512, 512, synth.VALIDATION), (20261231, 60, 512, 512, synth.HELD_OUT),
            (778, 30, 768, 1024, synth.VALIDATION), (5, 40, 384, 640, synth.TRAIN)]
    items = []
    for seed, n, r, c, fam in sets:
        for s in synth.samples(seed, n, r, c, fam):
            g = M.frame_to_grey(s.image)
            items.append((g, d.probability([g])[0]))
    pickle.dump(items, open(cache, "wb"))
items = pickle.load(open(cache, "rb"))
out = []
for rep in range(3):
    t = time.perf_counter()
    res = [d.boxes(p, g) for g, p in items]
    print("boxes ms/frame %.2f" % ((time.perf_counter() - t) / len(items) * 1e3))
res = [[(b.x0, b.y0, b.x1, b.y1, b.score) for b in bs] for bs in res]
if sys.argv[1] == "save":
    pickle.dump(res, open("/work/scratch/boxref_out.pkl", "wb"))
else:
    ref = pickle.load(open("/work/scratch/boxref_out.pkl", "rb"))
    bad = sum(a != b for a, b in zip(res, ref))
    print("frames differing:", bad, "of", len(ref), "boxes", sum(map(len, res)), sum(map(len, ref)))
