import os, sys, pickle, time
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, "/work/scratch")
import numpy as np
import gateway.pixels.model as M
import oldmodel as O
items = pickle.load(open("/work/scratch/boxinputs.pkl", "rb"))
args = dict(threshold=0.10, hysteresis=0.5, stride=2, unsure_margin=1, split_level=0.2)
T = {"old": [], "new": []}
for rep in range(5):
    for name, mod in (("old", O), ("new", M)) if rep % 2 else (("new", M), ("old", O)):
        t = time.perf_counter()
        for g, p in items: mod.boxes_from_probability(p, g.shape[0], g.shape[1], grey=g, **args)
        T[name].append((time.perf_counter() - t) / len(items) * 1e3)
for k, v in T.items(): print(k, " ".join("%.2f" % x for x in v), "median %.2f" % np.median(v))
