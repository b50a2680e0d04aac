"""Choose the post-processing and padding on the validation split; store it in the weights.

    .venv/bin/python models/textdet/tune.py models/textdet/textdet-v2.pt

The validation frames use the training fonts and layouts, two dense layout families of their
own and a seed training never draws; the held-out split is not looked at, so its figures stay
an honest estimate. The grid: threshold, hysteresis, split level, unsure margin, and the
stage's padding (pad_px, pad_fraction). The rule, recall first: among the settings whose
validation recall (by box) is at least ``--min-recall``, take the one that blanks the least
area outside text (ties: the higher recall, then more growth, margin plus padding). The
default, 0.993, is the 0.99 target plus about one and a half standard errors of a recall of
0.99 measured on this split's 1,923 strings (0.0023 each), so that a different draw of
frames, such as the held-out one, is still expected at 0.99 or more. Validation is denser
than held-out (more lines close together), so its area is the harsher one; an area cap on it
(the old rule: highest recall under 2%) chose recall 0.982 there, below the target.
The threshold, hysteresis, split level and margin are stored in the weights; the padding
chosen is printed and is the default of ``pixels.model`` in ``gateway/pixels/settings.py``.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import torch

from gateway.pixels import evaluate as E
from gateway.pixels.model import frame_to_grey, load_detector
from gateway.pixels.settings import PixelModelSettings


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("weights", type=Path)
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--min-recall", type=float, default=0.993)
    p.add_argument("--thresholds", default="0.08,0.1,0.12,0.15,0.2")
    p.add_argument("--hysteresis", default="0.5")
    p.add_argument("--split-levels", default="0,0.2,0.3,0.5")
    p.add_argument("--margins", default="0,1,2")
    p.add_argument("--dry-run", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    samples = E.validation(args.frames)
    rows = []
    pads = [(0, 0.0), (1, 0.0), (1, 0.05), (2, 0.0)]
    det = load_detector(args.weights, "cpu")
    grey = [frame_to_grey(E.frame_of(x)) for x in samples]
    probs = [det.probability([g])[0] for g in grey]  # the map does not depend on the rest
    grid = itertools.product(_floats(args.thresholds), _floats(args.hysteresis),
                             _floats(args.split_levels), (int(v) for v in _floats(args.margins)))
    for t, hy, lv, um in grid:
        det.threshold, det.hysteresis, det.split_level, det.unsure_margin = t, hy, lv, um
        found = [det.boxes(pr, g) for pr, g in zip(probs, grey, strict=True)]
        for pad_px, frac in pads:
            it = iter(found)
            s = E.evaluate(lambda fr, it=it: [next(it) for _ in fr], samples, pad_px,
                           frac).summary()
            rows.append(((t, hy, lv, um, pad_px, frac), s))
            print(json.dumps({"threshold": t, "hysteresis": hy, "split_level": lv,
                              "unsure_margin": um, "pad_px": pad_px, "pad_fraction": frac,
                              **s}), flush=True)
    ok = [(k, s) for k, s in rows if s["recall"] >= args.min_recall]
    if not ok:  # nothing reaches it: recall first
        top = max(s["recall"] for _, s in rows)
        ok = [(k, s) for k, s in rows if s["recall"] == top]
    # least area outside text; ties: higher recall, then more growth (margin, then padding)
    best = min(ok, key=lambda ks: (ks[1]["outside_fraction"], -ks[1]["recall"],
                                   -(ks[0][3] + ks[0][4] + ks[0][5] * 10)))
    (best_t, best_hy, best_lv, best_um, best_px, best_frac), best_s = best
    print(json.dumps({"chosen_threshold": best_t, "hysteresis": best_hy,
                      "split_level": best_lv, "unsure_margin": best_um, "pad_px": best_px,
                      "pad_fraction": best_frac, "recall": best_s["recall"],
                      "outside_fraction": best_s["outside_fraction"],
                      "current_default_pad": [PixelModelSettings().pad_px,
                                              PixelModelSettings().pad_fraction]}))
    if not args.dry_run:
        blob = torch.load(args.weights, map_location="cpu", weights_only=True)
        blob["threshold"] = best_t
        blob["hysteresis"] = best_hy
        blob["split_level"] = best_lv
        blob["unsure_margin"] = best_um
        blob["tuned_on"] = (f"validation split (synth.VALIDATION), seed {E.VALIDATION_SEED}, "
                            f"{args.frames} frames, recall >= {args.min_recall}")
        torch.save(blob, args.weights)


if __name__ == "__main__":
    main()
