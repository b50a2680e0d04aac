import os, time, sys
os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch, torch.nn.functional as F
from torch import nn
torch.set_num_threads(1)
from gateway.pixels.model import load_detector, frame_to_grey, _pad_batch, SepBlock
from gateway.pixels import synth
S = list(synth.samples(777, 8, 768 if len(sys.argv) < 2 else int(sys.argv[1]), 1024 if len(sys.argv) < 3 else int(sys.argv[2]), synth.VALIDATION))
xs = [_pad_batch([frame_to_grey(s.image)])[0].contiguous(memory_format=torch.channels_last) for s in S]
base = load_detector(device="cpu").net
class PW(nn.Module):
    def __init__(self, conv):
        super().__init__(); self.weight = nn.Parameter(conv.weight.detach().contiguous(memory_format=torch.channels_last)); self.bias = conv.bias
    def forward(self, x):
        return torch.mkldnn_convolution(x, self.weight, self.bias, [0, 0], [1, 1], [1, 1], 1)
def swap(net):
    for name, m in list(net.named_modules()):
        for cn, c in list(m.named_children()):
            if isinstance(c, nn.Conv2d) and c.kernel_size == (1, 1) and c.out_channels > 1:
                setattr(m, cn, PW(c))
    return net
alt = swap(load_detector(device="cpu").net)
def up_add(f, l):
    n, c, h, w = f.shape
    fp = f.permute(0, 2, 3, 1).reshape(n, h // 2, 2, w // 2, 2, c)
    lp = l.permute(0, 2, 3, 1).reshape(n, h // 2, 1, w // 2, 1, c)
    return (fp + lp).reshape(n, h, w, c).permute(0, 3, 1, 2)
def fwd2(net, x):
    f2 = net.stem(x)
    f4 = net.block4(net.down4(f2))
    f8 = net.block8(net.down8(f4))
    f16 = net.block16(net.down16(f8))
    u8 = net.fuse8(up_add(f8, net.lat16(f16)))
    u4 = net.fuse4(up_add(f4, net.lat8(u8)))
    u2 = net.fuse2(up_add(f2, net.lat4(u4)))
    return net.head2(u2)
alt2 = swap(load_detector(device="cpu").net)
V = {"base": base, "pw": alt}
with torch.inference_mode():
    r = [base(x) for x in xs]
    for k, f in V.items():
        print(k, "maxdiff", max(float((f(x) - a).abs().max()) for x, a in zip(xs, r)), f(xs[0]).is_contiguous(memory_format=torch.channels_last))
    res = {k: [] for k in V}
    for rep in range(10):
        for k, f in V.items():
            s = time.perf_counter()
            for x in xs: f(x)
            res[k].append((time.perf_counter() - s) / len(xs) * 1e3)
for k, v in res.items(): print(k, " ".join("%.1f" % a for a in v), "min %.1f" % min(v))
