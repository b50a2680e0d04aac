import os, time, sys
os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np, torch, torch.nn.functional as F
torch.set_num_threads(1)
import gateway.pixels.model as M
from gateway.pixels import synth
R, C = int(os.environ.get("R", 768)), int(os.environ.get("C", 1024))
S = list(synth.samples(777, 8, R, C, synth.VALIDATION))
net = M.load_detector(device="cpu").net
xs = [M._pad_batch([M.frame_to_grey(s.image)])[0].contiguous(memory_format=torch.channels_last) for s in S]
P = torch.ops.mkldnn._convolution_pointwise
def cw(conv):
    if isinstance(conv, M.PointwiseConv):
        return conv.weight, conv.bias, [0, 0], [1, 1], [1, 1], 1
    return conv.weight, conv.bias, list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups
def conv_relu(conv, x):
    w, b, p, s, d, g = cw(conv)
    return P(x, w, b, p, s, d, g, "relu", [], "")
def conv_sum_relu(conv, x, other):
    w, b, p, s, d, g = cw(conv)
    return P.binary(x, other, w, b, p, s, d, g, "add", 1.0, "relu", [], "")
def sep(m, x):
    y = conv_relu(m.dw, x)
    if m.residual:
        return conv_sum_relu(m.pw, y, x)
    return conv_relu(m.pw, y)
def cbr(m, x):
    return conv_relu(m[0], x)
def fwd(net, x):
    f2 = cbr(net.stem, x)
    f4 = sep(net.block4, cbr(net.down4, f2))
    f8 = sep(net.block8[1], sep(net.block8[0], sep(net.down8, f4)))
    f16 = sep(net.block16[1], sep(net.block16[0], sep(net.down16, f8)))
    u8 = sep(net.fuse8, f8 + F.interpolate(net.lat16(f16), scale_factor=2.0, mode="nearest"))
    u4 = sep(net.fuse4, f4 + F.interpolate(net.lat8(u8), scale_factor=2.0, mode="nearest"))
    u2 = sep(net.fuse2, f2 + F.interpolate(net.lat4(u4), scale_factor=2.0, mode="nearest"))
    return net.head2(u2)
with torch.inference_mode():
    d = max(float((fwd(net, x) - net(x)).abs().max()) for x in xs)
    print("maxdiff logits", d)
    T = {"eager": [], "fused": []}
    for rep in range(8):
        for k, f in (("eager", net), ("fused", lambda x: fwd(net, x))) if rep % 2 else (("fused", lambda x: fwd(net, x)), ("eager", net)):
            s = time.perf_counter()
            for x in xs: f(x)
            T[k].append((time.perf_counter() - s) / len(xs) * 1e3)
for k, v in T.items(): print(R, C, k, " ".join("%.1f" % a for a in v), "median %.2f" % np.median(v))
