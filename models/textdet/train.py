"""Train the burned-in text detector on synthetic frames (reproducible from a seed).

    .venv/bin/python models/textdet/train.py --seed 1 --steps 15000 --stride 4 --out v1.pt
    .venv/bin/python models/textdet/train.py --init v1.pt --seed 6 --steps 7000 ... \
        --out models/textdet/textdet-v2.pt     # every phase's command: MODEL_CARD.md

Frames come from :mod:`gateway.pixels.synth` (training split: its fonts and layouts only),
made on the fly by one data-loader process while the main process trains with a fixed number
of torch threads, so two cores are enough; on a GPU the same script runs faster (``--device``).
Each frame goes through the same input path as in service: it is quantised to the stored pixel
type of a DICOM frame (8-bit, 12-bit in 16, signed, RGB) and windowed by
:func:`gateway.pixels.model.frame_to_grey`. The target is the fraction of each map cell (2x2
pixels; 4x4 with ``--stride 4``) that lies inside a text box; the loss is binary cross-entropy
plus soft Dice. The shipped weights came from four phases (MODEL_CARD.md has each command).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from gateway.pixels import synth
from gateway.pixels.model import (
    MODEL_NAME,
    MODEL_VERSION,
    STRIDE,
    TextDetNet,
    frame_to_grey,
    keep_activation_memory,
)


def stored_frame(rng: np.random.Generator, s: synth.Sample) -> np.ndarray:
    """The sample as a DICOM frame would hold it: RGB uint8 or grey of some bit depth."""
    if s.rgb is not None:
        return s.rgb
    kind = int(rng.integers(0, 4))
    if kind == 0:
        return (s.image * 255 + 0.5).astype(np.uint8)
    if kind == 1:  # 12 bits stored in 16, a window of the range used
        top = float(rng.uniform(1000, 4095))
        return (s.image * top + rng.uniform(0, 4095 - top)).astype(np.uint16)
    if kind == 2:  # signed, CT-like
        return (s.image * rng.uniform(1500, 3000) - 1024).astype(np.int16)
    return (s.image * 65535).astype(np.uint16)


def cell_target(mask: np.ndarray, stride: int = STRIDE) -> np.ndarray:
    """Fraction of each stride x stride cell inside text."""
    h, w = mask.shape
    m = mask[: h - h % stride, : w - w % stride].astype(np.float32)
    return m.reshape(h // stride, stride, w // stride, stride).mean(axis=(1, 3))


def cell_weight(boxes: list[synth.TextBox], h: int, w: int, stride: int = STRIDE) -> np.ndarray:
    """Per-cell loss weight: 1 on background, more on small text items (up to 8x), so that a
    lone letter counts about as much as a long line (``--box-weighting``). The scale is the
    area in 4x4 cells whatever the stride, so the weighting means the same at stride 2."""
    wt = np.ones((h // stride, w // stride), np.float32)
    for b in boxes:
        y0, y1 = b.y0 // stride, -(-b.y1 // stride)
        x0, x1 = b.x0 // stride, -(-b.x1 // stride)
        cells = max(1, (y1 - y0) * (x1 - x0)) * (stride * stride) / 16.0
        v = float(np.clip(np.sqrt(64.0 / cells), 1.0, 8.0))
        wt[y0:y1, x0:x1] = np.maximum(wt[y0:y1, x0:x1], v)
    return wt


class SynthStream(IterableDataset):  # type: ignore[type-arg]
    """An endless stream of (grey frame, cell target) pairs from one seed per worker."""

    def __init__(self, seed: int, size: int, box_weighting: bool = False,
                 stride: int = STRIDE) -> None:
        self.seed, self.size, self.box_weighting = seed, size, box_weighting
        self.stride = stride

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        info = get_worker_info()
        wid = info.id if info is not None else 0
        rng = np.random.default_rng([self.seed, wid])
        fonts = synth.available_fonts(synth.TRAIN.fonts)
        while True:
            s = synth.make_sample(rng, self.size, self.size, synth.TRAIN, fonts)
            grey = frame_to_grey(stored_frame(rng, s))
            target = cell_target(s.mask, self.stride)
            weight = cell_weight(s.boxes, self.size, self.size, self.stride) \
                if self.box_weighting \
                else np.ones_like(target)
            yield (torch.from_numpy(grey[None]), torch.from_numpy(target[None]),
                   torch.from_numpy(weight[None]))


def loss_fn(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    bce = F.binary_cross_entropy_with_logits(logits, target, weight=weight,
                                             pos_weight=torch.tensor(2.0, device=logits.device))
    p = torch.sigmoid(logits)
    inter = (p * target).sum(dim=(1, 2, 3))
    denom = (p + target).sum(dim=(1, 2, 3))
    dice = 1 - (2 * inter + 1) / (denom + 1)
    return bce + 0.5 * dice.mean()


def train(args: argparse.Namespace) -> dict[str, object]:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    # the same losses, ~23% less time on a CPU (200 steps: 78-83 s -> 60-64 s)
    keep_activation_memory()
    device = torch.device(args.device)
    net = TextDetNet(stride=args.stride)
    if args.init:
        # a stride-2 net starts from stride-4 weights: the shared layers load, the new
        # top-down fusion and head start fresh (the old head is dropped)
        state = torch.load(args.init, map_location="cpu", weights_only=True)["state_dict"]
        own = net.state_dict()
        shared = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        missing = net.load_state_dict(shared, strict=False).missing_keys
        print(json.dumps({"init": str(args.init), "loaded": len(shared),
                          "fresh": missing}), flush=True)
    net = net.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(1, args.warmup))
        * 0.5 * (1 + math.cos(math.pi * s / args.steps)))
    loader = DataLoader(SynthStream(args.seed, args.size, args.box_weighting, args.stride),
                        batch_size=args.batch,
                        num_workers=args.workers, persistent_workers=args.workers > 0,
                        prefetch_factor=4 if args.workers else None)
    t0, running = time.time(), 0.0
    net.train()
    for step, (x, y, wt) in enumerate(loader):
        if step >= args.steps:
            break
        x, y, wt = x.to(device), y.to(device), wt.to(device)
        loss = loss_fn(net(x), y, wt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running = 0.98 * running + 0.02 * loss.item() if step else loss.item()
        if step % args.log_every == 0 or step == args.steps - 1:
            print(json.dumps({"step": step, "loss": round(running, 4),
                              "lr": round(sched.get_last_lr()[0], 6),
                              "elapsed_s": round(time.time() - t0, 1)}), flush=True)
        if args.checkpoint_every and step and step % args.checkpoint_every == 0:
            save(net, args, step, time.time() - t0)
    return save(net, args, args.steps, time.time() - t0)


def save(net: TextDetNet, args: argparse.Namespace, steps: int,
         seconds: float) -> dict[str, object]:
    meta: dict[str, object] = {
        "version": f"{MODEL_NAME}@{MODEL_VERSION}", "seed": args.seed, "steps": steps,
        "batch": args.batch, "size": args.size, "lr": args.lr, "threshold": args.threshold,
        "train_seconds": round(seconds, 1), "threads": args.threads,
        "init": str(args.init) if args.init else None, "box_weighting": args.box_weighting,
        "stride": args.stride,
        "fonts": list(synth.available_fonts(synth.TRAIN.fonts)),
        "layouts": list(synth.TRAIN.layouts),
    }
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    blob = {"state_dict": state, "widths": {"stride": args.stride}, **meta}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(blob, args.out)
    return meta


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--steps", type=int, default=12000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threshold", type=float, default=0.35)
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--checkpoint-every", type=int, default=1000)
    p.add_argument("--out", type=Path, default=Path("models/textdet/textdet-v2.pt"))
    p.add_argument("--init", type=Path, default=None, help="start from these weights")
    p.add_argument("--box-weighting", action="store_true",
                   help="weight small text items up in the loss (fine-tuning phase)")
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--stride", type=int, default=2, choices=(2, 4),
                   help="output stride of the map (2: v2, the shipped one; 4: v1)")
    meta = train(p.parse_args())
    print(json.dumps({"saved": True, **{k: v for k, v in meta.items() if k != "fonts"}}))


if __name__ == "__main__":
    main()
