"""Detection quality of the committed text detector on the held-out synthetic set."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gateway.config import Settings
from gateway.pipeline.stage import StageContext, StageServices
from gateway.pixels import evaluate as E
from gateway.pixels.boxes import boxes_mask, prepare
from gateway.pixels.model import (
    DEFAULT_WEIGHTS,
    Detector,
    TextDetNet,
    fold_batchnorm,
    load_detector,
)
from gateway.pixels.settings import PixelModelSettings
from gateway.pixels.stage import make_stage
from tests.pixels_data import ultrasound

PAD = PixelModelSettings()


@pytest.fixture(scope="module")
def detector() -> Detector:
    torch.set_num_threads(1)
    return load_detector(DEFAULT_WEIGHTS, "cpu")


def test_weights_are_small_and_load_from_disk() -> None:
    """The committed weights are a few MB at most and load without any network access."""
    assert DEFAULT_WEIGHTS.stat().st_size < 4 * 1024 * 1024
    det = load_detector(DEFAULT_WEIGHTS, "cpu")
    assert det.version.startswith("textdet@")
    blob = torch.load(DEFAULT_WEIGHTS, map_location="cpu", weights_only=True)
    # the settings tune.py chose on validation travel in the file and are the ones used
    assert (det.stride, det.threshold, det.hysteresis, det.unsure_margin, det.split_level) == (
        blob["widths"]["stride"], blob["threshold"], blob["hysteresis"], blob["unsure_margin"],
        blob["split_level"])


# The targets: recall >= 0.99 for text >= 8 px and blanked area outside the text
# <= 2%, on held-out frames. Measured with the committed weights (v2), their settings tuned
# on validation (split level 0.2, threshold 0.10, margin 1) and the stage's padding on these
# 300 frames (MODEL_CARD.md): recall 0.9907 by box and 0.9933 by ink (18 strings of 1,943
# missed; 2 more lost fail here), outside 1.95%. Both are asserted at the target itself.
MIN_RECALL, MAX_OUTSIDE = 0.99, 0.02


def test_held_out_recall_and_outside_area(detector: Detector) -> None:
    """Held-out frames (other seed, fonts, layouts): recall for text >= 8 px, by box and by
    ink, and the blanked area outside the planted text, with the stage's padding."""
    q = E.evaluate(detector.detect, E.held_out(300), PAD.pad_px, PAD.pad_fraction)
    s = q.summary()
    assert s["planted"] >= 1500  # enough strings for the figure to mean something
    assert s["recall"] >= MIN_RECALL, (s, q.missed[:10])
    assert s["recall_ink"] >= MIN_RECALL, s
    assert s["outside_fraction"] <= MAX_OUTSIDE, s


def _words(text: str) -> set[str]:
    return {w for w in re.sub(r"[^0-9A-Z]+", " ", text.upper()).split() if len(w) >= 4}


def test_tesseract_reads_no_planted_string_after_scrubbing(detector: Detector) -> None:
    """Strings tesseract reads on the held-out frames are unreadable once the frames are
    scrubbed with the detector's padded boxes."""
    import pytesseract

    read_before, read_after = 0, []
    for s in E.held_out(24, seed=E.HELD_OUT_SEED + 1):
        frame = E.frame_of(s)
        planted = set().union(*(_words(b.text) for b in s.boxes)) if s.boxes else set()
        before = _words(pytesseract.image_to_string(frame, config="--psm 11"))
        seen = planted & before
        read_before += len(seen)
        boxes = prepare(detector.detect([frame])[0], *frame.shape[:2], PAD.pad_px,
                        PAD.pad_fraction)
        scrubbed = frame.copy()
        scrubbed[boxes_mask(boxes, *frame.shape[:2])] = 0
        after = _words(pytesseract.image_to_string(scrubbed, config="--psm 11"))
        read_after += sorted(seen & after)
    assert read_before >= 20  # the check can fail: tesseract reads the text when it is there
    assert read_after == []


def test_stage_blanks_burned_in_name_with_the_real_model(tmp_path: Path) -> None:
    """An ultrasound instance with a burned-in name: the name's box is blanked in-process and
    little outside it changes."""
    settings = Settings.model_validate({"spool": {"root": str(tmp_path)}})
    stage = make_stage(StageServices(settings=settings, extras={"pixels_mode": "inprocess"}))
    pl = ultrasound()
    before = pl.ds.pixel_array.copy()
    ctx = StageContext(job_id="j")
    stage(pl.ds, ctx)
    after = pl.ds.pixel_array
    planted = boxes_mask(prepare(pl.boxes, 480, 640, 6, 0.2), 480, 640)
    for b in pl.boxes:
        assert (after[b.y0:b.y1, b.x0:b.x1] == 0).all()
    changed = after != before
    assert changed[~planted].mean() < 0.005
    assert ctx.notes["pixels_cleaned"] is True


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_cuda_and_cpu_agree(detector: Detector) -> None:
    """On CUDA the probability maps equal the CPU ones within float tolerance."""
    gpu = load_detector(DEFAULT_WEIGHTS, "cuda")
    grey = [E.frame_of(s).astype(np.float32) / 255 for s in E.held_out(4)]
    grey = [g.max(axis=2) if g.ndim == 3 else g for g in grey]
    for a, b in zip(detector.probability(grey), gpu.probability(grey), strict=True):
        np.testing.assert_allclose(a, b, atol=2e-3)


