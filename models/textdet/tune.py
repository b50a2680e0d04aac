"""Choose the post-processing and padding on the validation split; store it in the weights.

    .venv/bin/python models/textdet/tune.py models/textdet/textdet-v2.pt

The validation frames use the training fonts and layouts, two dense layout families of their
own and a seed training never draws; the held-out split is not looked at, so its figures stay
an honest estimate. The rule: among
(threshold, hysteresis, unsure margin, pad_px, pad_fraction) whose blanked area outside text
stays under ``--max-outside`` (default 2% of the pixels, the target), take the one with the
highest recall (ties: more growth, margin plus padding, then the lower threshold). The
threshold, hysteresis and margin are stored in the weights; the padding chosen is printed and
is the default of ``pixels.model`` in ``gateway/pixels/settings.py``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from gateway.pixels import evaluate as E
from gateway.pixels.model import frame_to_grey, load_detector
from gateway.pixels.settings import PixelModelSettings


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("weights", type=Path)
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--max-outside", type=float, default=0.02)
    p.add_argument("--thresholds", default="0.07,0.08,0.1,0.12,0.15,0.2,0.25,0.3,0.4,0.5")
    p.add_argument("--dry-run", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    samples = E.validation(args.frames)
    rows = []
    pads = [(0, 0.0), (1, 0.0), (1, 0.05), (2, 0.0), (2, 0.05), (2, 0.1), (3, 0.0)]
    det = load_detector(args.weights, "cpu")
    grey = [frame_to_grey(E.frame_of(x)) for x in samples]
    probs = [det.probability([g])[0] for g in grey]  # the map does not depend on the rest
    for t in (float(v) for v in args.thresholds.split(",")):
        for hy in (0.5, 1.0):
            for um in (1, 2):
                det.threshold, det.hysteresis, det.unsure_margin = t, hy, um
                found = [det.boxes(pr, g) for pr, g in zip(probs, grey, strict=True)]
                for pad_px, frac in pads:
                    it = iter(found)
                    s = E.evaluate(lambda fr, it=it: [next(it) for _ in fr], samples, pad_px,
                                   frac).summary()
                    rows.append(((t, hy, um, pad_px, frac), s))
                    print(json.dumps({"threshold": t, "hysteresis": hy, "unsure_margin": um,
                                      "pad_px": pad_px, "pad_fraction": frac, **s}), flush=True)
    ok = [(k, s) for k, s in rows if s["outside_fraction"] <= args.max_outside] or rows
    # highest recall; ties: more growth (margin, then padding), then the lower threshold
    best_t, best_hy, best_um, best_px, best_frac = max(
        (s["recall"], k[2] + k[3] + k[4] * 10, -k[0], k) for k, s in ok)[3]
    print(json.dumps({"chosen_threshold": best_t, "hysteresis": best_hy,
                      "unsure_margin": best_um, "pad_px": best_px, "pad_fraction": best_frac,
                      "current_default_pad": [PixelModelSettings().pad_px,
                                              PixelModelSettings().pad_fraction]}))
    if not args.dry_run:
        blob = torch.load(args.weights, map_location="cpu", weights_only=True)
        blob["threshold"] = best_t
        blob["hysteresis"] = best_hy
        blob["unsure_margin"] = best_um
        blob["tuned_on"] = (f"validation split (synth.VALIDATION), seed {E.VALIDATION_SEED}, "
                            f"{args.frames} frames")
        torch.save(blob, args.weights)


if __name__ == "__main__":
    main()
