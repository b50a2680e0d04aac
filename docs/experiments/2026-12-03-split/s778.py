"""Score settings on a second validation draw (seed 778, 300 frames) with the code in cwd."""
import json, sys
import torch
from gateway.pixels import evaluate as E, model as M
torch.set_num_threads(1)
n, seed = int(sys.argv[1]), int(sys.argv[2])
samples = E.validation(n, seed=seed)
det = M.load_detector(None, "cpu")
grey = [M.frame_to_grey(E.frame_of(s)) for s in samples]
probs = [det.probability([g])[0] for g in grey]
for spec in sys.argv[3:]:
    c = json.loads(spec)
    det.threshold = c["thr"]; det.unsure_margin = c["m"]
    if "level" in c: det.split_level = c["level"]
    found = [det.boxes(p, g) for p, g in zip(probs, grey)]
    it = iter(found)
    s = E.evaluate(lambda fr: [next(it) for _ in fr], samples, c["pad"], 0.0).summary()
    print(json.dumps({"spec": c, "seed": seed, "planted": s["planted"], "recall": s["recall"], "ink": s["recall_ink"], "outside": s["outside_fraction"]}), flush=True)
