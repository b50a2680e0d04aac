"""Outside area by fit kind under e14 splitting."""
import json, sys
from h import *
import e14
from gateway.pixels.boxes import prepare, boxes_mask
kind = {}
orig = M.refine_box
def tagged(grey, box, confident=None, cell_origin=(0, 0), stride=2, unsure_margin=2):
    b = [box.x0, box.y0, min(box.x1, grey.shape[1]), min(box.y1, grey.shape[0])]
    for side in ("top", "bottom", "left", "right"):
        M._shrink_side(grey, b, side)
    fitted = Box(*b, box.score, box.source)
    if M._split_lines(grey, fitted) is not None:
        k = "flat"
    else:
        busy = M._split_busy(grey, fitted)
        if busy is None:
            k = "noink"
        elif confident is not None and not M._covers(busy, confident, *cell_origin, stride):
            k = "uncovered"
        else:
            k = "busy"
    res = orig(grey, box, confident, cell_origin, stride, unsure_margin)
    return [Box(r.x0, r.y0, r.x1, r.y1, r.score, k) for r in res]
M.refine_box = tagged
c = json.loads(sys.argv[1]) if len(sys.argv) > 1 else None
fn = e14.make(c["level"], c.get("mincore", 1), c.get("m", 2)) if c else (lambda p, g: M.boxes_from_probability(p, 512, 512, det.threshold, g, det.hysteresis, 2, 2))
tot = {}; npx = 0; cnt = {}
for s, p, g in zip(samples, probs, greys):
    bs = fn(p, g)
    truth = s.mask; taken = truth.copy(); npx += truth.size
    for k in ("flat", "busy", "uncovered", "noink"):
        sel = [b for b in bs if b.source == k]
        cnt[k] = cnt.get(k, 0) + len(sel)
        m = boxes_mask(prepare(sel, 512, 512, 1, 0.0), 512, 512) & ~taken
        tot[k] = tot.get(k, 0) + int(m.sum()); taken |= m
print({k: round(100 * v / npx, 3) for k, v in tot.items()}, "total", round(100 * sum(tot.values()) / npx, 3), cnt)
