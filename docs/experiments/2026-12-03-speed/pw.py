import os, time
os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch, torch.nn.functional as F
torch.set_num_threads(1)
from gateway.pixels.model import load_detector
det = load_detector(device="cpu"); net = det.net
cl = torch.channels_last
def t(name, fn, n=40):
    with torch.inference_mode():
        for _ in range(3): fn()
        s = time.perf_counter()
        for _ in range(n): fn()
        print(f"{name:44s} {(time.perf_counter()-s)/n*1e3:7.3f} ms")
for (cin, cout, h, w, conv) in ((8, 16, 384, 512, net.fuse2.pw), (24, 24, 192, 256, net.block4.pw), (24, 8, 192, 256, net.lat4), (48, 48, 96, 128, net.fuse8.pw), (16, 1, 384, 512, net.head2)):
    x = torch.rand(1, cin, h, w).contiguous(memory_format=cl)
    W = conv.weight[:, :, 0, 0].contiguous(); b = conv.bias
    def lin(x=x, W=W, b=b):
        return F.linear(x.permute(0, 2, 3, 1), W, b).permute(0, 3, 1, 2)
    def mm(x=x, W=W, b=b):
        n, c, hh, ww = x.shape
        v = x.permute(0, 2, 3, 1).reshape(-1, c)
        return torch.addmm(b, v, W.t()).reshape(n, hh, ww, -1).permute(0, 3, 1, 2)
    with torch.inference_mode():
        d = float((lin() - conv(x)).abs().max()); d2 = float((mm() - conv(x)).abs().max())
        print("diff", d, d2, lin().is_contiguous(memory_format=cl))
    t(f"conv1x1 {cin}->{cout} {h}x{w}", lambda: conv(x))
    t(f"linear  {cin}->{cout} {h}x{w}", lin)
    t(f"addmm   {cin}->{cout} {h}x{w}", mm)
print("---- mkldnn_convolution direct")
for (cin, cout, h, w, conv) in ((8, 16, 384, 512, net.fuse2.pw), (24, 24, 192, 256, net.block4.pw), (24, 8, 192, 256, net.lat4), (48, 48, 96, 128, net.fuse8.pw), (16, 1, 384, 512, net.head2)):
    x = torch.rand(1, cin, h, w).contiguous(memory_format=cl)
    Wc = conv.weight.contiguous(memory_format=cl)
    f = lambda x=x, Wc=Wc, b=conv.bias: torch.mkldnn_convolution(x, Wc, b, [0, 0], [1, 1], [1, 1], 1)
    with torch.inference_mode():
        print("diff", float((f() - conv(x)).abs().max()), f().is_contiguous(memory_format=cl))
    t(f"mkldnn  {cin}->{cout} {h}x{w}", f)
