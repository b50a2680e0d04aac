import os, sys; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
idx = [int(a) for a in sys.argv[1:]]; sys.argv = sys.argv[:1]
from exp import *
from PIL import Image
import breakdown_tag as BT
from gateway.pixels.boxes import prepare
col = {"flat": [255, 255, 0], "busy": [255, 0, 0], "coarse-noink": [255, 0, 255], "coarse-uncovered": [0, 255, 255]}
for i in idx:
    s, g = samples[i], greys[i]
    bx = prepare(det.boxes(probs[i], g), *g.shape, 1, 0.0)
    rgb = np.stack([g] * 3, -1) * 255
    for b in bx:
        reg = (slice(b.y0, b.y1), slice(b.x0, b.x1))
        o = ~s.mask[reg]
        rgb[reg][o] = rgb[reg][o] * 0.4 + np.array(col[b.source]) * 0.6
    for b in s.boxes:
        rgb[b.y0:b.y1, [b.x0, max(b.x0, b.x1 - 1)]] = [0, 0, 255]
        rgb[[b.y0, max(b.y0, b.y1 - 1)], b.x0:b.x1] = [0, 0, 255]
    Image.fromarray(rgb.astype(np.uint8)).resize((1024, 1024), Image.NEAREST).save(os.environ.get("CACHE", "/tmp") + f"/c{i}.png")
