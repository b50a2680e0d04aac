import os, sys, time
os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np, torch
torch.set_num_threads(1)
import gateway.pixels.model as M
from gateway.pixels import synth
rows, cols = int(sys.argv[1]), int(sys.argv[2])
frames = [s.image for s in synth.samples(20261231, 32, rows, cols, synth.HELD_OUT)]
on = M.load_detector(device="cpu")
orig = M.pointwise_through_onednn
M.pointwise_through_onednn = lambda net: net
off = M.load_detector(device="cpu")
grey = [M.frame_to_grey(f) for f in frames]
T = {"on": [], "off": []}
Tn = {"on": [], "off": []}
for rep in range(4):
    for g, f in zip(grey, frames):
        for k, d in (("on", on), ("off", off)) if rep % 2 else (("off", off), ("on", on)):
            t = time.perf_counter(); p = d.probability([g]); t1 = time.perf_counter(); d.boxes(p[0], g); t2 = time.perf_counter()
            if rep: T[k].append(t2 - t); Tn[k].append(t1 - t)
for k in T:
    print(rows, cols, k, "net median %.2f ms, net+boxes median %.2f ms, mean %.2f" % (np.median(Tn[k])*1e3, np.median(T[k])*1e3, np.mean(T[k])*1e3))
r = np.array(Tn["off"]) / np.array(Tn["on"])
print("per-frame ratio off/on net: median %.3f, IQR %.3f-%.3f" % (np.median(r), *np.percentile(r, (25, 75))))
