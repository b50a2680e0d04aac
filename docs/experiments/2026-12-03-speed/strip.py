import os, time, sys
os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch, torch.nn.functional as F
torch.set_num_threads(1)
from gateway.pixels.model import load_detector, frame_to_grey, _pad_batch
from gateway.pixels import synth
det = load_detector(device="cpu"); net = det.net
S = list(synth.samples(777, 6, 768, 1024, synth.VALIDATION))
xs = [_pad_batch([frame_to_grey(s.image)])[0].contiguous(memory_format=torch.channels_last) for s in S]
def enc(x):
    f2 = net.stem(x)
    f4 = net.block4(net.down4(f2))
    f8 = net.block8(net.down8(f4))
    f16 = net.block16(net.down16(f8))
    u8 = net.fuse8(f8 + F.interpolate(net.lat16(f16), scale_factor=2.0, mode="nearest"))
    u4 = net.fuse4(f4 + F.interpolate(net.lat8(u8), scale_factor=2.0, mode="nearest"))
    return f2, u4
def tail(f2, u4):
    return net.head2(net.fuse2(f2 + F.interpolate(net.lat4(u4), scale_factor=2.0, mode="nearest")))
def tail_strips(f2, u4, q=16):
    # q: quarter-res rows per strip (2q half-res rows)
    H4 = u4.shape[2]; out = torch.empty((f2.shape[0], 1, f2.shape[2], f2.shape[3]))
    l = net.lat4(u4)
    for a in range(0, H4, q):
        b = min(H4, a + q)
        qa, qb = max(0, a - 1), min(H4, b + 1)   # one quarter row of halo = 2 half rows
        up = F.interpolate(l[:, :, qa:qb], scale_factor=2.0, mode="nearest")
        s = f2[:, :, 2*qa:2*qb] + up
        y = net.head2(net.fuse2(s))
        out[:, :, 2*a:2*b] = y[:, :, 2*(a-qa):2*(a-qa)+2*(b-a)]
    return out
with torch.inference_mode():
    E = [enc(x) for x in xs]
    ref = [tail(*e) for e in E]
    for q in (8, 16, 32):
        d = max(float((tail_strips(*e, q) - r).abs().max()) for e, r in zip(E, ref))
        print("q", q, "maxdiff logits", d)
    for rep in range(3):
        for name, fn in (("whole", tail), ("strip8", lambda a, b: tail_strips(a, b, 8)), ("strip16", lambda a, b: tail_strips(a, b, 16)), ("strip32", lambda a, b: tail_strips(a, b, 32))):
            s = time.perf_counter()
            for _ in range(3):
                for e in E: fn(*e)
            print(name, "%.2f ms" % ((time.perf_counter() - s) / (3*len(E)) * 1e3))