@pytest.mark.parametrize("stride", [4, 2])
def test_folding_batch_norms_keeps_the_function(stride: int) -> None:
    """fold_batchnorm (done at load) computes what the trained net computes, for both
    output strides, with batch-norm statistics far from the identity."""
    torch.manual_seed(0)
    net = TextDetNet(stride=stride)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.3, 3)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    net.eval()
    x = torch.rand(2, 1, 96, 128)
    with torch.inference_mode():
        want = net(x)
        got = fold_batchnorm(net)(x)
    assert want.shape == (2, 1, 96 // stride, 128 // stride)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert torch.allclose(want, got, atol=1e-4, rtol=1e-4), float((want - got).abs().max())


def test_cpu_detector_runs_its_pointwise_convolutions_through_onednn() -> None:
    """Loaded for a CPU, the 1x1 convolutions (but the one-channel head) go to oneDNN, not
    PyTorch's single-thread GEMM path, and the maps are the plain folded net's."""
    from torch.profiler import ProfilerActivity, profile

    from gateway.pixels.model import PointwiseConv

    if not torch.backends.mkldnn.is_available():
        pytest.skip("this torch has no oneDNN")
    blob = torch.load(DEFAULT_WEIGHTS, map_location="cpu", weights_only=True)
    plain = TextDetNet(**blob["widths"])
    plain.load_state_dict(blob["state_dict"])
    fold_batchnorm(plain.eval())
    det = load_detector(DEFAULT_WEIGHTS, "cpu")
    pointwise = [m for m in det.net.modules() if isinstance(m, PointwiseConv)]
    assert len(pointwise) == sum(1 for m in plain.modules() if isinstance(m, torch.nn.Conv2d)
                                 and m.kernel_size == (1, 1) and m.out_channels > 1) > 10
    x = torch.rand(1, 1, 96, 128)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU],
                                             record_shapes=True) as prof:
            got = det.net(x.contiguous(memory_format=torch.channels_last))
        with torch.inference_mode():
            want = plain(x)
    finally:
        torch.set_num_threads(threads)
    slow = [e.input_shapes[1] for e in prof.key_averages(group_by_input_shape=True)
            if e.key == "aten::_slow_conv2d_forward"]  # weight shapes (out, in, kh, kw)
    assert [1, 16, 1, 1] in slow  # the head: the profile sees the slow path
    assert not [w for w in slow if w[2:] == [1, 1] and w[0] > 1], slow
    assert torch.allclose(want, got, atol=1e-4, rtol=1e-4), float((want - got).abs().max())


def test_only_plain_pointwise_convolutions_are_swapped() -> None:
    """A 1x1 convolution with padding (or stride, or groups) computes something else, so it
    keeps its own layer; a plain one is swapped and computes the same."""
    from gateway.pixels.model import PointwiseConv, pointwise_through_onednn

    conv = torch.nn.Conv2d
    net = torch.nn.Sequential(conv(4, 6, 1), conv(6, 6, 1, padding=1), conv(6, 6, 1, stride=2),
                              conv(6, 6, 1, groups=2))
    x = torch.rand(1, 4, 10, 12)
    with torch.inference_mode():
        want = net(x)
        pointwise_through_onednn(net)  # type: ignore[arg-type]
        got = net(x)
    assert [type(m) for m in net] == [PointwiseConv] + [torch.nn.Conv2d] * 3
    assert torch.allclose(want, got, atol=1e-5)


_FAULTS = """
import resource, sys
import numpy as np, torch
import gateway.pixels.model as M
if sys.argv[1] == "off":
    M._HEAP_KEPT = False  # as if already decided: load_detector leaves malloc alone
torch.set_num_threads(1)
det = M.load_detector(M.DEFAULT_WEIGHTS, "cpu")
g = np.random.default_rng(0).random((768, 1024), dtype=np.float32)
for _ in range(3):
    det.probability([g])
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    det.probability([g])
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
"""


def test_cpu_detector_reuses_activation_memory_between_frames() -> None:
    """Loaded for a CPU, the detector keeps its activations' memory between frames: a
    1024x768 frame then costs few page faults (without it, thousands a frame, which took half
    the network's time). Page faults, not time, so the test does not depend on the load."""
    from gateway.pixels.model import keep_activation_memory

    if not keep_activation_memory():
        pytest.skip("the C library is not glibc")

    def faults(mode: str) -> float:
        out = subprocess.run([sys.executable, "-c", _FAULTS, mode], check=True,
                             capture_output=True, text=True).stdout
        return float(out.split()[-1])

    kept, default = faults("on"), faults("off")
    assert kept < 1000, kept
    assert default > 4 * kept, (default, kept)  # the measurement sees the difference
