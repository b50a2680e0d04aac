import os, time, sys
os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch
torch.set_num_threads(1)
from gateway.pixels.model import load_detector, frame_to_grey, _pad_batch
from gateway.pixels import synth
det = load_detector(device="cpu"); net = det.net
S = list(synth.samples(777, 12, 768, 1024, synth.VALIDATION))
xs = [_pad_batch([frame_to_grey(s.image)])[0].contiguous(memory_format=torch.channels_last) for s in S]
t0 = time.perf_counter()
c = torch.compile(net, dynamic=False)
with torch.inference_mode():
    ref = net(xs[0]); o = c(xs[0])
    print("compile s", time.perf_counter() - t0, "maxdiff", float((torch.sigmoid(ref) - torch.sigmoid(o)).abs().max()))
    for f, name in ((net, "eager"), (c, "compiled")) * 2:
        s = time.perf_counter()
        for x in xs: f(x)
        print(name, (time.perf_counter() - s) / len(xs) * 1e3, "ms")
