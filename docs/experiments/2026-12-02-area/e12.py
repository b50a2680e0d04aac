"""Non-flat components: pieces from the fine head's full-res map >= tau."""
import os, sys; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
argv = sys.argv[1:]; sys.argv = sys.argv[:1]
from exp import *
import e2, e3, e9
import fine as FN
torch.set_num_threads(2)
head = FN.Fine(); head.load_state_dict(torch.load(os.environ.get("FINE", os.environ.get("CACHE", "/tmp") + "/fine.pt"))); head.eval()
fcache = os.environ.get("CACHE", "/tmp") + f"/fine-{SPLIT}-{N}.pkl"
if os.path.exists(fcache) and not os.environ.get("REFRESH"):
    fines = pickle.load(open(fcache, "rb"))
else:
    fines = []
    with torch.no_grad():
        for g in greys:
            x = torch.from_numpy(g)[None, None]
            u, l = FN.feats(x)
            fines.append(torch.sigmoid(head(x, u, l))[0, 0].numpy())
    pickle.dump(fines, open(fcache, "wb"))
C = {}
cur = {}
def boxes_from_probability(prob, rows, columns, threshold, grey=None, hysteresis=0.5, stride=2, unsure_margin=2):
    p = prob[: -(-rows // stride), : -(-columns // stride)]
    labels, n = ndimage.label(p >= threshold * hysteresis, structure=np.ones((3, 3), bool))
    if n == 0:
        return []
    up = cur["fine"]
    out = []
    peaks = ndimage.maximum(p, labels, np.arange(1, n + 1))
    m = C.get("m", 0)
    cl = lambda q, k: Box(max(0, q.x0 - k), max(0, q.y0 - k), min(columns, q.x1 + k), min(rows, q.y1 + k), q.score)
    for i, sl in enumerate(ndimage.find_objects(labels)):
        if sl is None or peaks[i] < threshold:
            continue
        ys, xs = sl
        b = Box(xs.start * stride, ys.start * stride, min(columns, xs.stop * stride), min(rows, ys.stop * stride), float(peaks[i]))
        comp = labels[sl] == i + 1
        bb = [b.x0, b.y0, b.x1, b.y1]
        for side in ("top", "bottom", "left", "right"):
            M._shrink_side(grey, bb, side)
        fitted = Box(*bb, b.score)
        pieces = M._split_lines(grey, fitted)
        if pieces is not None and not C.get("fine_all"):
            out.extend(pieces); continue
        compup = np.repeat(np.repeat(ndimage.binary_dilation(comp, iterations=C.get("dil", 1)), stride, 0), stride, 1)
        region = up[b.y0:b.y1, b.x0:b.x1] >= C.get("tau", 0.5)
        region &= compup[:region.shape[0], :region.shape[1]]
        ps = e9.pieces_from(region, b.x0, b.y0, b.score)
        if not ps:
            ps = [fitted]
        out.extend(cl(q, C.get('ms', m) if min(q.height, q.width) <= C.get('sh', 0) else m) for q in ps)
    return out
M.boxes_from_probability = boxes_from_probability
def run2(label, pad):
    found = []
    for p, g, f in zip(probs, greys, fines):
        cur["fine"] = f
        found.append(det.boxes(p, g))
    it = iter(found)
    q = E.evaluate(lambda fr: [next(it) for _ in fr], samples, pad, 0.0)
    s = q.summary()
    print(json.dumps({"v": label, "pad": pad, "recall": s["recall"], "ink": s["recall_ink"], "outside": s["outside_fraction"], "prec": s["box_precision"]}), flush=True)
    return q
for spec in argv:
    C.clear(); C.update(json.loads(spec))
    q = run2(spec, C.get("pad", 1))
