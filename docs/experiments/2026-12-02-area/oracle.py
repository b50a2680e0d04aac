import os, sys; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.argv = sys.argv[:1]
from exp import *
from gateway.pixels.boxes import prepare, boxes_mask
for pad in (0, 1, 2, 3, 4):
    o = t = 0
    for s in samples:
        h, w = s.mask.shape
        bl = boxes_mask(prepare([Box(b.x0, b.y0, b.x1, b.y1) for b in s.boxes if b.area], h, w, pad), h, w)
        o += (bl & ~s.mask).sum(); t += h * w
    print(pad, round(o / t * 100, 3))
print("text area %", round(sum(s.mask.mean() for s in samples) / len(samples) * 100, 2))
