"""Experiment: a full-resolution refinement head on the frozen v2 backbone."""
import sys, time, os, json, pickle
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../models/textdet"))
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F
from scipy import ndimage
from gateway.pixels import synth, model as M, evaluate as E
import train as T

torch.set_num_threads(2)
blob = torch.load(M.DEFAULT_WEIGHTS, map_location="cpu", weights_only=True)
net = M.TextDetNet(**{k: int(v) for k, v in blob["widths"].items()}); net.load_state_dict(blob["state_dict"]); net.eval()
for p in net.parameters(): p.requires_grad_(False)

def feats(x):
    f2 = net.stem(x); f4 = net.block4(net.down4(f2)); f8 = net.block8(net.down8(f4)); f16 = net.block16(net.down16(f8))
    u8 = net.fuse8(f8 + F.interpolate(net.lat16(f16), scale_factor=2.0, mode="nearest"))
    u4 = net.fuse4(f4 + F.interpolate(net.lat8(u8), scale_factor=2.0, mode="nearest"))
    u2 = net.fuse2(f2 + F.interpolate(net.lat4(u4), scale_factor=2.0, mode="nearest"))
    return u2, net.head2(u2)

class Fine(nn.Module):
    def __init__(self, cf=16, cg=8, ch=16):
        super().__init__()
        self.g = nn.Sequential(nn.Conv2d(1, cg, 3, 1, 1, bias=False), nn.BatchNorm2d(cg), nn.ReLU(inplace=True))
        self.dw = nn.Conv2d(cf + cg + 1, cf + cg + 1, 3, 1, 1, groups=cf + cg + 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cf + cg + 1)
        self.pw = nn.Conv2d(cf + cg + 1, ch, 1, bias=False); self.bn2 = nn.BatchNorm2d(ch)
        self.dw2 = nn.Conv2d(ch, ch, 3, 1, 1, groups=ch, bias=False); self.bn3 = nn.BatchNorm2d(ch)
        self.out = nn.Conv2d(ch, 1, 1)
    def forward(self, x, u2, logit):
        up = F.interpolate(u2, scale_factor=2.0, mode="bilinear", align_corners=False)
        ul = F.interpolate(logit, scale_factor=2.0, mode="bilinear", align_corners=False)
        h = torch.cat([up, self.g(x), ul / 8], 1)
        h = F.relu(self.bn1(self.dw(h))); h = F.relu(self.bn2(self.pw(h))); h = F.relu(self.bn3(self.dw2(h)))
        return ul + self.out(h)

def make(seed, n, size):
    rng = np.random.default_rng(seed + 99)
    X, Y, W = [], [], []
    for s in synth.samples(seed, n, size, size, synth.TRAIN):
        g = M.frame_to_grey(T.stored_frame(rng, s))
        X.append(g.astype(np.float32)); Y.append(s.mask.astype(np.float32))
        edge = ndimage.binary_dilation(s.mask, iterations=3) & ~ndimage.binary_erosion(s.mask, iterations=2)
        wt = np.ones(s.mask.shape, np.float32) + 4 * edge
        for b in s.boxes:  # small text counts more
            if b.area: wt[b.y0:b.y1, b.x0:b.x1] *= float(np.clip(np.sqrt(256.0 / max(1, b.area)), 1, 4))
        W.append(wt)
    return torch.from_numpy(np.stack(X))[:, None], torch.from_numpy(np.stack(Y))[:, None], torch.from_numpy(np.stack(W))[:, None]

if __name__ == "__main__":
    steps = int(sys.argv[1]); n = int(sys.argv[2]); out = sys.argv[3]
    t0 = time.time()
    X, Y, Wt = make(4242, n, 256)
    with torch.no_grad():
        U, L = [], []
        for i in range(0, n, 16):
            u, l = feats(X[i:i + 16]); U.append(u); L.append(l)
        U, L = torch.cat(U), torch.cat(L)
    print("data", time.time() - t0, flush=True)
    torch.manual_seed(0)
    fine = Fine(); opt = torch.optim.AdamW(fine.parameters(), 3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps, pct_start=0.1)
    g = torch.Generator().manual_seed(0)
    for step in range(steps):
        idx = torch.randint(0, n, (32,), generator=g).tolist()
        oy = (torch.randint(0, 96, (32,), generator=g) * 2).tolist(); ox = (torch.randint(0, 96, (32,), generator=g) * 2).tolist()
        xs = torch.stack([X[i, :, a:a + 64, b:b + 64] for i, a, b in zip(idx, oy, ox)])
        us = torch.stack([U[i, :, a // 2:a // 2 + 32, b // 2:b // 2 + 32] for i, a, b in zip(idx, oy, ox)])
        ls = torch.stack([L[i, :, a // 2:a // 2 + 32, b // 2:b // 2 + 32] for i, a, b in zip(idx, oy, ox)])
        ys = torch.stack([Y[i, :, a:a + 64, b:b + 64] for i, a, b in zip(idx, oy, ox)])
        ws = torch.stack([Wt[i, :, a:a + 64, b:b + 64] for i, a, b in zip(idx, oy, ox)])
        z = fine(xs, us, ls)
        loss = (F.binary_cross_entropy_with_logits(z, ys, reduction="none") * ws).mean()
        opt.zero_grad(); loss.backward(); opt.step(); sched.step()
        if step % 200 == 0: print(step, round(loss.item(), 4), round(time.time() - t0), flush=True)
    torch.save(fine.state_dict(), out)
    print("done", time.time() - t0)
