"""Where does the outside area come from? validation seed by default."""
import sys, json, collections
import numpy as np, torch
from gateway.pixels import evaluate as E, model as M
from gateway.pixels.boxes import Box, prepare

torch.set_num_threads(1)
n = int(sys.argv[1]) if len(sys.argv) > 1 else 150
split = sys.argv[2] if len(sys.argv) > 2 else "val"
pad = int(sys.argv[3]) if len(sys.argv) > 3 else 1
samples = E.validation(n) if split == "val" else E.held_out(n)
det = M.load_detector(None, "cpu")

def refine_tag(grey, box, confident=None, cell_origin=(0, 0), stride=M.STRIDE, unsure_margin=M.UNSURE_MARGIN):
    b = [box.x0, box.y0, min(box.x1, grey.shape[1]), min(box.y1, grey.shape[0])]
    for side in ("top", "bottom", "left", "right"):
        M._shrink_side(grey, b, side)
    fitted = Box(b[0], b[1], b[2], b[3], box.score, box.source)
    pieces = M._split_lines(grey, fitted)
    if pieces is not None:
        return [Box(p.x0, p.y0, p.x1, p.y1, p.score, "flat") for p in pieces]
    busy = M._split_busy(grey, fitted)
    kind = "busy"
    if busy is None:
        busy, kind = [fitted], "coarse-noink"
    elif confident is not None and not M._covers(busy, confident, *cell_origin, stride):
        busy, kind = [fitted], "coarse-uncovered"
    rows, cols = grey.shape
    m = unsure_margin
    return [Box(max(0, p.x0 - m), max(0, p.y0 - m), min(cols, p.x1 + m), min(rows, p.y1 + m), p.score, kind) for p in busy]
M.refine_box = refine_tag

cats = collections.Counter(); cnt = collections.Counter(); fp = collections.Counter(); tot = 0
bg = collections.Counter()
for s in samples:
    fr = E.frame_of(s); g = M.frame_to_grey(fr)
    boxes = det.detect([fr])[0]
    h, w = g.shape
    paint = np.zeros((h, w), np.int8) - 1
    kinds = ["flat", "busy", "coarse-noink", "coarse-uncovered"]
    for b in sorted(prepare(boxes, h, w, pad, 0.0), key=lambda b: kinds.index(b.source)):
        reg = paint[b.y0:b.y1, b.x0:b.x1]
        reg[reg < 0] = kinds.index(b.source)
        cnt[b.source] += 1
        if not s.mask[b.y0:b.y1, b.x0:b.x1].any():
            fp[b.source] += int(b.area)
    out = (paint >= 0) & ~s.mask
    for i, k in enumerate(kinds):
        cats[k] += int((out & (paint == i)).sum())
    tot += h * w
print({k: round(v / tot * 100, 3) for k, v in cats.items()}, "total %.3f%%" % (sum(cats.values()) / tot * 100))
print("boxes", dict(cnt)); print("pure-FP area %", {k: round(v / tot * 100, 3) for k, v in fp.items()})
