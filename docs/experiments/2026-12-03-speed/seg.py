import os, time, resource
os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch, torch.nn.functional as F
torch.set_num_threads(1)
from gateway.pixels.model import load_detector
from gateway.pixels import synth
from gateway.pixels.model import frame_to_grey, _pad_batch
det = load_detector(device="cpu"); net = det.net
S = list(synth.samples(777, 6, int(os.environ.get("R", 768)), int(os.environ.get("C", 1024)), synth.VALIDATION))
xs = [_pad_batch([frame_to_grey(s.image)])[0].contiguous(memory_format=torch.channels_last) for s in S]
acc = {}
def fwd(x):
    T = [time.perf_counter()]
    def m(k):
        T.append(time.perf_counter()); acc[k] = acc.get(k, 0) + T[-1] - T[-2]
    f2 = net.stem(x); m("stem")
    f4 = net.block4(net.down4(f2)); m("down4+block4")
    f8 = net.block8(net.down8(f4)); m("8")
    f16 = net.block16(net.down16(f8)); m("16")
    u8 = net.fuse8(f8 + F.interpolate(net.lat16(f16), scale_factor=2.0, mode="nearest")); m("u8")
    u4 = net.fuse4(f4 + F.interpolate(net.lat8(u8), scale_factor=2.0, mode="nearest")); m("u4")
    l = net.lat4(u4); m("lat4")
    up = F.interpolate(l, scale_factor=2.0, mode="nearest"); m("interp")
    s = f2 + up; m("add")
    u2 = net.fuse2(s); m("fuse2")
    o = net.head2(u2); m("head2")
    return o
with torch.inference_mode():
    for x in xs: fwd(x)
    acc.clear()
    r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(4):
        for x in xs: fwd(x)
    r1 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
n = 4 * len(xs)
for k, v in acc.items(): print(f"{k:14s} {v/n*1e3:6.2f} ms")
print("total", sum(acc.values())/n*1e3, "faults/frame", (r1-r0)/n)
